"""The running daemon picks up an edited rules.yaml or config without a restart, and refuses
a bad one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import ROOT
from tests.servers import LoopbackServer, WebhookReceiver, wait_for
from watcher.settings.edit import feeds_edited, save_config


def rss(items: list[tuple[str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><guid isPermaLink='false'>{guid}</guid>"
        f"<description>{title}. More text follows.</description></item>"
        for guid, title in items)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{body}"
            "</channel></rss>").encode()


def rules_text(*rules: tuple[str, str]) -> str:
    return yaml.safe_dump({"rules": [{"name": n, "query": q, "notify": ["hook"]}
                                     for n, q in rules]})


def test_rules_are_swapped_while_running_and_a_broken_file_keeps_the_old_ones(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    feed = LoopbackServer()
    items: list[tuple[str, str]] = []
    feed.routes["/feed.xml"] = lambda req: (200, {"Content-Type": "application/rss+xml"},
                                            rss(items))
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump({
        "database": "state/watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "f", "url": feed.url("/feed.xml"), "allow_private": True,
                   "interval": "1s", "min_interval": "1s"}],
        "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
        "poll": {"tick": "1s"}, "fetch": {"fetch_pages": False}, "delivery": {"tick": "1s"},
    }))
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text(("alpha", '"tactical missile"')))
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config",
                             str(tmp_path / "watcher.yaml")], stdout=subprocess.DEVNULL,
                            stderr=log, cwd=ROOT)

    def fired() -> list[tuple[str, str]]:
        return [(r.json()["rule"], r.json()["article"]["title"]) for r in receiver.accepted]

    def logged() -> str:
        return (tmp_path / "daemon.log").read_text()

    try:
        items.append(("1", "Tactical missiles fired"))
        assert wait_for(lambda: fired() == [("alpha", "Tactical missiles fired")], 30), fired()

        # A broken file: refused with its line and reason; the old rules keep firing.
        rules.write_text("rules:\n  - name: beta\n    query: 'wildfire AND'\n"
                         "    notify: [hook]\n")
        assert wait_for(lambda: "changed but was refused" in logged(), 5), logged()
        assert f"{rules}:3:25: rule 'beta': query: cannot parse the query" in logged()
        items.append(("2", "A tactical missile test"))
        assert wait_for(lambda: len(fired()) == 2, 30), fired()
        assert fired()[1] == ("alpha", "A tactical missile test")

        # A good file: swapped in within two seconds; the new rule fires, the old is gone.
        t0 = time.monotonic()
        rules.write_text(rules_text(("beta", "wildfire OR evacu*")))
        assert wait_for(lambda: "rules: reloaded" in logged(), 5), logged()
        assert time.monotonic() - t0 < 3
        items.append(("3", "Wildfire forces evacuations near tactical missile base"))
        assert wait_for(lambda: len(fired()) == 3, 30), fired()
        assert fired()[2] == ("beta", "Wildfire forces evacuations near tactical missile base")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        feed.close()
    assert "Traceback" not in logged()
    assert logged().count("changed but was refused") == 1  # once per bad version, not per second


def test_a_config_edited_in_place_is_reloaded_and_a_broken_one_refused_once(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    """The console (another process, maybe) adds a feed to the config file: the daemon
    notices the changed file and polls the new feed, without SIGHUP."""
    first, second = LoopbackServer(), LoopbackServer()
    first.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"},
                                 rss([("1", "Tactical missiles fired")]))
    second.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"},
                                  rss([("2", "A tactical missile test")]))
    config = tmp_path / "watcher.yaml"
    config.write_text(yaml.safe_dump({
        "database": "state/watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "f", "url": first.url("/feed.xml"), "allow_private": True,
                   "interval": "1s", "min_interval": "1s"}],
        "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
        "poll": {"tick": "1s"}, "fetch": {"fetch_pages": False}, "delivery": {"tick": "1s"},
    }))
    (tmp_path / "rules.yaml").write_text(rules_text(("alpha", '"tactical missile"')))
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)

    def titles() -> list[str]:
        return sorted(r.json()["article"]["title"] for r in receiver.accepted)

    def logged() -> str:
        return (tmp_path / "daemon.log").read_text()

    try:
        assert wait_for(lambda: titles() == ["Tactical missiles fired"], 30), titles()
        # A broken edit: refused once, the running configuration stays.
        good = config.read_text()
        config.write_text(good + "poll: {tick: never}\n")
        assert wait_for(lambda: "reload of" in logged(), 10), logged()
        config.write_text(good)  # as it was: nothing to reload
        edit = feeds_edited(config, [{"name": "g", "url": second.url("/feed.xml"),
                                      "allow_private": True, "interval": "1s",
                                      "min_interval": "1s"}])
        save_config(config, edit.text, edit.version)
        assert wait_for(lambda: "config: reloaded" in logged(), 10), logged()
        assert wait_for(lambda: titles() == ["A tactical missile test",
                                             "Tactical missiles fired"], 30), titles()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        first.close()
        second.close()
    assert "Traceback" not in logged()
    assert logged().count("reload of") == 1  # a refused text is not retried every second
