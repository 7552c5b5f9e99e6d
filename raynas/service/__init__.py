"""Serving the zoo and the embedding store to many jobs and trials at once, with Ray actors.

:func:`open_zoo` and :func:`open_embeddings` return one interface whether a Ray cluster is
connected (a named, detached actor in namespace ``raynas`` serves the storage) or not (the
storage is used directly), so callers have a single code path.
"""

from raynas.service.handles import open_embeddings, open_zoo

__all__ = ["open_embeddings", "open_zoo"]
