"""The configuration of one search run; written in full into every run directory."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from raynas.config import check_fields, from_json, option, to_json
from raynas.errors import RaynasError

# Upper bounds that keep a typo from allocating tens of GB before anything can fail.
MAX_IMAGE_SIZE = 512
MAX_CHANNELS = 256


@dataclass(frozen=True)
class SearchConfig:
    dataset: str = option(help="target dataset", cli=False)
    algo: str = option("darts", help="search algorithm: darts, darts2, drnas or pcdarts")
    preset: str = option("cpu", help="size preset: tiny, cpu or gpu")
    epochs: int = option(10, help="search epochs", low=1, high=100_000)
    warmup_epochs: int | None = option(None, low=0, help="epochs before alphas are updated (default: 0 for "
                                                         "darts/darts2, 30% for pcdarts/drnas)")
    seed: int = option(0, low=0, high=2**32 - 1, help="seed of initialisation, batches and augmentation")
    # warm start (raynas.transfer): where the supernet's initial weights and alphas come from
    transfer: str = option("auto", help="initial supernet: auto (race the nearest zoo sources), ot, probe, multi, random, "
                                        "scratch, or a zoo entry's name")
    transfer_mode: str = option("weights+alphas", help="what a warm start copies: weights+alphas, weights or alphas")
    alpha_temperature: float = option(1.0, above=0, high=100, help="divide transferred alphas by this; > 1 softens "
                                                                   "them towards uniform")
    head: str = option("copy", help="classifier of a warm start: copy (the source's when the class count matches, "
                                     "else fresh) or probe (fitted to the target's train images first: LP-FT)")
    probe_min_cut: float = option(0.33, low=0, high=1, help="--transfer probe warm-starts only from a source whose "
                                  "features remove at least this share of the probe error of a random supernet's "
                                  "(else: scratch); 0 always transfers")
    distance: str = option("cascade", help="OT method that ranks zoo sources: cascade, otdd, hot or sliced")
    encoder: str = option("pixels", help="feature encoder of the OT embeddings: pixels, edges, resnet18 or supernet")
    exclude_sources: tuple[str, ...] = option((), help="comma-separated datasets whose zoo entries may not be the "
                                                       "warm start (e.g. the target's own domain, to see whether "
                                                       "transfer from elsewhere pays)")
    # multi-dataset pretraining: one supernet over these datasets (a head each); ``dataset``
    # then names the result instead of a stored dataset
    multi: tuple[str, ...] = option((), cli=False)
    # sizes: None = from the preset
    image_size: int | None = option(None, low=8, high=MAX_IMAGE_SIZE, help="override the preset's image size")
    channels: int | None = option(None, low=2, high=MAX_CHANNELS, help="override the preset's initial channels")
    cells: int | None = option(None, low=3, high=32, help="override the preset's number of cells")
    nodes: int | None = option(None, low=2, high=8, help="override the preset's intermediate nodes per cell")
    batch_size: int | None = option(None, low=1, high=8192, help="override the preset's batch size")
    ops: tuple[str, ...] | None = option(None, help="comma-separated candidate ops (default: the 8 DARTS ops)")
    partial_channels: int | None = option(None, low=1, high=64, help="PC-DARTS K (default 4, or less if needed)")
    # weights: SGD with cosine annealing (DARTS defaults)
    w_lr: float = option(0.025, above=0, high=10, help="SGD learning rate of the weights")
    w_lr_min: float = option(0.001, low=0, high=10, help="final learning rate of the cosine schedule")
    w_momentum: float = option(0.9, low=0, high=1, help="SGD momentum")
    w_weight_decay: float = option(3e-4, low=0, high=1, help="weight decay of the weights")
    grad_clip: float = option(5.0, above=0, help="gradient norm clip of the weights")
    # architecture: Adam; None = the algorithm's default learning rate
    a_lr: float | None = option(None, above=0, high=10, flag="--arch-lr",
                                help="Adam LR of the alphas (default: the paper's, x10 for the tiny and cpu presets)")
    a_beta1: float = option(0.5, low=0, high=0.9999, cli=False)
    a_beta2: float = option(0.999, low=0, high=0.9999, cli=False)
    a_weight_decay: float = option(1e-3, low=0, high=1, help="weight decay of the alphas")
    reg_scale: float = option(1e-3, low=0, cli=False)  # DrNAS: weight of the Dirichlet KL regulariser
    augment: bool = option(True, help="random crops/flips during the search")
    max_steps_per_epoch: int | None = option(None, low=1, flag="--max-steps", help="cap the steps per epoch")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N")
    loader_backend: str = option("auto", flag="--loader", help="how batches are read: memory (the split decoded "
                                 "once), stream (row groups read ahead by threads, for data larger than memory), "
                                 "ray (Ray Data) or auto (memory when the split fits 2 GB, else stream)")
    loader_workers: int = option(2, low=1, high=64, help="threads that read ahead for --loader stream; GPU trials "
                                                         "that stream get this many CPUs more")
    threads: int | None = option(None, low=1, high=1024, help="torch threads (default: the CPUs this process "
                                                              "has: Ray's allocation, affinity, cgroup quota)")

    def __post_init__(self):
        if self.ops is not None:
            object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "multi", tuple(self.multi))
        object.__setattr__(self, "exclude_sources", tuple(self.exclude_sources))
        if not all(isinstance(n, str) and n.strip() for n in self.exclude_sources):
            raise RaynasError(f"exclude_sources (--exclude-sources) {list(self.exclude_sources)!r} has an empty name",
                              "give dataset names separated by commas")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise RaynasError("no target dataset given", "name a dataset, e.g. `raynas search glyph-digits`")
        check_fields(self)
        if self.ops is not None:
            from raynas.space.config import check_ops  # imports torch: only when ops are given

            check_ops(self.ops, "ops (--ops)")
        if len(self.multi) == 1 or len(set(self.multi)) != len(self.multi):
            raise RaynasError(f"multi-dataset pretraining needs at least two distinct datasets, got {list(self.multi)}")
        if self.warmup_epochs is not None and self.warmup_epochs > self.epochs:
            raise RaynasError(f"warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}")

    def check_schedule(self) -> None:
        """Refuse a cosine schedule that would end above its first LR: a mix-up of the two flags.

        Called where a person gives ``w_lr_min`` (flags, config files), not in ``__post_init__``:
        a race's HyperOpt samples trial LRs down to ``w_lr / 5``, below a valid ``w_lr_min``,
        and those trials and their checkpoints must still load."""
        if self.w_lr_min > self.w_lr:
            raise RaynasError(f"w_lr_min (--w-lr-min) {self.w_lr_min:g} is above w_lr (--w-lr) {self.w_lr:g}: the "
                              "learning rate would rise during the search",
                              "give a --w-lr-min at most --w-lr (default 0.001), or raise --w-lr")

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SearchConfig":
        return from_json(cls, d, "search config")

    def replace(self, **changes: Any) -> "SearchConfig":
        return replace(self, **changes)
