"""The bilevel search loop: ``run_search(config)`` runs one search and writes its run directory.

Weights train on the train split with SGD, alphas on the val split with the algorithm's
update; warm-up epochs skip the alpha updates. Everything that changes during a run
(weights, alphas, both optimisers, the LR schedule, RNG states, history) is checkpointed
after every epoch, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F

from raynas.data.loader import LoaderConfig
from raynas.data.store import DatasetStore
from raynas.errors import RaynasError
from raynas.search.algorithms import SearchAlgorithm, StepContext, create_algorithm
from raynas.search.algorithms.base import frozen
from raynas.search.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from raynas.search.config import SearchConfig
from raynas.search.data import DatasetLoaders, MultiDataset, SingleDataset, evaluate  # noqa: F401 (re-export)
from raynas.space.config import PRESETS, SpaceConfig
from raynas.space.genotype import Genotype, alpha_entropy, derive_genotype
from raynas.space.multihead import create_multihead_supernet
from raynas.space.supernet import Supernet, create_supernet


class StopSearch(Exception):
    """Raised by a callback to end the search after the current epoch (state is checkpointed)."""


class Callback(Protocol):
    def on_epoch_end(self, metrics: dict[str, Any], state: "SearchState") -> None: ...


@dataclass
class SearchState:
    config: SearchConfig
    space: SpaceConfig
    model: Supernet
    algorithm: SearchAlgorithm
    w_optimizer: torch.optim.Optimizer
    a_optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    data: SingleDataset | MultiDataset
    device: torch.device
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def genotype(self) -> Genotype:
        return derive_genotype(self.model)

    def checkpoint_state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"epoch": self.epoch, "model": self.model.state_dict(), "w_optimizer": self.w_optimizer.state_dict(),
                "a_optimizer": self.a_optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": rng, "history": self.history}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.epoch, self.history = int(state["epoch"]), list(state["history"])


@dataclass
class SearchResult:
    config: SearchConfig
    space: SpaceConfig
    genotype: Genotype
    history: list[dict[str, Any]]
    model: Supernet
    status: str  # finished | stopped
    run_dir: Path | None = None
    datasets: list[dict[str, str]] = field(default_factory=list)  # name and content hash of what it trained on
    transfer: dict[str, Any] | None = None  # how the initial supernet was obtained (raynas.transfer)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RaynasError(f"device '{name}' requested but CUDA is not available", "use --device cpu or auto")
    return device


def resolve_space(config: SearchConfig, in_channels: int, num_classes: int, algorithm: SearchAlgorithm) -> SpaceConfig:
    preset = PRESETS.get(config.preset)
    sizes = {k: getattr(config, k) for k in ("image_size", "channels", "cells", "nodes") if getattr(config, k)}
    extra = {"ops": config.ops} if config.ops else {}
    space = preset.space(in_channels=in_channels, num_classes=num_classes, **sizes, **extra)
    return algorithm.configure_space(space)


def batch_size(config: SearchConfig) -> int:
    return config.batch_size or PRESETS.get(config.preset).batch_size


def create_search_data(config: SearchConfig, store: DatasetStore, image_size: int, in_channels: int,
                       device: torch.device) -> SingleDataset | MultiDataset:
    loader_config = LoaderConfig(image_size=image_size, channels=in_channels, batch_size=batch_size(config),
                                 augment=config.augment, seed=config.seed, backend=config.loader_backend,
                                 device=str(device))
    if config.multi:
        return MultiDataset([DatasetLoaders.create(n, loader_config, store) for n in config.multi], config.seed)
    return SingleDataset(DatasetLoaders.create(config.dataset, loader_config, store))


def input_shape(config: SearchConfig, store: DatasetStore) -> tuple[int, list[int]]:
    """Input channels and class count(s): a multi-dataset supernet takes RGB if any source is RGB."""
    infos = [store.info(n) for n in (config.multi or (config.dataset,))]
    return max(i.shape[0] for i in infos), [i.num_classes for i in infos]


def build_state(config: SearchConfig, store: DatasetStore, initial_model: Supernet | None = None) -> SearchState:
    """Validate everything and build model, optimisers and loaders; no training yet."""
    algorithm = create_algorithm(config)
    in_channels, class_counts = input_shape(config, store)
    space = resolve_space(config, in_channels, class_counts[0], algorithm)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    data = create_search_data(config, store, space.image_size, space.in_channels, device)
    if initial_model is not None:
        model = initial_model
    elif config.multi:
        model = create_multihead_supernet(space, class_counts, seed=config.seed)
    else:
        model = create_supernet(space, seed=config.seed)
    model = model.to(device)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=config.w_lr, momentum=config.w_momentum,
                            weight_decay=config.w_weight_decay)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=algorithm.a_lr(), betas=(config.a_beta1, config.a_beta2),
                             weight_decay=config.a_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=config.epochs, eta_min=config.w_lr_min)
    return SearchState(config, space, model, algorithm, w_opt, a_opt, sched, data, device)


def train_epoch(state: SearchState) -> dict[str, float]:
    cfg, model = state.config, state.model
    model.train()
    update_arch = state.epoch >= state.algorithm.warmup_epochs()
    lr = state.scheduler.get_last_lr()[0]
    ctx = StepContext(model, state.w_optimizer, state.a_optimizer, cfg, lr)
    weights, alphas = model.weight_parameters(), model.arch_parameters()
    loss_sum = correct = seen = steps = 0
    arch_time = weight_time = 0.0
    for head, (x, y), val_batch in state.data.epoch(state.epoch):
        if cfg.max_steps_per_epoch and steps >= cfg.max_steps_per_epoch:
            break
        if head is not None:
            model.select(head)
        t0 = time.perf_counter()
        if update_arch:
            state.algorithm.arch_step(ctx, (x, y), val_batch)
        t1 = time.perf_counter()
        state.w_optimizer.zero_grad(set_to_none=True)
        with frozen(alphas):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
        state.w_optimizer.step()
        arch_time += t1 - t0
        weight_time += time.perf_counter() - t1
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        steps += 1
    state.scheduler.step()
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1), "steps": steps,
            "lr": lr, "arch_updates": update_arch, "arch_step_s": arch_time / max(steps, 1),
            "weight_step_s": weight_time / max(steps, 1), "search_step_s": (arch_time + weight_time) / max(steps, 1)}


def run_search(config: SearchConfig, *, store: DatasetStore | None = None, run_dir: str | Path | None = None,
               callbacks: Sequence[Callback] = (), resume: bool = False, initial_model: Supernet | None = None,
               transfer: dict[str, Any] | None = None, verbose: bool = True) -> SearchResult:
    """Run (or resume) one search. With ``run_dir`` it checkpoints every epoch and writes results.

    ``initial_model`` is a warm-started supernet and ``transfer`` the record of how it was
    made; both are ignored on resume, which restores the checkpoint and reads the record back.
    """
    from raynas.search.results import read_transfer, write_results, write_transfer

    store = store or DatasetStore()
    run_dir = Path(run_dir) if run_dir else None
    if resume:
        if run_dir is None or not has_checkpoint(run_dir / "checkpoint"):
            raise RaynasError(f"nothing to resume in {run_dir}", "give a run directory that holds a checkpoint/")
        state = build_state(config, store)
        state.restore(load_checkpoint(run_dir / "checkpoint"))
        transfer = read_transfer(run_dir)
    else:
        state = build_state(config, store, initial_model)
        if run_dir is not None and transfer is not None:
            write_transfer(run_dir, transfer)
        torch.manual_seed(config.seed + 1)  # the training stream, distinct from the init stream
    status = "finished"
    while state.epoch < config.epochs:
        t0 = time.perf_counter()
        metrics = train_epoch(state)
        metrics.update(state.data.evaluate(state.model))
        genotype = state.genotype
        metrics.update(epoch=state.epoch + 1, alpha_entropy=alpha_entropy(state.model), skip_count=genotype.skip_count,
                       genotype=str(genotype), epoch_s=time.perf_counter() - t0)
        state.history.append(metrics)
        state.epoch += 1
        if run_dir is not None:
            save_checkpoint(run_dir / "checkpoint", state.checkpoint_state())
        if verbose:
            print(format_epoch(metrics, config.epochs), file=sys.stderr, flush=True)
        try:
            for cb in callbacks:
                cb.on_epoch_end(metrics, state)
        except StopSearch:
            status = "stopped"
            break
    datasets = [{"name": d.name, "content_hash": d.content_hash} for d in state.data.datasets]
    result = SearchResult(config, state.space, state.genotype, state.history, state.model, status, run_dir,
                          datasets, transfer)
    if run_dir is not None:
        write_results(result, state)
    return result


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    arch = "" if m["arch_updates"] else "  (warm-up: alphas frozen)"
    return (f"epoch {m['epoch']:>3}/{epochs}  train {m['train_loss']:.3f} / {100 * m['train_acc']:5.1f}%  "
            f"val {m['val_loss']:.3f} / {100 * m['val_acc']:5.1f}%  H(alpha) {m['alpha_entropy']:.3f}  "
            f"skips {m['skip_count']}  {m['epoch_s']:.1f} s{arch}")
