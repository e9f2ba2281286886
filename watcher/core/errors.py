"""One tree of errors. Every message starts with the stage that raised it."""


class WatcherError(Exception):
    stage = "watcher"

    def __init__(self, message: str) -> None:
        prefix = f"{self.stage}: "
        super().__init__(message if message.startswith(prefix) else prefix + message)


class ConfigError(WatcherError):
    stage = "config"


class RuleError(WatcherError):
    stage = "rules"


class FetchError(WatcherError):
    stage = "fetch"

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ParseError(WatcherError):
    stage = "parse"


class ExtractError(WatcherError):
    stage = "extract"


class StoreError(WatcherError):
    stage = "store"


class DeliveryError(WatcherError):
    """A channel refused or failed to take an alert.

    `permanent` means retrying cannot help (a 4xx that is not rate limiting, a
    template that cannot render); anything else is retried with backoff.
    """

    stage = "deliver"

    def __init__(self, message: str, *, permanent: bool = False,
                 retry_after: float | None = None, disable_channel: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent or disable_channel
        self.retry_after = retry_after
        # the receiver is gone for good (webhook 410): stop using the channel
        self.disable_channel = disable_channel
