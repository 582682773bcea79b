"""Named implementations of the harness's extension points (ir_measures' measure registry is the model).

A registry maps the names a recipe may write (``distill.loss = "margin-mse"``) to the implementation that
registered itself under that name where it is defined::

    from harness.distill.losses import LOSSES

    @LOSSES.register("my-loss")
    class MyLoss(torch.nn.Module):
        ...

The shipped implementations live in one module per registry (``home``), imported on the first lookup, so
naming a registry costs nothing until a recipe is checked. An unknown name is one line that lists the
registered ones (:class:`UnknownName`, a ``ValueError``); registering a taken name is an error too, so a
plug-in cannot silently replace a built-in.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """A name no implementation registered (the message lists the registered ones)."""


class Registry(Generic[T]):
    def __init__(self, kind: str, home: str):
        self.kind = kind  # what one entry is, in messages: "loss", "regulariser", ...
        self.home = home  # module whose import registers the shipped implementations
        self._items: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.home)
            from harness.plugins import load_entry_points

            load_entry_points()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under ``name``."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")

        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered already (by {_origin(self._items[name])})")
            self._items[name] = obj
            return obj

        return add

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}") from None

    def check(self, *extra: str) -> Callable[[Any], "str | None"]:
        """A recipe-field check: the value must be a registered name (or one of ``extra``)."""
        def check(value: Any) -> "str | None":
            if value in extra or value in self:
                return None
            return "one of " + ", ".join([*extra, *self.names()])

        check.words = f"a registered {self.kind} name"  # type: ignore[attr-defined]
        return check


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


# ---- the registries ------------------------------------------------------------------------------------
# (defined here, not beside their implementations, so a recipe's schema can name them without importing torch)

#: distillation losses: ``distill.loss``. An entry is a :class:`harness.distill.losses.base.Loss` subclass (a
#: ``torch.nn.Module`` with ``from_settings(distill) -> instance`` and ``forward(scores (B, G), targets (B, G))
#: -> scalar``).
LOSSES: Registry[Any] = Registry("loss", "harness.distill.losses")

#: regularisers of a student's representations (FLOPS for sparse ones). An entry is a ``torch.nn.Module``
#: class with ``forward(reps (N, dim)) -> scalar``.
REGULARISERS: Registry[Any] = Registry("regulariser", "harness.distill.losses")

#: the students' indexes, by the family they serve: a :class:`harness.index.base.StudentIndex` subclass.
INDEXES: Registry[Any] = Registry("index backend", "harness.index.backends")

#: distillation variants, by ``distill.variant``: a :class:`harness.distill.variants.Variant` subclass.
VARIANTS: Registry[Any] = Registry("distillation variant", "harness.distill.variants")

#: student families, by ``student.family``: a :class:`harness.students.families.Family` subclass.
FAMILIES: Registry[Any] = Registry("student family", "harness.students.families")
