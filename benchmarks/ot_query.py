"""Query time and ranking quality of the OT source-ranking cascade, measured in one run.

    python benchmarks/ot_query.py [--target mnist5k] [--zoo 1000] [--n1 50] [--n2 5] [--repeats 3]
                                  [--large-all-targets [--sizes 50:5,200:10]] [--out r.json]

What is measured (pixel encoder, default embedding config, built-in suite):

(a) Query time of ``rank_sources(target, zoo, "cascade")`` for the target's embedding
    against (1) the 10 other built-in datasets and (2) a zoo of ``--zoo`` entries: those 10
    plus synthetic embeddings with realistic shapes (2-30 classes drawn from the pooled
    classes of the suite's encoded train images, each class moved by a random offset, the
    same d, m, L, q as real entries). Median of ``--repeats`` runs, next to one brute-force
    ``otdd`` ranking of the same zoo. Embedding the query (encode + summarise) is timed
    separately and excluded from query times; building the synthetic zoo is not timed.
(b) Agreement of the cascade ranking with the full otdd ranking, leave-one-out over the 11
    built-in datasets (10 sources each): Spearman's rho between the cascade's rank order and
    the otdd distances (mean and min), how often both pick the same nearest source, and the
    same numbers for ``hot`` and ``sliced`` alone for comparison. With ``--large-all-targets``
    every built-in dataset is also ranked against the large zoo (its 10 real neighbours plus
    the synthetic entries), comparing the cascade's nearest source and top 5 with brute force,
    for each cascade size in ``--sizes``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import ot
import pyarrow
import torch
from scipy.stats import spearmanr

from raynas.data import DatasetStore
from raynas.ot import Cascade, EmbeddingConfig, EmbeddingStore, create_encoder, embed_dataset, rank_sources
from raynas.ot.embedding import summarise, to_parquet_bytes
from raynas.ot.sampling import stratified_indices
from raynas.storage import Storage


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def median_time(repeats: int, fn, *args, **kwargs):
    runs = [timed(fn, *args, **kwargs) for _ in range(repeats)]
    return runs[-1][0], statistics.median(t for _, t in runs)


def class_pool(datasets: DatasetStore, encoder, config: EmbeddingConfig) -> list[np.ndarray]:
    """Encoded train points of every class of every built-in dataset (the embedded subset)."""
    pool = []
    for name in datasets.names():
        images, labels = datasets.load(name).split(config.split)
        idx = stratified_indices(labels, config.max_images, config.seed)
        feats, labels = encoder.encode(images[idx]), labels[idx]
        pool += [feats[labels == c] for c in np.unique(labels)]
    return pool


def synthetic_zoo(count: int, pool: list[np.ndarray], version: str, config: EmbeddingConfig, seed: int = 1):
    """``count`` embeddings of 2-30 pooled classes each, every class shifted by its own offset."""
    rng = np.random.default_rng(seed)
    scale = float(np.sqrt(np.concatenate(pool).var(axis=0).mean()))
    zoo = []
    for i in range(count):
        k = int(rng.integers(2, 31))
        picks = rng.choice(len(pool), size=k, replace=False)
        per_class = max(config.max_images // k, 2)
        xs, ys = [], []
        for label, p in enumerate(picks):
            points = pool[p][rng.permutation(len(pool[p]))[:per_class]]
            xs.append(points + rng.normal(scale=0.3 * scale, size=points.shape[1]).astype(np.float32))
            ys.append(np.full(len(points), label))
        zoo.append(summarise(np.concatenate(xs), np.concatenate(ys), dataset=f"synthetic-{i:04d}",
                             content_hash=f"{i:064x}", encoder_version=version, config=config))
    return zoo


def agreement(embeddings: dict, cascade: Cascade) -> dict:
    """Leave-one-out over the suite: rank correlations of cascade/hot/sliced with full otdd."""
    names, out = list(embeddings), {}
    rankings = {m: {} for m in ("otdd", "hot", "sliced", "cascade")}
    for target in names:
        sources = [embeddings[n] for n in names if n != target]
        for method in rankings:
            rankings[method][target] = rank_sources(embeddings[target], sources,
                                                    cascade if method == "cascade" else method)
    for method in ("cascade", "hot", "sliced"):
        rhos, same_top1, otdd_best_in_top3 = [], 0, 0
        for target in names:
            truth = {s.name: s.distance for s in rankings["otdd"][target]}
            order = rankings[method][target].names()
            rhos.append(float(spearmanr(range(len(order)), [truth[n] for n in order])[0]))
            best = rankings["otdd"][target].names()[0]
            same_top1 += order[0] == best
            otdd_best_in_top3 += best in order[:3]
        out[method] = {"spearman_mean": float(np.mean(rhos)), "spearman_min": float(np.min(rhos)),
                       "same_nearest": same_top1, "otdd_nearest_in_top3": otdd_best_in_top3,
                       "targets": len(names), "spearman": dict(zip(names, rhos))}
    return out


def large_zoo_all_targets(embeddings: dict, synth: list, sizes: str) -> list[dict]:
    """Every built-in target against its 10 real neighbours + the synthetic entries: the
    cascade (for each ``n1:n2`` in ``sizes``) against one brute-force otdd ranking."""
    cascades = [Cascade(*(int(v) for v in pair.split(":"))) for pair in sizes.split(",")]
    print(f"\n(a') every built-in target against a {len(synth) + len(embeddings) - 1}-entry zoo: cascade vs "
          "brute-force otdd (one run each)")
    print(f"{'n1:n2':>7} | {'same nearest':>12} | {'top-5 overlap':>13} | {'median s':>8} | {'max s':>6}")
    brute = {}
    for name, emb in embeddings.items():
        zoo = [e for n, e in embeddings.items() if n != name] + synth
        brute[name] = (zoo, rank_sources(emb, zoo, "otdd").names())
    rows = []
    for cascade in cascades:
        same, overlap, seconds = 0, 0, []
        for name, (zoo, truth) in brute.items():
            ranking = rank_sources(embeddings[name], zoo, cascade)
            same += ranking.names()[0] == truth[0]
            overlap += len(set(ranking.names()[:5]) & set(truth[:5]))
            seconds.append(ranking.seconds["total"])
        rows.append({"n1": cascade.n1, "n2": cascade.n2, "same_nearest": same, "targets": len(brute),
                     "top5_overlap": overlap, "median_s": statistics.median(seconds), "max_s": max(seconds)})
        print(f"{cascade.n1:>3}:{cascade.n2:<3} | {same:>7}/{len(brute):<4} | {overlap:>7}/{5 * len(brute):<5} | "
              f"{rows[-1]['median_s']:>8.2f} | {rows[-1]['max_s']:>6.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", help="raynas home with (or for) the built-in suite; default: a temporary one")
    parser.add_argument("--target", default="mnist5k")
    parser.add_argument("--zoo", type=int, default=1000, help="entries of the large zoo (10 real + synthetic)")
    parser.add_argument("--n1", type=int, default=Cascade().n1)
    parser.add_argument("--n2", type=int, default=Cascade().n2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-all-targets", action="store_true",
                        help="also compare cascade and brute-force otdd on the large zoo for every built-in "
                             "target (about 25 s per target)")
    parser.add_argument("--sizes", help="with --large-all-targets: cascade sizes to compare, e.g. 50:5,200:10 "
                                        "(default: --n1:--n2)")
    parser.add_argument("--out", help="also write the numbers as JSON")
    args = parser.parse_args()
    cascade, config = Cascade(n1=args.n1, n2=args.n2), EmbeddingConfig()

    work = tempfile.mkdtemp(prefix="ot-query-")
    datasets = DatasetStore(args.home or os.path.join(work, "home"))
    datasets.ensure_builtins()
    storage = Storage(os.path.join(work, "embeddings"))
    encoder, fit_s = timed(create_encoder, "pixels", storage=storage, home=datasets.home.root)
    store = EmbeddingStore(storage)
    embeddings = {n: store.ensure(datasets.load(n), encoder, config) for n in datasets.names()}
    target_ds = datasets.load(args.target)
    _, embed_s = median_time(args.repeats, embed_dataset, target_ds, encoder, config)
    target = embeddings[args.target]
    real = [e for n, e in embeddings.items() if n != args.target]
    sizes = [len(to_parquet_bytes(e)) for e in embeddings.values()]
    print(f"encoder {encoder.version}: PCA fitted in {fit_s:.2f} s; embedding '{args.target}' "
          f"({min(config.max_images, target_ds.info.split_counts[config.split])} images): {embed_s:.3f} s; "
          f"stored embedding {np.mean(sizes) / 1024:.0f} KiB on average")

    result = {"date": dt.date.today().isoformat(), "machine": platform.machine(), "cpus": os.cpu_count(),
              "versions": {"python": platform.python_version(), "numpy": np.__version__, "pot": ot.__version__,
                           "torch": torch.__version__, "pyarrow": pyarrow.__version__},
              "encoder": encoder.version, "config": json.loads(config.to_json()), "n1": args.n1, "n2": args.n2,
              "target": args.target, "pca_fit_s": fit_s, "embed_query_s": embed_s,
              "embedding_bytes_mean": float(np.mean(sizes)), "query": {}}

    (pool, pool_s) = timed(class_pool, datasets, encoder, config)
    synth, synth_s = timed(synthetic_zoo, args.zoo - len(real), pool, encoder.version, config)
    print(f"synthetic zoo: {len(synth)} entries from {len(pool)} pooled classes in {pool_s + synth_s:.1f} s "
          "(not timed below)")
    print(f"\n(a) query time for '{args.target}' (median of {args.repeats}; embedding excluded)")
    print(f"{'zoo':>6} | {'cascade s':>9} | {'sliced s':>8} | {'hot s':>6} | {'otdd s':>6} | "
          f"{'brute otdd s':>12} | {'speed-up':>8} | same nearest")
    for label, zoo in (("real", real), ("large", real + synth)):
        ranking, cascade_s = median_time(args.repeats, rank_sources, target, zoo, cascade)
        brute, brute_s = timed(rank_sources, target, zoo, "otdd")
        same = ranking.names()[0] == brute.names()[0]
        overlap = len(set(ranking.names()[:5]) & set(brute.names()[:5]))
        result["query"][label] = {"sources": len(zoo), "cascade_s": cascade_s, "stages_s": ranking.seconds,
                                  "evaluated": ranking.evaluated, "brute_force_otdd_s": brute_s,
                                  "speedup": brute_s / cascade_s, "same_nearest": same, "top5_overlap": overlap,
                                  "cascade_top5": ranking.names()[:5], "otdd_top5": brute.names()[:5]}
        st = ranking.seconds
        print(f"{len(zoo):>6} | {cascade_s:>9.3f} | {st['sliced']:>8.3f} | {st['hot']:>6.3f} | {st['otdd']:>6.3f} | "
              f"{brute_s:>12.2f} | {brute_s / cascade_s:>7.1f}x | {same} ({ranking.names()[0]} / "
              f"{brute.names()[0]}), top-5 overlap {overlap}/5")

    if args.large_all_targets:
        result["large_all_targets"] = large_zoo_all_targets(embeddings, synth, args.sizes or f"{args.n1}:{args.n2}")

    print("\n(b) agreement with full otdd, leave-one-out over the suite (10 sources per target)")
    agree = agreement(embeddings, cascade)
    result["agreement"] = agree
    print(f"{'method':>8} | {'Spearman mean':>13} | {'min':>6} | same nearest | otdd nearest in top 3")
    for method, a in agree.items():
        print(f"{method:>8} | {a['spearman_mean']:>13.3f} | {a['spearman_min']:>6.3f} | "
              f"{a['same_nearest']:>6}/{a['targets']} | {a['otdd_nearest_in_top3']:>6}/{a['targets']}")
    worst = min(agree["cascade"]["spearman"].items(), key=lambda kv: kv[1])
    print(f"lowest cascade rho: {worst[0]} ({worst[1]:.3f})")

    goals = {"real_under_2s": result["query"]["real"]["cascade_s"] < 2.0,
             "large_under_10s": result["query"]["large"]["cascade_s"] < 10.0,
             "spearman_at_least_0.9": agree["cascade"]["spearman_mean"] >= 0.9}
    result["goals"] = goals
    print("\ngoals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items()))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
