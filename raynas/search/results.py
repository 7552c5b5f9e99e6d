"""What a finished (or stopped) search leaves in its run directory.

``config.json`` (written at the start), ``result.json`` (config, space, per-epoch curves,
timings, genotype), ``genotype.json``, ``genotype.png``, ``alphas.png``, ``curves.png``,
``summary.md`` and ``checkpoint/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import socket
from pathlib import Path
from typing import Any

import torch

from raynas import __version__
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.space.genotype import draw_alphas, draw_genotype
from raynas.figures import pyplot, save_figure
from raynas.storage import atomic_write_text


def new_run_dir(runs: Path, config: SearchConfig) -> Path:
    return new_folder(runs, f"{config.dataset}-{config.algo}-{config.transfer}")


def new_folder(runs: Path, label: str) -> Path:
    """A new folder ``<time>-<label>`` in ``runs`` (``-2``, ``-3``... when that second already has one)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = runs / f"{stamp}-{label}"
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue  # another run of the same second: take the next name
        except OSError as exc:
            raise RaynasError(f"cannot create a run directory in {runs}: {exc.strerror or exc}",
                              "check that the home's runs/ folder is writable, or pass another --home") from None
    raise RaynasError(f"too many run directories named {base.name}-N in {runs}", "clean up old runs")


RUNNING_MARK = ".running"  # in a run folder while its process works on it: {"pid", "host"}


def mark_running(run_dir: Path) -> None:
    """Mark a run folder as being worked on by this process; :func:`unmark_running` at its end.
    A folder whose mark names a process that is gone was left by a killed run."""
    atomic_write_text(Path(run_dir) / RUNNING_MARK, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


def unmark_running(run_dir: Path) -> None:
    (Path(run_dir) / RUNNING_MARK).unlink(missing_ok=True)


def abandoned_runs(runs: Path) -> list[Path]:
    """Run folders a killed process left unfinished (a mark of a dead process on this host, no
    result.json): the folder holds a config and checkpoints nothing can continue from."""
    from raynas.ray_watchdog import alive

    found = []
    for folder in sorted(p for p in Path(runs).glob(f"*/{RUNNING_MARK}")):
        try:
            mark = json.loads(folder.read_text(encoding="utf-8"))
            pid, host = int(mark["pid"]), str(mark["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: leave it to a person
        run_dir = folder.parent
        if host == socket.gethostname() and not alive(pid) and not (run_dir / "result.json").exists():
            found.append(run_dir)
    return found


def remove_abandoned_runs(runs: Path) -> list[Path]:
    """Delete the folders of :func:`abandoned_runs`; returns them."""
    removed = abandoned_runs(runs)
    for run_dir in removed:
        shutil.rmtree(run_dir, ignore_errors=True)
    return removed


def write_config(run_dir: Path, config: SearchConfig) -> None:
    atomic_write_text(run_dir / "config.json", json.dumps(config.to_json(), indent=2))


def read_config(run_dir: Path) -> SearchConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RaynasError(f"{path} not found", "give a run directory written by `raynas search`")
    return SearchConfig.from_json(json.loads(path.read_text()))


def write_transfer(run_dir: Path, transfer: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "transfer.json", json.dumps(transfer, indent=2))


def result_dict(result, state) -> dict[str, Any]:
    history = result.history
    last = history[-1] if history else {}
    steps = [h["search_step_s"] for h in history if h.get("arch_updates")]
    return {
        "run_dir": str(result.run_dir) if result.run_dir else None,
        "status": result.status,
        "config": result.config.to_json(),
        "space": result.space.to_json(),
        "dataset": ({"name": result.config.dataset, "content_hash": result.datasets[0]["content_hash"]}
                    if not result.config.multi else {"name": result.config.dataset, "sources": result.datasets}),
        "transfer": result.transfer or {"strategy": "scratch"},
        "epochs_done": len(history),
        "final": {k: last.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc", "alpha_entropy",
                                            "skip_count")},
        "best_val_acc": max((h["val_acc"] for h in history), default=None),
        "history": history,
        "timings": {
            "total_s": sum(h["epoch_s"] for h in history),
            "epoch_s_mean": sum(h["epoch_s"] for h in history) / max(len(history), 1),
            "search_step_s_mean": sum(steps) / len(steps) if steps else None,
        },
        "genotype": result.genotype.to_json(),
        "genotype_text": str(result.genotype),
        "environment": {"raynas": __version__, "torch": torch.__version__, "python": platform.python_version(),
                        "device": str(state.device)},
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def plot_curves(history: list[dict[str, Any]], out: Path, title: str) -> Path:
    plt = pyplot()

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["train_loss"] for h in history], label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], label="val")
    axes[0].set_title("loss")
    axes[1].plot(epochs, [100 * h["train_acc"] for h in history], label="train")
    axes[1].plot(epochs, [100 * h["val_acc"] for h in history], label="val")
    axes[1].set_title("accuracy (%)")
    axes[2].plot(epochs, [h["alpha_entropy"] for h in history], label="alpha entropy", color="tab:purple")
    ax2 = axes[2].twinx()
    ax2.step(epochs, [h["skip_count"] for h in history], where="mid", color="tab:red", label="skips")
    ax2.set_ylabel("skip-connections (normal cell)")
    axes[2].set_title("architecture")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def summary_markdown(d: dict[str, Any]) -> str:
    cfg, final, t = d["config"], d["final"], d["timings"]
    lines = [f"# Search on `{cfg['dataset']}` with `{cfg['algo']}` ({cfg['transfer']})", "",
             f"- status: {d['status']}, {d['epochs_done']} of {cfg['epochs']} epochs, preset `{cfg['preset']}`",
             f"- final val accuracy {100 * (final['val_acc'] or 0):.1f}% (best {100 * (d['best_val_acc'] or 0):.1f}%)",
             f"- total {t['total_s']:.1f} s, {t['epoch_s_mean']:.1f} s per epoch",
             "", "## Genotype", "", "```", d["genotype_text"], "```", "",
             "![cells](genotype.png)", "", "![curves](curves.png)", "", "![alphas](alphas.png)", ""]
    return "\n".join(lines)


def write_results(result, state) -> dict[str, Any]:
    run_dir = Path(result.run_dir)
    d = result_dict(result, state)
    result.genotype.save(run_dir / "genotype.json")
    title = f"{result.config.dataset} / {result.config.algo}"
    draw_genotype(result.genotype, run_dir / "genotype.png", title)
    draw_alphas(result.model, run_dir / "alphas.png", title)
    if result.history:
        plot_curves(result.history, run_dir / "curves.png", title)
    atomic_write_text(run_dir / "summary.md", summary_markdown(d))
    atomic_write_text(run_dir / "result.json", json.dumps(d, indent=2))
    return d
