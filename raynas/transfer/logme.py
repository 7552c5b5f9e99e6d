"""LogME: how well frozen features explain a target's labels, as the evidence of a Bayesian
linear model (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021).

For each class, the one-hot column y is modelled as y = F w + noise, with a Gaussian prior of
precision alpha on w and noise of precision beta. Both are set to maximise the marginal
likelihood (MacKay's evidence fixed point), and the score is that log evidence per image,
averaged over the classes. Unlike a linear probe it needs no held-out split and no solver
tolerance: one SVD of the features serves every class. Higher is better; scores compare
feature extractors on the same target and sample, not across targets.
"""

from __future__ import annotations

import math

import numpy as np

MAX_ITERATIONS = 100
TOLERANCE = 1e-5  # relative change of alpha / beta at which the fixed point stops


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """The mean over classes of the maximised log evidence per image of ``labels`` given
    ``features`` (n, d). Features are centred and scaled to unit variance first, so that the
    score does not depend on their units."""
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if f.ndim != 2 or len(f) != len(labels) or len(f) < 2:
        raise ValueError(f"need (n, d) features for n >= 2 labels, got {f.shape} and {labels.shape}")
    f = (f - f.mean(0)) / (f.std(0) + 1e-8)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2  # eigenvalues of F^T F on its range
    n, d = f.shape
    scores = [_evidence((labels == c).astype(np.float64), u, sigma, n, d) for c in np.unique(labels)]
    return float(np.mean(scores))


def _evidence(y: np.ndarray, u: np.ndarray, sigma: np.ndarray, n: int, d: int) -> float:
    """Log evidence per image of one target column, at the alpha and beta that maximise it."""
    z = u.T @ y  # y in the basis of the features' left singular vectors
    outside = max(float(y @ y - z @ z), 0.0)  # what no linear map of the features can reach
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITERATIONS):
        shrink = beta * sigma / (alpha + beta * sigma)
        gamma = float(shrink.sum())  # the number of well-determined directions
        m2 = float(np.sum(shrink ** 2 * z ** 2 / np.maximum(sigma, 1e-300)))  # |w|^2 at the posterior mean
        residual = float(np.sum(((1 - shrink) * z) ** 2)) + outside  # |y - F w|^2
        new_alpha = gamma / max(m2, 1e-12)
        new_beta = (n - gamma) / max(residual, 1e-12)
        done = abs(new_alpha - alpha) / alpha < TOLERANCE and abs(new_beta - beta) / beta < TOLERANCE
        alpha, beta = new_alpha, new_beta
        if done:
            break
    shrink = beta * sigma / (alpha + beta * sigma)
    m2 = float(np.sum(shrink ** 2 * z ** 2 / np.maximum(sigma, 1e-300)))
    residual = float(np.sum(((1 - shrink) * z) ** 2)) + outside
    log_det = float(np.sum(np.log(alpha + beta * sigma))) + (d - len(sigma)) * math.log(alpha)
    evidence = (n * math.log(beta) + d * math.log(alpha) - n * math.log(2 * math.pi) - beta * residual
                - alpha * m2 - log_det) / 2
    return evidence / n
