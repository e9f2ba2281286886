"""Every command's arguments, and which module runs it.

The command modules are imported only when their command is dispatched (`Lazy`):
building this parser imports nothing but argparse, so `watcher --help` and
`watcher status` do not pay for the daemon, the HTTP client or the rule compiler.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

# what people ask for -> the stored status ("failed" = failed at least once, retrying)
STATUSES = {"pending": "pending", "held": "pending", "failed": "retrying",
            "retrying": "retrying", "sent": "sent", "dead": "dead"}


class Lazy:
    """A command function named by module and name, imported when it is called."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, args: argparse.Namespace) -> int:
        module = importlib.import_module(f"watcher.cli.{self.module}")
        return int(getattr(module, self.name)(args))

    def __repr__(self) -> str:
        return f"watcher.cli.{self.module}.{self.name}"


def _run(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run the daemon")
    p.add_argument("--once", action="store_true",
                   help="poll every feed and deliver every alert once, then exit "
                        "(status 1 if any feed failed)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="human-readable lines (default) or JSON lines")
    p.add_argument("--stats", metavar="PATH", type=Path,
                   help="with --once: write the cycle's timings and counts to PATH as JSON")
    p.set_defaults(func=Lazy("run", "cmd_run"))


def _check(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[common], help="validate config and rules")
    p.set_defaults(func=Lazy("check", "cmd_check"))


def _feeds(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("feeds", parents=[common], help="list, add, import or export feeds")
    p.set_defaults(func=Lazy("feeds", "cmd_list"))
    fs = p.add_subparsers(dest="feeds_command")
    ls = fs.add_parser("list", parents=[common], help="every feed with its state (default)")
    ls.set_defaults(func=Lazy("feeds", "cmd_list"))
    add = fs.add_parser("add", parents=[common],
                        help="find the best source behind a URL (its feed, else its news "
                             "sitemap, else the page) and add it to the config")
    add.add_argument("url")
    add.add_argument("--name", help="feed name (default: from the feed's title)")
    add.add_argument("--interval", help="poll interval, e.g. 10m")
    add.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    add.add_argument("--allow-private", action="store_true",
                     help="the feed is on a private or loopback address (an intranet server)")
    add.set_defaults(func=Lazy("feeds", "cmd_add"))
    imp = fs.add_parser("import", parents=[common], help="add the feeds of an OPML file")
    imp.add_argument("file")
    imp.add_argument("--interval", help="poll interval for the imported feeds")
    imp.set_defaults(func=Lazy("feeds", "cmd_import"))
    exp = fs.add_parser("export", parents=[common], help="write the feeds as OPML 2.0")
    exp.add_argument("-o", "--output", help="file to write (default: standard output)")
    exp.set_defaults(func=Lazy("feeds", "cmd_export"))


def _deliveries(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("deliveries", parents=[common],
                       help="list alert deliveries (the outbox), or send dead ones again")
    p.add_argument("--status", choices=sorted(STATUSES),
                   help="only these (failed = retrying; held = waiting for a digest)")
    p.add_argument("--rule", help="only this rule's deliveries")
    p.set_defaults(func=Lazy("deliveries", "cmd_list"))
    ds = p.add_subparsers(dest="deliveries_command")
    ls = ds.add_parser("list", parents=[common], help="list deliveries (default)")
    ls.add_argument("--status", choices=sorted(STATUSES))
    ls.add_argument("--rule")
    ls.set_defaults(func=Lazy("deliveries", "cmd_list"))
    retry = ds.add_parser("retry", parents=[common],
                          help="put deliveries back in the queue, due now")
    retry.add_argument("ids", nargs="*", metavar="ID", help="delivery ids")
    retry.add_argument("--all-dead", action="store_true", help="every dead delivery")
    retry.set_defaults(func=Lazy("deliveries", "cmd_retry"))


def _archive(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("search", parents=[common], help="full-text search of stored articles")
    s.add_argument("query", help='words (all of them), "a phrase", OR, -word or NOT word, '
                   "prefix*, (groups)")
    s.add_argument("--since", help="only articles fetched in this period, e.g. 7d")
    s.add_argument("--feed", help="only this feed")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true", help="JSON lines for scripts")
    s.set_defaults(func=Lazy("archive", "cmd_search"))

    show = sub.add_parser("show", parents=[common], help="one stored article and its alerts")
    show.add_argument("article_id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=Lazy("archive", "cmd_show"))

    status = sub.add_parser("status", parents=[common], help="the daemon at a glance")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=Lazy("archive", "cmd_status"))


def _db(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", parents=[common], help="database maintenance")
    dbs = db.add_subparsers(dest="db_command", required=True)
    p = dbs.add_parser("prune", parents=[common],
                       help="remove articles older than the retention settings")
    p.set_defaults(func=Lazy("db", "cmd_prune"))
    m = dbs.add_parser("migrate", parents=[common],
                       help="bring the database's schema to this watcher's version")
    m.set_defaults(func=Lazy("db", "cmd_migrate"))
    c = dbs.add_parser("copy", parents=[common],
                       help="copy the SQLite database into an empty PostgreSQL database")
    c.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/db")
    c.set_defaults(func=Lazy("db", "cmd_copy"))


def _rules(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rules", parents=[common], help="check, describe or backtest rules")
    rs = p.add_subparsers(dest="rules_command", required=True)
    check = rs.add_parser("check", parents=[common],
                          help="validate a rules file and run each rule's examples")
    check.add_argument("file", nargs="?", help="rules file (default: the config's rules)")
    check.set_defaults(func=Lazy("rules", "cmd_check"))
    schema = rs.add_parser("schema", parents=[common],
                           help="print the JSON Schema of rules.yaml (for editors)")
    schema.add_argument("-o", "--output", help="write it to this file")
    schema.set_defaults(func=Lazy("rules", "cmd_schema"))
    test = rs.add_parser("test", parents=[common],
                         help="run rules over stored articles; nothing is sent")
    test.add_argument("file", nargs="?", help="rules file (default: the config's rules)")
    test.add_argument("--rule", help="only this rule")
    test.add_argument("--since", default="30d", help="how far back (default 30d)")
    test.add_argument("--show", type=int, default=3, help="newest matches shown per rule")
    test.set_defaults(func=Lazy("rules", "cmd_test"))
    exp = rs.add_parser("explain", parents=[common],
                        help="why a rule did or did not match a stored article")
    exp.add_argument("rule", help="the rule's name")
    exp.add_argument("article_id", type=int, help="the article's id (watcher search, show)")
    exp.add_argument("--file", help="rules file (default: the config's rules)")
    exp.set_defaults(func=Lazy("rules", "cmd_explain"))


def _templates(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("templates", parents=[common],
                       help="the default email and webhook templates")
    ts = p.add_subparsers(dest="templates_command", required=True)
    export = ts.add_parser("export", parents=[common],
                           help="write copies of the default templates to customise")
    export.add_argument("dir", help="folder to write them into (created if missing)")
    export.add_argument("--force", action="store_true", help="overwrite files already there")
    export.set_defaults(func=Lazy("templates", "cmd_export"))


def _web(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("web", parents=[common],
                       help="serve the web console alone (the same database as the daemon)")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="where to listen (default: web.listen, else 127.0.0.1:8080)")
    p.set_defaults(func=Lazy("web", "cmd_web"))
    ws = p.add_subparsers(dest="web_command")
    pw = ws.add_parser("passwd", parents=[common],
                       help="print a password hash for console.users in the config")
    pw.add_argument("name", help="the user's name")
    pw.add_argument("--role", choices=("viewer", "editor"), default="viewer")
    pw.set_defaults(func=Lazy("web", "cmd_passwd"))


REGISTER = (_run, _check, _feeds, _deliveries, _archive, _db, _rules, _templates, _web)


def register_all(sub: Any, common: argparse.ArgumentParser) -> None:
    for register in REGISTER:
        register(sub, common)
