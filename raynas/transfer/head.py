"""The classifier a warm start begins with.

A warm start's cell weights come from its source; its classifier cannot, in general: the
target's classes are new (the mapping keeps a fresh head when the count differs, and copies a
head of the same shape whose classes may mean something else entirely). The first steps then
push a random head's large gradients back into the pretrained cells. Fitting the head first,
as a linear probe of the transferred features on the target, and fine-tuning everything from
there (LP-FT, Kumar et al. 2022) avoids that.

* ``copy``: whatever the mapping left (the source's head when the shapes match, else fresh).
* ``probe``: a logistic regression on the supernet's pooled features of a shuffled sample
  of the target's train split, written into the classifier.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from raynas.data.store import DatasetStore
from raynas.registry import Registry
from raynas.search.config import SearchConfig
from raynas.space.supernet import Supernet

HEAD_PROBE_IMAGES = 1000  # train images the probe head is fitted on
HEAD_PROBE_TOL = 1e-3  # the solver's tolerance; an initial head needs no optimum

HeadInit = Callable[[Supernet, SearchConfig, DatasetStore], dict[str, Any]]
HEAD_INITS: Registry[HeadInit] = Registry("head initialisation")


@HEAD_INITS.register("copy")
def copy_head(model: Supernet, config: SearchConfig, store: DatasetStore) -> dict[str, Any]:
    return {"method": "copy"}


@HEAD_INITS.register("probe")
def probe_head(model: Supernet, config: SearchConfig, store: DatasetStore) -> dict[str, Any]:
    """Fit the classifier on the transferred features of up to HEAD_PROBE_IMAGES train images."""
    t0 = time.perf_counter()
    features, labels = train_features(model, config, store, HEAD_PROBE_IMAGES)
    weight, bias, train_acc = fit_linear_head(features, labels, model.space.num_classes)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight))
        model.classifier.bias.copy_(torch.from_numpy(bias))
    return {"method": "probe", "images": len(labels), "train_acc": train_acc,
            "seconds": time.perf_counter() - t0}


def init_head(name: str, model: Supernet, config: SearchConfig, store: DatasetStore) -> dict[str, Any]:
    """Initialise ``model``'s classifier in place by the method ``name``; returns its record."""
    return HEAD_INITS.get(name)(model, config, store)


def train_features(model: Supernet, config: SearchConfig, store: DatasetStore,
                   max_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features of the first ``max_images`` train images, as the search's loader prepares
    them (its normalisation, no augmentation, shuffled so that BatchNorm sees mixed classes)."""
    from raynas.search.loop import create_search_data

    data = create_search_data(config.replace(augment=False), store, model.space.image_size,
                              model.space.in_channels, torch.device("cpu"))
    loader = data.datasets[0].train.view(train=False, shuffle=True)
    loader.set_epoch(0)
    features, labels, seen = [], [], 0
    model.eval()
    with torch.inference_mode():
        for x, y in loader:
            features.append(model.features(x).numpy())
            labels.append(y.numpy())
            seen += len(y)
            if seen >= max_images:
                break
    model.train()
    return np.concatenate(features)[:max_images], np.concatenate(labels)[:max_images]


def fit_linear_head(features: np.ndarray, labels: np.ndarray, num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """Weight (classes, dim) and bias of a logistic regression on standardised ``features``,
    folded back to act on the raw features, and the fit's accuracy on them. A class absent
    from the sample gets a zero row and a low bias, until the search learns it."""
    from sklearn.linear_model import LogisticRegression

    mean, std = features.mean(0), features.std(0) + 1e-6
    z = (features - mean) / std
    present = np.unique(labels)
    weight = np.zeros((num_classes, features.shape[1]), np.float32)
    bias = np.zeros(num_classes, np.float32)
    if len(present) < 2:  # nothing to separate: keep a neutral head
        return weight, bias, float(np.mean(labels == present[0])) if len(present) else 0.0
    model = LogisticRegression(max_iter=500, tol=HEAD_PROBE_TOL).fit(z, labels)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # scikit-learn fits one row for two classes: logits (-f/2, +f/2) give the same softmax
        coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    rows = model.classes_.astype(int)
    weight[rows] = coef / std
    bias[rows] = intercept - (coef / std) @ mean
    missing = np.setdiff1d(np.arange(num_classes), rows)
    if len(missing):
        bias[missing] = bias[rows].min() - 10.0
    return weight, bias, float(model.score(z, labels))
