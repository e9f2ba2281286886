"""The shape of config/watcher.yaml: frozen dataclasses that pydantic validates.

The classes are plain dataclasses, not pydantic models, so that a Settings unpickled
from the cache (watcher.settings.cache) imports no pydantic: a warm `watcher run --once`
would otherwise spend a good part of its start-up importing pydantic and building its
model classes. The annotations name pydantic's validation types (`Duration`,
`Field(...)`, `AfterValidator(...)`); they are strings until `validator()` binds those
names here and pydantic reads them. What a model validator checked, `__post_init__`
checks (pydantic reports its ValueError at the object's place in the file).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from watcher.core.models import Feed, SourceKind
from watcher.settings import checks
from watcher.settings.checks import parse_duration, parse_size
from watcher.settings.essentials import DEFAULT_CONFIG

if TYPE_CHECKING:
    from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter

    Duration = float
    Size = int
    ServerUrl = str

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class _Model:
    # pydantic reads this of a dataclass: an unknown key is an error, not ignored
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}


_TWO_DAYS = 2 * 86400.0


@dataclass(frozen=True)
class FeedConfig(_Model):
    """A source under `feeds:` (a feed, a site's sitemaps or a section page)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    url: str
    interval: Duration | None = None
    min_interval: Duration | None = None
    max_interval: Duration | None = None
    adaptive: bool = True
    tags: tuple[str, ...] = ()
    allow_private: bool = False
    # feed: RSS, Atom or JSON Feed; sitemap: a site's (news) sitemaps; page: a section
    # or front page whose new article links are its entries
    type: SourceKind = "feed"
    # a sitemap or page source takes, on its first poll, what is at most this old
    # (unset: two days). None is only the default: a `backfill:` left empty is refused
    # as a duration, as when the default was the two days themselves.
    backfill: Annotated[float | None, BeforeValidator(parse_duration)] = None
    links: str | None = None  # page: CSS selector of the article links
    pattern: str | None = None  # page: regular expression the article links match

    def __post_init__(self) -> None:
        if self.type == "feed" and self.backfill is not None:
            raise ValueError("backfill is for type sitemap or page")
        if self.type != "page" and (self.links or self.pattern):
            raise ValueError("links and pattern are for type page")
        if self.type != "feed" and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"a {self.type} source needs an http(s) URL, not {self.url!r}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: "
                                 f"{exc}") from None
        if self.links is not None:
            try:
                from lxml.cssselect import CSSSelector

                CSSSelector(self.links)
            except Exception as exc:  # cssselect's SelectorSyntaxError and kin
                raise ValueError(f"links {self.links!r} is not a CSS selector: "
                                 f"{exc}") from None

    @property
    def backfill_s(self) -> float:
        return _TWO_DAYS if self.backfill is None else self.backfill


@dataclass(frozen=True)
class ConsoleChannel(_Model):
    """Alerts printed on the daemon's standard output."""

    type: Literal["console"]


@dataclass(frozen=True)
class JsonlChannel(_Model):
    """Alerts appended to a file, one JSON object a line."""

    type: Literal["jsonl"]
    path: Path


@dataclass(frozen=True)
class TemplatePaths(_Model):
    """A channel's own Jinja2 templates (paths relative to the config file)."""

    subject: Path | None = None
    text: Path | None = None
    html: Path | None = None
    generic: Path | None = None




@dataclass(frozen=True)
class WebhookChannel(_Model):
    """Alerts POSTed to a URL (generic JSON, Slack, Discord, Teams or ntfy)."""

    type: Literal["webhook"]
    url: Annotated[str, AfterValidator(checks.http_only)]
    headers: dict[str, str] = field(default_factory=dict)
    timeout: Duration = 10.0
    format: Literal["generic", "slack", "discord", "teams", "ntfy"] = "generic"
    secret: Annotated[str | None, AfterValidator(checks.secret_form)] = None
    templates: TemplatePaths | None = None


@dataclass(frozen=True)
class SmtpConfig(_Model):
    """The mail server an email channel sends through."""

    host: str
    # 587, 465 (tls) or 25 (none)
    port: Annotated[int | None, Field(ge=1, le=65535)] = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None  # trust a private CA (the system store is used as well)
    timeout: Duration = 30.0

    def __post_init__(self) -> None:
        if self.security == "none" and self.host not in _LOCAL_HOSTS:
            raise ValueError(f"security: none is only allowed for a relay on localhost, "
                             f"not {self.host!r} (use starttls or tls)")
        if self.password and not self.username:
            raise ValueError("a password needs a username")

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]





@dataclass(frozen=True)
class EmailChannel(_Model):
    """Alerts sent as email."""

    type: Literal["email"]
    to: Annotated[tuple[str, ...], Field(min_length=1), BeforeValidator(checks.one_or_many),
                  AfterValidator(checks.addresses)]
    from_: Annotated[str, Field(alias="from"), AfterValidator(checks.address)]
    smtp: SmtpConfig
    templates: TemplatePaths | None = None



@dataclass(frozen=True)
class AppriseChannel(_Model):
    """Alerts sent through an Apprise URL (the apprise package)."""

    type: Literal["apprise"]
    url: Annotated[str, AfterValidator(checks.apprise_url)]
    templates: TemplatePaths | None = None
    timeout: Duration = 30.0


if TYPE_CHECKING:
    ChannelConfig = (ConsoleChannel | JsonlChannel | WebhookChannel | EmailChannel
                     | AppriseChannel)


@dataclass(frozen=True)
class PollConfig(_Model):
    """How often feeds are polled, and how many at once."""

    tick: Duration = 15.0
    default_interval: Duration = 900.0
    # Bounds for adapting a feed's interval to how often it publishes.
    min_interval: Duration = 120.0
    max_interval: Duration = 3600.0
    # A <ttl>, sy:updatePeriod, max-age or Expires longer than this is not obeyed.
    max_server_wait: Duration = 6 * 3600.0
    concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    per_host: Annotated[int, Field(ge=1, le=64)] = 2
    max_backoff: Duration = 86400.0
    # A feed being polled is claimed for this long (renewed while the poll lasts); a
    # daemon that dies loses its feeds to the others sharing the database after it.
    lease: Duration = 120.0


@dataclass(frozen=True)
class FetchConfig(_Model):
    """Limits and manners of every fetch: feeds, pages, sitemaps, extraction."""

    timeout: Duration = 30.0
    max_feed_bytes: Size = 10 * 1000**2
    max_page_bytes: Size = 5 * 1000**2
    # A sitemap source: bytes of one sitemap after decompression, URLs read from one,
    # sitemaps read per poll, and how deep indexes of indexes are followed.
    sitemap_max_bytes: Size = 50 * 1000**2
    sitemap_max_urls: Annotated[int, Field(ge=1)] = 50_000
    sitemap_max_files: Annotated[int, Field(ge=1, le=10_000)] = 50
    sitemap_max_depth: Annotated[int, Field(ge=0, le=5)] = 2
    user_agent: str | None = None
    allow_private_networks: bool = False
    fetch_pages: bool = True
    # A feed's new entries wait at most this long for their pages, then are stored
    # and matched with the feed's own text; a page that comes later improves them.
    page_wait: Duration = 10.0
    # Pages one feed may fetch in one poll; the rest come in its later polls.
    max_pages_per_poll: Annotated[int, Field(ge=1, le=10000)] = 50
    # Page extraction runs in this many processes (0: the number of cores), more (up
    # to extract_max_workers, 0: four times as many) while pages are slow; a page
    # taking longer than extract_timeout is cut off and its feed's text is kept.
    extract_workers: Annotated[int, Field(ge=0, le=64)] = 0
    extract_max_workers: Annotated[int, Field(ge=0, le=256)] = 0
    extract_timeout: Duration = 20.0
    # An extraction worker is replaced after this many pages (0: never), its pages in
    # hand finished first and its successor started meanwhile: what the libraries
    # keep from page to page is given back.
    extract_recycle_after: Annotated[int, Field(ge=0, le=10_000_000)] = 2000



@dataclass(frozen=True)
class DeliveryConfig(_Model):
    """How alerts leave the outbox: its pace, retries and digests' time zone."""

    tick: Duration = 5.0
    max_age: Duration = 48 * 3600.0
    batch: Annotated[int, Field(ge=1)] = 100
    # wait after the 1st, 2nd ... failed attempt (the last repeats), each +-20% jitter
    backoff: Annotated[tuple[Duration, ...], Field(min_length=1)] = (
        5, 300, 1800, 7200, 18000, 36000, 86400)
    timezone: Annotated[str, AfterValidator(checks.known_zone)] = "UTC"  # for digest times "08:00"
    # A delivery being sent is claimed for this long; then another daemon may take it.
    lease: Duration = 120.0


@dataclass(frozen=True)
class StoriesConfig(_Model):
    """Copies of one story (near-identical text) within `window` alert once."""

    enabled: bool = True
    window: Duration = 3 * 86400.0
    # estimated Jaccard similarity of word shingles at or above which two texts
    # are one story: 0.5 keeps a re-headlined, trimmed wire copy together and two
    # reports of one event apart (tests/test_identity.py)
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.5


@dataclass(frozen=True)
class RetentionConfig(_Model):
    """How long articles are kept."""

    days: Annotated[float, Field(gt=0)] = 90  # articles that matched nothing
    matched_days: Annotated[float, Field(gt=0)] = 365  # articles that fired an alert



@dataclass(frozen=True)
class MetricsConfig(_Model):
    """Where /healthz and /metrics are served, if anywhere."""

    # host:port for /healthz and /metrics, e.g. 127.0.0.1:9464; unset = off
    listen: Annotated[str | None, Field(pattern=r"^[^\s]*:\d{1,5}$"),
                      BeforeValidator(checks.empty_is_off)] = None


Role = Literal["viewer", "editor"]


@dataclass(frozen=True)
class WebUser(_Model):
    """A person who may sign in to the console."""

    # from `watcher web passwd NAME`
    password_hash: Annotated[str, Field(pattern=r"^scrypt\$")]
    role: Role = "viewer"


@dataclass(frozen=True)
class WebToken(_Model):
    """A token the console's API accepts."""

    # an API token (Authorization: Bearer), best given as "${VARIABLE}"
    token: Annotated[str, Field(min_length=16)]
    role: Role = "viewer"




@dataclass(frozen=True)
class WebConfig(_Model):
    """The daemon's web server: the console (watcher.web) and, when `public_url` is set,
    the callbacks WebSub hubs push new stories to, on the same address."""

    # host:port of the console, e.g. 127.0.0.1:8080; unset = off
    listen: Annotated[str | None, Field(pattern=r"^[^\s]*:\d{1,5}$"),
                      BeforeValidator(checks.empty_is_off)] = None
    # Host names browsers may reach it by besides the listen address and localhost
    # (a reverse proxy's name); any other Host header is refused (DNS rebinding).
    hosts: tuple[str, ...] = ()
    # Addresses or networks (127.0.0.1, 10.0.0.0/8) of reverse proxies whose
    # X-Forwarded-Proto and X-Forwarded-For are believed: behind one that terminates
    # TLS, the session cookie is then Secure. From any other address they are ignored.
    trusted_proxies: Annotated[tuple[str, ...], AfterValidator(checks.networks)] = ()
    users: dict[str, WebUser] = field(default_factory=dict)
    tokens: dict[str, WebToken] = field(default_factory=dict)
    # the URL the hubs reach this server at, e.g. https://watcher.example.org; unset:
    # no WebSub, feeds are polled
    public_url: Annotated[str | None, AfterValidator(checks.http_url)] = None
    websub_lease: Duration = 10 * 86400.0  # asked of the hubs; they decide
    # while pushes are expected, the feed is still polled this often as a safety net
    websub_poll_interval: Duration = 6 * 3600.0

    def __post_init__(self) -> None:
        if self.public_url and not self.listen:
            raise ValueError("public_url needs listen (the address the server listens on)")


@dataclass(frozen=True)
class AlertsConfig(_Model):
    """Operator alerts: problems with watcher itself, sent to these channels."""

    feed_health: tuple[str, ...] = ()
    delivery_failures: tuple[str, ...] = ()
    # A feed failing for this long is flagged unhealthy and reported once.
    unhealthy_after: Duration = 24 * 3600.0


@dataclass(frozen=True)
class Settings(_Model):
    """The whole validated configuration. `source` is the file it came from."""

    # A PostgreSQL server (libpq's URL form; the password from ${VAR}, libpq's
    # environment or ~/.pgpass), or else the path of an SQLite file.
    database: ServerUrl | Path
    rules: Path
    feeds: tuple[FeedConfig, ...] = ()
    channels: dict[str, ChannelConfig] = field(default_factory=dict)
    poll: PollConfig = field(default_factory=PollConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    stories: StoriesConfig = field(default_factory=StoriesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    source: Path = DEFAULT_CONFIG
    # sha256 of the text loaded: the daemon reloads when the file's text differs
    source_digest: str = ""
    # channel name -> why it cannot be used (an environment variable is missing)
    unusable_channels: dict[str, str] = field(default_factory=dict)
    # values that came from the environment inside channels: never logged
    secrets: tuple[str, ...] = ()
    # what the file says in an older way that is still understood, for a warning
    notices: tuple[str, ...] = ()
    # relative paths resolved through a symbolic link: (as joined, where it led then)
    path_links: tuple[tuple[str, str], ...] = ()

    @property
    def shared_database(self) -> bool:
        """Several daemons may use it at once (PostgreSQL), not one (SQLite)."""
        return isinstance(self.database, str)

    @property
    def database_shown(self) -> str:
        """The database as logs and commands show it: a URL without its password."""
        if isinstance(self.database, str):
            return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", self.database)
        return str(self.database)

    def feed_models(self) -> list[Feed]:
        out = []
        for f in self.feeds:
            interval = f.interval or self.poll.default_interval
            out.append(Feed(
                name=f.name,
                url=f.url,
                interval_s=interval,
                tags=tuple(f.tags),
                allow_private=f.allow_private or self.fetch.allow_private_networks,
                # The configured interval always lies within the adaptive bounds.
                min_interval_s=min(f.min_interval or self.poll.min_interval, interval),
                max_interval_s=max(f.max_interval or self.poll.max_interval, interval),
                adaptive=f.adaptive,
                kind=f.type, backfill_s=f.backfill_s, links=f.links, pattern=f.pattern,
            ))
        return out


_ADAPTER: TypeAdapter[Settings] | None = None
# the console validates edits from threads: one builds the validator, the others wait
# for it rather than each building their own over the names being bound
_BUILDING = threading.Lock()


def validator() -> TypeAdapter[Settings]:
    """pydantic's validator of Settings, built once; binds the names the annotations
    above use (see the module's docstring)."""
    if _ADAPTER is None:
        with _BUILDING:
            return _ADAPTER if _ADAPTER is not None else _build()
    return _ADAPTER


def _build() -> TypeAdapter[Settings]:
    global _ADAPTER
    from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter

    globals().update(
        AfterValidator=AfterValidator, BeforeValidator=BeforeValidator, Field=Field,
        Duration=Annotated[float, BeforeValidator(parse_duration)],
        Size=Annotated[int, BeforeValidator(parse_size)],
        ServerUrl=Annotated[str, Field(pattern=r"^postgres(ql)?://")],
        ChannelConfig=Annotated[ConsoleChannel | JsonlChannel | WebhookChannel
                                | EmailChannel | AppriseChannel,
                                Field(discriminator="type")])
    _ADAPTER = TypeAdapter(Settings)
    return _ADAPTER
