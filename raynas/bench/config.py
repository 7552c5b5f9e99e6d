"""What ``raynas bench transfer`` runs: targets, arms, seeds and the budgets of every phase."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from raynas.config import check_fields, from_json, option, to_json
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.search.retrain import RetrainConfig

ALL_ARMS = ("scratch", "ot", "probe", "race", "multi", "random", "farthest", "zero-shot", "random-genotype")
# the default run's arms: the race (it never paid for its three trials, and took 75 of the 2026-12-06
# run's 270 minutes), the second negative control (farthest; random is the first) and the probe
# arm (its gate is studied from the scores of every run) run when named in --arms
DEFAULT_ARMS = ("scratch", "ot", "multi", "random", "zero-shot", "random-genotype")
# what leaves a target's zoo: its own entries (the paper's protocol), or every dataset of its domain
PROTOCOLS = {"dataset": "leave-one-dataset-out", "domain": "leave-one-domain-out"}
# the default run's sources: three domains of the built-in suite (11 sets; 81 minutes on 2 CPUs with the
# default arms, 2026-12-07, docs/results.md); plot marks left on 2026-12-07 to fit about 2 hours, the
# domain whose sets scratch learnt least at the tiny preset's 8x8 inputs (plot-hatches at chance)
DEFAULT_DOMAINS = ("handwriting", "printed glyphs", "shapes")


def check_name_list(field: str, names: tuple) -> None:
    """Refuse empty names: ``--targets ""`` would otherwise mean every dataset and fail (or run
    for hours) far later; an empty tuple from a config file still means the default."""
    flag = "--" + field
    if not all(isinstance(n, str) for n in names):
        raise RaynasError(f"{field} ({flag}) must be a list of names, got {list(names)!r}",
                          "write it as a list of names in the config file")
    if names and not any(n.strip() for n in names):
        raise RaynasError(f"{field} ({flag}) is empty", f"name at least one, separated by commas, or leave {flag} "
                                                        "out for its default")
    if not all(n.strip() for n in names):
        raise RaynasError(f"{field} ({flag}) {','.join(names)!r} has an empty name", "remove the extra comma")


@dataclass(frozen=True)
class TransferBenchConfig:
    sources: tuple[str, ...] = option((), help="datasets of the zoo's sources (default: the built-in suite); each "
                                               "target's zoo is these without the target")
    targets: tuple[str, ...] = option((), help="target datasets (default: every source, leave-one-out); any stored "
                                               "dataset can be a target")
    domains: tuple[str, ...] = option((), help="built-in domains whose datasets are the sources when --sources is "
                                               "not given, or 'all' (default: " + ", ".join(DEFAULT_DOMAINS) + ")")
    protocols: tuple[str, ...] = option(tuple(PROTOCOLS), help="leave-one-out protocols: dataset (the target's own "
                                        "entries leave its zoo) and domain (every entry of its domain does)")
    arms: tuple[str, ...] = option(DEFAULT_ARMS, help="arms to run (default: " + ",".join(DEFAULT_ARMS) + "; "
                                   "scratch always runs: every speed-up is over it)")
    seeds: int = option(1, low=1, high=100, help="seeds per target and arm")
    preset: str = option("tiny", help="size preset of searches and sources (tiny, cpu or gpu)")
    epochs: int = option(16, low=1, high=10_000, help="search epochs of every arm on every target (long "
                                                       "enough for scratch to settle on most targets)")
    warm_epochs: int | None = option(None, low=1, high=10_000, help="search epochs of the warm-started arms "
                                     "(default: --epochs); fewer is how a warm start is meant to be used, and "
                                     "each run anneals its LR over its own budget")
    warm_lr: float | None = option(None, above=0, high=10, help="SGD LR of the warm-started arms' weights (default: "
                                   "the search's 0.025); fine-tuning pretrained weights often wants a lower one")
    steps: int | None = option(24, low=1, flag="--max-steps", help="steps per search epoch (null in a config file: whole epochs)")
    arch_lr: float = option(3e-2, above=0, high=10, help="Adam LR of the alphas in every search (high enough "
                                                          "for short CPU searches to move them)")
    transfer_mode: str = option("weights+alphas", help="what every warm start copies: weights+alphas, weights or "
                                                       "alphas (ablations)")
    alpha_temperature: float = option(1.0, above=0, high=100, help="divide every warm start's alphas by this (> 1 "
                                                                   "softens them towards uniform)")
    encoder: str = option("pixels", help="feature encoder of the OT distances that pick each target's sources "
                                         "(pixels, edges, ...; see raynas distance)")
    head: str = option("copy", help="classifier of every warm start: copy (the source's when the class count "
                                    "matches, else fresh) or probe (fitted to the target first, LP-FT; charged)")
    probe_min_cut: float = option(0.33, low=0, high=1, help="the probe arm searches from scratch unless its best "
                                  "source removes at least this share of a random supernet's probe error (0: it "
                                  "always transfers)")
    source_epochs: int = option(32, low=1, high=10_000, help="pretraining epochs of each zoo source (a weak "
                                                              "source cannot show what transfer does)")
    source_steps: int | None = option(24, low=1, help="steps per pretraining epoch")
    multi_folds: int = option(3, low=1, high=100, help="multi-dataset supernets, each leaving out one fold of "
                                                        "the targets")
    race: int = option(3, low=1, high=16, help="sources the race arm races (nearest by OT)")
    random_genotypes: int = option(3, low=1, high=100, help="genotypes the random-genotype arm samples uniformly "
                                   "from the space per target, each retrained at the same budget as the searched ones")
    retrain_epochs: int = option(10, low=1, high=10_000, help="retraining epochs of every arm's genotype")
    retrain_steps: int | None = option(100, low=1, help="steps per retraining epoch")
    retrain_min_steps: int | None = option(None, low=1, high=10_000_000,
                                           help="retrain every genotype at least this many steps in all (small "
                                                "targets repeat epochs), so the budget holds across targets")
    retrain_channels: int = option(8, low=2, high=256, help="initial channels of the retrained network")
    retrain_cells: int = option(5, low=3, high=64, help="cells of the retrained network")
    tolerance: float = option(0.0, low=0, high=1, help="an arm reaches scratch's final val accuracy when within "
                                                        "this much of it")
    cpus_per_trial: float = option(1.0, above=0, high=1024, help="CPUs of each arm's Tune trial")
    gpus_per_trial: float = option(0.0, low=0, high=64, help="GPUs of each arm's Tune trial")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N")

    def __post_init__(self):
        for name in ("sources", "targets", "domains", "protocols", "arms"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            check_name_list(name, getattr(self, name))
        check_fields(self)
        unknown = [a for a in self.arms if a not in ALL_ARMS]
        if unknown:
            raise RaynasError(f"unknown arm(s) {', '.join(unknown)}", f"choose from {', '.join(ALL_ARMS)}")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols or len(set(self.protocols)) != len(self.protocols):
            raise RaynasError(f"protocols (--protocols) {','.join(self.protocols)!r}: give each of "
                              f"{', '.join(PROTOCOLS)} at most once", "e.g. --protocols dataset,domain")
        if self.domains and self.sources:
            raise RaynasError("--domains and --sources both choose the sources", "give one of them")
        from raynas.ot.encoders import ENCODERS
        ENCODERS.get(self.encoder)  # an unknown name fails here, not after the zoo's pretraining
        if "scratch" not in self.arms:  # every speed-up and gain is measured against it
            object.__setattr__(self, "arms", ("scratch", *self.arms))
        if len(set(self.arms)) != len(self.arms):
            raise RaynasError(f"an arm is named twice in {','.join(self.arms)}")

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TransferBenchConfig":
        return from_json(cls, d, "transfer benchmark config")

    def replace(self, **changes: Any) -> "TransferBenchConfig":
        return replace(self, **changes)

    def search(self, dataset: str, seed: int = 0, transfer: str = "scratch", exclude: tuple[str, ...] = ()
               ) -> SearchConfig:
        """The search every arm runs on ``dataset``: the warm start differs between arms, and so
        do the budget and the weights' LR when ``warm_epochs`` or ``warm_lr`` is set; ``exclude``:
        the datasets the protocol takes out of the target's zoo besides the target."""
        lr = {}
        if transfer != "scratch" and self.warm_lr is not None:  # annealed to the usual floor, or below a lower LR
            lr = {"w_lr": self.warm_lr, "w_lr_min": min(self.warm_lr, SearchConfig.w_lr_min)}
        return SearchConfig(dataset=dataset, preset=self.preset, epochs=self.arm_epochs(transfer), seed=seed,
                            transfer=transfer, **lr,
                            transfer_mode=self.transfer_mode, alpha_temperature=self.alpha_temperature, head=self.head,
                            probe_min_cut=self.probe_min_cut,
                            encoder=self.encoder, exclude_sources=tuple(exclude), a_lr=self.arch_lr,
                            max_steps_per_epoch=self.steps, device=self.device)

    def arm_epochs(self, transfer: str) -> int:
        """Search epochs of an arm that starts from ``transfer`` (scratch: always ``epochs``)."""
        return self.epochs if transfer == "scratch" or self.warm_epochs is None else self.warm_epochs

    def source_search(self, dataset: str) -> SearchConfig:
        """How each zoo source is pretrained: from scratch, longer than a target's search."""
        return SearchConfig(dataset=dataset, preset=self.preset, epochs=self.source_epochs, transfer="scratch",
                            a_lr=self.arch_lr, max_steps_per_epoch=self.source_steps, device=self.device)

    def retrain(self, dataset: str, seed: int, image_size: int | None = None) -> RetrainConfig:
        """The one retrain budget of every arm (image size: the search's, when None)."""
        return RetrainConfig(dataset=dataset, epochs=self.retrain_epochs, image_size=image_size,
                             channels=self.retrain_channels, cells=self.retrain_cells, seed=seed, device=self.device,
                             max_steps_per_epoch=self.retrain_steps, min_steps=self.retrain_min_steps)


# `--quick`: a few targets, one seed, short budgets (about ten minutes on two cores)
QUICK = dict(sources=("digits", "mnist5k", "mnist5k-rot", "glyph-digits", "glyph-upper", "textures"),
             targets=("glyph-digits", "mnist5k-rot"), seeds=1, epochs=6, steps=10, source_epochs=4, source_steps=12,
             multi_folds=2, retrain_epochs=2, retrain_steps=20)
