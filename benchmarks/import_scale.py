"""Import and embedding at scale: images per second and peak RSS as the dataset grows 10k -> 1M images.

    python benchmarks/import_scale.py [--sizes 10000,100000,1000000] [--side 32] [--keep DIR] [--out result.json]
    python benchmarks/import_scale.py --sizes 2000,20000 --side 32          # a quick version

What is measured, for each size N in ``--sizes``:

* The input (not timed): a Parquet file of N RGB images of ``--side`` pixels, PNG-encoded (column
  ``image``, bytes) with their labels (column ``label``, 10 classes). Each image is a smooth random
  colour field around its class's colour layout, shifted at random, with a little noise, so
  decoding is that of real PNGs, not of flat ones. It is written a row group at a time (memory does
  not grow with N) and kept per size and side in the scratch folder, so a rerun with ``--keep``
  reuses it.
* In a fresh Python process per size, so that the peak RSS is that step's own
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, a high-water mark):
  - *start-up*: raynas, torch and pyarrow imported and the pixels encoder loaded (its PCA was
    fitted on the built-in suite beforehand, in a process of its own, so that the fit's 1.2 GB do
    not mask the steps'); peak RSS taken;
  - *import*: ``FILE_IMPORTS["parquet"]`` plans the import (reads the labels) and
    ``DatasetStore(home).save_streamed(plan)`` decodes the PNGs and writes the dataset into a new
    home, as ``raynas data import FILE --format parquet`` does (timed: images/s); peak RSS taken;
  - *embedding*: ``EmbeddingStore.ensure(store.open(name), pixels encoder)``, the OT embedding of
    the imported dataset from its class-stratified sample (timed: seconds, and dataset images per
    second, although only the sample is encoded: the sample's rows are spread over every row
    group); peak RSS taken.
* The stored dataset's size on disk and number of files (one ``<name>.parquet`` file, or a folder
  of shards when large).

The table gives each step's peak RSS growth over start-up. *embed* is the process's peak so far, as
a chain of steps sees it, so at least the import's; *embed own* is the embedding's alone: after the
import, Python's garbage and Arrow's unused pool are given back and the high-water mark is reset
(Linux ``/proc/self/clear_refs``), so it counts what the import still holds (``reset_mb`` in the
JSON) plus what the embedding adds. The last line compares the growth at the largest size with that
at the smallest, for the import and the embedding on its own: flat memory is ~1x while the data
grows 100x. All sizes are in MB of 10^6 bytes (RSS included).

Generating the input and fitting the encoder also run in processes of their own: a process
inherits its parent's peak RSS at ``fork`` as its own ``ru_maxrss``, so the parent keeps small (the
JSON also has each peak as ``VmHWM``, which starts afresh at ``exec``, as a check).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _scratch import scratch_space

MB = 1e6
CLASSES = 10
ROW_GROUP_PIXELS = 16 << 20  # pixels per input row group while generating (bounded memory)
FLAT_RATIO = 1.5  # RSS growth at the largest size over that at the smallest, up to which memory counts as flat


# -- the input ------------------------------------------------------------------------------------

def generate_input(path: Path, count: int, side: int, seed: int = 0) -> float:
    """Write ``count`` PNG-encoded RGB images of ``side`` pixels and their labels to the Parquet file
    ``path``, one row group of about 16 MB of pixels at a time; returns the seconds taken. Written
    under a temporary name first, so an interrupted run leaves no input that looks complete."""
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    t0 = time.perf_counter()
    layouts = np.random.default_rng(seed).integers(40, 216, (CLASSES, 4, 4, 3))  # a coarse colour grid per class
    rows = max(64, ROW_GROUP_PIXELS // (3 * side * side))
    schema = pa.schema([("image", pa.binary()), ("label", pa.int64())])
    partial = path.with_name(f".{path.name}.partial")
    with pq.ParquetWriter(str(partial), schema) as writer:
        for start in range(0, count, rows):
            k = min(rows, count - start)
            rng = np.random.default_rng([seed, start])
            labels = np.arange(start, start + k) % CLASSES
            coarse = np.clip(layouts[labels] + rng.normal(0, 30, (k, 4, 4, 3)), 0, 255).astype(np.uint8)
            shifts = rng.integers(0, side, (k, 2))
            noise = rng.normal(0, 4, (k, side, side, 3)).astype(np.float32)
            encoded = []
            for j in range(k):
                field = np.asarray(Image.fromarray(coarse[j]).resize((side, side), Image.BILINEAR), np.float32)
                field = np.roll(field, tuple(shifts[j]), axis=(0, 1)) + noise[j]
                buf = io.BytesIO()
                Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(buf, format="PNG")
                encoded.append(buf.getvalue())
            writer.write_table(pa.table({"image": pa.array(encoded, pa.binary()), "label": pa.array(labels)},
                                        schema=schema))
    partial.replace(path)
    return time.perf_counter() - t0


def fit_encoder(scratch: Path) -> dict:
    """Fit the pixels encoder's PCA on the built-in suite (built in the scratch folder on first use)
    and store it, so each measured process only reads it; its version, the seconds taken and the
    versions of the libraries the steps use."""
    import numpy
    import PIL
    import pyarrow
    import torch

    from raynas.ot import create_encoder
    from raynas.storage import Storage

    t0 = time.perf_counter()
    encoder = create_encoder("pixels", storage=Storage(scratch / "encoder"), home=scratch / "builtins")
    return {"encoder": encoder.version, "encoder_fit_s": time.perf_counter() - t0, "torch": torch.__version__,
            "pyarrow": pyarrow.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__}


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes and number of files of a dataset: its file, or every file under its folder."""
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


# -- one measured process -------------------------------------------------------------------------

def peak_mb() -> float:
    """This process's peak RSS so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak * 1024 / MB


def hwm_mb() -> float | None:
    """Peak RSS of this process's own address space (Linux ``VmHWM``): unlike ``ru_maxrss``, which a
    process inherits from its parent's peak at ``fork``, it starts afresh at ``exec``."""
    try:
        with open("/proc/self/status") as fh:
            line = next(x for x in fh if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024 / MB
    except (OSError, ValueError, StopIteration):
        return None


def current_mb() -> float | None:
    """This process's RSS now (Linux), to tell memory still held from a past peak."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError):
        return None


def reset_peak() -> float | None:
    """Give back what the last step left for reuse (Python garbage, Arrow's pool) and reset this
    process's high-water mark to its RSS now (Linux ``/proc/self/clear_refs``; ``ru_maxrss`` and
    ``VmHWM`` follow), so the next peak is the next step's own; the RSS at the reset, or None where
    the mark cannot be reset."""
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    return current_mb()


def measure_steps(spec: dict) -> dict:
    """Start-up, import, embedding in this (fresh) process; the numbers as a dict."""
    t0 = time.perf_counter()
    import pyarrow.parquet  # noqa: F401  (every module the steps use, so start-up is all imports)

    import raynas.data.stored  # noqa: F401
    import raynas.data.writer  # noqa: F401
    import raynas.ot.embedding  # noqa: F401
    from raynas.data import DatasetStore
    from raynas.data.importers import FILE_IMPORTS
    from raynas.ot import EmbeddingStore, create_encoder
    from raynas.storage import Storage

    scratch, home, name = Path(spec["scratch"]), Path(spec["home"]), spec["name"]
    encoder = create_encoder("pixels", storage=Storage(scratch / "encoder"), home=scratch / "builtins")
    store = DatasetStore(home)
    embeddings = EmbeddingStore(Storage(home / "embeddings"))
    out = {"startup_s": time.perf_counter() - t0, "start_mb": peak_mb(), "start_hwm_mb": hwm_mb(),
           "start_now_mb": current_mb()}

    t0 = time.perf_counter()
    plan = FILE_IMPORTS.get("parquet")(spec["input"], name=name)
    path, info = store.save_streamed(plan)
    out.update(import_s=time.perf_counter() - t0, import_mb=peak_mb(), import_hwm_mb=hwm_mb(),
               import_now_mb=current_mb(),
               images=info.num_images, stored_shape=list(info.shape))
    del plan
    out["reset_mb"] = reset_peak()

    t0 = time.perf_counter()
    embedding = embeddings.ensure(store.open(name), encoder)
    out.update(embed_s=time.perf_counter() - t0, embed_own_mb=None if out["reset_mb"] is None else peak_mb(),
               embed_mb=max(out["import_mb"], peak_mb()), embed_hwm_mb=hwm_mb(), embed_now_mb=current_mb(),
               embedded_sample=int(embedding.counts.sum()), encoder=encoder.version)
    stored_bytes, stored_files = disk_usage(store.path(name))
    out.update(stored_bytes=stored_bytes, stored_files=stored_files, stored_as="folder" if path.is_dir() else "file")
    return out


def in_subprocess(task: str, **spec) -> dict:
    """Run ``task`` (see :data:`TASKS`) in a fresh interpreter; its result, or the error it ended with.

    Everything that needs memory runs this way, so this process stays small: a child inherits its
    parent's peak RSS as its own ``ru_maxrss`` at ``fork``, which would hide the child's growth."""
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps([task, spec])],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines:
        return {"error": (run.stderr or run.stdout)[-3000:], "returncode": run.returncode, "process_s": wall}
    return dict(json.loads(lines[-1]), process_s=wall)


TASKS = {
    "generate": lambda spec: {"generate_s": generate_input(Path(spec["path"]), spec["count"], spec["side"])},
    "fit": lambda spec: fit_encoder(Path(spec["scratch"])),
    "measure": measure_steps,
}


# -- the report -----------------------------------------------------------------------------------

def derived(count: int, side: int, input_bytes: int, r: dict) -> dict:
    """Rates and RSS growth over start-up of one size's result ``r``."""
    d = {"images": count, "pixels_mb": count * 3 * side * side / MB, "input_mb": input_bytes / MB}
    if "error" in r:
        return d
    own = r.get("embed_own_mb")
    d.update(stored_mb=r["stored_bytes"] / MB, import_img_s=count / r["import_s"],
             embed_img_s=count / r["embed_s"], import_growth_mb=r["import_mb"] - r["start_mb"],
             embed_growth_mb=r["embed_mb"] - r["start_mb"],
             embed_own_growth_mb=None if own is None else own - r["start_mb"])
    return d


def print_table(rows: list[tuple[dict, dict]]) -> None:
    print(f"{'images':>10} {'pixels MB':>10} {'input MB':>9} {'stored MB':>10} {'files':>6} {'import s':>9} "
          f"{'import img/s':>13} {'embed s':>8} {'embed img/s':>12} {'start MB':>9} {'import +MB':>11} "
          f"{'embed +MB':>10} {'embed own +MB':>14}")
    for d, r in rows:
        left = f"{d['images']:>10,} {d['pixels_mb']:>10,.0f} {d['input_mb']:>9,.0f}"
        if "error" in r:
            last = (r["error"].strip().splitlines() or [""])[-1]
            print(f"{left}  failed (exit {r['returncode']}): {last}")
            continue
        own = d["embed_own_growth_mb"]
        print(f"{left} {d['stored_mb']:>10,.0f} {r['stored_files']:>6} {r['import_s']:>9.1f} "
              f"{d['import_img_s']:>13,.0f} {r['embed_s']:>8.1f} {d['embed_img_s']:>12,.0f} {r['start_mb']:>9,.0f} "
              f"{d['import_growth_mb']:>11,.0f} {d['embed_growth_mb']:>10,.0f} "
              f"{'n/a' if own is None else f'{own:,.0f}':>14}")


def flatness(rows: list[tuple[dict, dict]]) -> dict | None:
    """RSS growth at the largest measured size over that at the smallest, per step, and the verdict
    (on the import's and the embedding's own peaks; the chain's when the mark could not be reset)."""
    done = [d for d, r in rows if "error" not in r]
    if len(done) < 2:
        return None
    small, large = min(done, key=lambda d: d["images"]), max(done, key=lambda d: d["images"])
    out = {"smallest": small["images"], "largest": large["images"], "data_ratio": large["images"] / small["images"]}
    for step in ("import", "embed", "embed_own"):
        a, b = small[f"{step}_growth_mb"], large[f"{step}_growth_mb"]
        if a is None or b is None:
            out[f"{step}_ratio"] = out[f"{step}_mb_per_100k_images"] = None
            continue
        out[f"{step}_ratio"] = b / a if a > 0 else None
        out[f"{step}_mb_per_100k_images"] = (b - a) / (large["images"] - small["images"]) * 100_000
    embed = "embed_own" if out["embed_own_mb_per_100k_images"] is not None else "embed"
    out["judged_on"] = ["import", embed]
    out["flat"] = all(out[f"{k}_ratio"] is not None and out[f"{k}_ratio"] <= FLAT_RATIO for k in out["judged_on"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000", help="dataset sizes in images (default 10k,100k,1M)")
    p.add_argument("--side", type=int, default=32, help="side of the generated RGB images in pixels (default 32)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="scratch folder to use and keep (generated inputs are reused from it); default: a "
                        "temporary folder, removed afterwards")
    p.add_argument("--out", default=None, help="also write the numbers as JSON to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        task, spec = json.loads(args.child)
        print(json.dumps(TASKS[task](spec)))
        return
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or min(sizes) < 2 * CLASSES or args.side < 8:
        p.error(f"give sizes of at least {2 * CLASSES} images and a side of at least 8")
    load_before = os.getloadavg()[0]

    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        space = contextlib.nullcontext(Path(args.keep))
    else:
        space = scratch_space("raynas-import-scale-")
    rows, generated = [], {}
    with space as scratch:
        fitted = in_subprocess("fit", scratch=str(scratch))
        if "error" in fitted:
            sys.exit(f"fitting the pixels encoder failed:\n{fitted['error']}")
        encoder_version = fitted["encoder"]
        print(f"pixels encoder {encoder_version} ready in {fitted['encoder_fit_s']:.1f} s (fitted once, outside "
              "the measurement)", flush=True)
        for count in sizes:
            input_path = scratch / "inputs" / f"png-{count}-{args.side}px.parquet"
            input_path.parent.mkdir(parents=True, exist_ok=True)
            generated[count] = None
            if not input_path.exists():
                print(f"generating {count:,} PNGs of {args.side}x{args.side} ...", flush=True)
                made = in_subprocess("generate", path=str(input_path), count=count, side=args.side)
                if "error" in made:
                    sys.exit(f"generating the input failed:\n{made['error']}")
                generated[count] = made["generate_s"]
            print(f"measuring {count:,} images ...", flush=True)
            home = scratch / f"home-{count}"
            shutil.rmtree(home, ignore_errors=True)  # a new home every time: nothing imported or embedded yet
            r = in_subprocess("measure", scratch=str(scratch), home=str(home), input=str(input_path),
                              name=f"scale{count}")
            if "error" in r:
                print(f"  failed: {r['error'][-1500:]}", flush=True)
            else:
                print(f"  import {r['import_s']:.1f} s, embedding {r['embed_s']:.1f} s, peak RSS "
                      f"{r['start_mb']:.0f} -> {r['import_mb']:.0f} -> {r['embed_mb']:.0f} MB", flush=True)
            rows.append((derived(count, args.side, input_path.stat().st_size, r), r))
            if not args.keep:  # the next size's dataset and input need the disk more
                shutil.rmtree(home, ignore_errors=True)
                input_path.unlink()

    env = {"date": dt.date.today().isoformat(), "python": platform.python_version(),
           **{k: fitted[k] for k in ("torch", "pyarrow", "numpy", "pillow")},
           "platform": platform.platform(), "cpu_count": os.cpu_count(), "side": args.side, "channels": 3,
           "classes": CLASSES, "load_average_1min_before": round(load_before, 2), "encoder": encoder_version,
           "encoder_fit_s": fitted["encoder_fit_s"], "parent_peak_mb": peak_mb()}
    print(f"\nimport + embedding at scale, {env['date']}: {args.side}x{args.side} RGB PNGs in Parquet, "
          f"{CLASSES} classes; parquet import plan, pixels encoder ({encoder_version})")
    print(f"python {env['python']}, torch {env['torch']}, pyarrow {env['pyarrow']}, {env['cpu_count']} CPUs, "
          f"1-minute load average at start {load_before:.2f}; RSS = peak of a fresh process per size\n")
    print_table(rows)
    flat = flatness(rows)
    if flat:
        def ratio(step):
            x, per = flat[f"{step}_ratio"], flat[f"{step}_mb_per_100k_images"]
            return "n/a" if per is None else f"{'n/a' if x is None else f'{x:.2f}x'} ({per:+.1f} MB per 100k images)"

        print(f"\nRSS growth at {flat['largest']:,} vs {flat['smallest']:,} images (data {flat['data_ratio']:.0f}x): "
              f"import {ratio('import')}, embedding {ratio('embed')}, embedding on its own {ratio('embed_own')} "
              f"-> {'flat' if flat['flat'] else f'NOT flat (more than {FLAT_RATIO}x)'}")

    if args.out:
        results = [dict(d, **r, generate_s=generated[d["images"]]) for d, r in rows]
        with open(args.out, "w") as fh:
            json.dump({**env, "results": results, "flatness": flat}, fh, indent=2)


if __name__ == "__main__":
    main()
