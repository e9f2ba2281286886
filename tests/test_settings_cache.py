"""watcher.settings.cache: a config unchanged since the last command is not validated
again; anything load_settings reads that changed is, and errors are never kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import watcher.settings.cache as cache
from watcher.core.errors import ConfigError
from watcher.settings import Settings, load_settings, load_settings_cached

CONFIG = """\
database: w.db
rules: rules.yaml
feeds:
  - {name: a, url: "https://${HOST:-feeds.example}/a.xml", interval: 5m}
channels:
  out: {type: jsonl, path: alerts.jsonl}
poll: {tick: 7s}
"""


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every validation the cache falls back to."""
    calls: list[Path] = []

    def validate(path: str | os.PathLike[str], env: object = None) -> Settings:
        calls.append(Path(path))
        return load_settings(path, env)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "_validate", validate)
    return calls


def setup(tmp_path: Path, text: str = CONFIG) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "conf" / "watcher.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path, {"WATCHER_CACHE_DIR": str(tmp_path / "cache")}


def cache_files(env: dict[str, str]) -> list[Path]:
    folder = Path(env["WATCHER_CACHE_DIR"])
    return sorted(folder.glob("*.pickle")) if folder.exists() else []


def test_an_unchanged_config_comes_from_the_cache_equal_to_validation(
        tmp_path: Path, counted: list[Path]) -> None:
    path, env = setup(tmp_path)
    first = load_settings_cached(path, env)
    second = load_settings_cached(path, env)
    assert len(counted) == 1
    assert second == first == load_settings(path, env)
    assert second.poll.tick == 7 and second.feeds[0].url == "https://feeds.example/a.xml"
    assert second.source == path.resolve() and second.feed_models() == first.feed_models()
    (file,) = cache_files(env)
    assert file.stat().st_mode & 0o777 == 0o600
    assert Path(env["WATCHER_CACHE_DIR"]).stat().st_mode & 0o777 == 0o700


def test_a_hit_imports_neither_yaml_nor_pydantic(tmp_path: Path) -> None:
    """The cached Settings are plain dataclasses: reading them back needs no validator."""
    path, env = setup(tmp_path)
    code = ("import json, sys\nfrom watcher.settings import load_settings_cached\n"
            f"s = load_settings_cached({str(path)!r}, {env!r})\n"
            "print(json.dumps([s.poll.tick, s.feeds[0].url, sorted(m for m in sys.modules\n"
            "    if m.split('.')[0] in ('yaml', 'pydantic', 'pydantic_core', 'ruamel'))]))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], check=True, text=True,
                                      capture_output=True).stdout) for _ in range(2)]
    assert runs[0][:2] == runs[1][:2] == [7.0, "https://feeds.example/a.xml"]
    assert "pydantic" in runs[0][2] and "yaml" in runs[0][2]  # validated: the first start
    assert runs[1][2] == []


def test_a_dataclass_made_in_code_is_checked_as_the_file_is() -> None:
    from watcher.settings.model import FeedConfig, SmtpConfig, WebConfig

    with pytest.raises(ValueError, match="backfill is for type sitemap or page"):
        FeedConfig(name="a", url="https://x.example/a.xml", backfill=60.0)
    assert FeedConfig(name="a", url="https://x.example/", type="sitemap").backfill_s == 172800
    with pytest.raises(ValueError, match="only allowed for a relay on localhost"):
        SmtpConfig(host="mail.example", security="none")
    with pytest.raises(ValueError, match="public_url needs listen"):
        WebConfig(public_url="https://w.example")


def test_an_edited_file_or_a_changed_variable_is_validated_again(
        tmp_path: Path, counted: list[Path]) -> None:
    path, env = setup(tmp_path)
    load_settings_cached(path, env)
    path.write_text(CONFIG.replace("tick: 7s", "tick: 9s"))
    assert load_settings_cached(path, env).poll.tick == 9
    path.write_text(CONFIG.replace("tick: 7s", "tick: '${TICK:-9s}'"))
    assert load_settings_cached(path, env).poll.tick == 9
    changed = {**env, "TICK": "11s"}
    assert load_settings_cached(path, changed).poll.tick == 11
    assert load_settings_cached(path, changed).poll.tick == 11
    assert len(counted) == 4
    assert len(cache_files(env)) == 1  # one file per config, replaced


def test_an_invalid_config_says_what_load_settings_says_every_time(
        tmp_path: Path, counted: list[Path]) -> None:
    path, env = setup(tmp_path, CONFIG.replace("tick: 7s", "tick: soon"))
    with pytest.raises(ConfigError) as direct:
        load_settings(path, env)
    for _ in range(2):
        with pytest.raises(ConfigError) as cached:
            load_settings_cached(path, env)
        assert str(cached.value) == str(direct.value)
        assert "poll.tick" in str(cached.value) and str(path) in str(cached.value)
    assert len(counted) == 2 and cache_files(env) == []


def test_values_from_the_environment_in_channels_are_never_written(
        tmp_path: Path, counted: list[Path]) -> None:
    text = CONFIG.replace("poll:", '  hook: {type: webhook, url: "https://hooks.example/'
                                   '${HOOK_TOKEN}"}\npoll:')
    path, env = setup(tmp_path, text)
    env["HOOK_TOKEN"] = "very-secret-token"
    assert load_settings_cached(path, env).secrets == ("very-secret-token",)
    assert load_settings_cached(path, env).secrets == ("very-secret-token",)
    assert len(counted) == 2 and cache_files(env) == []


@pytest.mark.parametrize("spoil", ["writable by others", "torn", "another config's"])
def test_a_cache_file_that_cannot_be_trusted_is_validated_over(
        tmp_path: Path, counted: list[Path], spoil: str) -> None:
    path, env = setup(tmp_path)
    load_settings_cached(path, env)
    (file,) = cache_files(env)
    if spoil == "writable by others":
        file.chmod(0o666)
    elif spoil == "torn":
        file.write_bytes(file.read_bytes()[:100])
    else:  # a valid pickle under the wrong key: the key is checked
        (tmp_path / "other").mkdir()
        other, _ = setup(tmp_path / "other", CONFIG.replace("tick: 7s", "tick: 3s"))
        load_settings_cached(other, env)
        (theirs,) = [f for f in cache_files(env) if f != file]
        file.write_bytes(theirs.read_bytes())
    assert load_settings_cached(path, env).poll.tick == 7
    assert counted[-1] == path and counted.count(path) == 2


def test_off_writes_nothing(tmp_path: Path, counted: list[Path]) -> None:
    path, env = setup(tmp_path)
    off = {"WATCHER_CACHE_DIR": "off"}
    load_settings_cached(path, off)
    load_settings_cached(path, off)
    assert len(counted) == 2 and cache_files(env) == []


def test_credentials_from_the_environment_are_hidden_and_never_written(
        tmp_path: Path, counted: list[Path]) -> None:
    text = CONFIG + ('web:\n  tokens: {ci: {token: "${API_TOKEN}"}}\n')
    path, env = setup(tmp_path, text)
    env["API_TOKEN"] = "token-from-the-environment-0123"
    assert load_settings_cached(path, env).secrets == ("token-from-the-environment-0123",)
    load_settings_cached(path, env)
    assert len(counted) == 2 and cache_files(env) == []
    # a feed URL's key from the environment too; its default, written in the file, is not
    path, env = setup(tmp_path, CONFIG)
    env["HOST"] = "key-in-the-url.example"
    assert load_settings_cached(path, env).secrets == ("key-in-the-url.example",)
    assert cache_files(env) == []
    del env["HOST"]
    assert load_settings_cached(path, env).secrets == ()
    assert len(cache_files(env)) == 1


def test_a_symbolic_link_repointed_since_is_validated_again(
        tmp_path: Path, counted: list[Path]) -> None:
    from watcher.settings.essentials import cached_essentials

    path, env = setup(tmp_path, CONFIG.replace("database: w.db", "database: data/w.db"))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (path.parent / "data").symlink_to(tmp_path / "one")
    assert load_settings_cached(path, env).database == tmp_path / "one" / "w.db"
    assert load_settings_cached(path, env).database == tmp_path / "one" / "w.db"
    assert len(counted) == 1  # the second from the cache
    essentials = cached_essentials(path, env)
    assert essentials is not None and essentials.database == str(tmp_path / "one" / "w.db")
    (path.parent / "data").unlink()
    (path.parent / "data").symlink_to(tmp_path / "two")
    assert cached_essentials(path, env) is None
    assert load_settings_cached(path, env).database == tmp_path / "two" / "w.db"
    assert len(counted) == 2


def test_another_cssselect_validates_a_page_sources_selector_again(
        tmp_path: Path, counted: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """cssselect judges a page source's `links:`; a config kept under one cssselect is
    not taken under another."""
    import importlib.machinery
    import importlib.util

    fake = tmp_path / "site" / "cssselect"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('VERSION = "1.0"\n')
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        if name != "cssselect":
            return real(name, package)
        spec = importlib.machinery.ModuleSpec("cssselect", None, is_package=True)
        spec.submodule_search_locations = [str(fake)]
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    page = "  - {name: p, url: 'https://p.example/', type: page, links: 'main a.story'}\n"
    path, env = setup(tmp_path, CONFIG.replace("channels:", page + "channels:"))
    load_settings_cached(path, env)
    load_settings_cached(path, env)
    assert len(counted) == 1
    (fake / "__init__.py").write_text('VERSION = "2.0"\n')
    assert load_settings_cached(path, env).feeds[1].links == "main a.story"
    load_settings_cached(path, env)
    assert len(counted) == 2
