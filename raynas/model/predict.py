"""Batch inference with Ray Data: a trained model over a folder, an image, a dataset or a Parquet file.

The input streams through Ray Data (a dataset of file paths, or ``read_parquet``); images are
decoded in a map step one file at a time, so a damaged file is reported and skipped instead of
ending the run (Ray Data fuses that step into CPU actors; beside GPU actors it runs in CPU
tasks); an actor pool builds the network once per actor and classifies whole batches.
The driver only sees the predictions, batch by batch, and appends them to a Parquet file that
is renamed into place at the end, so ``out`` is either complete or untouched.

The order of the input is kept (``preserve_order``): every input row comes back exactly once,
skipped ones marked by their reason, so the driver can number rows while it writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raynas.data.imaging import IMAGE_EXTENSIONS, is_image_file
from raynas.errors import RaynasError
from raynas.model.artifact import ModelCard, network_from_state
from raynas.model.preprocess import Preprocess
from raynas.storage import atomic_path, atomic_write_text

MAX_BATCH_SIZE = 65536
MAX_CONCURRENCY = 1024
MAX_TOP_K = 1000
MIN_BLOCK_BYTES = 1 << 20  # Ray Data blocks of a Parquet input: about one batch, at least this
PROGRESS_EVERY_S = 10.0  # a progress line this often where no progress bar shows
MAX_LISTED = 100  # skipped or ignored files named in the answer; the counts are always complete
SPLITS = ("train", "val", "test")
CARRIED = ("path", "id")  # columns of an input Parquet file copied to the output


@dataclass
class Input:
    """What INPUT turned out to be, found before Ray starts or the model loads."""

    kind: str  # "folder" | "image" | "dataset" (a stored dataset) | "parquet"
    where: str  # as shown in answers
    files: list[str] = field(default_factory=list)  # absolute paths of image files (folder, image)
    ignored: list[str] = field(default_factory=list)  # files of a folder that are not images
    parquet: Path | None = None
    image_type: str = ""  # "tensor" | "bytes" (Parquet inputs)
    shape: tuple[int, ...] | None = None  # C, H, W of a tensor column
    carried: tuple[str, ...] = ()  # path/id columns to copy
    carried_types: dict[str, pa.DataType] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None  # a raynas dataset's classes: its label column is known
    split: str | None = None
    rows: int = 0  # rows (or files) to predict
    row_bytes: int = 0  # a Parquet row's size in memory, from the file's metadata
    file_rows: np.ndarray | None = None  # the file's row number of each row of the split


def predict(model: str | Path, data: str | Path, out: str | Path, *, dataset: str | None = None,
            split: str | None = None, batch_size: int = 256, concurrency: int | None = None, top_k: int = 5,
            home: str | Path | None = None, storage: str | None = None, address: str | None = None,
            progress: bool = False) -> dict[str, Any]:
    """Classify every image of ``data`` with ``model`` and write one Parquet file ``out``.

    ``model``: a run directory, a model directory or ``zoo:NAME`` (with ``dataset`` naming the
    head and preprocessing to use). ``data``: a folder of images (recursive), an image file, a
    stored dataset (``split`` picks train, val or test) or a Parquet file whose ``image`` column
    holds encoded image bytes or fixed-shape uint8 C x H x W tensors. ``progress``: Ray Data's bars on a
    terminal, else a line every 10 s (job logs). ``concurrency``: inference
    actors (default: one per GPU, else one per CPU but one, never more than there are batches).
    Returns the JSON-ready answer: counts, skipped files with reasons, throughput and, for a
    labelled split, the accuracy and confusion matrix (also written to ``<out stem>.confusion.csv``).
    """
    from raynas.model.load import load_card_and_network

    check_options(batch_size=batch_size, concurrency=concurrency, top_k=top_k)
    out = check_out(Path(out))
    source = resolve_input(data, split=split, home=home, storage=storage)
    if source.parquet is not None and _same_file(source.parquet, out):
        raise RaynasError(f"--out {out} is the input file", "write the predictions to another file")
    network, card = load_card_and_network(model, dataset=dataset, home=home, storage=storage)
    state = {k: v.detach().cpu() for k, v in network.network.state_dict().items()}
    del network
    preprocess = card.preprocessing()
    k = min(top_k, card.num_classes)
    scored = (source.split is not None and source.class_names is not None
              and tuple(source.class_names) == tuple(card.class_names))

    from raynas.ray_session import ensure_ray

    ensure_ray(address)
    plan = plan_resources(concurrency, source.rows, batch_size)
    t0 = time.perf_counter()
    ds = build_dataset(source, card=card, state=state, preprocess=preprocess, batch_size=batch_size,
                       top_k=k, plan=plan)
    bars = progress and sys.stderr.isatty()  # a job log (no terminal) gets plain lines instead
    ds.context.enable_progress_bars = bars
    ds.context.print_on_execution_start = bars
    last_line = time.monotonic()

    answer: dict[str, Any] = {
        "model": str(model), "model_dataset": card.dataset.get("name"), "classes": card.num_classes,
        "input": {"kind": source.kind, "where": source.where, "split": source.split, "rows": source.rows},
        "out": str(out), "top_k": k, "batch_size": batch_size, "concurrency": plan.actors, "device": plan.device,
        "threads_per_actor": plan.threads}
    if source.kind == "folder":
        answer["input"]["ignored"] = len(source.ignored)
        answer["input"]["ignored_files"] = source.ignored[:MAX_LISTED]
    if source.class_names is not None and source.split is not None and not scored:
        answer["note"] = "the dataset's classes differ from the model's, so no accuracy is reported"
    confusion = np.zeros((card.num_classes, card.num_classes), np.int64) if scored else None
    schema = output_schema(source, card, model=str(model))
    skipped: list[dict[str, Any]] = []  # the first MAX_LISTED; n_skipped counts them all
    predicted = seen = n_skipped = 0
    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                n = len(batch["class_index"])
                rows = (np.arange(seen, seen + n) if source.file_rows is None
                        else source.file_rows[seen:seen + n])
                seen += n
                ok = batch["error"] == ""
                bad = np.flatnonzero(~ok)
                n_skipped += len(bad)
                skipped += [_skip_record(source, batch, rows, int(i)) for i in bad[:MAX_LISTED - len(skipped)]]
                if not ok.any():
                    continue
                table = output_table(batch, ok, rows, source, card, schema)
                writer.write_table(table)
                predicted += table.num_rows
                if progress and not bars and time.monotonic() - last_line >= PROGRESS_EVERY_S:
                    print(f"predict: {seen:,} of {source.rows:,} images done ({n_skipped} skipped), "
                          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
                    last_line = time.monotonic()
                if confusion is not None:
                    np.add.at(confusion, (batch["label"][ok].astype(np.int64),
                                          batch["class_index"][ok].astype(np.int64)), 1)
        if seen != source.rows:  # would mean misnumbered rows: refuse rather than write them
            raise RaynasError(f"the pipeline returned {seen} of {source.rows} rows",
                              "this is a bug in raynas; report it with the input that caused it")
        if predicted == 0:
            first = skipped[0]["reason"] if skipped else "no rows"
            raise RaynasError(f"none of the {source.rows} images could be read (first: {first})",
                              "check that the input holds images raynas can decode "
                              f"({', '.join(IMAGE_EXTENSIONS)})")
        if confusion is not None:
            answer["accuracy"] = float(np.trace(confusion) / max(1, confusion.sum()))
            csv_path = confusion_path(out)
            atomic_write_text(csv_path, confusion_csv(confusion, card.class_names))
            answer["confusion"] = {"class_names": list(card.class_names), "matrix": confusion.tolist(),
                                   "csv": str(csv_path)}
    seconds = time.perf_counter() - t0
    answer.update(predicted=predicted, skipped=n_skipped, skipped_files=skipped,
                  seconds=round(seconds, 3), images_per_s=round(predicted / max(seconds, 1e-9), 1))
    return answer


def check_options(*, batch_size: int, concurrency: int | None, top_k: int) -> None:
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise RaynasError(f"--batch-size {batch_size} is out of range", f"give 1 to {MAX_BATCH_SIZE} (default 256)")
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise RaynasError(f"--concurrency {concurrency} is out of range",
                          f"give 1 to {MAX_CONCURRENCY} inference actors, or leave it out")
    if not 1 <= top_k <= MAX_TOP_K:
        raise RaynasError(f"--top-k {top_k} is out of range",
                          f"give 1 to {MAX_TOP_K} (more than the model's classes means all of them)")


def check_out(out: Path) -> Path:
    """Refuse an output path that cannot become a file before any work is done."""
    if out.is_dir():
        raise RaynasError(f"--out {out} is a folder", "give a file name, e.g. --out predictions.parquet")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RaynasError(f"--out {out}: {parent} is a file, not a folder", "give a path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RaynasError(f"--out {out}: the folder {parent} is not writable",
                          "give a path in a folder you can write to")
    if confusion_path(out).is_dir():
        raise RaynasError(f"{confusion_path(out)} (where the confusion matrix goes) is a folder",
                          "choose another --out, or move that folder away")
    return out


def confusion_path(out: Path) -> Path:
    return out.with_name(f"{out.with_suffix('').name}.confusion.csv")


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``b`` is the input ``a``, or lies in it (a dataset folder of shards)."""
    try:
        if a.is_dir():
            return any(os.path.samefile(a, p) for p in b.absolute().parents if p.exists())
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def resolve_input(data: str | Path, *, split: str | None = None, home: str | Path | None = None,
                  storage: str | None = None) -> Input:
    """Decide what INPUT is, in this order: a folder, an image file, a stored dataset name, a
    Parquet file. A bare name that is both a path here and a stored dataset is refused as ambiguous."""
    from raynas.data import DatasetStore
    from raynas.data.validate import NAME_PATTERN

    text = str(data)
    if not text:
        raise RaynasError("no input given", "give a folder of images, an image file, a dataset name or a Parquet file")
    if split is not None and split not in SPLITS:
        raise RaynasError(f"unknown split '{split}'", f"choose one of: {', '.join(SPLITS)}")
    path = Path(text)
    store = DatasetStore(home, storage)
    is_name = bool(NAME_PATTERN.match(text)) and os.sep not in text and "/" not in text
    try:
        stored = is_name and store.exists(text)
    except RaynasError:  # an unusable home does not matter when INPUT is a path
        if not path.exists():
            raise
        stored = False
    if stored and path.exists():
        raise RaynasError(f"'{text}' is both a path here and a stored dataset",
                          f"write ./{text} for the path; for the dataset, run the command from another folder")
    if path.is_dir():
        source = _folder_input(path)
    elif path.is_file() and is_image_file(path):
        source = Input("image", str(path), files=[os.path.abspath(path)], rows=1)
    elif stored:
        info = store.info(text)
        source = _parquet_input(store.local_path(text), kind="dataset", where=text)
        source.class_names = tuple(info.class_names)
    elif path.is_file():
        source = _parquet_input(path, kind="parquet", where=str(path))
    elif path.exists():
        raise RaynasError(f"{path} is neither a folder nor a file", "give a folder of images, an image file, "
                          "a dataset name or a Parquet file")
    else:
        names = ", ".join(store.names()[:12])
        raise RaynasError(f"'{text}' is neither a file or folder nor a stored dataset",
                          f"check the path, or give a dataset name (`raynas data list`; e.g. {names})")
    if split is not None:
        if source.parquet is None:
            raise RaynasError(f"--split applies to datasets, and {source.where} is a {source.kind}",
                              "leave out --split")
        _select_split(source, split)
    return source


def _folder_input(folder: Path) -> Input:
    files, ignored = [], []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            p = Path(root) / name
            if is_image_file(p):
                files.append(os.path.abspath(p))
            elif not name.startswith("."):
                ignored.append(str(p))
    if not files:
        also = f"; {len(ignored)} other file(s) were ignored, e.g. {ignored[0]}" if ignored else ""
        raise RaynasError(f"no image files in {folder}{also}",
                          f"give a folder holding images ({', '.join(IMAGE_EXTENSIONS)}), searched recursively")
    return Input("folder", str(folder), files=files, ignored=ignored, rows=len(files))


def _parquet_input(path: Path, *, kind: str, where: str) -> Input:
    """A Parquet file's image column, carried columns and, for a raynas dataset file, its classes;
    a raynas dataset folder's the same, from its shards' footers."""
    from raynas.data.format import FORMAT, dataset_footers, read_info

    try:  # a dataset folder's index and shards are checked on the way
        footers = [meta for _, meta in dataset_footers(path)] if path.is_dir() else [pq.read_metadata(path)]
        schema = footers[0].schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        raise RaynasError(f"{path} is neither an image file ({', '.join(IMAGE_EXTENSIONS)}) nor a readable "
                          f"Parquet file ({exc})", "give a folder of images, an image file, a dataset name or "
                          "a Parquet file") from None
    if "image" not in schema.names:
        raise RaynasError(f"Parquet file {path} has no 'image' column (it has: {', '.join(schema.names[:10])})",
                          "give a Parquet file with an 'image' column of encoded image bytes or uint8 tensors")
    image = schema.field("image").type
    source = Input(kind, where, parquet=path, rows=sum(meta.num_rows for meta in footers))
    total = sum(meta.row_group(i).total_byte_size for meta in footers for i in range(meta.num_row_groups))
    source.row_bytes = max(1, total // max(1, source.rows))
    if pa.types.is_binary(image) or pa.types.is_large_binary(image):
        source.image_type = "bytes"
    elif (isinstance(image, pa.FixedShapeTensorType) and image.value_type == pa.uint8()
          and len(image.shape) == 3 and image.shape[0] in (1, 3)
          and (not image.permutation or list(image.permutation) == [0, 1, 2])):
        source.image_type, source.shape = "tensor", tuple(int(s) for s in image.shape)
    else:
        raise RaynasError(f"Parquet file {path}: its image column is {image}",
                          "store encoded image bytes (binary) or fixed-shape uint8 C x H x W tensors in it")
    if path.is_dir() or (schema.metadata or {}).get(b"format") == FORMAT.encode():
        source.class_names = tuple(read_info(path).class_names)  # checks the file against its metadata
    source.carried = tuple(c for c in CARRIED if c in schema.names)
    source.carried_types = {c: schema.field(c).type for c in source.carried}
    if source.rows == 0:
        raise RaynasError(f"Parquet file {path} holds no rows", "give a file with images")
    return source


def _select_split(source: Input, split: str) -> None:
    """Keep one split; the row numbers of its rows in the file are read from the split column alone."""
    import pyarrow.compute as pc

    from raynas.data.format import read_columns

    try:
        column = read_columns(source.parquet, ["split"]).column("split")  # a dataset folder: shard by shard
        rows = np.flatnonzero(pc.fill_null(pc.equal(column, split), False).to_numpy(zero_copy_only=False))
    except (KeyError, pa.ArrowException) as exc:
        raise RaynasError(f"{source.where} has no readable split column ({exc})", "leave out --split") from None
    if rows.size == 0:
        raise RaynasError(f"{source.where} has no {split} rows", f"choose another of: {', '.join(SPLITS)}")
    source.split, source.file_rows, source.rows = split, rows, int(rows.size)


class Plan(NamedTuple):
    """How the inference actors use the cluster."""

    actors: int
    gpus: int  # per actor: 1 on a cluster with GPUs, else 0
    actor_cpus: float  # Ray's CPU reservation per actor
    task_cpus: float  # ... per reading or decoding task
    threads: int  # torch threads per actor

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"


def plan_resources(concurrency: int | None, rows: int, batch_size: int) -> Plan:
    """GPU actors when the cluster has GPUs (decoding then runs in CPU tasks beside them), else one
    CPU actor per CPU but one: Ray Data fuses the reading and decoding into CPU actors, and the
    CPU left runs the tasks it does not fuse (actors holding every CPU would starve those and
    hang the pipeline). Never more actors than batches. A CPU actor runs a torch thread per CPU
    it has a share of, not only per CPU it reserves: reading leaves the reserved one mostly idle
    (2 threads classified 1.6x faster than 1 with 2 CPUs)."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if cpus <= 0:
        raise RaynasError("the Ray cluster has no CPUs", "connect to a cluster with CPU workers, or leave out --address")
    task_cpus = actor_cpus = min(1.0, cpus / 2)
    batches = max(1, math.ceil(rows / batch_size))
    if gpus:
        if concurrency is not None and concurrency > gpus:
            raise RaynasError(f"--concurrency {concurrency} asks for {concurrency} GPU actors, the cluster has "
                              f"{gpus} GPU(s)", f"give --concurrency {gpus} or less")
        return Plan(concurrency or min(gpus, batches), 1, actor_cpus, task_cpus, 1)
    most = max(1, int((cpus - task_cpus) // actor_cpus))
    if concurrency is not None and concurrency > most:
        raise RaynasError(f"--concurrency {concurrency} needs {concurrency * actor_cpus:g} CPUs for the actors plus "
                          f"{task_cpus:g} for reading, the Ray cluster has {cpus:g}",
                          f"give --concurrency {most} or less")
    actors = concurrency or min(most, batches)
    return Plan(actors, 0, actor_cpus, task_cpus, max(1, int(cpus // actors)))


def build_dataset(source: Input, *, card: ModelCard, state: dict[str, torch.Tensor], preprocess: Preprocess,
                  batch_size: int, top_k: int, plan: Plan):
    """The Ray Data pipeline: read -> decode (files, bytes, odd shapes) -> classify in an actor pool."""
    import pyarrow.fs as pafs
    import ray
    import ray.data
    from ray.data.expressions import col

    stored = (preprocess.stored_channels, preprocess.stored_size, preprocess.stored_size)
    if source.parquet is None:
        n_blocks = max(1, math.ceil(len(source.files) / batch_size))
        ds = ray.data.from_items([{"path": p} for p in source.files], override_num_blocks=n_blocks)
        decode, carried = "path", ("path",)
    else:
        columns = ["image", *source.carried]
        if source.class_names is not None:
            columns.append("label")
        ds = ray.data.read_parquet(str(source.parquet), filesystem=pafs.LocalFileSystem(), num_cpus=plan.task_cpus)
        # blocks of about a batch (Ray Data's default is 128 MiB: one block, one actor, for most files)
        ds.context.target_max_block_size = min(ds.context.target_max_block_size,
                                               max(MIN_BLOCK_BYTES, batch_size * source.row_bytes))
        if source.split is not None:
            ds = ds.filter(expr=col("split") == source.split)
        ds = ds.select_columns(columns)
        carried = tuple(c for c in columns if c != "image")
        decode = "bytes" if source.image_type == "bytes" else ("" if source.shape == stored else "array")
    if decode:
        ds = ds.map_batches(decode_batch, batch_size=batch_size, batch_format="numpy", num_cpus=plan.task_cpus,
                            fn_kwargs={"preprocess": preprocess, "kind": decode, "carried": carried})
    ds.context.execution_options.preserve_order = True
    model = ray.put((card, state))
    return ds.map_batches(Classifier, batch_size=batch_size, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=plan.actors), num_cpus=plan.actor_cpus,
                          num_gpus=plan.gpus, fn_constructor_kwargs={"model": [model], "top_k": top_k,
                                                                     "carried": carried, "device": plan.device,
                                                                     "threads": plan.threads})


def decode_batch(batch: dict[str, np.ndarray], *, preprocess: Preprocess, kind: str,
                 carried: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Image files, encoded bytes or odd-shaped arrays -> uint8 at the stored size, one at a time:
    a file that fails is marked with its reason (and a blank image) instead of failing the batch."""
    items = batch["path"] if kind == "path" else batch["image"]
    names = batch.get("path", batch.get("id"))
    n = len(items)
    images = np.zeros((n, preprocess.stored_channels, preprocess.stored_size, preprocess.stored_size), np.uint8)
    errors = np.full(n, "", dtype=object)
    for i in range(n):
        item = items[i]
        name = str(names[i]) if names is not None else "image"
        try:
            if item is None:
                raise RaynasError(f"{name}: the image cell is empty")
            images[i] = preprocess.stored_uint8(bytes(item) if kind == "bytes" else item, name=name)
        except RaynasError as exc:
            errors[i] = exc.problem
        except Exception as exc:  # noqa: BLE001 - decoders raise anything on odd files; one file never ends a run
            errors[i] = f"cannot read {name}: {type(exc).__name__}: {exc}"
    return {"image": images, "error": errors.astype(str), **{c: batch[c] for c in carried}}


class Classifier:
    """An inference actor: builds the network once, from weights sent through the object store
    (so it works on nodes that cannot see the model's files), then classifies batches."""

    def __init__(self, *, model: list, top_k: int, carried: tuple[str, ...], device: str, threads: int):
        import ray

        from raynas.threads import affinity_cpus, cgroup_cpus, set_threads

        # the plan shares the cluster's CPUs out; this node may have fewer than that share
        node = [x for x in (affinity_cpus(), cgroup_cpus()) if x]
        set_threads(max(1, min(threads, *(int(x) for x in node))) if node else threads)
        card, state = ray.get(model[0])
        self.network = network_from_state(card, state, "the model", device)
        self.preprocess = card.preprocessing()
        self.top_k, self.carried, self.device = top_k, carried, device

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = batch["image"]
        n = len(images)
        errors = batch["error"] if "error" in batch else np.full(n, "", dtype=object)
        ok = np.asarray(errors == "", dtype=bool)
        index = np.full(n, -1, np.int32)
        top_index = np.zeros((n, self.top_k), np.int32)
        top_prob = np.zeros((n, self.top_k), np.float32)
        if ok.any():
            with torch.inference_mode():
                x = self.preprocess.batch(torch.from_numpy(np.ascontiguousarray(images[ok])).to(self.device))
                logits = self.network(x).float()
                prob, top = logits.softmax(1).topk(self.top_k, dim=1)
                index[ok] = logits.argmax(1).cpu().numpy()
                top_index[ok], top_prob[ok] = top.cpu().numpy(), prob.cpu().numpy()
        return {"class_index": index, "top_index": top_index, "top_prob": top_prob,
                "error": np.asarray(errors, dtype=str), **{c: batch[c] for c in self.carried}}


def output_schema(source: Input, card: ModelCard, *, model: str) -> pa.Schema:
    fields = [pa.field("path", pa.string())] if source.parquet is None else [pa.field("row", pa.int64())]
    fields += [pa.field(c, source.carried_types[c]) for c in source.carried]
    fields += [pa.field("class_name", pa.string()), pa.field("class_index", pa.int32()),
               pa.field("topk_class_names", pa.list_(pa.string())),
               pa.field("topk_probabilities", pa.list_(pa.float32()))]
    if source.class_names is not None:
        fields += [pa.field("label", pa.int32()), pa.field("label_name", pa.string())]
    meta = {"model": model, "model_dataset": card.dataset.get("name"), "class_names": list(card.class_names),
            "input": source.where, "split": source.split}
    return pa.schema(fields, metadata={"raynas.predictions": json.dumps(meta, default=str)})


def output_table(batch: dict[str, np.ndarray], ok: np.ndarray, rows: np.ndarray, source: Input,
                 card: ModelCard, schema: pa.Schema) -> pa.Table:
    """The predicted rows of one batch as an Arrow table in the output schema."""
    names = np.asarray(card.class_names, dtype=object)
    index = batch["class_index"][ok]
    top = batch["top_index"][ok]
    n, k = top.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    columns: dict[str, Any] = {}
    if source.parquet is None:
        columns["path"] = pa.array(batch["path"][ok].tolist(), pa.string())
    else:
        columns["row"] = pa.array(rows[ok], pa.int64())
    for c in source.carried:
        columns[c] = pa.array(batch[c][ok].tolist(), source.carried_types[c])
    columns["class_name"] = pa.array(names[index].tolist(), pa.string())
    columns["class_index"] = pa.array(index, pa.int32())
    columns["topk_class_names"] = pa.ListArray.from_arrays(offsets, pa.array(names[top].reshape(-1).tolist(),
                                                                              pa.string()))
    columns["topk_probabilities"] = pa.ListArray.from_arrays(offsets, pa.array(batch["top_prob"][ok].reshape(-1),
                                                                                pa.float32()))
    if source.class_names is not None:
        label = batch["label"][ok].astype(np.int32)
        columns["label"] = pa.array(label, pa.int32())
        columns["label_name"] = pa.array(np.asarray(source.class_names, dtype=object)[label].tolist(), pa.string())
    return pa.Table.from_pydict(columns, schema=schema)


def _skip_record(source: Input, batch: dict[str, np.ndarray], rows: np.ndarray, i: int) -> dict[str, Any]:
    record: dict[str, Any] = {"path": str(batch["path"][i])} if source.parquet is None else {"row": int(rows[i])}
    for c in source.carried:
        record[c] = batch[c][i].item() if hasattr(batch[c][i], "item") else batch[c][i]
    record["reason"] = str(batch["error"][i])
    return record


def confusion_csv(confusion: np.ndarray, class_names: tuple[str, ...]) -> str:
    """Rows: true class; columns: predicted class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label \\ predicted", *class_names])
    for name, counts in zip(class_names, confusion.tolist()):
        writer.writerow([name, *counts])
    return buffer.getvalue()
