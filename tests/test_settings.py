"""watcher.settings: config file + environment -> validated Settings, or a precise error."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.core.errors import ConfigError
from watcher.settings import config_path, load_settings, parse_duration, parse_size
from watcher.settings.model import DEFAULT_CONFIG, JsonlChannel, WebhookChannel

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "watcher.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    msg = str(info.value)
    assert msg.startswith("config: ")
    return msg


# --- environment substitution ----------------------------------------------------------


def test_env_var_and_default_substitution(tmp_path: Path) -> None:
    path = write(tmp_path, """\
database: "${DB_DIR}/w.db"
feeds:
  - {name: a, url: "https://${HOST:-feeds.example}/a.xml"}
  - {name: b, url: "https://${OTHER:-fallback.example}/b.xml"}
  - {name: c, url: "https://${EMPTY:-used-when-empty.example}/c.xml"}
""")
    s = load_settings(path, env={"DB_DIR": "/srv/data", "OTHER": "set.example", "EMPTY": ""})
    assert s.database == Path("/srv/data/w.db")
    assert [f.url for f in s.feeds] == [
        "https://feeds.example/a.xml",
        "https://set.example/b.xml",
        "https://used-when-empty.example/c.xml",
    ]
    assert s.unusable_channels == {}


def test_missing_variable_outside_channels_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'database: "${DB_DIR}/w.db"\n')
    msg = config_error(path)
    assert msg == f"config: {path}: database: environment variable DB_DIR is not set"


def test_missing_variable_in_a_feed_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, 'feeds:\n  - {name: a, url: "${FEED_URL}"}\n')
    msg = config_error(path)
    assert "environment variable FEED_URL is not set" in msg
    assert str(path) in msg


def test_missing_variable_key_path_uses_list_index_notation(tmp_path: Path) -> None:
    path = write(tmp_path, 'feeds:\n  - {name: a, url: "${FEED_URL}"}\n')
    assert f"{path}: feeds[0].url: environment variable FEED_URL" in config_error(path)


def test_missing_variable_inside_a_channel_makes_it_unusable_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, """\
channels:
  console: {type: console}
  hook: {type: webhook, url: "${HOOK_URL}", bogus: "not validated either"}
""")
    s = load_settings(path, env={})
    assert s.unusable_channels == {
        "hook": "environment variable HOOK_URL is not set (used at channels.hook.url)"}
    assert list(s.channels) == ["console"]


def test_values_from_env_inside_channels_are_recorded_as_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, """\
database: "${DB_DIR:-db}/w.db"
channels:
  hook:
    type: webhook
    url: "https://hooks.example/${TOKEN}"
    headers: {Authorization: "Bearer ${API_KEY}"}
""")
    s = load_settings(path, env={"TOKEN": "t0k", "API_KEY": "longer-secret", "DB_DIR": "dd"})
    assert s.secrets == ("longer-secret", "t0k")
    hook = s.channels["hook"]
    assert isinstance(hook, WebhookChannel)
    assert hook.url == "https://hooks.example/t0k"
    assert hook.headers == {"Authorization": "Bearer longer-secret"}


def test_a_postgresql_url_selects_the_shared_store_and_hides_its_password(
        tmp_path: Path) -> None:
    path = write(tmp_path, 'database: "postgresql://watcher:${PGPW}@db.example:5432/watcher"\n')
    s = load_settings(path, env={"PGPW": "s3cret-pw"})
    assert s.database == "postgresql://watcher:s3cret-pw@db.example:5432/watcher"
    assert s.shared_database
    assert s.database_shown == "postgresql://watcher:***@db.example:5432/watcher"
    assert "s3cret-pw" in s.secrets  # redacted wherever secrets are


def test_a_whole_url_from_one_variable_records_its_password_as_a_secret(
        tmp_path: Path) -> None:
    path = write(tmp_path, 'database: "${WATCHER_DATABASE:-w.db}"\n')
    s = load_settings(path, env={"WATCHER_DATABASE": "postgresql://u:pw-123@db/w"})
    assert s.secrets == ("pw-123",) and s.database_shown == "postgresql://u:***@db/w"
    assert load_settings(path, env={}).database == tmp_path / "conf" / "w.db"


def test_a_path_keeps_sqlite_and_is_shown_as_is(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "database: db/w.db\n"), env={})
    assert not s.shared_database and s.database_shown == str(tmp_path / "conf" / "db" / "w.db")


def test_a_postgresql_url_without_password_comes_from_libpq(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "database: postgres://watcher@db/w\n"), env={})
    assert s.database == s.database_shown == "postgres://watcher@db/w"
    assert s.secrets == ()


# --- unknown keys, wrong types ---------------------------------------------------------


@pytest.mark.parametrize(("text", "key_path", "reason"), [
    ("feeds:\n  - {name: a, url: a.xml, bogus: 1}\n", "feeds[0].bogus", "unknown key"),
    ("poll:\n  bogus: 1\n", "poll.bogus", "unknown key"),
    ("bogus: 1\n", "bogus", "unknown key"),
    ("channels:\n  c: {type: jsonl, path: a.jsonl, mode: w}\n", "channels.c.mode", "unknown key"),
    ("feeds:\n  - {name: a, url: a.xml, interval: soon}\n", "feeds[0].interval",
     "'soon' is not a duration"),
    ("poll:\n  tick: soon\n", "poll.tick", "'soon' is not a duration"),
    ("poll:\n  concurrency: many\n", "poll.concurrency", "valid integer"),
    ("poll:\n  concurrency: 0\n", "poll.concurrency", "greater than or equal to 1"),
    ("fetch:\n  max_feed_bytes: lots\n", "fetch.max_feed_bytes", "'lots' is not a size"),
    ("feeds:\n  - {name: a, url: a.xml, interval: 0}\n", "feeds[0].interval",
     "greater than zero"),
    ("feeds:\n  - {name: a, url: a.xml, interval: true}\n", "feeds[0].interval",
     "expected a duration"),
    ("feeds:\n  - {name: 'bad name', url: a.xml}\n", "feeds[0].name", "should match pattern"),
    ("feeds:\n  - {name: a}\n", "feeds[0].url", "Field required"),
    ("feeds:\n  - {name: a, url: 'ftp://x/y'}\n", "feeds[0].url",
     "scheme 'ftp' is not supported"),
    ("channels:\n  c: {type: jsonl}\n", "channels.c.path", "Field required"),
    ("channels:\n  c: {type: webhook, url: 'ftp://x'}\n", "channels.c.url",
     "not an http(s) URL"),
    ("channels:\n  c: {type: smoke}\n", "channels.c", "does not match any of the expected tags"),
    ("channels:\n  'bad name': {type: console}\n", "channels.bad name", "invalid channel name"),
    ("delivery:\n  batch: 0\n", "delivery.batch", "greater than or equal to 1"),
    ("fetch:\n  extract_recycle_after: -1\n", "fetch.extract_recycle_after",
     "greater than or equal to 0"),
    ("fetch:\n  extract_recycle_after: often\n", "fetch.extract_recycle_after",
     "valid integer"),
])
def test_invalid_config_names_file_key_path_and_reason(
        tmp_path: Path, text: str, key_path: str, reason: str) -> None:
    path = write(tmp_path, text)
    msg = config_error(path)
    assert f"{path}: {key_path}: " in msg
    assert reason in msg


def test_error_in_channel_named_like_its_type_keeps_the_channel_name(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  console: {type: console, bogus: 1}\n")
    assert f"{path}: channels.console.bogus: unknown key" in config_error(path)


def test_all_validation_problems_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "poll:\n  tick: soon\n  concurrency: many\nbogus: 1\n")
    msg = config_error(path)
    for key in ("poll.tick", "poll.concurrency", "bogus"):
        assert f"{path}: {key}: " in msg


def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - {name: a\n")
    assert config_error(path).startswith(f"config: {path}:3:1: invalid YAML")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    assert "expected a mapping at the top level, got list" in config_error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert config_error(tmp_path / "nope.yaml").endswith("nope.yaml: file not found")


def test_duplicate_feed_names(tmp_path: Path) -> None:
    path = write(tmp_path, """\
feeds:
  - {name: a, url: a.xml}
  - {name: b, url: b.xml}
  - {name: a, url: c.xml}
  - {name: b, url: d.xml}
""")
    assert config_error(path) == f"config: {path}: feeds: duplicate feed name(s) a, b"


def test_source_types_default_to_feed_and_carry_their_own_settings(tmp_path: Path) -> None:
    path = write(tmp_path, """\
feeds:
  - {name: a, url: "https://a.test/feed.xml"}
  - {name: b, url: "https://b.test/", type: sitemap, backfill: 6h}
  - {name: c, url: "https://c.test/world/", type: page, links: "main a.story",
     pattern: "/20[0-9]{2}/"}
fetch: {sitemap_max_urls: 1000, sitemap_max_depth: 1}
""")
    settings = load_settings(path, env={})
    a, b, c = settings.feed_models()
    assert (a.kind, b.kind, c.kind) == ("feed", "sitemap", "page")
    assert a.backfill_s == 2 * 86400 and b.backfill_s == 6 * 3600
    assert (c.links, c.pattern) == ("main a.story", "/20[0-9]{2}/")
    assert settings.fetch.sitemap_max_urls == 1000 and settings.fetch.sitemap_max_files == 50


@pytest.mark.parametrize(("feed", "reason"), [
    ("{name: x, url: 'https://x.test/', type: rss}", "type"),
    ("{name: x, url: 'https://x.test/f.xml', backfill: 1d}", "backfill is for type sitemap"),
    ("{name: x, url: 'https://x.test/', type: sitemap, links: a}", "links and pattern are for"),
    ("{name: x, url: 'file:///srv/s.xml', type: sitemap}", "needs an http(s) URL"),
    ("{name: x, url: 'https://x.test/', type: page, pattern: '(['}", "not a regular expr"),
    ("{name: x, url: 'https://x.test/', type: page, links: 'a[[['}", "not a CSS selector"),
])
def test_source_settings_are_checked(tmp_path: Path, feed: str, reason: str) -> None:
    path = write(tmp_path, f"feeds:\n  - {feed}\n")
    assert reason in config_error(path)


@pytest.mark.parametrize("kind", ["feed", "sitemap"])
def test_an_empty_backfill_is_refused_not_taken_as_unset(tmp_path: Path, kind: str) -> None:
    # `backfill:` with no value is YAML's null: refused as before, never two days silently
    path = write(tmp_path, f"feeds:\n  - name: x\n    url: 'https://x.test/s.xml'\n"
                           f"    type: {kind}\n    backfill:\n")
    assert config_error(path) == (f"config: {path}: feeds[0].backfill: Value error, "
                                  "None is not a duration (use e.g. 30s, 5m, 1h, 2d)")


# --- paths -----------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, """\
database: db/w.db
rules: ../my-rules.yaml
feeds:
  - {name: local, url: feeds/world.xml}
  - {name: abs, url: /srv/feeds/x.xml}
  - {name: web, url: "https://example.org/rss"}
  - {name: file, url: "file:///srv/f.xml"}
channels:
  out: {type: jsonl, path: out/alerts.jsonl}
""")
    conf = (tmp_path / "conf").resolve()
    s = load_settings(path, env={})
    assert s.source == path.resolve()
    assert s.database == conf / "db" / "w.db"
    assert s.rules == tmp_path.resolve() / "my-rules.yaml"
    assert [f.url for f in s.feeds] == [
        (conf / "feeds" / "world.xml").as_uri(),
        "file:///srv/feeds/x.xml",
        "https://example.org/rss",
        "file:///srv/f.xml",
    ]
    out = s.channels["out"]
    assert isinstance(out, JsonlChannel)
    assert out.path == conf / "out" / "alerts.jsonl"


def test_defaults_for_database_and_rules_are_relative_to_config(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "{}\n"), env={})
    assert s.database == tmp_path.resolve() / "data" / "watcher.db"
    assert s.rules == tmp_path.resolve() / "rules.yaml"


def test_settings_do_not_depend_on_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "database: db/w.db\n")
    monkeypatch.chdir(tmp_path)
    a = load_settings(Path("conf/watcher.yaml"), env={})
    monkeypatch.chdir(path.parent)
    b = load_settings(Path("watcher.yaml"), env={})
    assert a.database == b.database == path.parent.resolve() / "db" / "w.db"


# --- durations and sizes ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300.0), ("30s", 30.0), ("1h", 3600.0), (90, 90.0), ("90", 90.0), ("1.5h", 5400.0),
    ("2d", 172800.0), ("250ms", 0.25), (" 5 m ", 300.0), (2.5, 2.5),
])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 minutes", "-5m", "0", 0, True, "5w", ""])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(("value", "size"), [
    ("10MB", 10_000_000), ("512KiB", 524_288), (100, 100), ("1gb", 1_000_000_000),
    ("1.5MB", 1_500_000), ("2 kb", 2000), ("7", 7),
])
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["lots", "10 TB", "-1", 0, False])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_durations_and_sizes_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, """\
feeds:
  - {name: a, url: a.xml, interval: 5m}
  - {name: b, url: b.xml, interval: 90}
  - {name: c, url: c.xml}
poll: {tick: 30s, default_interval: 1h, max_backoff: 12h}
fetch: {timeout: 30s, max_feed_bytes: 10MB, max_page_bytes: 512KiB}
delivery: {max_age: 2d}
""")
    s = load_settings(path, env={})
    assert [f.interval for f in s.feeds] == [300.0, 90.0, None]
    assert [f.interval_s for f in s.feed_models()] == [300.0, 90.0, 3600.0]
    assert (s.poll.tick, s.poll.max_backoff) == (30.0, 43200.0)
    assert (s.fetch.max_feed_bytes, s.fetch.max_page_bytes) == (10_000_000, 524_288)
    assert s.delivery.max_age == 172800.0


def test_allow_private_networks_applies_to_every_feed(tmp_path: Path) -> None:
    path = write(tmp_path, """\
feeds:
  - {name: a, url: a.xml}
  - {name: b, url: b.xml, allow_private: true, tags: [x, y]}
""")
    s = load_settings(path, env={})
    assert [f.allow_private for f in s.feed_models()] == [False, True]
    assert s.feed_models()[1].tags == ("x", "y")
    path.write_text(path.read_text() + "fetch: {allow_private_networks: true}\n")
    assert [f.allow_private for f in load_settings(path, env={}).feed_models()] == [True, True]


# --- which file --------------------------------------------------------------------------


@pytest.mark.parametrize(("cli", "env", "expected"), [
    ("cli.yaml", {"WATCHER_CONFIG": "env.yaml"}, Path("cli.yaml")),
    (None, {"WATCHER_CONFIG": "env.yaml"}, Path("env.yaml")),
    (None, {}, DEFAULT_CONFIG),
    ("", {"WATCHER_CONFIG": ""}, DEFAULT_CONFIG),
    (Path("/etc/w.yaml"), {}, Path("/etc/w.yaml")),
])
def test_config_path_precedence(cli: str | Path | None, env: dict[str, str],
                                expected: Path) -> None:
    assert config_path(cli, env) == expected


def test_default_config_path_is_config_watcher_yaml() -> None:
    assert Path("config/watcher.yaml") == DEFAULT_CONFIG


# --- the bundled file --------------------------------------------------------------------


def test_bundled_config_validates() -> None:
    s = load_settings(ROOT / "config" / "watcher.yaml", env={})
    assert [f.name for f in s.feeds] == ["demo-world"]
    feed = s.feed_models()[0]
    assert feed.url == (ROOT / "seeds" / "feeds" / "world.xml").as_uri()
    assert feed.interval_s == 300.0
    assert set(s.channels) == {"console", "alerts-file"}
    assert set(s.unusable_channels) == {"ops-hook"}
    assert "WATCHER_WEBHOOK_URL" in s.unusable_channels["ops-hook"]
    assert s.rules == ROOT / "rules.yaml"
    assert s.fetch.max_feed_bytes == 10_000_000
    assert s.delivery.max_age == 48 * 3600.0


def test_bundled_config_with_webhook_env_set() -> None:
    s = load_settings(ROOT / "config" / "watcher.yaml",
                      env={"WATCHER_WEBHOOK_URL": "https://hooks.example/abc"})
    assert s.unusable_channels == {}
    assert isinstance(s.channels["ops-hook"], WebhookChannel)
    assert s.secrets == ("https://hooks.example/abc",)


def test_adaptive_bounds_always_contain_the_interval(tmp_path: Path) -> None:
    path = write(tmp_path, """\
poll: {default_interval: 10m, min_interval: 2m, max_interval: 1h}
feeds:
  - {name: a, url: a.xml}
  - {name: b, url: b.xml, interval: 1m}
  - {name: c, url: c.xml, interval: 3h, adaptive: false}
  - {name: d, url: d.xml, min_interval: 5m, max_interval: 20m}
""")
    got = [(f.interval_s, f.min_interval_s, f.max_interval_s, f.adaptive)
           for f in load_settings(path, env={}).feed_models()]
    assert got == [
        (600.0, 120.0, 3600.0, True),
        (60.0, 60.0, 3600.0, True),
        (10800.0, 120.0, 10800.0, False),
        (600.0, 300.0, 1200.0, True),
    ]


def test_extraction_workers_are_recycled_after_2000_pages_unless_told(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "{}\n"), env={}).fetch.extract_recycle_after == 2000
    path = write(tmp_path, "fetch:\n  extract_recycle_after: 0\n")
    assert load_settings(path, env={}).fetch.extract_recycle_after == 0


@pytest.mark.parametrize(("web", "reason"), [
    ("{public_url: 'https://w.test'}", "public_url needs listen"),
    ("{listen: '127.0.0.1:8491', public_url: 'ftp://w.test'}", "not an http(s) URL"),
    ("{listen: 'nowhere'}", "listen"),
])
def test_web_settings_are_checked(tmp_path: Path, web: str, reason: str) -> None:
    assert reason in config_error(write(tmp_path, f"web: {web}\n"))


def test_web_settings_default_to_no_websub(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "web: {listen: '127.0.0.1:0', "
                                             "public_url: 'https://w.test/', "
                                             "websub_lease: 2d}\n"), env={})
    assert settings.web.websub_lease == 2 * 86400 and settings.web.websub_poll_interval == 6 * 3600
    assert load_settings(write(tmp_path, "feeds: []\n"), env={}).web.public_url is None


# --- the web server: console and WebSub under web: -------------------------------------

def test_the_console_and_websub_share_the_web_section(tmp_path: Path) -> None:
    path = write(tmp_path, "database: w.db\nrules: r.yaml\nweb:\n  listen: 127.0.0.1:8080\n"
                 "  public_url: https://w.test\n  hosts: [w.test]\n"
                 "  tokens: {ci: {token: '0123456789abcdef0123'}}\n")
    s = load_settings(path, env={})
    assert (s.web.listen, s.web.public_url, s.web.hosts) == ("127.0.0.1:8080", "https://w.test",
                                                             ("w.test",))
    assert list(s.web.tokens) == ["ci"] and s.notices == ()


def test_an_older_console_section_is_read_as_web_with_a_notice(tmp_path: Path) -> None:
    path = write(tmp_path, "database: w.db\nrules: r.yaml\nconsole:\n  listen: 127.0.0.1:9\n"
                 "web:\n  public_url: https://w.test\n")
    s = load_settings(path, env={})
    assert (s.web.listen, s.web.public_url) == ("127.0.0.1:9", "https://w.test")
    assert len(s.notices) == 1 and "console: is now part of web:" in s.notices[0]
    assert str(path) in s.notices[0]
    both = write(tmp_path, "database: w.db\nrules: r.yaml\nconsole:\n  listen: 127.0.0.1:9\n"
                 "web:\n  listen: 127.0.0.1:8\n")
    msg = config_error(both)
    assert f"{both}: console: listen also set under web:" in msg
    bad = write(tmp_path, "database: w.db\nrules: r.yaml\nconsole:\n  lisen: 127.0.0.1:9\n")
    assert f"{bad}: web.lisen: unknown key" in config_error(bad)


def test_threads_validating_at_once_share_one_validator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console validates edits from threads: the first ones to arrive build
    pydantic's validator once between them, and every one of them validates."""
    import threading

    from watcher.settings import model

    monkeypatch.setattr(model, "_ADAPTER", None)
    path = write(tmp_path, "feeds:\n  - {name: a, url: 'https://a.test/f.xml', interval: 5m}\n")
    start = threading.Barrier(6)
    adapters: list[object] = []
    intervals: list[float | None] = []

    def validate() -> None:
        start.wait()
        adapters.append(model.validator())
        intervals.append(load_settings(path, env={}).feeds[0].interval)

    threads = [threading.Thread(target=validate) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert intervals == [300.0] * 6
    assert len({id(a) for a in adapters}) == 1 and adapters[0] is model.validator()


@pytest.mark.parametrize(("text", "where", "model"), [
    ("poll: fast\n", "poll", "PollConfig"),
    ("feeds:\n  - https://x.test/f.xml\n", "feeds[0]", "FeedConfig"),
    ("channels:\n  m: {type: email, to: a@b.test, from: w@b.test, smtp: }\n",
     "channels.m.smtp", "SmtpConfig"),
])
def test_a_section_that_is_no_mapping_is_said_so_in_the_same_words(
        tmp_path: Path, text: str, where: str, model: str) -> None:
    path = write(tmp_path, text)
    assert config_error(path) == (f"config: {path}: {where}: Input should be a valid "
                                  f"dictionary or instance of {model}")
