"""Taking in a changed config (SIGHUP, or watched) or rules.yaml (watched) while the
daemon runs: a file that does not validate is refused, logged once, and the running one
stays."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watcher.core.errors import RuleError, WatcherError
from watcher.core.models import Feed
from watcher.delivery.channels import Channel, build_channels
from watcher.fetch.client import Fetcher
from watcher.rules import CompiledRules, compile_rules
from watcher.rules.ruleset import RuleSet, digest_of
from watcher.settings import Settings, load_settings
from watcher.settings.rules_cache import load_rules_cached, parse_rules_cached
from watcher.store import Store

log = logging.getLogger("watcher.service.daemon")


class Reloading:
    """The daemon's reloads; mixed into watcher.service.daemon.Daemon."""

    settings: Settings
    rules: CompiledRules
    _rules_refused: str | None
    channels: dict[str, Channel]
    feeds: dict[str, Feed]
    store: Store
    fetcher: Fetcher
    _dispatch_lock: asyncio.Lock
    _notices: set[asyncio.Task[object]]
    # the config file as last looked at (mtime_ns, size); the digest of a text refused
    _config_seen: tuple[int, int] | None = None
    _config_refused: str | None = None

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload_config())
        self._notices.add(task)  # kept alive until done, awaited at close
        task.add_done_callback(self._notices.discard)

    async def reload_config(self) -> bool:
        """SIGHUP: read config and rules again; a bad file is refused, the old kept."""
        source = self.settings.source
        try:
            settings = await asyncio.to_thread(load_settings, source)
            ruleset, compiled = await asyncio.to_thread(
                lambda: self._compile_rules_for(settings))
            channels = build_channels(settings.channels)
        except WatcherError as exc:
            log.error("%s\nconfig: reload of %s refused; the running configuration stays",
                      exc, source)
            return False
        async with self._dispatch_lock:  # no send is under way while channels change
            old = dict(self.channels)
            self.channels.clear()
            self.channels.update(channels)
            self.settings = settings
            self.feeds = {f.name: f for f in settings.feed_models()}
            self.store.sync_feeds(self.feeds.values())
            self.fetcher.configure_local_feeds(self.feeds.values())
            self.rules = compiled
        for ch in old.values():
            await ch.aclose()
        log.info("config: reloaded %s: %d feed(s), %d channel(s), %d rule(s)", source,
                 len(self.feeds), len(self.channels), len(ruleset.rules))
        return True

    async def reload_config_if_changed(self) -> bool:
        """The config file changed on disk (the web console adds and removes feeds, from
        another process maybe): reload it as SIGHUP does. Its time and size are looked at
        each second, its text read only when they change; a refused text is not retried
        until it changes again."""
        path = Path(self.settings.source)
        try:
            st = path.stat()
            mark = (st.st_mtime_ns, st.st_size)
            if mark == self._config_seen:
                return False
            digest = digest_of(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return False  # being replaced, or unreadable: SIGHUP or the next look says why
        self._config_seen = mark
        if digest in (self.settings.source_digest, self._config_refused):
            return False  # the text in force (only touched), or one refused already
        if await self.reload_config():
            self._config_refused = None
            return True
        self._config_refused = digest
        return False

    def _compile_rules_for(self, settings: Settings) -> tuple[RuleSet, CompiledRules]:
        ruleset = load_rules_cached(settings.rules, channels=settings.channels.keys(),
                                    unusable_channels=settings.unusable_channels)
        compiled = compile_rules(ruleset)
        compiled.warm()
        return ruleset, compiled

    async def reload_rules_if_changed(self) -> bool:
        """Swap in rules.yaml when its content changed and it is valid, in one step.

        A file that does not validate is logged with every problem, once per
        version, and the last good rules stay in force.
        """
        path = Path(self.settings.rules)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"rules: {path}: cannot read: {exc}"
            if problem != self._rules_refused:
                self._rules_refused = problem
                log.error("%s; the %d rule(s) in force stay", problem, len(self.rules.rules))
            return False
        digest = digest_of(text)
        if digest in (self.rules.ruleset.digest, self._rules_refused):
            return False
        try:
            ruleset, compiled = await asyncio.to_thread(self._compile_rules, text, str(path))
        except RuleError as exc:
            self._rules_refused = digest
            log.error("%s\nrules: %s changed but was refused; the %d rule(s) in force stay",
                      exc, path, len(self.rules.rules))
            return False
        self.rules = compiled
        self._rules_refused = None
        log.info("rules: reloaded %s: %d rule(s)", path, len(ruleset.rules))
        return True

    def _compile_rules(self, text: str, source: str) -> tuple[RuleSet, CompiledRules]:
        ruleset = parse_rules_cached(text, source, channels=self.settings.channels.keys(),
                                     unusable_channels=self.settings.unusable_channels)
        compiled = compile_rules(ruleset)
        compiled.warm()
        return ruleset, compiled
