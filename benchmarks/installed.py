"""Whole-process timings measure watcher as installed: pip byte-compiles what it
installs (rss2email included), but an editable checkout is compiled only when Python
may write beside the sources, and not at all under PYTHONDONTWRITEBYTECODE (set on
some machines, this one included), which would time compiling watcher's own modules
at every start."""

from __future__ import annotations

import subprocess
from pathlib import Path

_COMPILE = ("import compileall, os, watcher; "
            "compileall.compile_dir(os.path.dirname(watcher.__file__), quiet=1)")


def byte_compiled(bin_dir: Path) -> None:
    """Byte-compile the watcher package that the venv in bin_dir imports."""
    subprocess.run([str(bin_dir / "python"), "-c", _COMPILE], check=True)
