"""Printing answers: a rich table for people, one JSON document with ``--json``."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table


_command = threading.local()  # per thread: whether the running command printed its JSON answer


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str), flush=True)
    _command.answered = True


def start_command() -> None:
    """Forget an earlier command's answer (``main`` can run several, also in threads of one process)."""
    _command.answered = False


def print_json_error(problem: str, fix: str | None, exit_code: int) -> None:
    """A failed ``--json`` command's one JSON answer, so scripts reading stdout learn why it
    failed; nothing when the command already printed its answer (stdout holds one object)."""
    if not getattr(_command, "answered", False):
        print_json({"error": problem, "fix": fix, "exit_code": exit_code})


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if _numeric(rows, i) else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    # piped output has no terminal width: do not squeeze columns to 80 characters
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240).print(table)


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    return bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
