"""What the README, Makefile, Dockerfile and pyproject promise exists in the project."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block, "README must open with a shell block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()
                if line.strip()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_console_script_points_at_a_real_function() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = meta["project"]["scripts"]["watcher"]
    module, func = target.split(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_dockerfile_copies_existing_paths_and_runs_the_daemon() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", docker, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"Dockerfile copies missing {part}"
    assert 'CMD ["watcher", "run"]' in docker
    assert re.search(r"^USER\s+(?!root)\w+", docker, re.M)
    assert 'VOLUME ["/data"]' in docker
    assert "HEALTHCHECK" in docker and "/healthz" in docker
    assert docker.count("FROM ") >= 2  # multi-stage
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "watcher-data:/data" in compose
    services = yaml.safe_load(compose)["services"]
    # --profile postgres --scale watcher=3: the daemons share the profile's database
    assert services["postgres"]["profiles"] == ["postgres"]
    assert "WATCHER_DATABASE" in services["watcher"]["environment"]
    assert "${WATCHER_DATABASE" in (ROOT / "config" / "watcher.yaml").read_text()
    assert "watcher[postgres]" in docker
    unit = (ROOT / "config" / "watcher.service").read_text()
    for option in ("Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=true",
                   "ExecReload=/bin/kill -HUP $MAINPID"):
        assert option in unit
    env_cfg = re.search(r"WATCHER_CONFIG=/app/(\S+)", docker)
    assert env_cfg and (ROOT / env_cfg.group(1)).is_file()


def test_dependencies_have_lower_bounds() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"] + meta["project"]["optional-dependencies"]["dev"]
    for dep in deps:
        assert ">=" in dep, f"{dep} has no lower bound"
    names = {re.split(r"[<>=\[]", d)[0].lower() for d in meta["project"]["dependencies"]}
    assert {"feedparser", "httpx", "apscheduler", "trafilatura", "lxml_html_clean",
            "sqlite-utils", "pyyaml", "pydantic"} <= names


def test_libraries_whose_internals_are_used_are_bounded_and_installed_within() -> None:
    """watcher/fetch builds httpcore's connections itself; watcher/extract replaces
    trafilatura's pruning expressions: a release outside the bounds is not let in
    untested, and the installed one is inside them."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {Requirement(d).name.lower(): Requirement(d)
                for d in meta["project"]["dependencies"]}
    for name in ("httpcore", "trafilatura"):
        spec = declared[name].specifier
        assert any(s.operator == "<" for s in spec), f"{name} has no upper bound"
        assert spec.contains(version(name)), f"{name} {version(name)} is outside {spec}"
    # imported by name in watcher/, not only pulled in by another package
    assert {"lxml", "courlan", "charset_normalizer", "markupsafe"} <= declared.keys()


def test_lint_checks_the_dependencies_and_the_types() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = re.search(r"^lint:.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert lint and re.search(r"^test: lint", makefile, re.M)
    steps = lint.group(1)
    assert "deptry watcher" in steps and "mypy" in steps
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["tool"]["mypy"]["files"] == ["watcher"]
    strict = meta["tool"]["mypy"]["overrides"][0]
    assert set(strict["module"]) == {"watcher.core.*", "watcher.extract.*", "watcher.rules.*"}
    assert strict["disallow_untyped_defs"] and strict["warn_return_any"]
    # psycopg is imported only with a postgresql:// database: declared in that extra
    assert "postgres" not in meta["tool"]["deptry"]["optional_dependencies_dev_groups"]


def _loaded_by(module: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with `prefixes` that a fresh interpreter has after `import module`."""
    code = (f"import json, sys; import {module}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return json.loads(out)


def test_console_script_module_imports_nothing_heavy() -> None:
    """Extraction workers import the script's module again when they start."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module = meta["project"]["scripts"]["watcher"].split(":")[0]
    assert _loaded_by(module, ("watcher.", "trafilatura", "httpx", "sqlite_utils",
                               "pydantic")) == ["watcher.__main__"]


def test_extraction_workers_do_not_load_the_rule_language() -> None:
    """The forkserver imports watcher.service.workers at every start of the pool; the
    workers need the words of a text (watcher.core.text), not rules.yaml's
    validation and compiler."""
    assert _loaded_by("watcher.service.workers", (
        "watcher.rules", "pydantic", "yaml", "ahocorasick", "re2", "luqum", "sqlite_utils",
        "httpx")) == []


def test_the_daemon_loads_what_a_poll_with_nothing_new_does_not_use_on_first_use() -> None:
    """A warm `run --once` whose feeds all answer 304 parses no feed, places no story
    and scrapes no section page: feedparser, numpy (signatures) and courlan wait; nor
    does it run the scheduler or read HTML and sitemaps (lxml), nor serve /metrics."""
    assert _loaded_by("watcher.service.daemon", (
        "numpy", "feedparser", "courlan", "trafilatura", "watcher.core.identity",
        "watcher.extract.links", "sqlite_utils", "apscheduler", "lxml",
        "prometheus_client", "watcher.core.search")) == []


def test_the_http_client_does_not_load_httpx_command_line_tool() -> None:
    """httpx imports its CLI (click, pygments, rich) when they are installed."""
    assert _loaded_by("watcher.fetch.client", ("click", "pygments", "rich", "httpx._main")) \
        == []


def test_the_daemon_does_not_load_the_config_editor() -> None:
    """ruamel.yaml is for `watcher feeds add` editing the config in place: 1.6 MB the
    daemon's process would carry, against a memory target at 10,000 feeds."""
    assert _loaded_by("watcher.cli", ("ruamel", "watcher.settings.edit")) == []


def test_the_rule_language_exports_load_on_first_use() -> None:
    import watcher.rules
    import watcher.rules.load
    import watcher.rules.ruleset

    assert watcher.rules.compile_rules is watcher.rules.match.compile_rules
    assert watcher.rules.RuleSet is watcher.rules.ruleset.RuleSet is watcher.rules.load.RuleSet
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        watcher.rules.nothing  # noqa: B018 - the access is the test


def test_the_daemon_runs_on_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import uvloop

    from watcher.cli.run import event_loop_factory

    monkeypatch.delenv("WATCHER_EVENT_LOOP", raising=False)
    factory = event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    monkeypatch.setenv("WATCHER_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None


def test_package_data_names_the_shipped_templates() -> None:
    """The default templates live once, inside the package: the wheel must carry them."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = meta["tool"]["setuptools"]["package-data"]["watcher"]
    shipped = {p for g in globs for p in (ROOT / "watcher").glob(g)}
    delivery = ROOT / "watcher" / "delivery" / "templates"
    assert {p.name for p in shipped if p.parent == delivery} == {
        "subject.txt.j2", "text.txt.j2", "html.html.j2", "generic.json.j2"}
    web = ROOT / "watcher" / "web"
    for folder in (web / "templates", web / "static"):  # the console's pages and htmx
        assert set(folder.iterdir()) <= shipped
    assert not (ROOT / "config" / "templates").exists()
