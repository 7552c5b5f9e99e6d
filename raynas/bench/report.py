"""What the transfer benchmark leaves in ``--out``: ``results.json`` (every run and every
number), ``results.md`` (the tables), ``curves.png`` (val accuracy per epoch, per target and
arm), ``curves_time.png`` (the same per wall-clock second), ``speedup.png`` (speed-up per arm
across targets) and ``distance_gain.png`` (OT distance against the gain over scratch, per
source/target pair)."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from raynas.bench.analysis import NOT_TRANSFER
from raynas.bench.config import PROTOCOLS
from raynas.bench.speedup import format_speedup
from raynas.bench.transferability import PROBE_MIN_CUT
from raynas.figures import pyplot, save_figure
from raynas.storage import atomic_write_text


def _pct(v: float | None, sd: float | None = None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    text = f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"
    return text + (f" ± {100 * sd:.1f}" if sd else "")


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def _quartile(v: float | None) -> str:
    return "never" if v is None else f"{v:.2f}"


def _transfers(arm: dict[str, Any]) -> str:
    """Positive transfers out of the targets, with the ties named: a tie is not a loss, but it
    does not count as positive either."""
    ties = arm.get("tied", 0)  # results written before ties were counted have none
    return f"{arm['positive']}/{arm['targets']}" + (f" ({ties} tied)" if ties else "")


def _arm_table(arms: list[dict[str, Any]]) -> list[str]:
    lines = ["| arm | speed-up (epochs): median [q1, q3] | never reached | speed-up (s): median | positive transfer | "
             "median gain (val) | median retrained test acc | median retrain gain | H(alpha) first -> last |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a in arms:
        se, ss = a["speedup_epochs"], a["speedup_s"]
        quartiles = f" [{_quartile(se.get('q1'))}, {_quartile(se.get('q3'))}]" if se else ""
        speedup = format_speedup(se["median"]) + quartiles if se else "no search"
        never = f"{se['never']}/{se['n']}" if se else "-"
        positive = "-" if a["arm"] in NOT_TRANSFER else _transfers(a)
        lines.append(f"| {a['arm']} | {speedup} | {never} | {format_speedup(ss['median']) if ss else '-'} | "
                     f"{positive} | {_pct(a['median_gain'], signed=True)} | {_pct(a['median_retrain_test_acc'])} | "
                     f"{_pct(a['median_retrain_gain'], signed=True)} | {_num(a['entropy_first'])} -> "
                     f"{_num(a['entropy_last'])} |")
    return lines


def _speedups(se: dict[str, Any] | None) -> str:
    """Median, mean and geometric mean of the speed-ups (the last two over the targets reached)."""
    if not se:
        return "no search | - | -"
    mean, geo = se.get("mean"), se.get("geomean")
    return (f"{format_speedup(se['median'])} | {'-' if mean is None else f'{mean:.2f}x'} | "
            f"{'-' if geo is None else f'{geo:.2f}x'}")


def _headline(protocols: dict[str, dict[str, Any]]) -> list[str]:
    """Protocol x arm: the speed-ups, how many targets gained, tied or lost, and what retraining says."""
    lines = ["## The answer", "",
             "| protocol | arm | speed-up: median | mean | geo. mean | never reached | positive / tied / negative | "
             "median retrain gain | median retrained test acc |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for protocol, result in protocols.items():
        blocks = [(PROTOCOLS.get(protocol, protocol), result["per_arm"])]
        learnt, targets = result.get("learnt_targets"), len(result.get("scratch") or {})
        if learnt is not None and len(learnt) < targets:
            blocks.append((f"{PROTOCOLS.get(protocol, protocol)}, the {len(learnt)} targets scratch learnt",
                           result["per_arm_learnt"]))
            notes = sorted(set(result["scratch"]) - set(learnt))
        for label, arms in blocks:
            for a in arms:
                if a["arm"] in NOT_TRANSFER:
                    continue
                se = a["speedup_epochs"]
                never = f"{se['never']}/{se['n']}" if se else "-"
                lines.append(f"| {label} | {a['arm']} | {_speedups(se)} | {never} | "
                             f"{a['positive']} / {a.get('tied', 0)} / {a['negative']} | "
                             f"{_pct(a['median_retrain_gain'], signed=True)} | {_pct(a['median_retrain_test_acc'])} |")
    lines += ["", "Speed-ups in search epochs; the mean and geometric mean are over the targets an arm reached "
                  "(never reached is counted apart). Positive / tied / negative: the arm's final val accuracy "
                  "against scratch's (for zero-shot, the retrained test accuracy).", ""]
    if notes:
        lines += [f"Scratch learnt nothing measurable on {', '.join(notes)}: its final val accuracy does not beat "
                  "chance (one-sided binomial test, p >= 0.01), so reaching it says nothing about transfer; the "
                  "rows 'the targets scratch learnt' leave them out.", ""]
    return lines


def _by_domain(protocols: dict[str, dict[str, Any]]) -> list[str]:
    """The headline split by the targets' domain: which domains transfer carries and which it does not."""
    if all(len(r.get("per_domain") or []) < 2 for r in protocols.values()):
        return []
    lines = ["## By domain", "",
             "| protocol | domain (targets) | arm | speed-up: median | mean | positive / tied / negative | "
             "median retrain gain |", "|---|---|---|---|---|---|---|"]
    for protocol, result in protocols.items():
        for group in result.get("per_domain") or []:
            for a in group["per_arm"]:
                if a["arm"] in NOT_TRANSFER:
                    continue
                se = a["speedup_epochs"]
                mean = None if not se else se.get("mean")
                lines.append(f"| {PROTOCOLS.get(protocol, protocol)} | {group['domain']} ({len(group['targets'])}) | "
                             f"{a['arm']} | {format_speedup(se['median']) if se else 'no search'} | "
                             f"{'-' if mean is None else f'{mean:.2f}x'} | "
                             f"{a['positive']} / {a.get('tied', 0)} / {a['negative']} | "
                             f"{_pct(a['median_retrain_gain'], signed=True)} |")
    return lines + ["", "The mean is over the domain's targets the arm reached.", ""]


def _search_vs_random(protocols: dict[str, dict[str, Any]]) -> list[str]:
    """Searched genotypes against genotypes drawn uniformly from the space, retrained alike."""
    first = next(iter(protocols.values()))
    svr = first.get("search_vs_random") or {}
    if not svr.get("targets"):
        return []
    lines = ["## Does the search beat random genotypes?", "",
             f"Random genotypes (drawn uniformly from the space, retrained at the same budget) reached a median "
             f"retrained test accuracy of {_pct(svr['random_test_acc'])} over {svr['targets']} target(s); their sd "
             f"over samples, a measure of the retrain's own noise, is {_pct(svr['random_sd'])} points in median.", "",
             "| protocol | arm | median retrained test acc - random's | above random | below random |",
             "|---|---|---|---|---|"]
    for protocol, result in protocols.items():
        for a in (result.get("search_vs_random") or {}).get("arms", []):
            if a["arm"] != "scratch" or protocol == next(iter(protocols)):
                label = "-" if a["arm"] == "scratch" else PROTOCOLS.get(protocol, protocol)
                lines.append(f"| {label} | {a['arm']} | {_pct(a['median_diff'], signed=True)} | "
                             f"{a['higher']}/{a['targets']} | {a['lower']}/{a['targets']} |")
    return lines + [""]


def _kinship(kin: dict[str, Any] | None) -> list[str]:
    """How much of its source's genotype each warm start kept, and what that did to the retrain."""
    if not kin or not kin.get("all"):
        return []
    lines = ["## Do warm starts keep their source's architecture?", "",
             "Kept: the share of a genotype's edges (op and input) that its source's genotype has too. Scratch's "
             "share with the same source genotype (same target and seed) is what a search that never saw the source "
             "shares with it anyway. Rho: Spearman of the excess (kept - scratch's share) against the retrain gain "
             "over scratch (negative: the more a search kept of its source, the worse its genotype retrained).", "",
             "| arm | runs | median kept | scratch's share | kept all | excess vs retrain gain: rho |",
             "|---|---|---|---|---|---|"]
    for a in [*kin["arms"], kin["all"]]:
        rho = a["excess_vs_retrain_gain"]
        rho_text = "-" if rho["rho"] is None else f"{rho['rho']:+.2f} (p = {rho['p']:.2g}, n = {rho['n']})"
        lines.append(f"| {a['arm']} | {a['runs']} | {_pct(a['median_kept'])}% | {_pct(a['median_scratch_kept'])}% | "
                     f"{a['unchanged']}/{a['runs']} | {rho_text} |")
    return lines + [""]


def _transferability(study: dict[str, Any] | None) -> list[str]:
    """Choosing the source and gating the transfer: OT distance, the linear probe and LogME."""
    if not study:
        return []
    lines = ["## Deciding to transfer: OT distance, the linear probe and LogME", "",
             "Choosing the source: Spearman rho of each score against the gain over scratch of every measured "
             "source/target pair (distance negated: for each, positive means the score ranks by gain), and the median "
             "val-accuracy points its pick among a target's measured sources gives up against the best of them. "
             "Each rho is over the pairs that score has (n): a multi-dataset supernet has no OT distance to its "
             "target, so a second row compares the scores on the pairs that have one.", "",
             "| protocol | pairs | OT distance: rho | regret | probe: rho | regret | LogME: rho | regret |",
             "|---|---|---|---|---|---|---|---|"]
    for protocol, choice in study["choice"].items():
        protocol_name = PROTOCOLS.get(protocol, protocol)
        rows = [(protocol_name, choice)]
        if "with_distance" in choice:
            rows.append((f"{protocol_name}, the pairs with an OT distance", choice["with_distance"]))
        for name, c in rows:
            cells = []
            for kind in ("distance", "probe", "logme"):
                k = c[kind]
                cells += ["-" if k["rho"] is None else f"{k['rho']:+.2f} (p {k['p']:.2g}, n {k['n']})",
                          _pct(k["median_regret"])]
            lines.append(f"| {name} | {c['pairs']} | {' | '.join(cells)} |")
    lines += ["", "The transfer-or-scratch gate on the OT arm's source: transfer when the source's score beats random "
                  "supernets' by at least a threshold (the probe: the share of their error it removes; LogME: the "
                  "difference). Mean gain kept over targets (a target sent to scratch gains 0) and decisions right "
                  "(transferred where the gain was positive, or not where it was not). Cross-validated thresholds are "
                  "fitted on the other folds of targets; `from` thresholds on every target of the first protocol.", "",
              "| protocol | gate | mean gain kept | transferred | right |", "|---|---|---|---|---|"]
    names = {"always": "always transfer", "never": "never (scratch)",
             "probe_fixed": f"probe, fixed cut {PROBE_MIN_CUT:g}", "probe_cv": "probe, cross-validated",
             "logme_cv": "LogME, cross-validated"}
    for protocol, row in study["gate"].items():
        for key, d in row.items():
            if not isinstance(d, dict):
                continue
            name = names.get(key) or key.replace("_from_", ", threshold from ").replace("logme", "LogME")
            if "threshold" in d:
                name += f" ({d['threshold']:.3g})"
            lines.append(f"| {PROTOCOLS.get(protocol, protocol)} | {name} | {_pct(d['mean_gain'], signed=True)} | "
                         f"{d['transferred']}/{d['targets']} | {d['right']}/{d['targets']} |")
    return lines + [""]


def _protocol_section(protocol: str, result: dict[str, Any]) -> list[str]:
    lines = [f"## {PROTOCOLS.get(protocol, protocol).capitalize()}: across targets", "",
             *_arm_table(result["per_arm"])]
    d = result["distance_vs_gain"]
    rho = "-" if d["rho"] is None else f"{d['rho']:+.2f} (p = {d['p']:.2g})"
    settled, n_targets = result["settled_targets"], len(result["scratch"])
    lines += ["", f"OT distance vs gain over {d['n']} source/target pair(s): Spearman rho {rho} "
                  "(negative: nearer sources gain more).", "",
              f"Scratch had settled (the last quarter of its epochs added at most 1 point of val accuracy) on "
              f"{len(settled)} of {n_targets} target(s); where it was still climbing, its final accuracy is a low "
              "bar and the speed-ups flatter the warm starts.", ""]
    if settled and len(settled) < n_targets:
        lines += [f"Over the targets where scratch settled ({', '.join(settled)}):", "",
                  *_arm_table(result["per_arm_settled"]), ""]
    learnt = result.get("learnt_targets")
    if learnt is not None and len(learnt) < n_targets:
        lines += [f"Over the targets scratch learnt (its final val accuracy beats chance; {len(learnt)} of "
                  f"{n_targets}):", "", *_arm_table(result["per_arm_learnt"]), ""]
    lines += [f"Against the goals ({PROTOCOLS.get(protocol, protocol)}). The paper's lower bound: a median speed-up "
              "of at least 3x, positive transfer on at least 90% of the targets, and retrained test accuracy no worse "
              "than scratch's (median retrain gain >= 0); past it: a median of 5x.", "",
              "| arm | median speed-up | >= 3x | positive transfer | >= 90% | median retrain gain | >= 0 | lower "
              "bound | 5x |", "|---|---|---|---|---|---|---|---|---|"]
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    for g in result["goals"]:
        lines.append(f"| {g['arm']} | {format_speedup(g['median_speedup'])} | {yes(g['speedup_met'])} | "
                     f"{100 * g['positive_share']:.0f}% | {yes(g['positive_met'])} | "
                     f"{_pct(g['median_retrain_gain'], signed=True)} | {yes(g['retrain_met'])} | "
                     f"**{'met' if g['lower_bound_met'] else 'not met'}** | {yes(g['stretch_met'])} |")
    return lines + [""]


def _all_runs(timings: dict[str, Any]) -> str:
    """The wall time of every run of a continued benchmark (the timings above are its last run's)."""
    runs = timings.get("invocations") or []
    if len(runs) < 2:
        return ""
    stopped = sum(not r.get("finished") for r in runs)
    return (f" in this run; {sum(r.get('wall_s', 0) for r in runs):.0f} s over the folder's {len(runs)} runs"
            f"{f' ({stopped} stopped before the end)' if stopped else ''}")


def markdown(answer: dict[str, Any]) -> str:
    cfg, timings = answer["config"], answer["timings"]
    warm, warm_lr, min_steps = cfg.get("warm_epochs"), cfg.get("warm_lr"), cfg.get("retrain_min_steps")
    budget = ("the same budget" if warm is None else
              f"its own budget ({warm} epoch(s) for warm starts, {cfg['epochs']} for scratch)")
    lines = [
        "# Transfer benchmark",
        "",
        f"{len(answer['targets'])} target(s), {len(cfg['arms'])} arm(s), {cfg['seeds']} seed(s); preset "
        f"`{cfg['preset']}`, {cfg['epochs']} search epoch(s) of {cfg['steps'] or 'all'} steps"
        f"{'' if warm is None else f' ({warm} for the warm-started arms)'}"
        f"{'' if warm_lr is None else f', weight LR {warm_lr:g} for the warm-started arms'}, arch LR "
        f"{cfg['arch_lr']:g}; zoo sources pretrained {cfg['source_epochs']} epoch(s) of {cfg['source_steps'] or 'all'} "
        f"steps; retrain {cfg['retrain_epochs']} epoch(s) of {cfg['retrain_steps'] or 'all'} steps"
        f"{'' if not min_steps else f', at least {min_steps} in all'} "
        f"({cfg['retrain_cells']} cells, {cfg['retrain_channels']} channels).",
        f"Time: zoo build {timings['zoo_build_s']:.0f} s (amortised over all targets), arms "
        f"{timings['arms_s']:.0f} s, total {timings['total_s']:.0f} s{_all_runs(timings)}. Written "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "Speed-up = epochs scratch needs to first reach its own final val accuracy / epochs the arm needs to "
        "reach it (the race counts every trial's epochs, the probe its probing seconds at its own epoch time); "
        "`never reached` is not a number. Gain = the arm's "
        f"final val accuracy minus scratch's, each at {budget} (points, mean ± sd over seeds). Zero-shot searches "
        "nothing: only its retrained test accuracy compares.",
        "",
    ]
    protocols = answer.get("protocols") or {"dataset": answer}  # results written before there were protocols
    lines += (_headline(protocols) + _by_domain(protocols) + _search_vs_random(protocols)
              + _kinship(answer.get("kinship")) + _transferability(answer.get("transferability")))
    for protocol, result in protocols.items():
        lines += _protocol_section(protocol, result)
    lines += ["", "## Per target", ""]
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for protocol, result in protocols.items():
        for r in result["per_target"]:
            shared = r["arm"] in NOT_TRANSFER
            if shared and protocol != next(iter(protocols)):
                continue  # the same runs under every protocol: shown once
            by_target[r["target"]].append({**r, "protocol": "-" if shared else protocol})
    for target, rows in by_target.items():
        sc = answer["scratch"].get(target, {})
        lines += [f"### {target}", "",
                  f"scratch reaches its final val accuracy at epoch(s) {sc.get('reaches_final_at')} of "
                  f"{sc.get('epochs')}; its last epoch changed it by {_pct(sc.get('last_epoch_gain'), signed=True)} "
                  f"points, its last quarter of epochs by {_pct(sc.get('late_gain'), signed=True)}.", "",
                  "| arm | protocol | source (OT distance) | final val acc | gain | speed-up (epochs) | speed-up (s) | "
                  "retrained test acc | transfer | H(alpha) first -> last |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            src = ", ".join(r["sources"]) + (f" ({r['distance']:.3g})" if r["distance"] is not None else "")
            su = lambda v, r=r: format_speedup(v) if r["searched"] else "no search"  # noqa: E731
            lines.append(f"| {r['arm']} | {r['protocol']} | {src} | "
                         f"{_pct(r['final_val_acc'], r['final_val_acc_sd'])} | "
                         f"{'-' if r['arm'] == 'scratch' else _pct(r['gain'], r['gain_sd'], signed=True)} | "
                         f"{'1.00x' if r['arm'] == 'scratch' else su(r['speedup_epochs'])} | "
                         f"{'1.00x' if r['arm'] == 'scratch' else su(r['speedup_s'])} | "
                         f"{_pct(r['retrain_test_acc'], r['retrain_test_acc_sd'])} | {r['transfer'] or '-'} | "
                         f"{_num(r['entropy_first'])} -> {_num(r['entropy_last'])} |")
        lines.append("")
    lines += ["Uniform alphas have entropy ln 8 = 2.079 nats; the further H(alpha) falls, the more the search "
              "has decided.", ""]
    return "\n".join(lines)


def _per_target_grid(targets: list[str], out: Path, xlabel: str, draw: Callable[[Any, str], None]) -> Path:
    """One val-accuracy panel per target, three to a row; ``draw(ax, target)`` fills each."""
    plt = pyplot()
    cols = min(3, len(targets))
    rows = math.ceil(len(targets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, target in zip(axes.flat, targets):
        draw(ax, target)
        ax.set_title(target, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("val accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(targets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out)


def _label(run: dict[str, Any]) -> str:
    """An arm's name, with the protocols its run answers for when it used a zoo."""
    protocols = run.get("protocols") or ()
    return run["arm"] + (f" [{','.join(protocols)}]" if protocols else "")


def plot_curves(answer: dict[str, Any], out: Path) -> Path:
    """Val accuracy per search epoch, the mean over seeds of each arm."""
    curves: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for run in answer["runs"]:
        acc = [h["val_acc"] for h in run["history"]]
        if acc:
            curves[(run["target"], _label(run))].append(acc)

    def draw(ax: Any, target: str) -> None:
        for (t, arm), cs in sorted(curves.items()):
            if t != target:
                continue
            n = min(len(c) for c in cs)
            mean = [sum(c[i] for c in cs) / len(cs) for i in range(n)]
            ax.plot(range(1, n + 1), mean, marker="o", ms=3, label=arm, lw=2.5 if arm == "scratch" else 1.2,
                    color="black" if arm == "scratch" else None)

    return _per_target_grid(answer["targets"], out, "search epoch", draw)


def plot_curves_in_time(answer: dict[str, Any], out: Path) -> Path:
    """Val accuracy against the wall-clock seconds each run was charged (a race: every trial's
    seconds up to that epoch of its winner; a probe: its probing first), one line per run and seed."""
    from raynas.bench.analysis import race_cost

    labels = dict.fromkeys(_label(r) for r in answer["runs"] if r["arm"] != "scratch")
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}

    def draw(ax: Any, target: str) -> None:
        labelled = set()
        for run in answer["runs"]:
            acc = [h["val_acc"] for h in run["history"]]
            if run["target"] != target or not acc:
                continue
            if run["arm"] == "race":
                seconds = [race_cost(run, e)[1] for e in range(1, len(acc) + 1)]
            else:
                start = float(run.get("selection_s") or 0.0)  # after probing, fitting a head
                epoch_s = (h.get("epoch_s") or 0.0 for h in run["history"])
                seconds = list(itertools.accumulate(epoch_s, initial=start))[1:]
            scratch = run["arm"] == "scratch"
            label = _label(run)
            ax.plot(seconds, acc, lw=2.0 if scratch else 1.0, color="black" if scratch else colors.get(label),
                    label=None if label in labelled else label)
            labelled.add(label)

    return _per_target_grid(answer["targets"], out, "seconds", draw)


def plot_speedups(answer: dict[str, Any], out: Path) -> Path:
    plt = pyplot()
    arms = [a["arm"] for a in answer["per_arm"] if a["arm"] != "scratch" and a["speedup_epochs"]]
    fig, ax = plt.subplots(figsize=(1.2 * max(len(arms), 3) + 2, 3.5))
    for i, arm in enumerate(arms):
        values = [r["speedup_epochs"] for r in answer["per_target"] if r["arm"] == arm]
        reached = [v for v in values if v is not None]
        ax.scatter([i] * len(reached), reached, color="tab:blue", alpha=0.7)
        never = len(values) - len(reached)
        if never:
            ax.scatter([i] * never, [0] * never, marker="x", color="tab:red", label="never reached" if i == 0 else None)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylabel("speed-up over scratch (epochs)")
    ax.set_title("per target; x at 0 = never reached scratch's final accuracy", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_distance_gain(answer: dict[str, Any], out: Path) -> Path:
    plt = pyplot()
    pairs = answer["distance_vs_gain"]["pairs"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter([p["distance"] for p in pairs], [100 * p["gain"] for p in pairs], alpha=0.7)
    ax.axhline(0, color="black", lw=0.8, ls="--")
    ax.set_xlabel("OT distance of the source to the target")
    ax.set_ylabel("gain over scratch (val acc points)")
    rho = answer["distance_vs_gain"]["rho"]
    ax.set_title(f"Spearman rho = {rho:+.2f}" if rho is not None else "too few pairs for a correlation", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out)


def write_report(out: Path, answer: dict[str, Any]) -> None:
    answer["files"] = {"results": str(out / "results.json"), "markdown": str(out / "results.md"),
                       "curves": str(out / "curves.png"), "curves_in_time": str(out / "curves_time.png"),
                       "speedup": str(out / "speedup.png"), "distance_gain": str(out / "distance_gain.png")}
    plot_curves(answer, out / "curves.png")
    plot_curves_in_time(answer, out / "curves_time.png")
    plot_speedups(answer, out / "speedup.png")
    plot_distance_gain(answer, out / "distance_gain.png")
    atomic_write_text(out / "results.md", markdown(answer))
    atomic_write_text(out / "results.json", json.dumps(answer, indent=2, default=str))
