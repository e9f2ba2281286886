"""The console in a real browser: headless Chromium from the distribution's packages,
driven by Playwright (which cannot download its own browsers here). The seed feed is
polled once over loopback, then a person logs in with the token link, writes a rule,
sees the seed story in the live preview, saves, marks an alert not relevant and mutes
its rule. Each step leaves a screenshot in the test's temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer
from tests.test_e2e import SEED_TITLE
from tests.test_web_cli import free_port

CHROMIUM = Path("/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium "
                                "(apt-get install chromium)")
FIRST_RULES = """\
# the rules the console starts with; this comment stays
rules:
  - name: tactical-missile
    any: [tactical missile]
    notify: [file]
"""
NEW_RULE = """\
  - name: kim-visits
    query: '"missile system" AND kim'
    notify: [file]
"""


@pytest.fixture
def console(tmp_path: Path, seed_server: LoopbackServer) -> Iterator[tuple[str, Path]]:
    """A polled database and `watcher web` serving it; (login link, folder)."""
    port = free_port()
    cfg = {"database": "state/watcher.db", "rules": "rules.yaml",
           "feeds": [{"name": "demo-world", "url": seed_server.url("/feeds/world.xml"),
                      "allow_private": True}],
           "channels": {"file": {"type": "jsonl", "path": "out/alerts.jsonl"}},
           "web": {"listen": f"127.0.0.1:{port}"}}
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(FIRST_RULES)
    once = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
    assert once.returncode == 0, once.stderr
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "web", "--config",
                             str(tmp_path / "watcher.yaml")], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        url = next(m.group(1) for line in proc.stdout
                   if (m := re.search(r"log in once with (\S+)", line)))
        for _ in range(100):
            try:
                httpx.get(url.split("/login")[0] + "/login", timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        yield url, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_person_writes_a_rule_previews_it_saves_and_reviews_alerts(
        console: tuple[str, Path]) -> None:
    url, folder = console
    shots = folder / "screenshots"
    shots.mkdir()
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(url)  # the token link: logged in, and the token left the address bar
        assert page.url.endswith("/alerts")
        page.get_by_role("heading", name="Alerts").wait_for()
        page.screenshot(path=shots / "1-alerts.png", full_page=True)

        page.goto(url.split("/login")[0] + "/rules")
        editor = page.get_by_label("rules.yaml")
        editor.fill(FIRST_RULES + NEW_RULE)
        page.locator("#check .ok").wait_for()  # checked as it was typed (htmx)
        page.get_by_label("Rule", exact=True).fill("kim-visits")
        page.get_by_role("button", name="Preview").click()
        page.locator("#preview").get_by_role("link", name=SEED_TITLE).wait_for()
        assert page.locator("#preview .count").inner_text() == "1"
        assert page.url.endswith("/rules")  # swapped in place, not a page load
        page.screenshot(path=shots / "2-preview.png", full_page=True)

        page.get_by_role("button", name="Save rules.yaml").click()
        page.get_by_text("Saved.").wait_for()
        saved = (folder / "rules.yaml").read_text()
        assert saved == FIRST_RULES + NEW_RULE and "this comment stays" in saved
        page.screenshot(path=shots / "3-saved.png", full_page=True)

        page.goto(url.split("/login")[0] + "/alerts")
        first = page.locator("article.alert").first
        first.get_by_role("button", name="Not relevant").click()
        page.get_by_text("marked not relevant").first.wait_for()
        page.screenshot(path=shots / "4-not-relevant.png", full_page=True)

        page.goto(url.split("/login")[0] + "/rules")
        page.get_by_label("Mute tactical-missile").select_option("1d")
        page.locator("#rule-tactical-missile").get_by_role("button", name="Apply").click()
        page.locator("#rule-tactical-missile").get_by_text("until").wait_for()
        page.screenshot(path=shots / "5-muted.png", full_page=True)
        browser.close()
    assert not [m for m in problems if "Content Security Policy" in m or "Refused" in m]
    assert problems == []
    assert len(list(shots.glob("*.png"))) == 5
    if out := os.environ.get("WATCHER_SCREENSHOTS"):  # `make screenshots`, for the README
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "4-not-relevant.png", Path(out) / "alerts.png")
        shutil.copy(shots / "2-preview.png", Path(out) / "rules.png")
