"""Small charts drawn on the server as inline SVG (no script, no external request)."""

from __future__ import annotations

from datetime import datetime, timedelta

from markupsafe import Markup, escape


def days_back(now: datetime, n: int) -> list[str]:
    """The last `n` UTC days, oldest first, as YYYY-MM-DD."""
    return [(now - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(n - 1, -1, -1)]


def sparkline(counts: dict[str, int], days: list[str], width: int = 120,
              height: int = 24, what: str = "alert(s)") -> Markup:
    """A line of the counts per day, with the total as its accessible name."""
    values = [counts.get(d, 0) for d in days]
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
                      for i, v in enumerate(values))
    label = escape(f"{sum(values)} {what} in {len(days)} days, at most {max(values)} a day")
    return Markup(f'<svg class="spark" width="{width}" height="{height}" role="img" '
                  f'aria-label="{label}" viewBox="0 0 {width} {height}">'
                  f'<polyline fill="none" stroke="#336" stroke-width="1.5" '
                  f'points="{points}"/></svg>')
