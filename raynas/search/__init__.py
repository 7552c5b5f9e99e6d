"""The search engine: algorithms, the bilevel loop, checkpoints and run directories."""
