"""The bilevel search loop: ``run_search(config)`` runs one search and writes its run directory.

Weights train on the train split with SGD, alphas on the val split with the algorithm's
update; warm-up epochs skip the alpha updates. Everything that changes during a run
(weights, alphas, both optimisers, the LR schedule, RNG states, history) is checkpointed
after every epoch, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F

from raynas.data.format import DatasetInfo
from raynas.data.loader import LoaderConfig, choose_backend
from raynas.data.store import DatasetStore
from raynas.errors import RaynasError
from raynas.search.algorithms import SearchAlgorithm, StepContext, create_algorithm
from raynas.search.algorithms.base import frozen
from raynas.search.checkpoint import checkpoint_info, load_checkpoint, save_checkpoint
from raynas.search.config import SearchConfig
from raynas.search.data import DatasetLoaders, MultiDataset, SingleDataset, evaluate  # noqa: F401 (re-export)
from raynas.space.config import PRESETS, SpaceConfig
from raynas.space.genotype import Genotype, alpha_entropy, derive_genotype
from raynas.space.multihead import create_multihead_supernet
from raynas.space.supernet import Supernet, create_supernet
from raynas.threads import ThreadGovernor, configure_threads


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
    threads: ThreadGovernor  # sizes torch's threads to the CPUs others leave idle
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
        _load_model_state(self.model, state["model"], "state")
        try:
            self.w_optimizer.load_state_dict(state["w_optimizer"])
            self.a_optimizer.load_state_dict(state["a_optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
            self.epoch, self.history = int(state["epoch"]), list(state["history"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise RaynasError(f"checkpoint state is damaged: {exc!r}",
                              "resume from an intact checkpoint, or start the search again") from None


@dataclass
class SearchResult:
    config: SearchConfig
    space: SpaceConfig
    genotype: Genotype
    history: list[dict[str, Any]]
    model: Supernet
    status: str  # finished | stopped | diverged
    run_dir: Path | None = None
    datasets: list[dict[str, str]] = field(default_factory=list)  # name and content hash of what it trained on
    transfer: dict[str, Any] | None = None  # how the initial supernet was obtained (raynas.transfer)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise RaynasError(f"unknown device '{name}'", "use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise RaynasError(f"device '{name}' is not supported", "use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RaynasError(f"device '{name}' requested but CUDA is not available", "use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RaynasError(f"device '{name}' does not exist: {torch.cuda.device_count()} GPU(s) visible",
                          "use --device cuda or a smaller index")
    return device


def resolve_space(config: SearchConfig, in_channels: int, num_classes: int, algorithm: SearchAlgorithm) -> SpaceConfig:
    preset = PRESETS.get(config.preset)
    sizes = {k: getattr(config, k) for k in ("image_size", "channels", "cells", "nodes") if getattr(config, k)}
    extra = {"ops": config.ops} if config.ops else {}
    space = preset.space(in_channels=in_channels, num_classes=num_classes, **sizes, **extra)
    return algorithm.configure_space(space)


def dataset_space(config: SearchConfig, info: DatasetInfo) -> SpaceConfig:
    """The space ``config`` searches on the dataset of ``info`` (its channels and classes)."""
    return resolve_space(config, info.shape[0], info.num_classes, create_algorithm(config))


def batch_size(config: SearchConfig) -> int:
    return config.batch_size or PRESETS.get(config.preset).batch_size


def create_search_data(config: SearchConfig, store: DatasetStore, image_size: int, in_channels: int,
                       device: torch.device) -> SingleDataset | MultiDataset:
    loader_config = LoaderConfig(image_size=image_size, channels=in_channels, batch_size=batch_size(config),
                                 augment=config.augment, seed=config.seed, backend=config.loader_backend,
                                 workers=config.loader_workers, device=str(device))
    if config.multi:
        return MultiDataset([DatasetLoaders.create(n, loader_config, store) for n in config.multi], config.seed)
    return SingleDataset(DatasetLoaders.create(config.dataset, loader_config, store))


def input_shape(config: SearchConfig, store: DatasetStore) -> tuple[int, list[int]]:
    """Input channels and class count(s): a multi-dataset supernet takes RGB if any source is RGB."""
    infos = [store.info(n) for n in (config.multi or (config.dataset,))]
    return max(i.shape[0] for i in infos), [i.num_classes for i in infos]


def check_config(config: SearchConfig, store: DatasetStore) -> SpaceConfig:
    """Everything about ``config`` that can be checked without decoding data or building the
    supernet: algorithm, preset, sizes, ops, device, the datasets' existence. Cheap enough to
    run on every sampled hyperparameter set before a trial starts."""
    algorithm = create_algorithm(config)
    in_channels, class_counts = input_shape(config, store)
    space = resolve_space(config, in_channels, class_counts[0], algorithm)
    resolve_device(config.device)
    LoaderConfig(image_size=space.image_size, channels=space.in_channels, batch_size=batch_size(config),
                 backend=config.loader_backend, workers=config.loader_workers)
    return space


def streams(config: SearchConfig, store: DatasetStore) -> bool:
    """Whether a search of ``config`` streams its data (``--loader stream``, or ``auto`` on data too
    large for memory), so that its trial needs CPUs for the loader's threads."""
    space = check_config(config, store)
    loader = LoaderConfig(image_size=space.image_size, channels=space.in_channels, backend=config.loader_backend)
    return any(choose_backend(store.info(n), loader) == "stream" for n in (config.multi or (config.dataset,)))


def build_state(config: SearchConfig, store: DatasetStore, initial_model: Supernet | None = None) -> SearchState:
    """Validate everything and build model, optimisers and loaders; no training yet."""
    space = check_config(config, store)
    algorithm = create_algorithm(config)
    class_counts = input_shape(config, store)[1]
    device = resolve_device(config.device)
    threads = configure_threads(config.threads)
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
    return SearchState(config, space, model, algorithm, w_opt, a_opt, sched, data, device, threads)


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
        state.threads.tick()
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
            "weight_step_s": weight_time / max(steps, 1), "search_step_s": (arch_time + weight_time) / max(steps, 1),
            "threads": torch.get_num_threads()}  # at the epoch's end; the governor may have changed it


def run_search(config: SearchConfig | None = None, *, store: DatasetStore | None = None,
               run_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
               resume_from: str | Path | None = None, callbacks: Sequence[Callback] = (),
               initial_model: Supernet | None = None, transfer: dict[str, Any] | None = None,
               verbose: bool = True) -> SearchResult:
    """Run (or resume) one search.

    With ``run_dir`` it writes its results there; it checkpoints every epoch to
    ``checkpoint_dir`` (default ``run_dir/checkpoint``). ``initial_model`` is a warm-started
    supernet and ``transfer`` the record of how it was made. ``resume_from`` is a checkpoint:
    it holds the config and the transfer record, so ``config`` may be omitted then (and must
    agree with the checkpoint's when given).
    """
    from raynas.search.results import write_results

    store = store or DatasetStore()
    run_dir = Path(run_dir) if run_dir else None
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else (run_dir / "checkpoint" if run_dir else None)
    if resume_from is not None:
        config, transfer, state = resume_state(resume_from, store, config)
    else:
        if config is None:
            raise RaynasError("run_search needs a config or a checkpoint to resume from")
        state = build_state(config, store, initial_model)
        torch.manual_seed(config.seed + 1)  # the training stream, distinct from the init stream
    datasets = [{"name": d.name, "content_hash": d.content_hash} for d in state.data.datasets]
    info = {"config": config.to_json(), "space": state.space.to_json(), "transfer": transfer, "datasets": datasets,
            "class_counts": input_shape(config, store)[1]}
    while state.epoch < config.epochs:
        t0 = time.perf_counter()
        metrics = train_epoch(state)
        metrics.update(state.data.evaluate(state.model))
        genotype = state.genotype
        metrics.update(epoch=state.epoch + 1, alpha_entropy=alpha_entropy(state.model), skip_count=genotype.skip_count,
                       genotype=str(genotype), epoch_s=time.perf_counter() - t0)
        state.history.append(metrics)
        state.epoch += 1
        diverged = not all(math.isfinite(metrics[k]) for k in ("train_loss", "val_loss", "alpha_entropy"))
        if checkpoint_dir is not None and not diverged:  # a diverged state is never a checkpoint to resume
            save_checkpoint(checkpoint_dir, state.checkpoint_state(), info)
        if verbose:
            print(format_epoch(metrics, config.epochs), file=sys.stderr, flush=True)
        if diverged:
            status = "diverged"
            break
        try:
            for cb in callbacks:
                cb.on_epoch_end(metrics, state)
        except StopSearch:
            status = "stopped"
            break
    else:
        status = "finished"
    result = SearchResult(config, state.space, state.genotype, state.history, state.model, status, run_dir,
                          datasets, transfer)
    if run_dir is not None:
        write_results(result, state)
    return result


def resume_state(checkpoint: str | Path, store: DatasetStore,
                 config: SearchConfig | None = None) -> tuple[SearchConfig, dict[str, Any] | None, SearchState]:
    """The config, transfer record and restored state of a checkpoint.

    Refused: a checkpoint of another config than ``config``, and one whose datasets changed
    since (another content hash), since continuing would mix two datasets in one search.
    """
    info = checkpoint_info(checkpoint)
    if "config" not in info:
        raise RaynasError(f"checkpoint {checkpoint} does not say which search it belongs to (written by an older "
                          "raynas)", "start the search again")
    stored = SearchConfig.from_json(info["config"])
    if config is not None and config != stored:
        diff = {k: (v, getattr(config, k)) for k, v in stored.to_json().items() if config.to_json()[k] != v}
        raise RaynasError("the checkpoint belongs to another search: "
                          + ", ".join(f"{k} {a!r} there vs {b!r} here" for k, (a, b) in diff.items()),
                          "resume without changing the search's settings, or start a new search")
    state = build_state(stored, store)
    for d, now in zip(info.get("datasets", []), state.data.datasets):
        if d.get("content_hash") != now.content_hash:
            raise RaynasError(f"dataset '{now.name}' changed since the search started (content hash "
                              f"{d.get('content_hash')} then, {now.content_hash} now)",
                              "start a new search on the dataset as it is now")
    state.restore(load_checkpoint(checkpoint))
    return stored, info.get("transfer"), state


def load_result(checkpoint: str | Path, store: DatasetStore | None = None) -> SearchResult:
    """The search a checkpoint holds (supernet, history, genotype), without its data: enough to
    derive, draw and publish it. The supernet is rebuilt from the space stored in the checkpoint."""
    info = checkpoint_info(checkpoint)
    if "config" not in info or "space" not in info:
        raise RaynasError(f"checkpoint {checkpoint} does not say which search it belongs to",
                          "use a checkpoint written by this version of raynas")
    config, space = SearchConfig.from_json(info["config"]), SpaceConfig.from_json(info["space"])
    model = (create_multihead_supernet(space, info["class_counts"], seed=config.seed) if config.multi else
             create_supernet(space, seed=config.seed))
    state = load_checkpoint(checkpoint)
    _load_model_state(model, state["model"], checkpoint)
    history = list(state["history"])
    status = "finished" if len(history) >= config.epochs else "stopped"
    return SearchResult(config, space, derive_genotype(model), history, model, status, None,
                        info.get("datasets", []), info.get("transfer"))


def _load_model_state(model: torch.nn.Module, weights: dict[str, Any], where: Any) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # missing keys or other shapes
        first = str(exc).strip().splitlines()[:3]
        raise RaynasError(f"checkpoint {where} does not fit its search's supernet: {' '.join(first)}",
                          "the checkpoint is damaged or from another search; start the search again") from None


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    arch = "" if m["arch_updates"] else "  (warm-up: alphas frozen)"
    return (f"epoch {m['epoch']:>3}/{epochs}  train {m['train_loss']:.3f} / {100 * m['train_acc']:5.1f}%  "
            f"val {m['val_loss']:.3f} / {100 * m['val_acc']:5.1f}%  H(alpha) {m['alpha_entropy']:.3f}  "
            f"skips {m['skip_count']}  {m['epoch_s']:.1f} s{arch}")
