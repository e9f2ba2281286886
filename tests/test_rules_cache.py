"""watcher.settings.rules_cache: rules.yaml unchanged since the last start is not
validated again (nor are YAML, pydantic's rule models or luqum imported); anything
parse_rules depends on that changed is, and errors are never kept."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import watcher.rules.load as load
from tests.conftest import ROOT
from tests.test_e2e import write_config
from watcher.core.errors import RuleError
from watcher.core.models import Article
from watcher.rules import RuleSet, compile_rules, load_rules
from watcher.settings.rules_cache import load_rules_cached, parse_rules_cached

RULES = """\
rules:
  - name: missiles
    query: '"tactical missile" OR (drone* AND NOT toy) OR title:/hyper ?sonic/'
    languages: [en]
    notify: [hook]
    cooldown: 30m
    examples:
      match: ["A tactical missile was tested."]
      no_match: [{title: "A toy drone", body: "a toy drone for children"}]
  - name: quakes
    any: ["earthquake", "tremor"]
    none: ["video game"]
    notify: [file]
"""
CHANNELS = ("file", "hook")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The source of every validation the cache falls back to."""
    calls: list[str] = []
    parse = load.parse_rules

    def validate(text: str, source: str = "rules.yaml", *args: object) -> RuleSet:
        calls.append(source)
        return parse(text, source, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(load, "parse_rules", validate)
    return calls


def setup(tmp_path: Path, text: str = RULES) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path, {"WATCHER_CACHE_DIR": str(tmp_path / "cache")}


def cache_files(env: dict[str, str]) -> list[Path]:
    folder = Path(env["WATCHER_CACHE_DIR"])
    return sorted(folder.glob("*.rules.pickle")) if folder.exists() else []


def article(title: str, body: str) -> Article:
    return Article(feed="f", entry_id=title, url=None, title=title, summary="", body=body,
                   text_source="page", published=None, language="en",
                   fetched_at=datetime(2026, 1, 1, tzinfo=UTC))


ARTICLES = [article("Army tests", "A tactical missile flew."),
            article("Drones", "Drones filled the sky."),
            article("Toys", "A toy drone for children."),
            article("Hypersonic", "nothing else"),
            article("Quake", "An earthquake, not a video game."),
            article("Tremor", "A tremor shook the city.")]


def matched(ruleset: RuleSet) -> list[list[str]]:
    compiled = compile_rules(ruleset)
    return [sorted(m.rule for m in compiled.match(a)) for a in ARTICLES]


def test_an_unchanged_file_comes_from_the_cache_equal_to_validation(
        tmp_path: Path, counted: list[str]) -> None:
    path, env = setup(tmp_path)
    first = load_rules_cached(path, CHANNELS, {}, env)
    second = load_rules_cached(path, CHANNELS, {}, env)
    assert counted == [str(path)]
    fresh = load_rules(path, CHANNELS, {})
    assert second is not first
    assert second == first == fresh  # rules, source, digest, examples
    assert second.examples == fresh.examples and len(second.examples) == 2
    assert second.examples[0].where == f"{path}:8:15"
    assert second.trees is not None and second.trees == fresh.trees
    assert matched(second) == matched(fresh) == [
        ["missiles"], ["missiles"], [], ["missiles"], [], ["quakes"]]
    (file,) = cache_files(env)
    assert file.stat().st_mode & 0o777 == 0o600
    assert Path(env["WATCHER_CACHE_DIR"]).stat().st_mode & 0o777 == 0o700


def test_a_changed_file_or_channel_list_is_validated_again(
        tmp_path: Path, counted: list[str]) -> None:
    path, env = setup(tmp_path)
    load_rules_cached(path, CHANNELS, {}, env)
    path.write_text(RULES.replace("cooldown: 30m", "cooldown: 2h"))
    assert load_rules_cached(path, CHANNELS, {}, env).rules[0].cooldown_s == 7200
    assert load_rules_cached(path, CHANNELS, {}, env).rules[0].cooldown_s == 7200
    assert len(counted) == 2
    # a channel taken away: the same text no longer validates
    with pytest.raises(RuleError, match=r"rules\.yaml:13:14: rule 'quakes': unknown channel "
                                        r"'file' \(known: hook\)"):
        load_rules_cached(path, ("hook",), {}, env)
    # a channel unusable now: said so, not served from the cache
    with pytest.raises(RuleError, match="channel 'hook' is unusable: WEBHOOK_URL is not set"):
        load_rules_cached(path, CHANNELS, {"hook": "WEBHOOK_URL is not set"}, env)
    assert len(counted) == 4
    # the same file under another name reports under that name
    other = tmp_path / "again.yaml"
    other.write_text(path.read_text())
    assert load_rules_cached(other, CHANNELS, {}, env).source == str(other)
    assert load_rules_cached(path, CHANNELS, {}, env).source == str(path)
    assert len(counted) == 5  # the original's entry was still there


def test_a_broken_file_says_what_load_rules_says_every_time(
        tmp_path: Path, counted: list[str]) -> None:
    path, env = setup(tmp_path, RULES.replace("cooldown: 30m", "cooldown: soon"))
    with pytest.raises(RuleError) as direct:
        load_rules(path, CHANNELS, {})
    for _ in range(2):
        with pytest.raises(RuleError) as cached:
            load_rules_cached(path, CHANNELS, {}, env)
        assert str(cached.value) == str(direct.value)
        assert f"{path}:6:15: rule 'missiles': cooldown:" in str(cached.value)
    assert len(counted) == 3 and cache_files(env) == []
    # a file that cannot be read: load_rules' own words
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RuleError, match=f"{missing}: file not found"):
        load_rules_cached(missing, CHANNELS, {}, env)
    path.write_bytes(b"rules: \xff\n")
    with pytest.raises(RuleError, match="cannot read"):
        load_rules_cached(path, CHANNELS, {}, env)


def test_windows_line_ends_are_read_as_load_rules_reads_them(
        tmp_path: Path, counted: list[str]) -> None:
    path, env = setup(tmp_path)
    path.write_bytes(RULES.replace("\n", "\r\n").encode())
    cached = load_rules_cached(path, CHANNELS, {}, env)
    assert cached == load_rules(path, CHANNELS, {})
    assert load_rules_cached(path, CHANNELS, {}, env) == cached and len(counted) == 2


@pytest.mark.parametrize("spoil", ["writable by others", "torn", "another file's", "off"])
def test_a_cache_file_that_cannot_be_trusted_is_validated_over(
        tmp_path: Path, counted: list[str], spoil: str) -> None:
    path, env = setup(tmp_path)
    load_rules_cached(path, CHANNELS, {}, env)
    (file,) = cache_files(env)
    if spoil == "writable by others":
        file.chmod(0o620)
    elif spoil == "torn":
        file.write_bytes(file.read_bytes()[:100])
    elif spoil == "another file's":  # a valid pickle under the wrong key: the key is checked
        (tmp_path / "other").mkdir()
        other, _ = setup(tmp_path / "other", RULES.replace("cooldown: 30m", "cooldown: 2h"))
        load_rules_cached(other, CHANNELS, {}, env)
        (theirs,) = [f for f in cache_files(env) if f != file]
        file.write_bytes(theirs.read_bytes())
    else:
        env = {"WATCHER_CACHE_DIR": "off"}
    assert load_rules_cached(path, CHANNELS, {}, env).rules[0].cooldown_s == 1800
    assert counted[-1] == str(path) and counted.count(str(path)) == 2


def test_a_cache_file_of_another_user_is_ignored(tmp_path: Path, counted: list[str]) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path, env = setup(tmp_path)
    load_rules_cached(path, CHANNELS, {}, env)
    (file,) = cache_files(env)
    os.chown(file, 65534, 65534)
    assert load_rules_cached(path, CHANNELS, {}, env) == load_rules(path, CHANNELS, {})
    assert len(counted) == 3  # the cache's two, and the direct load's


def test_parse_rules_cached_shares_the_entry_of_load_rules_cached(
        tmp_path: Path, counted: list[str]) -> None:
    """The daemon's reload (text already read) and the next start (a path) meet."""
    path, env = setup(tmp_path)
    parsed = parse_rules_cached(path.read_text(), str(path), CHANNELS, {}, env)
    assert load_rules_cached(path, CHANNELS, {}, env) == parsed and len(counted) == 1


def test_the_daemons_reloads_go_through_the_cache(
        tmp_path: Path, counted: list[str], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """An edit the daemon took in is what the next start finds kept; a broken edit is
    refused with its place, once, and never kept."""
    from watcher.service.daemon import Daemon
    from watcher.settings import load_settings

    monkeypatch.setenv("WATCHER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "watcher.yaml").write_text(
        "database: watcher.db\nrules: rules.yaml\nfeeds: []\n"
        "channels:\n  file: {type: jsonl, path: out.jsonl}\n  hook: {type: jsonl, path: h}\n")
    rules, _ = setup(tmp_path)
    settings = load_settings(tmp_path / "watcher.yaml")

    def at_start() -> RuleSet:
        return load_rules_cached(settings.rules, settings.channels.keys(),
                                 settings.unusable_channels)

    daemon = Daemon(settings, compile_rules(at_start()))
    edited = RULES.replace('"tremor"', '"aftershock"')
    broken = RULES.replace("cooldown: 30m", "cooldown: soon")

    async def go() -> list[bool]:
        outcomes = []
        for text in (edited, broken, broken):
            rules.write_text(text)
            outcomes.append(await daemon.reload_rules_if_changed())
        rules.write_text(edited)  # back, then SIGHUP: config and rules read again
        outcomes.append(await daemon.reload_config())
        await daemon.close()
        return outcomes

    with caplog.at_level(logging.ERROR, "watcher.service.daemon"):
        assert asyncio.run(go()) == [True, False, False, True]
    assert [r.name for r in daemon.rules.rules] == ["missiles", "quakes"]
    assert daemon.rules.rules[1].any == ("earthquake", "aftershock")
    refused = [r.getMessage() for r in caplog.records if "was refused" in r.getMessage()]
    assert len(refused) == 1 and f"{rules}:6:15: rule 'missiles': cooldown:" in refused[0]
    # the start, the edit and the broken edit once: SIGHUP found the edit kept
    assert len(counted) == 3
    assert at_start() == load_rules(rules, CHANNELS, {}) and len(counted) == 4


# --- whole processes: what a warm start imports -------------------------------------

# pydantic: neither the rules' models nor the config's (cached as plain dataclasses)
_NOT_WHEN_WARM = ("yaml", "luqum", "ply", "watcher.rules.load", "watcher.rules.lucene",
                  "pydantic", "pydantic_core", "prometheus_client")


def _run_once(cfg: Path, cache: Path) -> tuple[str, set[str]]:
    code = ("import sys\nfrom watcher.cli import main\n"
            f"code = main(['run', '--once', '--config', {str(cfg)!r}])\n"
            "print('--- exit', code)\nprint('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "WATCHER_CACHE_DIR": str(cache)}, cwd=ROOT,
                         timeout=120)
    assert "--- exit" in out.stdout, out.stderr
    _, _, loaded = out.stdout.partition("--- exit")
    return out.stderr, set(loaded.split()[1:])


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == h or m.startswith(h + ".")
                                           for h in _NOT_WHEN_WARM))


def test_a_kept_rule_set_compiles_and_matches_without_yaml_models_or_luqum(
        tmp_path: Path) -> None:
    path, env = setup(tmp_path)
    fresh = load_rules(path, CHANNELS, {})
    load_rules_cached(path, CHANNELS, {}, env)  # kept
    # the articles made again in the child: this module imports the loader itself
    made = "\n".join(f"    article({a.title!r}, {a.body!r})," for a in ARTICLES)
    code = ("import sys\nfrom datetime import UTC, datetime\n"
            "from watcher.core.models import Article\nfrom watcher.rules import compile_rules\n"
            "from watcher.settings.rules_cache import load_rules_cached\n"
            "def article(title, body):\n"
            "    return Article(feed='f', entry_id=title, url=None, title=title, summary='',"
            " body=body, text_source='page', published=None, language='en',"
            " fetched_at=datetime(2026, 1, 1, tzinfo=UTC))\n"
            f"ARTICLES = [\n{made}\n]\n"
            f"compiled = compile_rules(load_rules_cached({str(path)!r}, {CHANNELS!r}, {{}}))\n"
            "print([sorted(m.rule for m in compiled.match(a)) for a in ARTICLES])\n"
            "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=ROOT, timeout=120, check=True)
    shown, _, loaded = out.stdout.partition("\n")
    assert shown == str(matched(fresh)) == str([
        ["missiles"], ["missiles"], [], ["missiles"], [], ["quakes"]])
    assert "watcher.rules.match" in loaded.split() and _heavy(set(loaded.split())) == []


def test_a_warm_run_imports_neither_yaml_nor_pydantic_nor_luqum(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook",
                       rules=[{"name": "r", "query": '"tactical missile" OR drone*',
                               "notify": ["file"]}])
    cache = tmp_path / "cache"
    _, cold = _run_once(cfg, cache)
    assert "watcher.rules.load" in cold and "luqum" in cold  # validated, then kept
    _, warm = _run_once(cfg, cache)
    assert "watcher.rules.match" in warm and "watcher.settings.rules_cache" in warm
    assert _heavy(warm) == []
    # an edited file is validated again, in the process that finds it changed
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules.read_text().replace("drone*", "drones"))
    _, edited = _run_once(cfg, cache)
    assert "watcher.rules.load" in edited and "luqum" in edited
    _, warm = _run_once(cfg, cache)
    assert _heavy(warm) == []


def test_a_broken_rules_file_is_refused_the_same_way_twice(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - name: r\n    query: 'drone AND'\n    notify: [file]\n")
    env = {**os.environ, "WATCHER_CACHE_DIR": str(tmp_path / "cache")}
    seen = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "watcher", "run", "--once", "--config",
                            str(cfg)], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        seen.append(r.stderr)
    assert seen[0] == seen[1]
    assert f"{tmp_path / 'rules.yaml'}:3:" in seen[0] and "query: cannot parse" in seen[0]
    assert list((tmp_path / "cache").glob("*.rules.pickle")) == []


def test_another_re2_validates_again(tmp_path: Path, counted: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """RE2 judges the rules' regular expressions: a rule set kept under one RE2 is not
    taken under another (its compiled library is what changes between versions)."""
    import importlib.machinery
    import importlib.util

    fake = tmp_path / "site" / "re2"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("# the same wrapper in every version\n")
    library = fake / "_re2.cpython-311-x86_64-linux-gnu.so"
    library.write_bytes(b"RE2 one")
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        if name != "re2":
            return real(name, package)
        spec = importlib.machinery.ModuleSpec("re2", None, is_package=True)
        spec.submodule_search_locations = [str(fake)]
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    path, env = setup(tmp_path)
    load_rules_cached(path, CHANNELS, {}, env)
    load_rules_cached(path, CHANNELS, {}, env)
    assert len(counted) == 1
    library.write_bytes(b"RE2 two, a newer one")
    load_rules_cached(path, CHANNELS, {}, env)
    load_rules_cached(path, CHANNELS, {}, env)
    assert len(counted) == 2
