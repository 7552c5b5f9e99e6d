"""Progress bars for long loops, shown only on an interactive terminal."""

from __future__ import annotations

import sys
from typing import Iterable, Sequence, TypeVar

from rich.progress import track

T = TypeVar("T")


def progress(items: Sequence[T] | Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    if not sys.stderr.isatty():
        return items
    return track(items, description=description, total=total, transient=True)
