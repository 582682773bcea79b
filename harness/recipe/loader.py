"""Load a recipe: TOML files joined through ``extends``, ``--set dotted.key=value`` overrides, validation.

    recipe = load_recipe("recipes/baselines/bm25-scifact.toml", overrides=["eval.depth=100"])

A child table is merged key by key into its base; scalars and lists replace. Each value remembers
which file (or ``--set``) gave it, so a problem names the file where it can be fixed. A recipe that
is not a file is looked up among the recipes shipped with the harness (``harness recipes`` lists them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import RecipeError
from harness.recipe.fields import Problems, build, to_dict
from harness.recipe.schema import Recipe

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and where it came from."""

    recipe: Recipe
    path: Path
    overrides: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()  # the file and every file it extends, child first
    config: dict[str, Any] = field(default_factory=dict)  # the validated recipe as plain data
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # dotted key -> file
    plugins: dict[str, str] = field(default_factory=dict)  # plug-in as named -> SHA-256 of its source

    def source_of(self, dotted: str) -> str:
        """The file (or ``--set``) that gave a field its value, for error messages."""
        probe = dotted
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            probe = probe.rpartition(".")[0]
        return _label(self.path)

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def hash(self) -> str:
        """Content hash of everything that changes results (the description does not; a plug-in by its source,
        and a recipe without plug-ins hashes as it did before they existed)."""
        data = {k: v for k, v in self.config.items() if k not in ("description", "name", "plugins")}
        if self.plugins:
            data["plugins"] = self.plugins
        return config_hash(data)


def config_hash(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# The recipes shipped with the harness: harness/recipes links to the repository's recipes/ folder.
SHIPPED = Path(__file__).resolve().parent.parent / "recipes"


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with the harness (``baselines/bm25-scifact`` …)."""
    return sorted(str(p.relative_to(SHIPPED).with_suffix("")) for p in SHIPPED.rglob("*.toml")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(SHIPPED).parts)
                  and not p.name.endswith(".expect.toml"))


def find_recipe(spec: "str | os.PathLike[str]") -> Path:
    """A path to an existing recipe file, or the shipped recipe with that name."""
    p = Path(spec).expanduser()
    for cand in (p, p.with_name(p.name + ".toml")):
        if cand.is_file():
            return cand
    name = str(spec).removesuffix(".toml")
    builtin = SHIPPED / f"{name}.toml"
    if builtin.is_file():
        return builtin
    shipped = ", ".join(builtin_recipes()) or "none"
    raise RecipeError([f"{spec}: recipe not found: no such file, and no shipped recipe of that name "
                       f"(shipped: {shipped})"])


NAME_LIMIT = 100  # a run directory's name: well under every file system's 255 bytes, with room for suffixes


def _label(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)  # relative inside the working directory


def _read_toml(path: Path, label_of_ref: str, ref_field: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RecipeError([f"{label_of_ref}: {ref_field}: file not found: {_label(path)}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError([f"{_label(path)}: not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise RecipeError([f"{_label(path)}: not UTF-8 text (byte {exc.start}: {exc.reason})"]) from None
    except RecursionError:
        raise RecipeError([f"{_label(path)}: not valid TOML: nested too deeply"]) from None
    except OSError as exc:
        raise RecipeError([f"{_label(path)}: cannot read: {exc.strerror}"]) from None


def _merge(base: dict, over: dict, label: str, prov: dict[str, str], prefix: str = "") -> dict:
    out = dict(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, label, prov, dotted + ".")
        else:
            out[key] = value
            prov[dotted] = label
            # a replaced table forgets where its old sub-keys came from
            for k in [k for k in prov if k.startswith(dotted + ".")]:
                prov[k] = label
            if isinstance(value, dict):
                _mark(value, label, prov, dotted + ".")
    return out


def _mark(table: dict, label: str, prov: dict[str, str], prefix: str) -> None:
    for key, value in table.items():
        prov[f"{prefix}{key}"] = label
        if isinstance(value, dict):
            _mark(value, label, prov, f"{prefix}{key}.")


def _resolve_extends(path: Path, stack: tuple[Path, ...], prov: dict[str, str],
                     files: list[Path]) -> dict[str, Any]:
    """The merged data of ``path`` and everything it extends (bases first)."""
    label = _label(path)
    data = _read_toml(path, _label(stack[-1]) if stack else label, "extends")
    files.append(path)
    parents = data.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError([f"{label}: extends: expected a file name or a list of file names, got {parents!r}"])
    merged: dict[str, Any] = {}
    for parent in parents:
        ppath = (path.parent / parent).resolve()
        if not ppath.is_file():
            for shipped in (SHIPPED / parent, SHIPPED / f"{parent}.toml"):
                if shipped.is_file():
                    ppath = shipped.resolve()
                    break
        if ppath in stack or ppath == path.resolve():
            chain = " -> ".join(_label(p) for p in (*stack, path, ppath))
            raise RecipeError([f"{label}: extends: cycle: {chain}"])
        base = _resolve_extends(ppath, (*stack, path.resolve()), prov, files)
        merged = _merge(merged, base, "", {}, "")
    # provenance of the base values was recorded while resolving them; now this file's own keys
    return _merge(merged, data, label, prov)


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` → (``"a.b"``, value parsed as TOML, else the raw string)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise RecipeError([f"--set {text}: expected dotted.key=value, e.g. --set eval.depth=100"])
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:
        raise RecipeError([f"--set {text[:80]}: the value is nested too deeply"]) from None
    return key, value


def _apply_override(data: dict, key: str, value: Any, label: str, prov: dict[str, str]) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
            prov.setdefault(".".join(parts[: i + 1]), label)
        elif not isinstance(nxt, dict):
            raise RecipeError([f"{label}: {'.'.join(parts[:i + 1])}: is not a table, cannot set {key}"])
        node = nxt
    node[parts[-1]] = value
    prov[key] = label
    if isinstance(value, dict):
        _mark(value, label, prov, key + ".")


def load_recipe(spec: "str | os.PathLike[str]", overrides: "list[str] | tuple[str, ...]" = ()) -> LoadedRecipe:
    """Read, merge and validate a recipe; raises :class:`RecipeError` listing every problem."""
    path = find_recipe(spec)
    prov: dict[str, str] = {}
    files: list[Path] = []
    data = _resolve_extends(path, (), prov, files)
    top = _label(path)
    for text in overrides:
        key, value = parse_override(text)
        _apply_override(data, key, value, f"{top} (--set {text})", prov)
    # a name inherited from a base file would make two recipes share a run directory
    if prov.get("name", top) not in (top,) and not prov.get("name", "").startswith(f"{top} (--set"):
        data.pop("name", None)
    data.setdefault("name", path.stem)
    prov.setdefault("name", top)

    def source_of(dotted: str) -> str:
        probe = re.sub(r"\[\d+\]", "", dotted)
        while probe:
            if probe in prov:
                return prov[probe]
            probe = probe.rpartition(".")[0]
        return top

    plugins = _load_plugins(data.get("plugins", []), source_of("plugins"), files, top)
    problems = Problems(source_of)
    recipe = build(Recipe, data, "", problems)
    if problems.lines or recipe is None:
        raise RecipeError(problems.lines or [f"{top}: invalid recipe"])
    name = recipe.name
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", name) or len(name) > NAME_LIMIT:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise RecipeError([f"{source_of('name')}: name: expected at most {NAME_LIMIT} letters, digits, '.', '_', "
                           f"'+' or '-' (it names the run directory), got \"{shown}\""])
    return LoadedRecipe(recipe=recipe, path=path, overrides=tuple(overrides), files=tuple(files),
                        config=to_dict(recipe), sources=dict(prov), plugins=plugins)


def _load_plugins(specs: Any, source: str, files: list[Path], top: str) -> dict[str, str]:
    """Import the recipe's plug-ins before its fields are checked (they register the names it may use). A
    file is found relative to the recipe file that names it (the working directory for ``--set``)."""
    from harness.plugins import load_plugin

    if not isinstance(specs, list) or not all(isinstance(s, str) and s for s in specs):
        return {}  # the schema reports the bad value
    base = Path.cwd()
    for f in files:
        if _label(f) == source:
            base = f.parent
            break
    return {spec: load_plugin(spec, base, f"{source}: plugins[{i}]") for i, spec in enumerate(specs)}
