"""What a race leaves in its run directory.

``config.json`` (the experiment), ``race.json`` (where its Tune experiment lives, its
candidates: what ``--resume`` needs), ``result.json`` (leaderboard, winner, genotype, curves),
``genotype.json``, ``genotype.png``, ``alphas.png`` (the winner's), ``curves.png`` (every
trial's val accuracy per epoch) and ``summary.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raynas.race.leaderboard import Row
from raynas.figures import pyplot, save_figure
from raynas.storage import atomic_write_text

RACE_FILE = "race.json"


def write_race_file(run_dir: Path, data: dict[str, Any]) -> None:
    atomic_write_text(run_dir / RACE_FILE, json.dumps(data, indent=2))


def read_race_file(run_dir: Path) -> dict[str, Any]:
    """``race.json``, checked field by field: a hand-edited or damaged file is refused by name
    before a resume acts on it."""
    from raynas.errors import RaynasError

    path = Path(run_dir) / RACE_FILE
    if not path.is_file():
        raise RaynasError(f"{run_dir} is not a race run directory (no {RACE_FILE})",
                          "give a run directory written by `raynas search`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        _check_race_fields(data)
        return data
    except (ValueError, UnicodeDecodeError) as exc:
        raise RaynasError(f"{path} is damaged ({exc})", "start a new search") from None


_CANDIDATE_FIELDS = {"key": str, "strategy": str, "distance": (int, float, type(None)),
                     "method": (str, type(None)), "rank": (int, type(None))}


def _check_race_fields(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for key, kind in (("experiment_path", str), ("tune_storage", str), ("name", str), ("candidates", list),
                      ("trial_resources", dict), ("samples", int)):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"'{key}' is missing or not a {kind.__name__}")
    for c in data["candidates"]:
        if not (isinstance(c, dict) and set(c) <= set(_CANDIDATE_FIELDS) and "key" in c and "strategy" in c
                and all(isinstance(v, _CANDIDATE_FIELDS[k]) for k, v in c.items())):
            raise ValueError(f"candidate {str(c)[:80]} is not a candidate")
    resources = data["trial_resources"]
    if set(resources) != {"cpu", "gpu"} or not all(isinstance(v, (int, float)) and v >= 0 for v in resources.values()):
        raise ValueError("'trial_resources' is not CPUs and GPUs per trial")
    datasets = data.get("datasets", {})
    if not (isinstance(datasets, dict) and all(isinstance(v, str) for v in datasets.values())):
        raise ValueError("'datasets' is not a mapping of dataset names to content hashes")
    if not isinstance(data.get("notes", []), list):
        raise ValueError("'notes' is not a list")


def plot_race(rows: list[Row], out: Path, title: str) -> Path:
    """Every trial's val accuracy (and alpha entropy) per epoch; stopped trials dashed."""
    plt = pyplot()

    fig, (acc_ax, ent_ax) = plt.subplots(1, 2, figsize=(12, 4))
    for row in rows:
        style = "-" if row.status == "finished" else "--"
        label = f"{row.source} [{row.trial[-5:]}] ({row.status})"
        epochs = range(1, len(row.curve) + 1)
        acc_ax.plot(epochs, [100 * a for a in row.curve], style, marker="o", ms=3, label=label)
        ent_ax.plot(range(1, len(row.entropy) + 1), row.entropy, style, marker="o", ms=3, label=label)
    acc_ax.set(xlabel="epoch", ylabel="val accuracy (%)", title="val accuracy per trial")
    ent_ax.set(xlabel="epoch", ylabel="nats", title="alpha entropy per trial")
    acc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def leaderboard_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Rows of the console and Markdown tables; only hyperparameters that differ between trials are shown."""
    varied = [k for k in (rows[0]["hyperparameters"] if rows else {})
              if len({r["hyperparameters"].get(k) for r in rows}) > 1]
    return [[r["rank"], r["trial"][-5:], r["source"], r["strategy"],
             "-" if r["distance"] is None else f"{r['distance']:.4g}",
             ", ".join(f"{k} {r['hyperparameters'][k]:.3g}" for k in varied) or "-", r["epochs"], r["status"],
             _pct(r["final_val_acc"]), _pct(r["best_val_acc"]), round(r["time_s"])] for r in rows]


LEADERBOARD_COLUMNS = ["rank", "trial", "source", "how", "OT distance", "hyperparameters", "epochs", "status",
                       "final val %", "best val %", "seconds"]


def summary_markdown(d: dict[str, Any]) -> str:
    cfg = d["config"]["search"]
    head = "| " + " | ".join(LEADERBOARD_COLUMNS) + " |"
    lines = [f"# Race on `{cfg['dataset']}`: {len(d['leaderboard'])} trial(s), `{cfg['algo']}`, preset "
             f"`{cfg['preset']}`, {cfg['epochs']} epochs", "",
             f"- winner: `{d['winner']['source']}` (trial {d['winner']['trial']}), final val accuracy "
             f"{_pct(d['winner']['final_val_acc'])}%", f"- wall time {d['timings']['total_s']:.0f} s",
             f"- TensorBoard: `{d['tensorboard']}`", ""]
    if d.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in d["notes"]] + [""]
    if d.get("retrain"):
        lines += [f"- retrained winner: test accuracy {_pct(d['retrain']['test_acc'])}%", ""]
    lines += ["## Leaderboard", "", head, "|" + "---|" * len(LEADERBOARD_COLUMNS)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in leaderboard_table(d["leaderboard"])]
    lines += ["", "![curves](curves.png)", "", "## Winner's genotype", "", "```", d["genotype_text"], "```", "",
              "![cells](genotype.png)", "", "![alphas](alphas.png)", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, d: dict[str, Any], rows: list[Row], winner_model, genotype) -> None:
    from raynas.space.genotype import draw_alphas, draw_genotype

    title = f"{d['config']['search']['dataset']}: race of {len(rows)} trial(s)"
    genotype.save(run_dir / "genotype.json")
    draw_genotype(genotype, run_dir / "genotype.png", f"winner: {d['winner']['source']}")
    draw_alphas(winner_model, run_dir / "alphas.png", f"winner: {d['winner']['source']}")
    plot_race(rows, run_dir / "curves.png", title)
    atomic_write_text(run_dir / "summary.md", summary_markdown(d))
    atomic_write_text(run_dir / "result.json", json.dumps(d, indent=2))
