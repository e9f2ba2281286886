"""Whole-process timings measure watcher as it is installed to run: a wheel, as the
Dockerfile and `pip install watcher` install it, byte-compiled by pip like rss2email.
A development checkout differs in two ways that cost at every start: its editable
install puts a finder on the import path that site.py loads first, and its modules are
compiled only when Python may write beside them (not at all under
PYTHONDONTWRITEBYTECODE, set on some machines, this one included).

`installed(bin_dir, work)` builds a wheel of the checkout that bin_dir's venv imports,
installs it without dependencies into a new venv under `work`, which takes the
dependencies from bin_dir's venv (a .pth file naming its site-packages), and returns
the new venv's bin folder. `byte_compiled(bin_dir)` compiles a checkout in place
(the `--editable` way of the benchmarks).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_COMPILE = ("import compileall, os, watcher; "
            "compileall.compile_dir(os.path.dirname(watcher.__file__), quiet=1)")
_WHERE = ("import os, sysconfig, watcher; "
          "print(os.path.dirname(os.path.dirname(os.path.abspath(watcher.__file__)))); "
          "print(sysconfig.get_paths()['purelib'])")


def byte_compiled(bin_dir: Path) -> None:
    """Byte-compile the watcher package that the venv in bin_dir imports."""
    subprocess.run([str(bin_dir / "python"), "-P", "-c", _COMPILE], check=True)


def installed(bin_dir: Path, work: Path) -> Path:
    """The bin folder of a venv in `work` with bin_dir's checkout installed as a wheel."""
    python = str(bin_dir / "python")
    work.mkdir(parents=True, exist_ok=True)
    # -P: not the checkout in the current folder, the one bin_dir's venv imports
    source, site = subprocess.run([python, "-P", "-c", _WHERE], check=True, cwd=work,
                                  capture_output=True, text=True).stdout.split("\n")[:2]
    venv = work / "installed-venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    new_site = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    (Path(new_site) / "dependencies.pth").write_text(site + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-deps", "--no-cache-dir", source], check=True)
    return venv / "bin"


def watcher_bin(bin_dir: Path, work: Path, editable: bool) -> Path:
    """Where to run `watcher` from: bin_dir's checkout installed as a wheel under `work`
    (a folder of its own per checkout), or, with `editable`, the checkout byte-compiled."""
    if editable:
        byte_compiled(bin_dir)
        return bin_dir
    return installed(bin_dir, work)
