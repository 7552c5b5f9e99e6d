"""Batch transforms on tensors: normalise to one size/channel count, then augment.

They run on whole batches (on the GPU when the data lives there) instead of per image,
which is what makes the in-memory loader fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def to_float(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] at ``channels`` x ``image_size`` x ``image_size``."""
    x = images.float().div_(255.0)
    c = x.shape[1]
    if c != channels:
        if channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            x = torch.einsum("nchw,c->nhw", x, _LUMA.to(x.device))[:, None]
    if x.shape[2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()


@dataclass(frozen=True)
class Normalize:
    """Per-channel standardisation with statistics of the dataset's own train split."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: torch.Tensor) -> "Normalize":
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class RandomCropFlip:
    """Random crop after zero padding (zero = the mean after normalisation), optional h-flip."""

    padding: int
    flip: bool

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.padding
        if p > 0:
            padded = F.pad(x, (p, p, p, p))
            oy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            ox = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            rows = oy[:, None] + torch.arange(h, device=x.device)
            cols = ox[:, None] + torch.arange(w, device=x.device)
            batch = torch.arange(b, device=x.device)[:, None, None]
            x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
        if self.flip:
            mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x
