"""A finished run, taken outside the harness: ``harness export RUN --to DIR``.

    DIR/
      model/              the trained student as saved (PyLate / sentence-transformers / Hugging Face layout)
      model/README.md     its model card: base model, teacher, variant, data, steps, the run's metrics, how to load it
      runs/<dataset>.trec           TREC run files (ranx ``Run.from_file``, PyTerrier ``pt.io.read_results``,
                                    trec_eval read them)
      metrics/<dataset>.tsv         per-query metrics, ir_measures' long format: query_id, measure, value
      results.csv                   the run's leaderboard rows: recipe, dataset, measure, value, recipe hash
      lucene/<dataset>/             SPLADE: the run's Lucene impact index of each dataset, which a plain Pyserini
                                    ``LuceneImpactSearcher`` serves with the exported model as query encoder

Every run (BM25, a reranker) exports its run files and metrics; a student run exports its model too.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

from harness.errors import UserInputError

LOAD = {
    "colbert": ("PyLate", '''```python
from pylate import models
model = models.ColBERT(model_name_or_path="{path}"{colbert_lengths})
queries = model.encode(["a query"], is_query=True)
docs = model.encode(["a passage"], is_query=False)
```

sentence-transformers' `MultiVectorEncoder` (6.x) reads the same folder, its lengths from
`config_sentence_transformers.json` (which `harness export` sets to the served ones).'''),
    "splade": ("sentence-transformers", '''```python
from sentence_transformers import SparseEncoder
model = SparseEncoder("{path}")  # MLMTransformer + SpladePooling (max){st_length}
embeddings = model.encode(["a passage"])
```

naver/splade and Hugging Face `AutoModelForMaskedLM` load it too: the weights of a term are
max over tokens of log(1 + ReLU(logits)).'''),
    "dense": ("sentence-transformers", '''```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{path}"){st_length}
embeddings = model.encode(["a query", "a passage"])
```'''),
}


def served_lengths(results: dict[str, Any]) -> "tuple[int, int] | None":
    """(query tokens, passage tokens) the run served its student at (from its figures), or None."""
    for figures in results.get("figures", {}).values():
        if figures.get("query_max_len") and figures.get("doc_max_len"):
            return int(figures["query_max_len"]), int(figures["doc_max_len"])
    return None


def _load_snippet(family: str, path: str, lengths: "tuple[int, int] | None") -> str:
    """The family's loading code, reading texts at the served lengths: a saved folder records its training
    lengths, at which the anchors would cut passages and score otherwise than the run."""
    snippet = LOAD.get(family, ("", ""))[1]
    colbert = st = ""
    if lengths:
        q, d = lengths
        colbert = f", query_length={q}, document_length={d}"
        st = f"\nmodel.max_seq_length = {d}  # as the run read passages" + (
            f" (it read queries at {q}: set that before encoding queries)" if q != d else " and queries")
    return snippet.format(path=path, colbert_lengths=colbert, st_length=st) if snippet else ""


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{path}: not a finished run ({exc})") from None


def student_dir(manifest: dict[str, Any]) -> "Path | None":
    """The saved model of the run's own student (the last student stage: a self-distilled run also lists its
    teacher-student's first)."""
    stages = [s for s in manifest.get("stages", []) if s["name"].startswith("student-")]
    return Path(stages[-1]["dir"]) / "model" if stages else None


def model_card(results: dict[str, Any], manifest: dict[str, Any], load_path: str = ".") -> str:
    """A model card (Hugging Face README.md, YAML front matter) from a run's results.json and manifest.json."""
    config = manifest.get("config", {})
    student, teacher, distill, train = (config.get(k, {}) for k in ("student", "teacher", "distill", "train"))
    family = student.get("family", "?")
    training = results.get("training", {})
    library = LOAD.get(family, ("", ""))[0]
    lengths = served_lengths(results)
    snippet = _load_snippet(family, load_path, lengths)
    models = {"cross-encoder": f"cross-encoder `{_hub(teacher.get('model'))}`",
              "bi-encoder": f"bi-encoder `{_hub(teacher.get('bi_encoder', {}).get('model'))}`", "bm25": "BM25",
              "student": f"the trained student of `{teacher.get('student', {}).get('recipe')}`"}
    if teacher.get("kind") == "ensemble":
        ens = teacher.get("ensemble", {})
        teacher_name = "ensemble of " + " + ".join(
            f"{w:g} × {models.get(m, m)}" for m, w in zip(ens.get("members", []), ens.get("weights", [])))
    else:
        teacher_name = models.get(teacher.get("kind"), str(teacher.get("kind")))
    variant = distill.get("variant", "?")
    uses_teacher = variant in ("static", "online", "multitask")
    lines = ["---", f"base_model: {_hub(student.get('model'))}"]
    if library:
        lines.append(f"library_name: {library.lower()}")
    lines += ["tags:", "- distill-harness", "- knowledge-distillation", f"- {family}", f"- {variant}",
              f"datasets:\n- {train.get('dataset')}", "---", "",
              f"# {results.get('recipe')}", "",
              results.get("description") or "", "",
              "Trained and evaluated by [distill-harness](https://github.com/distill-harness/distill-harness) "
              f"from the recipe `{Path(results.get('recipe_file', '')).name}` (hash `{results.get('recipe_hash', '')[:12]}`).",
              "", "| | |", "|---|---|",
              f"| student | {family}, from `{_hub(student.get('model'))}`"
              + (f", {student.get('layers')} layers" if student.get("layers") else "") + " |",
              f"| distillation | variant `{variant}`, loss `{training.get('loss', distill.get('loss'))}` |"]
    if uses_teacher:
        lines.append(f"| teacher | {teacher_name} |")
    if variant == "self":
        lines.append(f"| teacher | the trained student of `{distill.get('self', {}).get('teacher')}` |")
    lines += [f"| training data | `{train.get('dataset')}` ({training.get('examples', '?')} examples, "
              f"{100 * train.get('dev_fraction', 0):g}% of its queries held out as a dev split) |",
              f"| training | {training.get('steps', 0)} steps of {train.get('batch_queries')} queries, lr {train.get('lr')}, "
              f"{training.get('precision', '?')}, {training.get('train_seconds', '?')} s on {training.get('device', '?')} |",
              f"| lengths | queries {student.get('query_max_len')} / passages {student.get('doc_max_len')} tokens "
              "while training; " + (f"served at queries {lengths[0]} / passages {lengths[1]} |" if lengths else
                                    "the backbone's maximum when serving unless the recipe says otherwise |"), "",
              "## Results", "", "Measured by the run (ir_measures):", ""]
    measures = sorted({m for v in results.get("results", {}).values() for m in v})
    lines += ["| dataset | queries | " + " | ".join(measures) + " |", "|---|---:|" + "---:|" * len(measures)]
    for ds, values in results.get("results", {}).items():
        lines.append(f"| {ds} | {results.get('queries', {}).get(ds, '')} | "
                     + " | ".join(f"{values[m]:.4f}" if m in values else "–" for m in measures) + " |")
    if snippet:
        lines += ["", f"## Use it ({library})", "", snippet]
    env = manifest.get("environment", {})
    if env:
        v = env.get("versions", {})
        lines += ["", "## Provenance", "",
                  f"Run `{results.get('recipe')}` finished {manifest.get('finished', '')} on {env.get('device', '?')}; "
                  f"distill-harness {v.get('distill-harness', '?')} (git {str((env.get('git') or {}).get('commit') or '?')[:12]}), "
                  f"torch {v.get('torch', '?')}, transformers {v.get('transformers', '?')}."]
    return "\n".join(lines).rstrip() + "\n"


SERVE_SPLADE = '''## Serve it without the harness (Pyserini)

`harness export` copies each dataset's Lucene impact index to `lucene/<dataset>/` (documents under their own
ids, weights quantised × {scale}); Pyserini searches it with this model as its query encoder (max over
tokens of log(1 + ReLU(logits)), as the harness encodes; Pyserini quantises query weights on its own scale,
which leaves the ranking as it is up to rounding):

```python
from pyserini.encode import SpladeQueryEncoder
from pyserini.search.lucene import LuceneImpactSearcher
searcher = LuceneImpactSearcher("{index}", SpladeQueryEncoder("{path}"), min_idf=-1)
hits = searcher.search("a query", k=10)  # hits[i].docid: the collection's own passage ids
```'''


def lucene_indexes(results: dict[str, Any], manifest: dict[str, Any]) -> "dict[str, Path]":
    """{dataset: Lucene impact index directory} of a SPLADE run, for the indexes that hold the passages' own
    ids (every one built since they do; an older one holds positions and is not served outside)."""
    from harness.index.impact import LUCENE_IDS

    by_hash = {s["hash"]: Path(s["dir"]) for s in manifest.get("stages", []) if s["name"] == "splade-index"}
    out: dict[str, Path] = {}
    for ds, files in results.get("files", {}).items():
        try:
            key = json.loads((Path(files["run"]).parent / "manifest.json").read_text()).get("key", {})
        except (OSError, ValueError, KeyError):
            continue
        d = by_hash.get(key.get("index"))
        if d is not None and (d / LUCENE_IDS).is_file() and (d / "index").is_dir():
            out[ds] = d / "index"
    return out


def _hub(name: "str | None") -> str:
    """The public name of a model a recipe names by alias (``minilm``)."""
    from harness.models import MINILM_NAMES

    return "sentence-transformers/all-MiniLM-L6-v2" if str(name).lower() in MINILM_NAMES else str(name)


def _slug(ds: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ds).strip("-")


def export_run(run_dir: Path, out: Path) -> dict[str, Any]:
    """Write ``out`` (see the module's doc); returns what was written."""
    run_dir = Path(run_dir)
    results, manifest = _read(run_dir / "results.json"), _read(run_dir / "manifest.json")
    out = Path(out)
    written: dict[str, Any] = {"runs": [], "metrics": []}
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "metrics").mkdir(parents=True, exist_ok=True)
    rows = []
    for ds, files in results.get("files", {}).items():
        run = out / "runs" / f"{_slug(ds)}.trec"
        shutil.copyfile(files["run"], run)
        written["runs"].append(str(run))
        metrics = out / "metrics" / f"{_slug(ds)}.tsv"
        with open(files["per_query"], encoding="utf-8") as src, open(metrics, "w", encoding="utf-8") as dst:
            header = src.readline().rstrip("\n").split("\t")[1:]
            for line in src:
                qid, *values = line.rstrip("\n").split("\t")
                for m, v in zip(header, values):
                    dst.write(f"{qid}\t{m}\t{v}\n")
        written["metrics"].append(str(metrics))
        for m, v in results["results"][ds].items():
            rows.append([results["recipe"], ds, m, f"{v:.6f}", results.get("recipe_hash", "")[:12]])
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["recipe", "dataset", "measure", "value", "recipe_hash"])
        w.writerows(rows)
    model = student_dir(manifest) if results.get("method") == "student" else None
    if model is not None:
        if not model.is_dir():
            raise UserInputError(f"{run_dir}: its student {model} is gone (harness gc?); re-run the recipe")
        shutil.copytree(model, out / "model", dirs_exist_ok=True)
        lengths = served_lengths(results)
        family = manifest.get("config", {}).get("student", {}).get("family")
        if lengths and family:  # the exported folder reads texts as the run served them, loaded with no arguments
            from harness.registry import FAMILIES

            if family in FAMILIES:
                written["serving_lengths"] = FAMILIES[family]().set_serving_lengths(out / "model", *lengths)
        card = model_card(results, manifest, str((out / "model").resolve()))
        indexes = lucene_indexes(results, manifest)
        for ds, index in indexes.items():
            dest = out / "lucene" / _slug(ds)
            shutil.copytree(index, dest, dirs_exist_ok=True)
            written.setdefault("lucene", {})[ds] = str(dest)
        if indexes:
            first = out / "lucene" / _slug(next(iter(indexes)))
            scale = manifest.get("config", {}).get("index", {}).get("impact", {}).get("quantization", 100)
            card += "\n" + SERVE_SPLADE.format(index=first.resolve(), path=(out / "model").resolve(), scale=scale) + "\n"
        (out / "model" / "README.md").write_text(card)
        written["model"] = str(out / "model")
    return written
