"""The shape of config/watcher.yaml: validated, frozen Settings (pydantic)."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from watcher.core.models import Feed, SourceKind
from watcher.settings.essentials import DEFAULT_CONFIG

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1}


def parse_duration(value: object) -> float:
    """'90s', '5m', '1.5h', '2d' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h, 2d)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def parse_size(value: object) -> int:
    """'10MB', '512KiB' or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 5MB")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a size (use e.g. 512KB, 10MB)")
        unit = m.group(2).lower() if m.group(2) else None
        size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError("a size must be greater than zero")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_WHSEC = "whsec_"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FeedConfig(_Model):
    name: str = Field(pattern=NAME_PATTERN)
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
    backfill: Duration = 2 * 86400.0
    links: str | None = None  # page: CSS selector of the article links
    pattern: str | None = None  # page: regular expression the article links match

    @model_validator(mode="after")
    def _source_fields(self) -> FeedConfig:
        if self.type == "feed" and "backfill" in self.model_fields_set:
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
        return self


class ConsoleChannel(_Model):
    type: Literal["console"]


class JsonlChannel(_Model):
    type: Literal["jsonl"]
    path: Path


class TemplatePaths(_Model):
    """A channel's own Jinja2 templates (paths relative to the config file)."""

    subject: Path | None = None
    text: Path | None = None
    html: Path | None = None
    generic: Path | None = None


class WebhookChannel(_Model):
    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = {}
    timeout: Duration = 10.0
    format: Literal["generic", "slack", "discord", "teams", "ntfy"] = "generic"
    secret: str | None = None
    templates: TemplatePaths | None = None

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, v: str | None) -> str | None:
        if v is not None and v.startswith(_WHSEC):
            try:
                base64.b64decode(v[len(_WHSEC):], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("a whsec_ secret must be base64 after the prefix") from None
        if v is not None and not v:
            raise ValueError("the secret is empty")
        return v

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL itself stays out of the message: webhook URLs carry tokens.
            scheme = parts.scheme or "no scheme"
            raise ValueError(f"not an http(s) URL ({scheme}); check the value")
        return v


class SmtpConfig(_Model):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)  # 587, 465 (tls) or 25 (none)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None  # trust a private CA (the system store is used as well)
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _plain_only_on_localhost(self) -> SmtpConfig:
        if self.security == "none" and self.host not in _LOCAL_HOSTS:
            raise ValueError(f"security: none is only allowed for a relay on localhost, "
                             f"not {self.host!r} (use starttls or tls)")
        if self.password and not self.username:
            raise ValueError("a password needs a username")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


def _address(v: str) -> str:
    if "@" not in v or any(c in v for c in "\r\n\x00<>,") or len(v) > 254:
        raise ValueError(f"{v!r} is not an email address")
    return v.strip()


class EmailChannel(_Model):
    type: Literal["email"]
    to: tuple[str, ...] = Field(min_length=1)
    from_: str = Field(alias="from")
    smtp: SmtpConfig
    templates: TemplatePaths | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(a) for a in v)

    @field_validator("from_")
    @classmethod
    def _from_address(cls, v: str) -> str:
        return _address(v)


class AppriseChannel(_Model):
    type: Literal["apprise"]
    url: str
    templates: TemplatePaths | None = None
    timeout: Duration = 30.0

    @field_validator("url")
    @classmethod
    def _package_installed(cls, v: str) -> str:
        if importlib.util.find_spec("apprise") is None:
            raise ValueError("type apprise needs the apprise package: "
                             "pip install 'watcher[apprise]'")
        if "://" not in v:
            raise ValueError("expected an Apprise URL such as tgram://TOKEN/CHAT_ID")
        return v


ChannelConfig = Annotated[
    ConsoleChannel | JsonlChannel | WebhookChannel | EmailChannel | AppriseChannel,
    Field(discriminator="type"),
]


class PollConfig(_Model):
    tick: Duration = 15.0
    default_interval: Duration = 900.0
    # Bounds for adapting a feed's interval to how often it publishes.
    min_interval: Duration = 120.0
    max_interval: Duration = 3600.0
    # A <ttl>, sy:updatePeriod, max-age or Expires longer than this is not obeyed.
    max_server_wait: Duration = 6 * 3600.0
    concurrency: int = Field(default=16, ge=1, le=256)
    per_host: int = Field(default=2, ge=1, le=64)
    max_backoff: Duration = 86400.0
    # A feed being polled is claimed for this long (renewed while the poll lasts); a
    # daemon that dies loses its feeds to the others sharing the database after it.
    lease: Duration = 120.0


class FetchConfig(_Model):
    timeout: Duration = 30.0
    max_feed_bytes: Size = 10 * 1000**2
    max_page_bytes: Size = 5 * 1000**2
    # A sitemap source: bytes of one sitemap after decompression, URLs read from one,
    # sitemaps read per poll, and how deep indexes of indexes are followed.
    sitemap_max_bytes: Size = 50 * 1000**2
    sitemap_max_urls: int = Field(default=50_000, ge=1)
    sitemap_max_files: int = Field(default=50, ge=1, le=10_000)
    sitemap_max_depth: int = Field(default=2, ge=0, le=5)
    user_agent: str | None = None
    allow_private_networks: bool = False
    fetch_pages: bool = True
    # A feed's new entries wait at most this long for their pages, then are stored
    # and matched with the feed's own text; a page that comes later improves them.
    page_wait: Duration = 10.0
    # Pages one feed may fetch in one poll; the rest come in its later polls.
    max_pages_per_poll: int = Field(default=50, ge=1, le=10000)
    # Page extraction runs in this many processes (0: the number of cores), more (up
    # to extract_max_workers, 0: four times as many) while pages are slow; a page
    # taking longer than extract_timeout is cut off and its feed's text is kept.
    extract_workers: int = Field(default=0, ge=0, le=64)
    extract_max_workers: int = Field(default=0, ge=0, le=256)
    extract_timeout: Duration = 20.0
    # An extraction worker is replaced after this many pages (0: never), its pages in
    # hand finished first and its successor started meanwhile: what the libraries
    # keep from page to page is given back.
    extract_recycle_after: int = Field(default=2000, ge=0, le=10_000_000)


class DeliveryConfig(_Model):
    tick: Duration = 5.0
    max_age: Duration = 48 * 3600.0
    batch: int = Field(default=100, ge=1)
    # wait after the 1st, 2nd ... failed attempt (the last repeats), each +-20% jitter
    backoff: tuple[Duration, ...] = Field(default=(5, 300, 1800, 7200, 18000, 36000, 86400),
                                          min_length=1)
    timezone: str = "UTC"  # for digest times such as "08:00"
    # A delivery being sent is claimed for this long; then another daemon may take it.
    lease: Duration = 120.0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use e.g. UTC, Europe/Oslo)") from None
        return v


class StoriesConfig(_Model):
    """Copies of one story (near-identical text) within `window` alert once."""

    enabled: bool = True
    window: Duration = 3 * 86400.0
    # estimated Jaccard similarity of word shingles at or above which two texts
    # are one story: 0.5 keeps a re-headlined, trimmed wire copy together and two
    # reports of one event apart (tests/test_identity.py)
    threshold: float = Field(default=0.5, gt=0, le=1)


class RetentionConfig(_Model):
    days: float = Field(default=90, gt=0)  # articles that matched nothing
    matched_days: float = Field(default=365, gt=0)  # articles that fired an alert


class MetricsConfig(_Model):
    # host:port for /healthz and /metrics, e.g. 127.0.0.1:9464; unset = off
    listen: str | None = Field(default=None, pattern=r"^[^\s]*:\d{1,5}$")

    @field_validator("listen", mode="before")
    @classmethod
    def _empty_is_off(cls, v: object) -> object:
        return None if v == "" else v


Role = Literal["viewer", "editor"]


class WebUser(_Model):
    # from `watcher web passwd NAME`
    password_hash: str = Field(pattern=r"^scrypt\$")
    role: Role = "viewer"


class WebToken(_Model):
    # an API token (Authorization: Bearer), best given as "${VARIABLE}"
    token: str = Field(min_length=16)
    role: Role = "viewer"


class WebConfig(_Model):
    """The daemon's web server: the console (watcher.web) and, when `public_url` is set,
    the callbacks WebSub hubs push new stories to, on the same address."""

    # host:port of the console, e.g. 127.0.0.1:8080; unset = off
    listen: str | None = Field(default=None, pattern=r"^[^\s]*:\d{1,5}$")
    # Host names browsers may reach it by besides the listen address and localhost
    # (a reverse proxy's name); any other Host header is refused (DNS rebinding).
    hosts: tuple[str, ...] = ()
    # Addresses or networks (127.0.0.1, 10.0.0.0/8) of reverse proxies whose
    # X-Forwarded-Proto and X-Forwarded-For are believed: behind one that terminates
    # TLS, the session cookie is then Secure. From any other address they are ignored.
    trusted_proxies: tuple[str, ...] = ()
    users: dict[str, WebUser] = {}
    tokens: dict[str, WebToken] = {}
    # the URL the hubs reach this server at, e.g. https://watcher.example.org; unset:
    # no WebSub, feeds are polled
    public_url: str | None = None
    websub_lease: Duration = 10 * 86400.0  # asked of the hubs; they decide
    # while pushes are expected, the feed is still polled this often as a safety net
    websub_poll_interval: Duration = 6 * 3600.0

    @field_validator("listen", mode="before")
    @classmethod
    def _empty_is_off(cls, v: object) -> object:
        return None if v == "" else v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress  # here: every start loads the config, few configs name a proxy

        for entry in v:
            try:
                ipaddress.ip_network(entry.strip())
            except ValueError:
                raise ValueError(f"{entry!r} is no IP address or network "
                                 "(e.g. 127.0.0.1 or 10.0.0.0/8)") from None
        return tuple(e.strip() for e in v)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and (urlsplit(v).scheme not in ("http", "https")
                              or not urlsplit(v).hostname):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _both(self) -> WebConfig:
        if self.public_url and not self.listen:
            raise ValueError("public_url needs listen (the address the server listens on)")
        return self


class AlertsConfig(_Model):
    """Operator alerts: problems with watcher itself, sent to these channels."""

    feed_health: tuple[str, ...] = ()
    delivery_failures: tuple[str, ...] = ()
    # A feed failing for this long is flagged unhealthy and reported once.
    unhealthy_after: Duration = 24 * 3600.0


# A PostgreSQL server (libpq's URL form; the password from ${VAR}, libpq's
# environment or ~/.pgpass), or else the path of an SQLite file.
ServerUrl = Annotated[str, Field(pattern=r"^postgres(ql)?://")]


class Settings(_Model):
    """The whole validated configuration. `source` is the file it came from."""

    database: ServerUrl | Path
    rules: Path
    feeds: tuple[FeedConfig, ...] = ()
    channels: dict[str, ChannelConfig] = {}
    poll: PollConfig = Field(default_factory=PollConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    stories: StoriesConfig = Field(default_factory=StoriesConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    source: Path = DEFAULT_CONFIG
    # sha256 of the text loaded: the daemon reloads when the file's text differs
    source_digest: str = ""
    # channel name -> why it cannot be used (an environment variable is missing)
    unusable_channels: dict[str, str] = {}
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
                kind=f.type, backfill_s=f.backfill, links=f.links, pattern=f.pattern,
            ))
        return out
