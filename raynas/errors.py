"""User-facing errors: what went wrong and how to fix it.

The CLI prints a :class:`RaynasError` without a traceback and exits non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RaynasError(Exception):
    """A problem the user can fix (bad input, missing file, unknown name)."""

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return self.problem if not self.fix else f"{self.problem}\n  fix: {self.fix}"

    def __reduce__(self):
        """Pickled as a plain RaynasError with its fix (Ray sends a trial's or task's error to the
        driver this way); subclasses' extra arguments and attributes do not travel."""
        return RaynasError, (self.problem, self.fix)
