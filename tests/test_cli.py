"""The command line as people use it: check, bad files, and the daemon's lifecycle."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer, WebhookReceiver, wait_for
from tests.test_e2e import SEED_TITLE, write_config


def test_check_lists_feeds_channels_and_rules_of_bundled_config() -> None:
    result = run_watcher("check", "--config", str(ROOT / "config" / "watcher.yaml"))
    assert result.returncode == 0, result.stderr
    assert "demo-world" in result.stdout
    assert "tactical-missile" in result.stdout
    assert "ops-hook: UNUSABLE" in result.stdout and "WATCHER_WEBHOOK_URL" in result.stdout
    assert result.stdout.rstrip().endswith("ok")


def test_config_from_environment_variable(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    result = run_watcher("check", env={"WATCHER_CONFIG": str(cfg)})
    assert result.returncode == 0, result.stderr
    assert str(cfg) in result.stdout


def test_malformed_rules_file_is_refused_with_line_and_reason(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    (tmp_path / "rules.yaml").write_text("rules:\n  - name: x\n    any: [\"a\"\n    notify: []\n")
    for args in (("check",), ("run", "--once")):
        result = run_watcher(*args, "--config", str(cfg))
        assert result.returncode == 2
        assert f"{tmp_path / 'rules.yaml'}:" in result.stderr
        assert "invalid YAML" in result.stderr
        assert "Traceback" not in result.stderr


def test_unknown_channel_in_rule_is_named_with_its_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    (tmp_path / "rules.yaml").write_text(
        'rules:\n  - name: r1\n    any: ["tactical missile"]\n    notify: [hook, pager]\n')
    result = run_watcher("check", "--config", str(cfg))
    assert result.returncode == 2
    assert (f"{tmp_path / 'rules.yaml'}:4:20: rule 'r1': unknown channel 'pager' "
            "(known: file, hook)") in result.stderr


def test_rule_using_channel_with_missing_variable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump({
        "database": "db.sqlite", "rules": "rules.yaml", "feeds": [],
        "channels": {"ops": {"type": "webhook", "url": "${WATCHER_TEST_HOOK_URL}"}}}))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "r", "any": ["x"], "notify": ["ops"]}]}))
    env = {k: v for k, v in os.environ.items() if k != "WATCHER_TEST_HOOK_URL"}
    result = subprocess.run([sys.executable, "-m", "watcher", "check", "--config",
                             str(tmp_path / "watcher.yaml")], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "channel 'ops' is unusable" in result.stderr
    assert "WATCHER_TEST_HOOK_URL" in result.stderr


def test_bad_config_names_file_key_and_reason(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text(
        "database: db.sqlite\nfeeds:\n  - {name: a, url: 'http://x.test/f', interval: soon}\n"
        "poll: {tick: 10s, colour: blue}\n")
    result = run_watcher("check", "--config", str(tmp_path / "watcher.yaml"))
    assert result.returncode == 2
    assert f"{tmp_path / 'watcher.yaml'}: feeds[0].interval:" in result.stderr
    assert "'soon' is not a duration" in result.stderr
    assert "poll.colour: unknown key" in result.stderr


def test_daemon_polls_at_start_delivers_and_stops_cleanly_on_sigterm(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert wait_for(lambda: len(receiver.accepted) >= 2, timeout=30), "no alerts arrived"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "daemon: stopped" in err
    titles = [r.json()["article"]["title"] for r in receiver.accepted]
    assert SEED_TITLE in titles and len(titles) == 2
    records = [json.loads(x) for x in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    assert len(records) == 2


def test_daemon_retries_failed_delivery_while_running(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    """A receiver that is down at first gets the alert once it recovers, without a restart."""
    cfg_path = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["delivery"] = {"tick": "1s"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    receiver.status = 503
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert wait_for(lambda: len(receiver.accepted) >= 2, timeout=30)
        time.sleep(0.5)
        receiver.status = 200
        # First retry is about 5 s after the first failure (Standard Webhooks schedule).
        assert wait_for(lambda: sum(1 for r in receiver.accepted[2:]) >= 2, timeout=30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    ids_ok = {r.headers["webhook-id"] for r in receiver.accepted[2:]}
    ids_first = {r.headers["webhook-id"] for r in receiver.accepted[:2]}
    assert ids_ok == ids_first  # the same id on every retry


def test_templates_export_writes_the_shipped_defaults_once(tmp_path: Path) -> None:
    from watcher.delivery.channels import DEFAULT_TEMPLATES

    out = tmp_path / "my-templates"
    first = run_watcher("templates", "export", str(out))
    assert first.returncode == 0, first.stderr
    shipped = sorted(p.name for p in DEFAULT_TEMPLATES.glob("*.j2"))
    assert sorted(p.name for p in out.iterdir()) == shipped and len(shipped) == 4
    for name in shipped:
        assert (out / name).read_bytes() == (DEFAULT_TEMPLATES / name).read_bytes()
    (out / "subject.txt.j2").write_text("mine")
    again = run_watcher("templates", "export", str(out))
    assert again.returncode == 2 and "already has" in again.stderr and "--force" in again.stderr
    assert (out / "subject.txt.j2").read_text() == "mine"
    forced = run_watcher("templates", "export", str(out), "--force")
    assert forced.returncode == 0
    assert (out / "subject.txt.j2").read_bytes() == (DEFAULT_TEMPLATES / "subject.txt.j2"
                                                     ).read_bytes()


# --- start-up: each command imports only what it needs -------------------------------

_HEAVY = ("numpy", "jinja2", "sqlite_utils", "httpx", "httpcore", "pydantic", "feedparser",
          "trafilatura", "lxml", "apscheduler", "rich", "watcher.rules.compile",
          "watcher.store", "watcher.service", "watcher.delivery", "watcher.fetch")


def test_importing_the_cli_and_building_its_parser_loads_no_heavy_module() -> None:
    code = ("import sys, watcher.cli; watcher.cli.build_parser(); "
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    assert "watcher.cli.commands" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in _HEAVY or
                   any(m == h or m.startswith(h + ".") for h in _HEAVY))
    assert heavy == []


# what `watcher status` must not load once its config is cached: the YAML parser,
# pydantic and the config's models mean it was validated again
_NOT_FOR_STATUS = ("numpy", "jinja2", "sqlite_utils", "httpx", "httpcore", "feedparser",
                   "trafilatura", "lxml", "apscheduler", "rich", "yaml", "importlib.metadata",
                   "pydantic", "pydantic_core", "watcher.settings.model",
                   "watcher.settings.load",
                   "watcher.rules", "watcher.service.daemon", "watcher.delivery",
                   "watcher.fetch", "watcher.extract", "watcher.web")


def _loaded_by_command(*argv: str) -> tuple[str, set[str]]:
    code = ("import sys\nfrom watcher.cli import main\n"
            f"code = main({list(argv)!r})\n"
            "print('---', code)\nprint('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    shown, _, loaded = out.partition("--- 0\n")
    return shown, set(loaded.split())


def test_status_loads_neither_the_config_validators_nor_the_heavy_modules(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    first, _ = _loaded_by_command("status", "--config", str(cfg))  # validates, caches
    shown, loaded = _loaded_by_command("status", "--config", str(cfg))
    assert shown == first and "feeds:" in shown and "database:" in shown
    assert "watcher.store.sqlite" in loaded and "watcher.settings.essentials" in loaded
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".")
                                            for h in _NOT_FOR_STATUS))
    assert heavy == []


def test_status_validates_again_whatever_changed_since(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    assert run_watcher("status", "--config", str(cfg)).returncode == 0  # cached now
    text = cfg.read_text()
    assert "database: state/watcher.db" in text
    cfg.write_text(text.replace("database: state/watcher.db", "database: other.db"))
    moved, loaded = _loaded_by_command("status", "--config", str(cfg))
    assert f"database:   {tmp_path / 'other.db'}" in moved and "pydantic" in loaded
    cfg.write_text(text.replace("database: state/watcher.db", "database: [not, a, path]"))
    broken = run_watcher("status", "--config", str(cfg))
    assert broken.returncode == 2 and f"{cfg}: database" in broken.stderr
    # a value from the environment is never kept: each status validates
    cfg.write_text(text.replace("database: state/watcher.db", "database: ${WATCHER_TEST_DB}"))
    env = {**os.environ, "WATCHER_TEST_DB": str(tmp_path / "env.db")}
    for name in ("a.db", "b.db"):
        env["WATCHER_TEST_DB"] = str(tmp_path / name)
        r = subprocess.run([sys.executable, "-m", "watcher", "status", "--config", str(cfg)],
                           capture_output=True, text=True, env=env, cwd=ROOT)
        assert r.returncode == 0 and f"database:   {tmp_path / name}" in r.stdout, r.stderr


def _dispatched(parser: argparse.ArgumentParser) -> list[Any]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.append(sub.get_default("func"))
                found.extend(_dispatched(sub))
    return [f for f in found if f is not None]


def test_every_command_names_a_function_that_exists() -> None:
    import importlib

    from watcher.cli import build_parser

    funcs = _dispatched(build_parser())
    assert len(funcs) >= 15
    for func in funcs:
        module = importlib.import_module(f"watcher.cli.{func.module}")
        assert callable(getattr(module, func.name)), func
