"""Stage 6, the student's index over an eval corpus: passages encoded at the evaluation length, written to
the family's index (``index.search = "index"``) or kept for exhaustive search only (``"exact"``)."""

from __future__ import annotations

from typing import Callable

from harness.artifacts import SHARED, Stage, Store
from harness.artifacts.environment import package_versions
from harness.data import Dataset


def index_stage(store: Store, recipe, student: Stage, ds: Dataset, load_student: Callable) -> Stage:
    """``student`` (loaded by ``load_student``) over ``ds``'s corpus, per ``[index]``, ``data.doc_fields``
    and the passage evaluation length of ``[student]``."""
    from harness.index.students import index_corpus
    from harness.students import eval_lengths
    from harness.students.families import family_of

    _, doc_len = eval_lengths(recipe)
    fields = recipe.data.doc_fields
    approximate = recipe.index.search == "index"
    index_cfg = family_of(recipe).index_key(recipe) if approximate else {"search": "exact"}
    stage = store.stage(f"{recipe.student.family}-index", {
        "student": student.hash, "corpus": ds.corpus_fingerprint(), "fields": list(fields),
        "doc_max_len": doc_len, **index_cfg, "versions": package_versions()}, scope=SHARED)
    with stage.ensure(collective=True) as out:  # under torchrun the ranks share the encoding
        if out is not None:
            docs = ((d.doc_id, d.contents(fields)) for d in ds.docs())  # read as they are encoded
            stage.info.update(index_corpus(recipe.student.family, load_student(), docs, out, recipe.index, doc_len,
                                           approximate))
    return stage
