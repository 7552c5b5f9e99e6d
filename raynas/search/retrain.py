"""Retraining: build the discrete network of a genotype, train it on train+val, test it."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from raynas.data.loader import LoaderConfig, create_loaders
from raynas.data.store import DatasetStore
from raynas.errors import RaynasError
from raynas.search.loop import evaluate, resolve_device
from raynas.space.genotype import Genotype
from raynas.space.network import DiscreteNetwork
from raynas.storage import atomic_write_text


@dataclass(frozen=True)
class RetrainConfig:
    dataset: str
    epochs: int = 20
    image_size: int = 16
    channels: int = 16
    cells: int = 8
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    auxiliary: bool = False
    aux_weight: float = 0.4
    drop_path: float = 0.0  # raised linearly to this value over the epochs, as in DARTS
    augment: bool = True
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.epochs < 1 or self.channels < 2 or self.cells < 3 or self.batch_size < 1:
            raise RaynasError("retrain needs epochs >= 1, channels >= 2, cells >= 3 and batch_size >= 1")
        if not 0.0 <= self.drop_path < 1.0:
            raise RaynasError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if self.image_size % 4 or self.image_size < 8:
            raise RaynasError(f"image size {self.image_size} must be a multiple of 4 and at least 8")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def retrain(genotype: Genotype, config: RetrainConfig, store: DatasetStore | None = None,
            out_dir: str | Path | None = None, verbose: bool = True) -> dict[str, Any]:
    """Train from scratch on train+val and report test accuracy; writes retrain.json to ``out_dir``."""
    store = store or DatasetStore()
    info = store.info(config.dataset)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    loaders = create_loaders(config.dataset, LoaderConfig(image_size=config.image_size, channels=info.shape[0],
                                                          batch_size=config.batch_size, augment=config.augment,
                                                          seed=config.seed, device=str(device)),
                             ("train+val", "test"), store)
    train = loaders["train+val"].view(train=True)
    model = DiscreteNetwork(genotype, info.shape[0], info.num_classes, config.channels, config.cells,
                            config.auxiliary).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs, eta_min=config.lr_min)
    history, start = [], time.perf_counter()
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.drop_path_prob = config.drop_path * epoch / config.epochs
        model.train()
        train.set_epoch(epoch)
        loss_sum = correct = seen = 0
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            logits, aux = model(x)
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + config.aux_weight * F.cross_entropy(aux, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        sched.step()
        test_loss, test_acc = evaluate(model, loaders["test"])
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                        "test_loss": test_loss, "test_acc": test_acc, "epoch_s": time.perf_counter() - t0})
        if verbose:
            h = history[-1]
            print(f"retrain {epoch + 1:>3}/{config.epochs}  train {h['train_loss']:.3f} / "
                  f"{100 * h['train_acc']:5.1f}%  test {h['test_loss']:.3f} / {100 * h['test_acc']:5.1f}%  "
                  f"{h['epoch_s']:.1f} s", file=sys.stderr, flush=True)
    result = {"config": config.to_json(), "genotype": genotype.to_json(), "test_acc": history[-1]["test_acc"],
              "test_loss": history[-1]["test_loss"], "params": sum(p.numel() for p in model.parameters()),
              "chance_acc": 1.0 / info.num_classes, "history": history, "total_s": time.perf_counter() - start}
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "retrain.json", json.dumps(result, indent=2))
    return result
