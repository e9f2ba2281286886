"""One tree of errors. Every message starts with the stage that raised it, then
names the thing (the file, feed, rule or channel) and the reason:
"fetch: feed 'upi-world' answered 503; next try 12:04".

Our exception hierarchy:

* WatcherError
  + ConfigError - config/watcher.yaml or a command's arguments (file, key, reason)
  + RuleError - rules.yaml (file:line:column, reason); the last good rules stay
  + FetchError - a feed or page could not be fetched (`status`, `retry_after`)
  + ParseError - the bytes are not a feed
  + ExtractError - a page's text could not be extracted (in time)
  + StoreError - the database refused or is unreachable
  + DeliveryError - a channel did not take an alert (`permanent`, `retry_after`,
    `disable_channel`)

Inside a package, some steps raise a ValueError subclass that the package turns
into one of the above with the context it knows: TemplateError (delivery),
QueryError and RegexError (rules), prune_xpath's Unsupported (extract: an
expression left to libxml2, never an error for the user).
"""


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
        # seconds to wait, from the Retry-After header (delta-seconds or an HTTP date)
        self.retry_after = retry_after


class ParseError(WatcherError):
    stage = "parse"


class ExtractError(WatcherError):
    stage = "extract"


class StoreError(WatcherError):
    """`transient`: the same transaction may well succeed if tried again (a deadlock
    between two daemons, a connection dropped mid-transaction)."""

    stage = "store"

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


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
