"""LogME: the evidence of a Bayesian linear model, checked against the textbook formula."""

import math

import numpy as np
import pytest

from raynas.transfer import logme as logme_module
from raynas.transfer.logme import logme


def _direct_evidence(f, y, alpha, beta):
    """log p(y | F, alpha, beta) / n from the Gaussian marginal y ~ N(0, I/beta + F F^T / alpha)."""
    n = len(y)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return -(n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y)) / 2 / n


def _standardised(f):
    return (f - f.mean(0)) / (f.std(0) + 1e-8)


def test_the_score_is_the_maximised_evidence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    f = rng.normal(size=(60, 5)) + labels[:, None] * np.array([1.0, -0.5, 0, 0, 0.2])
    fs = _standardised(f)
    # the closed form at the fixed point equals the direct marginal likelihood there
    closed_form, grid = [], []
    original = logme_module._evidence

    def spy(y_, u_, sigma, n, d):
        value = original(y_, u_, sigma, n, d)
        pairs = [(a, b) for a in np.geomspace(1e-3, 1e3, 61) for b in np.geomspace(1e-3, 1e3, 61)]
        closed_form.append(value)
        grid.append(max(_direct_evidence(fs, y_, a, b) for a, b in pairs))
        return value

    logme_module._evidence = spy
    try:
        score = logme(f, labels)
    finally:
        logme_module._evidence = original
    assert score == pytest.approx(np.mean(closed_form))
    for fixed_point, grid_best in zip(closed_form, grid):
        # the fixed point is at least as good as the best of a fine grid, and not above the true maximum
        assert fixed_point >= grid_best - 1e-3 and fixed_point <= grid_best + 0.05


def test_informative_features_score_higher_than_noise():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 50)
    informative = np.eye(4)[labels] * 2 + rng.normal(size=(200, 4)) * 0.5
    noise = rng.normal(size=(200, 4))
    assert logme(np.hstack([informative, rng.normal(size=(200, 8))]), labels) > logme(
        np.hstack([noise, rng.normal(size=(200, 8))]), labels)
    # units do not matter, and more features than images still give a finite score
    assert logme(informative * 1000.0, labels) == pytest.approx(logme(informative, labels))
    assert math.isfinite(logme(rng.normal(size=(20, 64)), labels[:20] % 2))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="need \\(n, d\\) features"):
        logme(np.zeros((5,)), np.zeros(5))
    with pytest.raises(ValueError, match="need \\(n, d\\) features"):
        logme(np.zeros((5, 2)), np.zeros(4))
