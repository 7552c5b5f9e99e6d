"""Retraining: build the discrete network of a genotype, train it on train+val, test it."""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from raynas.config import check_fields, from_json, option, to_json
from raynas.data.loader import LoaderConfig, create_loaders
from raynas.data.store import DatasetStore
from raynas.errors import RaynasError
from raynas.model.artifact import MODEL_DIR, ModelCard, save_model
from raynas.model.preprocess import Preprocess
from raynas.search.checkpoint import checkpoint_info, has_checkpoint, load_checkpoint, save_checkpoint
from raynas.search.config import MAX_CHANNELS, MAX_IMAGE_SIZE
from raynas.search.loop import evaluate, resolve_device
from raynas.space.genotype import Genotype
from raynas.space.network import DiscreteNetwork
from raynas.storage import atomic_write_text
from raynas.threads import configure_threads


@dataclass(frozen=True)
class RetrainConfig:
    dataset: str | None = option(None, help="dataset (default: the search's dataset)")
    epochs: int = option(20, low=1, high=100_000, help="training epochs")
    image_size: int | None = option(None, low=8, high=MAX_IMAGE_SIZE,
                                    help="image size (default: the search's, else 16)")
    channels: int = option(16, low=2, high=MAX_CHANNELS, help="initial channels of the discrete network")
    cells: int = option(8, low=3, high=64, help="cells of the discrete network")
    batch_size: int = option(64, low=1, high=8192, help="batch size")
    lr: float = option(0.025, above=0, high=10, help="SGD learning rate")
    lr_min: float = option(0.0, low=0, high=10, cli=False)
    momentum: float = option(0.9, low=0, high=1, cli=False)
    weight_decay: float = option(3e-4, low=0, high=1, help="weight decay")
    grad_clip: float = option(5.0, above=0, cli=False)
    auxiliary: bool = option(False, help="add the auxiliary head at 2/3 depth")
    aux_weight: float = option(0.4, low=0, cli=False)
    drop_path: float = option(0.0, low=0, high=0.99, help="final drop-path probability (raised linearly, as in DARTS)")
    augment: bool = option(True, cli=False)
    max_steps_per_epoch: int | None = option(None, low=1, flag="--max-steps",
                                             help="cap the steps per epoch (equal retrain budgets in benchmarks)")
    min_steps: int | None = option(None, low=1, high=10_000_000,
                                   help="train at least this many steps in all: a small dataset repeats epochs "
                                        "until it has (equal retrain budgets across datasets)")
    seed: int = option(0, low=0, high=2**32 - 1, help="seed")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N")
    threads: int | None = option(None, low=1, high=1024, help="torch threads (default: the CPUs this process has)")

    def __post_init__(self):
        check_fields(self)
        if self.image_size is not None and self.image_size % 4:
            raise RaynasError(f"image size {self.image_size} must be a multiple of 4 and at least 8")

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RetrainConfig":
        return from_json(cls, d, "retrain config")


def retrain_epochs(config: RetrainConfig, batches: int) -> int:
    """Epochs to train: ``config.epochs``, or more when ``min_steps`` asks for more steps than
    that many epochs of ``batches`` (capped at ``max_steps_per_epoch``) hold. An epoch count alone
    is no equal budget: at batch 64, 10 epochs are 30 steps on 150 images and 590 on 3,750."""
    if config.min_steps is None:
        return config.epochs
    per_epoch = max(1, min(batches, config.max_steps_per_epoch or batches))
    return max(config.epochs, math.ceil(config.min_steps / per_epoch))


RETRAIN_CHECKPOINT = "retrain-checkpoint"


def retrain(genotype: Genotype, config: RetrainConfig, store: DatasetStore | None = None,
            out_dir: str | Path | None = None, verbose: bool = True) -> dict[str, Any]:
    """Train from scratch on train+val and report test accuracy.

    With ``out_dir`` the trained network is kept: ``out_dir/model/`` (see :mod:`raynas.model`)
    and ``out_dir/retrain.json``. Each epoch is checkpointed to ``out_dir/retrain-checkpoint``,
    so running the same retrain again after a kill continues where it stopped (a checkpoint of
    another config, genotype or dataset version is set aside and the retrain starts over).
    """
    store = store or DatasetStore()
    if config.dataset is None:
        raise RaynasError("no dataset to retrain on", "pass --dataset NAME")
    info = store.info(config.dataset)
    device = resolve_device(config.device)
    threads = configure_threads(config.threads)
    image_size = config.image_size or 16
    torch.manual_seed(config.seed)
    loaders = create_loaders(config.dataset, LoaderConfig(image_size=image_size, channels=info.shape[0],
                                                          batch_size=config.batch_size, augment=config.augment,
                                                          seed=config.seed, device=str(device)),
                             ("train+val", "test"), store)
    train = loaders["train+val"].view(train=True)
    network_config = {"genotype": genotype.to_json(), "in_channels": info.shape[0], "num_classes": info.num_classes,
                      "channels": config.channels, "cells": config.cells, "auxiliary": config.auxiliary}
    model = DiscreteNetwork(genotype, info.shape[0], info.num_classes, config.channels, config.cells,
                            config.auxiliary).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    epochs = retrain_epochs(config, len(train))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=config.lr_min)
    history: list[dict[str, Any]] = []
    checkpoint = Path(out_dir) / RETRAIN_CHECKPOINT if out_dir is not None else None
    identity = {"config": config.to_json(), "network": network_config, "content_hash": info.content_hash}
    if checkpoint is not None:
        history = _resume(checkpoint, identity, model, opt, sched, verbose)
    start = time.perf_counter() - sum(h["epoch_s"] for h in history)
    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        model.drop_path_prob = config.drop_path * epoch / epochs
        model.train()
        train.set_epoch(epoch)
        loss_sum = correct = seen = 0
        for step, (x, y) in enumerate(train):
            if config.max_steps_per_epoch is not None and step >= config.max_steps_per_epoch:
                break
            threads.tick()
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
        if not math.isfinite(loss_sum):
            raise RaynasError(f"retraining diverged in epoch {epoch + 1}: the training loss is {loss_sum / seen}",
                              "lower --lr (and check the genotype); no model was written")
        test_loss, test_acc = evaluate(model, loaders["test"])
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                        "test_loss": test_loss, "test_acc": test_acc, "epoch_s": time.perf_counter() - t0})
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "opt": opt.state_dict(),
                                         "sched": sched.state_dict(), "rng": torch.get_rng_state(),
                                         "history": history}, identity)
        if verbose:
            h = history[-1]
            print(f"retrain {epoch + 1:>3}/{epochs}  train {h['train_loss']:.3f} / "
                  f"{100 * h['train_acc']:5.1f}%  test {h['test_loss']:.3f} / {100 * h['test_acc']:5.1f}%  "
                  f"{h['epoch_s']:.1f} s", file=sys.stderr, flush=True)
    result = {"config": config.to_json(), "genotype": genotype.to_json(), "test_acc": history[-1]["test_acc"],
              "test_loss": history[-1]["test_loss"], "params": sum(p.numel() for p in model.parameters()),
              "chance_acc": 1.0 / info.num_classes, "history": history, "total_s": time.perf_counter() - start}
    if out_dir is not None:
        normalize = loaders["train+val"].normalize
        preprocess = Preprocess(info.shape[1], info.shape[0], image_size, info.shape[0], normalize.mean, normalize.std)
        card = ModelCard("discrete", network_config, preprocess.to_json(), info.class_names,
                         {"name": info.name, "content_hash": info.content_hash},
                         {"test_acc": result["test_acc"], "test_loss": result["test_loss"], "epochs": epochs},
                         {"retrain": config.to_json()})
        model_path = Path(out_dir) / MODEL_DIR
        result["model"] = {"path": str(model_path), "weights_sha256": save_model(model_path, model, card).weights_sha256}
        atomic_write_text(Path(out_dir) / "retrain.json", json.dumps(result, indent=2))
        shutil.rmtree(checkpoint, ignore_errors=True)  # the model holds what it had
    return result


def _resume(checkpoint: Path, identity: dict[str, Any], model: torch.nn.Module, opt: torch.optim.Optimizer,
            sched: Any, verbose: bool) -> list[dict[str, Any]]:
    """Restore the last epoch of an interrupted retrain of the same thing; [] to start over."""
    if not has_checkpoint(checkpoint):
        return []
    if checkpoint_info(checkpoint) != json.loads(json.dumps(identity)):
        if verbose:
            print(f"retrain: the checkpoint in {checkpoint} is of another config, genotype or dataset version; "
                  "starting over", file=sys.stderr)
        shutil.rmtree(checkpoint)
        return []
    state = load_checkpoint(checkpoint)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        history = list(state["history"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise RaynasError(f"the retrain checkpoint {checkpoint} does not fit this retrain ({exc!r})",
                          f"remove {checkpoint} to start the retrain over") from None
    if verbose:
        print(f"retrain: continuing after epoch {len(history)} from {checkpoint}", file=sys.stderr)
    return history
