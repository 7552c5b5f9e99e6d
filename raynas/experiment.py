"""One search experiment end to end: the workflow every entry point calls.

    check -> warm start -> run directory (config.json) -> search -> retrain -> publish

:func:`run_experiment` owns these steps. ``raynas search`` (through each Tune trial of the
race), ``raynas zoo build`` (pretraining), the demo and the examples call it; none chain
the steps themselves. A search resumes from a checkpoint (which carries its config and
warm-start record), and a finished search can be retrained and published from its
checkpoint alone (:func:`finish`), which is how the race publishes only its winner.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from raynas.config import from_json, option, to_json
from raynas.errors import RaynasError
from raynas.race.config import RaceConfig
from raynas.search.config import SearchConfig
from raynas.search.loop import Callback, SearchResult, check_config, load_result, run_search
from raynas.search.results import mark_running, new_run_dir, unmark_running
from raynas.search.retrain import RetrainConfig, retrain
from raynas.space.config import SpaceConfig
from raynas.storage import atomic_write_text
from raynas.workspace import Workspace
from raynas.zoo.manifest import ZooManifest

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ExperimentConfig:
    """What ``raynas search`` runs: the search, how sources race, and what follows the search."""

    search: SearchConfig
    race: RaceConfig = field(default_factory=RaceConfig)
    retrain: RetrainConfig | None = None  # retrain the found architecture when set
    publish: bool = option(False, help="add the finished supernet and its embedding to the zoo, named after "
                                       "the dataset")

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ExperimentConfig":
        return from_json(cls, d, "experiment config")

    @property
    def kind(self) -> str:
        return "multi" if self.search.multi else "single"

    def retrain_config(self, space: SpaceConfig) -> RetrainConfig | None:
        """The retrain config with the search's dataset, seed, device and image size filled in."""
        if self.retrain is None:
            return None
        r = self.retrain
        return replace(r, dataset=r.dataset or self.search.dataset, image_size=r.image_size or space.image_size)


class SearchDiverged(RaynasError):
    """The search's loss went non-finite; its run directory holds what it did until then."""

    def __init__(self, result: SearchResult):
        last = result.history[-1] if result.history else {}
        where = f"; its run directory: {result.run_dir}" if result.run_dir else ""
        super().__init__(f"the search diverged in epoch {len(result.history)} (train loss {last.get('train_loss')}, "
                         f"val loss {last.get('val_loss')}){where}; nothing was retrained or published",
                         "lower the learning rates (--w-lr, --arch-lr) or the alpha temperature")
        self.result = result


@dataclass
class ExperimentResult:
    search: SearchResult
    run_dir: Path | None
    retrain: dict[str, Any] | None = None
    published: ZooManifest | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.run_dir is not None and (self.run_dir / "result.json").is_file():
            d = json.loads((self.run_dir / "result.json").read_text())
        d.update(run_dir=str(self.run_dir) if self.run_dir else None, status=self.search.status,
                 genotype=self.search.genotype.to_json(), genotype_text=str(self.search.genotype),
                 transfer=self.search.transfer or {"strategy": "scratch"})
        if self.retrain is not None:
            d["retrain"] = {k: v for k, v in self.retrain.items() if k != "history"}
        if self.published is not None:
            d["published"] = self.published.summary()
        return d


def check_experiment(config: ExperimentConfig, workspace: Workspace) -> SpaceConfig:
    """Everything that would make the experiment fail after training, checked before it trains:
    the search config, the retrain config, the encoder and zoo entry publishing would use."""
    from raynas.transfer.head import HEAD_INITS
    from raynas.transfer.mapping import TRANSFER_MODES

    space = check_config(config.search, workspace.store)
    TRANSFER_MODES.get(config.search.transfer_mode)
    HEAD_INITS.get(config.search.head)
    rcfg = config.retrain_config(space)
    if rcfg is not None:
        workspace.store.info(rcfg.dataset)
    if config.publish:  # the cheap checks first
        workspace.zoo_storage.check_writable()
        workspace.embedding_storage.check_writable()
        workspace.zoo.check_replaceable(config.search.dataset, config.kind, space.to_json())
        if not config.search.multi:
            workspace.encoder(config.search.encoder)
    return space


def run_experiment(config: ExperimentConfig | None, workspace: Workspace, *, run_dir: str | Path | None = None,
                   checkpoint: str | Path | None = None, checkpoint_dir: str | Path | None = None,
                   callbacks: Sequence[Callback] = (), transfer_note: dict[str, Any] | None = None,
                   write_run_dir: bool = True, verbose: bool = True) -> ExperimentResult:
    """Run one search experiment, or resume it from ``checkpoint``.

    ``run_dir``: where results go (default: a new one under the home's ``runs/``);
    ``write_run_dir=False`` keeps only checkpoints (Tune trials: the race writes the results).
    ``checkpoint_dir``: where each epoch's checkpoint goes (default ``run_dir/checkpoint``).
    ``transfer_note``: extra facts for the warm-start record (the race adds the OT distance).
    Raises :class:`SearchDiverged` (after writing the run directory) when the loss went non-finite.
    """
    if config is None and checkpoint is None:
        raise RaynasError("run_experiment needs a config or a checkpoint")
    if checkpoint is not None:
        result = run_search(config.search if config else None, store=workspace.store, run_dir=_run_dir(
            run_dir, write_run_dir), checkpoint_dir=checkpoint_dir or checkpoint, resume_from=checkpoint,
            callbacks=callbacks, verbose=verbose)
        config = config or ExperimentConfig(result.config)
    else:
        from raynas.transfer.warm_start import warm_start

        check_experiment(config, workspace)
        model, record = warm_start(config.search, workspace.store, workspace.zoo, workspace.embeddings,
                                   workspace.embedding_storage)
        record.update(transfer_note or {})
        if verbose and record["strategy"] != "scratch":
            import sys

            print(describe_transfer(record), file=sys.stderr)
        out = _run_dir(run_dir, write_run_dir) or (new_run_dir(workspace.store.home.runs, config.search)
                                                   if write_run_dir else None)
        if out is not None:
            write_config(out, config)
            mark_running(out)  # a kill leaves the mark: the next `zoo build` removes the folder
            atomic_write_text(out / "transfer.json", json.dumps(record, indent=2))
        try:
            result = run_search(config.search, store=workspace.store, run_dir=out, checkpoint_dir=checkpoint_dir,
                                initial_model=model, transfer=record, callbacks=callbacks, verbose=verbose)
        finally:
            if out is not None:
                unmark_running(out)
    if result.status == "diverged":
        raise SearchDiverged(result)
    return finish(result, config, workspace, result.run_dir, verbose=verbose)


def finish(result: SearchResult, config: ExperimentConfig, workspace: Workspace, run_dir: Path | None,
           verbose: bool = True) -> ExperimentResult:
    """Retrain and publish a finished search, as its config asks (a stopped one is neither)."""
    out = ExperimentResult(result, run_dir)
    if result.status != "finished":
        return out
    rcfg = config.retrain_config(result.space)
    if rcfg is not None:
        out.retrain = retrain(result.genotype, rcfg, workspace.store, run_dir, verbose=verbose)
    if config.publish:
        out.published = publish(result, workspace)
    return out


def finish_checkpoint(checkpoint: str | Path, config: ExperimentConfig, workspace: Workspace,
                      run_dir: Path | None, verbose: bool = True) -> ExperimentResult:
    """:func:`finish` for a search known only by its checkpoint (a Tune trial's, on storage)."""
    result = load_result(checkpoint, workspace.store)
    result.run_dir = run_dir
    return finish(result, config, workspace, run_dir, verbose)


def publish(result: SearchResult, workspace: Workspace) -> ZooManifest:
    """Publish the supernet under the dataset's name, with the dataset's OT embedding."""
    from raynas.zoo.publish import publish_result

    encoder = None if result.config.multi else workspace.encoder(result.config.encoder)
    return publish_result(result, workspace.zoo, workspace.store, workspace.embeddings, encoder)


def write_config(run_dir: Path, config: ExperimentConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(config.to_json(), indent=2))


def read_config(run_dir: str | Path) -> ExperimentConfig:
    """The experiment config of a run directory (older runs hold a bare search config)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RaynasError(f"{path} not found", "give a run directory written by `raynas search`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RaynasError(f"{path} is damaged: not JSON ({exc})", "start a new search") from None
    if isinstance(data, dict) and "search" not in data:
        return ExperimentConfig(SearchConfig.from_json(data))
    return ExperimentConfig.from_json(data)


def _run_dir(run_dir: str | Path | None, write: bool) -> Path | None:
    if run_dir is None or not write:
        return None
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe_transfer(t: dict[str, Any]) -> str:
    """One line on where a warm start came from and what it copied."""
    if t.get("source") is None:
        why = f" ({t['note']})" if t.get("note") else ""
        return f"{t['strategy']}: searching from scratch{why}"
    how = f"{t['strategy']}: warm start from zoo entry '{t['source']}'"
    if t.get("distance") is not None and math.isfinite(t["distance"]):
        how += f" ({t.get('method')} distance {t['distance']:.4g})"
    tensors = t.get("tensors", {})

    def names(keys: list[str]) -> str:
        return "none" if not keys else ", ".join(keys) if len(keys) <= 3 else f"{len(keys)} tensors"

    head = t.get("head") or {}
    fitted = (f"; head fitted by a linear probe on {head['images']} train images ({100 * head['train_acc']:.1f}% "
              f"on them, {head['seconds']:.1f} s)" if head.get("method") == "probe" else "")
    return (f"{how}, {t['mode']}, alpha temperature {t['alpha_temperature']:g}; {tensors.get('copied', 0)} tensors "
            f"copied, adapted: {names(tensors.get('adapted', []))}, re-initialised (other shape): "
            f"{names(tensors.get('reinitialised', []))}{fitted}")
