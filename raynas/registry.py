"""A tiny name -> object registry, one per concept (datasets, importers, ops, algorithms...)."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from raynas.errors import RaynasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects and fails with the list of valid names on a miss."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise RaynasError(
                f"unknown {self.kind} '{name}'",
                f"{hint}choose one of: {', '.join(self.names())}",
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
