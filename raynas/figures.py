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
    """Save ``fig`` as PNG under a temporary name, move it over ``out``, close the figure."""
    from raynas.storage import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return out
