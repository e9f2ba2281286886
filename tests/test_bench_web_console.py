"""benchmarks.web_console: its --database variant builds the console on another store
from the same config (Settings is a frozen dataclass: copied with dataclasses.replace)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.web_console import on_server


def test_the_server_variant_serves_the_console_from_the_database_given(tmp_path: Path) -> None:
    other = str(tmp_path / "other.db")
    web = on_server(tmp_path, other)
    try:
        assert web.settings.database == other
        assert web.settings.rules == (tmp_path / "rules.yaml").resolve()
        assert web.client.get("/healthz").status_code == 200
        assert Path(other).exists() and not (tmp_path / "data" / "w.db").exists()
    finally:
        web.store.close()
