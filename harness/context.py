"""The state one recipe run carries through its stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.artifacts import Store
from harness.recipe import LoadedRecipe


@dataclass
class RunContext:
    loaded: LoadedRecipe
    store: Store
    run_dir: Path
    warnings: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # per-run memo: loaded teachers, datasets …

    @property
    def recipe(self):
        return self.loaded.recipe

    @property
    def run_name(self) -> str:
        """The run directory under the store's root (a stage scope): ``<recipe>`` or ``<recipe>/seed-<k>``."""
        return self.run_dir.relative_to(self.store.root).as_posix()

    @property
    def stages(self):
        """The run's :class:`~harness.stages.graph.StageGraph`: every stage it builds, wired from the recipe."""
        if "_graph" not in self.__dict__:
            from harness.stages.graph import StageGraph

            self.__dict__["_graph"] = StageGraph(self)
        return self.__dict__["_graph"]

    def memo(self, key: str, make):
        """Compute once per run (models loaded once, passage embeddings encoded once)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]
