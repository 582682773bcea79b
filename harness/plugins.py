"""User plug-ins: Python files or modules that register losses, regularisers, … in :mod:`harness.registry`.

A recipe names them::

    plugins = ["my_kd.py", "my_package.losses"]   # a file (relative to the recipe that names it) or a module

and installed packages may register through the entry-point group ``distill_harness.plugins`` (each entry
point is imported once, before the first registry lookup). A plug-in is imported once per process (by
resolved path), so recipes of a suite that share one do not register twice. Its registrations then work in
``run``, ``suite`` and ``validate`` alike; a plug-in's names are checked like the shipped ones.

What a plug-in is, for the cache: the loaded recipe keeps the SHA-256 of each plug-in's source
(``LoadedRecipe.plugins``), which the student's stage key holds, so editing a plug-in retrains what it trains.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

from harness.errors import RecipeError

ENTRY_POINT_GROUP = "distill_harness.plugins"
_loaded: dict[str, str] = {}  # resolved path or module name -> source SHA-256
_entry_points_loaded = False


def _source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _failure(exc: BaseException, path: "Path | None") -> str:
    """'ValueError: message (my_kd.py, line 12)': the error and where in the plug-in it happened."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if path is not None and Path(f.filename).resolve() == path.resolve()]
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" (line {exc.lineno})"
    elif mine:
        where = f" (line {mine[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")


def load_plugin(spec: str, base: Path, where: str) -> str:
    """Import one plug-in (a ``.py`` file relative to ``base``, else a module name); returns the SHA-256 of
    its source. ``where`` ("recipe.toml: plugins[0]") prefixes errors."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = (base / spec).expanduser().resolve()
        key = str(path)
        if key in _loaded:
            return _loaded[key]
        if not path.is_file():
            raise RecipeError([f"{where}: file not found: {spec} (looked in {base.resolve()})"])
        name = "distill_harness_plugin_" + hashlib.sha256(key.encode()).hexdigest()[:12]
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:  # the plug-in's own error, named with its line
            sys.modules.pop(name, None)
            raise RecipeError([f"{where}: {spec}: cannot load: {_failure(exc, path)}"]) from None
        _loaded[key] = _source_digest(path)
        return _loaded[key]
    if spec in _loaded:
        return _loaded[spec]
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise RecipeError([f"{where}: no file or module named {spec!r}"]) from None
        raise RecipeError([f"{where}: {spec}: cannot load: {_failure(exc, None)}"]) from None
    except Exception as exc:
        file = getattr(sys.modules.get(spec), "__file__", None)
        raise RecipeError([f"{where}: {spec}: cannot load: {_failure(exc, Path(file) if file else None)}"]) from None
    file = getattr(module, "__file__", None)
    _loaded[spec] = _source_digest(Path(file)) if file else ""
    return _loaded[spec]


def load_entry_points() -> None:
    """Import every installed ``distill_harness.plugins`` entry point (once per process)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise RecipeError([f"entry point {ep.name} ({ep.value}) of group {ENTRY_POINT_GROUP}: cannot load: "
                               f"{_failure(exc, None)}"]) from None
