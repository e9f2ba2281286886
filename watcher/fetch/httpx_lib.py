"""httpx, imported without its command-line tool: `from watcher.fetch.httpx_lib import httpx`.

httpx's package imports its own command-line tool (click, pygments and rich's
console, progress, syntax and table) whenever those are installed, and rich is ours:
about half of httpx's import time, in every command that fetches. A None entry makes
that one import fail as httpx expects when they are missing (it then defines a stub
`main`); the entry is removed once httpx is in, so nothing else is affected.
"""

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        del sys.modules["httpx._main"]

import httpx

__all__ = ["httpx"]
