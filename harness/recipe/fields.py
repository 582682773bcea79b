"""A small declarative validator: recipe sections are dataclasses whose fields carry their checks.

Each problem becomes one line ``<source>: <dotted.field>: <what is wrong>``, where ``<source>`` is the
file (or ``--set``) that gave the value. Unknown keys get a did-you-mean. Nothing here imports a heavy
library, so validating a recipe costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import MISSING
from typing import Any, Callable, Literal, get_args, get_origin

# A check returns None when the value is fine, else the words that complete "expected ...".
Check = Callable[[Any], "str | None"]


def param(default: Any = MISSING, *, doc: str = "", check: "Check | None" = None, expect: str = "") -> Any:
    """A recipe field. ``expect`` names what is wanted ("a positive integer") in error messages."""
    meta = {"doc": doc, "check": check, "expect": expect}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ---- reusable checks -------------------------------------------------------------------------

def _words(words: str) -> Callable[[Check], Check]:
    """Attach the words of a check, so a value of the wrong type is told what is wanted too."""

    def mark(check: Check) -> Check:
        check.words = words  # type: ignore[attr-defined]
        return check

    return mark


@_words("a positive number")
def positive(v: Any) -> "str | None":
    return None if v > 0 else "a positive number"


@_words("a non-negative number")
def non_negative(v: Any) -> "str | None":
    return None if v >= 0 else "a non-negative number"


def between(lo: float, hi: float) -> Check:
    @_words(f"a number between {lo:g} and {hi:g}")
    def check(v: Any) -> "str | None":
        return None if lo <= v <= hi else f"a number between {lo:g} and {hi:g}"

    return check


def positive_at_most(hi: float) -> Check:
    @_words(f"a positive number of at most {hi:g}")
    def check(v: Any) -> "str | None":
        return None if 0 < v <= hi else f"a positive number of at most {hi:g}"

    return check


def one_of(*options: Any) -> Check:
    words = "one of " + ", ".join(str(o) for o in options)

    @_words(words)
    def check(v: Any) -> "str | None":
        return None if v in options else words

    return check


# every integer field fits a signed 32-bit integer (Java, torch, numpy seeds, file formats all take it)
INT_LIMIT = 2**31 - 1


@_words("a non-empty list")
def non_empty(v: Any) -> "str | None":
    return None if len(v) > 0 else "a non-empty list"


# ---- rendering -------------------------------------------------------------------------------

def render(value: Any) -> str:
    """A value as the user wrote it, roughly (strings in double quotes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return str(value)


def _type_words(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if origin is Literal:
        return "one of " + ", ".join(render(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp)
        return f"a list of {_type_words(inner).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        _, inner = get_args(tp)
        return f"a table of {_type_words(inner).removeprefix('an ').removeprefix('a ')}s"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if _is_optional(tp):
        return _type_words(_strip_optional(tp))
    return str(tp)


def _is_optional(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


def _strip_optional(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    return args[0]


def suggest(word: str, options: "list[str]") -> "str | None":
    """The option the user most likely meant: a close spelling, or one that is a prefix of the other."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    low = word.lower()
    for opt in options:
        o = opt.lower()
        if low == o or (min(len(o), len(low)) >= 3 and (low.startswith(o) or o.startswith(low))):
            return opt
    return None


# ---- the validator ---------------------------------------------------------------------------

class Problems:
    """Collects one-line problems, each attributed to the source that set the field."""

    def __init__(self, sources: "Callable[[str], str]"):
        self._source_of = sources
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        shown = path if path.isprintable() else json.dumps(path, ensure_ascii=False)[1:-1]  # one line, always
        if not message.isprintable():
            message = message.encode("unicode_escape").decode("ascii")
        self.lines.append(f"{self._source_of(path)}: {shown}: {message}")


PLUGIN_TABLES = "_plugins"  # the field that holds a section's plug-in tables


def plugin_tables(cls: type) -> dict[str, type]:
    """Plug-in tables a section accepts: ``{name: settings dataclass}`` of every entry of the registries the
    section names in ``__plugin_registries__`` that declares ``Settings`` (``[student.<family>]``,
    ``[distill.<variant>]``, ``[distill.<loss>]``)."""
    out: dict[str, type] = {}
    for registry in getattr(cls, "__plugin_registries__", ()):
        for name in registry.names():
            settings = getattr(registry[name], "Settings", None)
            if settings is not None and dataclasses.is_dataclass(settings):
                out[name] = settings
    return out


def plugin_settings(section: Any, name: str, settings: type) -> Any:
    """A plug-in's validated table in ``section`` (``[student.<name>]``, …), else its defaults."""
    found = getattr(section, PLUGIN_TABLES, None) or {}
    return found[name] if name in found else settings()


def build(cls: type, data: Any, path: str, problems: Problems) -> Any:
    """Turn a TOML table into an instance of dataclass ``cls``, recording problems; returns None on failure.

    A plug-in's table inside a section that accepts them is built from the plug-in's own ``Settings``
    dataclass exactly like a built-in table (types, checks, unknown keys, the file that set each field)."""
    if not isinstance(data, dict):
        problems.add(path, f"expected a table, got {render(data)}")
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    tables = plugin_tables(cls) if any(k not in known for k in data) else {}
    ok = True
    extra: dict[str, Any] = {}
    for key in data:
        if key in tables:
            where = f"{path}.{key}" if path else key
            section = build(tables[key], data[key], where, problems)
            ok &= section is not None
            extra[key] = section
            continue
        if key not in known:
            where = f"{path}.{key}" if path else key
            close = suggest(key, list(known) + list(tables))
            hint = f'; did you mean "{close}"?' if close else f"; known keys: {', '.join(sorted(known))}"
            problems.add(where, f"unknown key{hint}")
            ok = False
    values: dict[str, Any] = {}
    for name, f in known.items():
        where = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
                problems.add(where, "missing (required)")
                ok = False
            continue
        value, good = _convert(hints[name], data[name], where, problems, f.metadata)
        ok &= good
        if good:
            values[name] = value
    if not ok:
        return None
    if extra:
        values[PLUGIN_TABLES] = extra
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__ cross-field checks raise ValueError("field: message")
        field_name, _, message = str(exc).partition(": ")
        problems.add(f"{path}.{field_name}" if path else field_name, message)
        return None


def _convert(tp: Any, value: Any, where: str, problems: Problems, meta: Any) -> "tuple[Any, bool]":
    expect = (meta or {}).get("expect") or ""
    check = (meta or {}).get("check")

    raw = value

    def fail(words: str = "") -> "tuple[Any, bool]":
        if not words and not expect and check is not None and hasattr(check, "words") \
                and tp in (int, float):
            words = _qualify(check.words, tp)
        problems.add(where, f"expected {words or expect or _type_words(tp)}, got {render(raw)}")
        return None, False

    if _is_optional(tp):
        tp = _strip_optional(tp)
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        obj = build(tp, value, where, problems)
        return obj, obj is not None
    if tp is bool:
        if not isinstance(value, bool):
            return fail()
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return fail()
        if abs(value) > INT_LIMIT:
            return fail(f"an integer of at most {INT_LIMIT:,} in size")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return fail()
        if isinstance(value, int) and abs(value) > 1e300:
            return fail("a finite number")
        value = float(value)
        if not math.isfinite(value):
            return fail("a finite number")
    elif tp is str:
        if not isinstance(value, str):
            return fail()
    elif origin is Literal:
        if value not in get_args(tp):
            close = suggest(str(value), [str(a) for a in get_args(tp)])
            hint = f'; did you mean "{close}"?' if close else ""
            problems.add(where, f"expected {_type_words(tp)}, got {render(value)}{hint}")
            return None, False
    elif origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, list):
            return fail()
        out = []
        for i, item in enumerate(value):
            v, good = _convert(inner, item, f"{where}[{i}]", problems, None)
            if not good:
                return None, False
            out.append(v)
        value = out
    elif origin is dict:
        _, inner = get_args(tp)
        if not isinstance(value, dict):
            return fail()
        out_d = {}
        for k, item in value.items():
            v, good = _convert(inner, item, f"{where}.{k}", problems, None)
            if not good:
                return None, False
            out_d[k] = v
        value = out_d
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported recipe field type {tp!r} at {where}")
    if check is not None:
        words = check(value)
        if words is not None:
            return fail(expect or _qualify(words, tp))
    return value, True


def _qualify(words: str, tp: Any) -> str:
    """'a positive number' → 'a positive integer' for int fields."""
    if tp is int:
        return words.replace("number", "integer")
    return words


def to_dict(obj: Any) -> Any:
    """A validated recipe back to plain TOML-like data (for hashing and the manifest)."""
    if dataclasses.is_dataclass(obj):
        out = {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
        out.update(to_dict(getattr(obj, PLUGIN_TABLES, None) or {}))  # plug-in tables, as the recipe wrote them
        return out
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
