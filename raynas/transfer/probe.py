"""Ranking zoo sources by a linear probe: how well each source supernet's frozen features
separate the target's classes.

OT distance compares the datasets; the probe asks the pretrained supernets themselves. A
logistic regression is fitted on the features of a stratified sample of the target's train
split and scored on its val split, once per candidate. That costs one forward pass of the
sample through each candidate (seconds per source on a CPU at the tiny preset) and catches
what a pixel distance misses: inverted digits are far from every digit set in pixel space,
yet a digit supernet's features still separate them.

The probe also scores randomly initialised supernets of the search's own space: what a search
from scratch starts with. A source is worth its warm start only when its features remove a
good share of the error that random features leave (:func:`error_cut`); in the transfer
benchmark the sources that removed less than a third transferred negatively (docs/results.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from raynas.data.format import ImageDataset
from raynas.data.format import split_row_groups
from raynas.ot.sampling import stratified_group_indices
from raynas.space.config import SpaceConfig
from raynas.zoo.manifest import ZooManifest

PROBE_TRAIN, PROBE_VAL = 1000, 1000  # images of the target the probe fits on and scores on
PROBE_SEED = 0
PROBE_TOL = 1e-2  # the solver's tolerance (see probe_accuracy)
RANDOM_INITS = (0, 1, 2)  # seeds of the random supernets whose mean probe accuracy is the scratch baseline
SCRATCH = "scratch"  # the baseline's name in a ranking


@dataclass(frozen=True)
class ProbeScore:
    source: str  # the zoo entry
    dataset: str  # what it was trained on
    accuracy: float  # the probe's val accuracy on the target
    seconds: float
    logme: float | None = None  # LogME of the same features on the probe's train sample (raynas.transfer.logme)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def probe_accuracy(features_train: np.ndarray, labels_train: np.ndarray, features_val: np.ndarray,
                   labels_val: np.ndarray) -> float:
    """Val accuracy of a logistic regression on standardised features (fitted on train only).

    The solver stops at a loose tolerance: ranking sources needs accuracies to about a point,
    not the optimum, and on 26 classes that is ten times faster (the default tolerance made
    the fits cost more than the features)."""
    from sklearn.linear_model import LogisticRegression

    mean, std = features_train.mean(0), features_train.std(0) + 1e-6
    model = LogisticRegression(max_iter=500, tol=PROBE_TOL).fit((features_train - mean) / std, labels_train)
    return float(model.score((features_val - mean) / std, labels_val))


def error_cut(accuracy: float, baseline: float) -> float:
    """The share of the baseline's probe error that ``accuracy`` removes: 1 all of it, 0 none,
    negative when it is worse. Relative, so that a few points count for more on an easy target
    (random features already at 94%) than on a hard one."""
    return (accuracy - baseline) / max(1.0 - baseline, 1e-6)


def _sample(ds: ImageDataset, split: str, total: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded class-stratified sample of one split; ``ds`` may be a
    :class:`raynas.data.stored.StoredDataset`, which reads only the sample's images."""
    labels = ds.split_labels(split)
    keep = stratified_group_indices(labels, split_row_groups(ds.info, ds.splits, split), total, PROBE_SEED)
    return ds.split_images(split, keep), labels[keep]


def probe_zoo(target: ImageDataset, entries: Sequence[ZooManifest], zoo: Any, *, max_train: int = PROBE_TRAIN,
              max_val: int = PROBE_VAL) -> list[ProbeScore]:
    """Score every entry (single- or multi-dataset) on ``target``, best first (ties: the entry's name)."""
    from raynas.ot.encoders import create_encoder

    sample = _samples(target, max_train, max_val)
    scores = []
    for entry in entries:
        t0 = time.perf_counter()
        accuracy, evidence = _probe(create_encoder("supernet", storage=None, zoo=zoo, source=entry.name), *sample)
        scores.append(ProbeScore(entry.name, entry.source, accuracy, time.perf_counter() - t0, evidence))
    return sorted(scores, key=lambda s: (-s.accuracy, s.source))


def probe_scratch(target: ImageDataset, space: SpaceConfig, *, seeds: Sequence[int] = RANDOM_INITS,
                  max_train: int = PROBE_TRAIN, max_val: int = PROBE_VAL) -> ProbeScore:
    """The scratch baseline: the mean probe accuracy of randomly initialised supernets of ``space``."""
    from raynas.ot.encoders import SupernetEncoder
    from raynas.space.supernet import create_supernet

    sample = _samples(target, max_train, max_val)
    t0 = time.perf_counter()
    scores = [_probe(SupernetEncoder(create_supernet(space, seed=seed), SCRATCH, f"{seed:08d}"), *sample)
              for seed in seeds]
    return ProbeScore(SCRATCH, "random init", float(np.mean([a for a, _ in scores])), time.perf_counter() - t0,
                      float(np.mean([e for _, e in scores])))


def _samples(target: ImageDataset, max_train: int, max_val: int) -> tuple[np.ndarray, ...]:
    return (*_sample(target, "train", max_train), *_sample(target, "val", max_val))


def _probe(encoder: Any, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
           ) -> tuple[float, float]:
    """The probe's val accuracy and the LogME of the train features (one SVD: cheap beside the features)."""
    from raynas.transfer.logme import logme

    # one call: the encoder standardises with the statistics of the images it is given
    features = encoder.encode(np.concatenate([x_train, x_val]))
    train = features[:len(x_train)]
    return probe_accuracy(train, y_train, features[len(x_train):], y_val), logme(train, y_train)
