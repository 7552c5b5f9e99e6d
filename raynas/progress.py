"""Progress of long loops: a bar on an interactive terminal, else (a job's log, a pipe) a plain
line at most every :data:`PLAIN_EVERY_S` seconds, so `ray job logs` shows a long import moving."""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, Sequence, TypeVar

from rich.progress import track

T = TypeVar("T")
PLAIN_EVERY_S = 10.0


def progress(items: Sequence[T] | Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    if not sys.stderr.isatty():
        return _plain(items, description, total if total is not None else _length(items))
    return track(items, description=description, total=total, transient=True)


def _length(items) -> int | None:
    try:
        return len(items)
    except TypeError:
        return None


def _plain(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_EVERY_S:
            last = now
            print(f"{description}: {done:,}{f' of {total:,}' if total else ''} ({now - start:.0f} s)",
                  file=sys.stderr, flush=True)
