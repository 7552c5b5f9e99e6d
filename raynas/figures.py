"""Writing matplotlib figures: headless (Agg), atomically, and closed afterwards."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed: servers, Ray workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | Path, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG under a temporary name, move it over ``out``, close the figure.

    A path that cannot be written (a read-only or missing folder, a folder of that name) is
    the user's to fix: a :class:`RaynasError` naming it, with ``out`` left as it was."""
    from raynas.errors import RaynasError
    from raynas.storage import atomic_path

    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    except OSError as exc:
        reason = (f"{out.parent} is a file, not a folder" if out.parent.is_file()
                  else exc.strerror or str(exc))
        raise RaynasError(f"cannot write the figure {out}: {reason}",
                          "give a path in a folder you can write to (e.g. another --out)") from None
    finally:
        pyplot().close(fig)
    return out
