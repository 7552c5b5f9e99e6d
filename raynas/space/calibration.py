"""Fixed BatchNorm statistics for a supernet used as a classifier.

A supernet normalises with the statistics of each batch (see :class:`Supernet`), so what it
says about an image depends on the other images of its batch, and a single image is
normalised by itself. To use a zoo supernet as a model, its statistics are measured once over
images of the dataset (the mean and variance of every BatchNorm's input over all of them) and
then used for every batch: the network becomes an ordinary function of each image, which
batched prediction, serving and export need.

The fused cells normalise through one function call per stacked op (no module), so their
statistics are kept in call order: a forward pass makes the same calls in the same order.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.space.fused import BATCH_STATISTICS

EPS = 1e-5


class _Recorder:
    """Normalises with batch statistics, as in training, and sums each call's moments."""

    def __init__(self):
        self.sums: list[list[torch.Tensor]] = []
        self.index = 0

    def __call__(self, x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        pixels = x.shape[0] * x.shape[2] * x.shape[3]
        moments = [x.sum(dim=(0, 2, 3), dtype=torch.float64), (x.double() ** 2).sum(dim=(0, 2, 3)),
                   torch.tensor(float(pixels), dtype=torch.float64)]
        if self.index == len(self.sums):
            self.sums.append(moments)
        else:
            self.sums[self.index] = [a + b for a, b in zip(self.sums[self.index], moments)]
        self.index += 1
        return F.batch_norm(x, None, None, weight=weight, training=True, eps=EPS)

    def statistics(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for total, squares, count in self.sums:
            mean = total / count
            out.append((mean.float(), (squares / count - mean ** 2).clamp_min(0).float()))
        return out


class CalibratedSupernet(nn.Module):
    """A supernet whose BatchNorms use fixed statistics; ``channels`` are those of each fused call."""

    def __init__(self, supernet: nn.Module, channels: list[int]):
        super().__init__()
        self.supernet = supernet
        _track_all(supernet)
        self.channels = list(channels)
        for i, c in enumerate(self.channels):
            self.register_buffer(f"mean_{i}", torch.zeros(c))
            self.register_buffer(f"var_{i}", torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        calls = iter(range(len(self.channels)))

        def fixed(h: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
            i = next(calls)
            return F.batch_norm(h, getattr(self, f"mean_{i}"), getattr(self, f"var_{i}"), weight=weight,
                                training=False, eps=EPS)

        token = BATCH_STATISTICS.set(fixed)
        try:
            return self.supernet(x)
        finally:
            BATCH_STATISTICS.reset(token)


def _track_all(network: nn.Module) -> None:
    """Give each batch-statistics BatchNorm running statistics (a cumulative average: momentum None)."""
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d) and not module.track_running_stats:
            module.track_running_stats, module.momentum = True, None
            module.register_buffer("running_mean", torch.zeros(module.num_features))
            module.register_buffer("running_var", torch.ones(module.num_features))
            module.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))


@torch.no_grad()
def calibrate(supernet: nn.Module, batches: Iterable[torch.Tensor]) -> CalibratedSupernet:
    """Measure every BatchNorm's statistics over ``batches`` (network inputs) and fix them.
    Outputs stay as in training for each batch; the result is in eval mode."""
    _track_all(supernet)
    supernet.train()
    recorder = _Recorder()
    for x in batches:
        recorder.index = 0
        token = BATCH_STATISTICS.set(recorder)
        try:
            supernet(x)
        finally:
            BATCH_STATISTICS.reset(token)
    if not recorder.sums:
        raise ValueError("calibration needs at least one batch of images")
    stats = recorder.statistics()
    calibrated = CalibratedSupernet(supernet, [len(mean) for mean, _ in stats])
    for i, (mean, var) in enumerate(stats):
        getattr(calibrated, f"mean_{i}").copy_(mean)
        getattr(calibrated, f"var_{i}").copy_(var)
    return calibrated.eval()
