"""Build a small zoo, rank it for a new dataset by OT distance, and warm-start a search from it.

    python examples/zoo_and_warm_start.py [--home DIR] [--target glyph-digits]

Pretrains three tiny supernets (one per source dataset, target left out), prints the OT
ranking of the sources for the target, then runs the same short search twice, from scratch
and warm-started from the nearest source, and prints both validation curves. Uses the
`tiny` preset so it finishes in a minute or two on a laptop CPU.
"""

import argparse
import tempfile

from raynas.data import DatasetStore
from raynas.ot.encoders import create_encoder
from raynas.search.config import SearchConfig
from raynas.search.loop import run_search
from raynas.service import open_embeddings, open_zoo
from raynas.transfer.ranking import rank_zoo
from raynas.transfer.warm_start import warm_start
from raynas.zoo.build import plan_jobs, run_jobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="raynas home (default: a temporary directory)")
    parser.add_argument("--target", default="glyph-digits")
    parser.add_argument("--sources", default="glyph-upper,mnist5k,textures")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="raynas-example-")
    store = DatasetStore(home)
    zoo_storage, embedding_storage = store.home.shared()

    # 1. pretrain one supernet per source and publish it with its OT embedding
    template = SearchConfig(dataset=args.target, preset="tiny", epochs=2, max_steps_per_epoch=8)
    jobs = plan_jobs(args.sources.split(","), template, store.home, zoo_storage, embedding_storage, "pixels")
    for row in run_jobs(jobs, parallel=False, verbose=False):
        print(f"published {row['name']}: val acc {row['accuracy']:.3f}")

    # 2. rank the zoo's sources for the target
    zoo, embeddings = open_zoo(zoo_storage), open_embeddings(embedding_storage)
    encoder = create_encoder("pixels", storage=embedding_storage, home=store.home)
    for row in rank_zoo(args.target, zoo.list(), store, embeddings, encoder).rows():
        print(f"  {row['rank']}. {row['source']:<14} {row['method']} distance {row['distance']:.4g}")

    # 3. the same search from scratch and warm-started from the nearest source
    for transfer in ("scratch", "ot"):
        config = SearchConfig(dataset=args.target, preset="tiny", epochs=3, max_steps_per_epoch=8, transfer=transfer)
        model, record = warm_start(config, store, zoo, embeddings, embedding_storage)
        result = run_search(config, store=store, initial_model=model, transfer=record, verbose=False)
        curve = " ".join(f"{h['val_acc']:.3f}" for h in result.history)
        print(f"{transfer:>8} (source {record.get('source') or '-'}): val acc by epoch {curve}")
    print(f"home: {home}")


if __name__ == "__main__":
    main()
