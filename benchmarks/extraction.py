"""Extraction quality and CPU: watcher's extraction beside trafilatura's own settings.

    mkdir -p /tmp/pages && tar xJf ../shared/corpora/realpages-dev.tar.xz -C /tmp/pages
    python -m benchmarks.extraction --pages /tmp/pages/realpages

The pages directory holds `expected.json` and `pages/<key>` (see the corpus's README).
Scored as trafilatura's own evaluation scores: whitespace collapsed in the extracted
text and in each annotated sentence, a sentence found when it is a substring.
Precision = kept `with` / (kept `with` + leaked `without`), recall = kept `with` / all
`with`. CPU is the process time of the extraction call alone, per page.

Each extractor runs in its own fresh process (one after the other, so they do not share
the two cores): watcher's extraction installs its compiled pruning expressions into
trafilatura's module, which must not change what "trafilatura default" measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTRACTORS = ("watcher", "trafilatura-default", "trafilatura-fast")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@dataclass
class Score:
    kept: int = 0
    missed: int = 0
    leaked: int = 0
    cpu: float = 0.0
    pages: int = 0

    def add(self, text: str, expected: dict[str, Any], cpu: float) -> None:
        flat = normalise(text)
        for sentence in expected.get("with", []):
            if normalise(sentence) in flat:
                self.kept += 1
            else:
                self.missed += 1
        self.leaked += sum(1 for s in expected.get("without", []) if normalise(s) in flat)
        self.cpu += cpu
        self.pages += 1

    @property
    def precision(self) -> float:
        return self.kept / max(1, self.kept + self.leaked)

    @property
    def recall(self) -> float:
        return self.kept / max(1, self.kept + self.missed)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _extractor(name: str) -> Any:
    if name == "watcher":
        from watcher.extract.page import extract_page

        return lambda body, url: extract_page(body, url).text
    import trafilatura

    fast = name == "trafilatura-fast"
    # The settings the corpus README and issue 20 quote: comments out, tables in.
    return lambda body, url: trafilatura.extract(
        body, url=url, include_comments=False, include_tables=True,
        fast=fast, favor_precision=fast) or ""


def run_one(name: str, root: str, keys: list[str]) -> list[tuple[str, str, float]]:
    """In a fresh process: extract every page, timing each call's CPU."""
    expected = json.loads((Path(root) / "expected.json").read_text())["pages"]
    extract = _extractor(name)
    extract(b"<html><body><p>warm up</p></body></html>", None)  # imports out of the clock
    out = []
    for key in keys:
        body = (Path(root) / "pages" / key).read_bytes()
        started = time.process_time()
        try:
            text = extract(body, expected[key].get("url"))
        except Exception:  # a failure on one page scores as an empty text
            text = ""
        out.append((key, text, time.process_time() - started))
    return out


def measure(root: Path, names: tuple[str, ...], limit: int | None = None
            ) -> dict[str, tuple[Score, list[tuple[str, str, float]]]]:
    expected = json.loads((root / "expected.json").read_text())["pages"]
    keys = sorted(expected)[:limit]
    context = multiprocessing.get_context("spawn")
    results = {}
    for name in names:
        with context.Pool(1) as pool:
            rows = pool.apply(run_one, (name, str(root), keys))
        score = Score()
        for key, text, cpu in rows:
            score.add(text, expected[key], cpu)
        results[name] = (score, rows)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=Path, required=True,
                    help="directory holding expected.json and pages/")
    ap.add_argument("--only", choices=EXTRACTORS, action="append",
                    help="measure only these (repeatable); default all three")
    ap.add_argument("--limit", type=int, help="first N pages only (a quick look)")
    ap.add_argument("--json", type=Path, help="also write per-page texts and CPU here")
    args = ap.parse_args()
    names = tuple(args.only or EXTRACTORS)
    results = measure(args.pages, names, args.limit)
    print(f"{'extractor':<22}{'pages':>6}{'precision':>11}{'recall':>8}{'F1':>7}"
          f"{'CPU ms/page':>13}{'median ms':>11}")
    for name, (score, rows) in results.items():
        median = statistics.median(cpu for _, _, cpu in rows) * 1000 if rows else 0.0
        print(f"{name:<22}{score.pages:>6}{score.precision:>11.3f}{score.recall:>8.3f}"
              f"{score.f1:>7.3f}{score.cpu / max(1, score.pages) * 1000:>13.1f}"
              f"{median:>11.1f}")
    if args.json:
        args.json.write_text(json.dumps(
            {name: {key: {"text": text, "cpu": cpu} for key, text, cpu in rows}
             for name, (_, rows) in results.items()}, ensure_ascii=False))


if __name__ == "__main__":
    main()
