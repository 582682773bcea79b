"""Student families: what the harness needs to know about SPLADE, ColBERT and dense bi-encoders, by name.

Each family is a :class:`Family` registered in :data:`harness.registry.FAMILIES` under the name a recipe
writes in ``student.family``. Everything family-specific outside the student's own module — how to build
or load it, its settings, its default loss and regulariser, its index settings, the cache-key facts that
make two students different — is asked of the family, never decided by comparing its name. This module
imports no torch: recipes name families before any model is loaded. A new family is one module with a
:class:`~harness.students.base.Student` subclass, a :class:`Family` and a
:class:`~harness.index.base.StudentIndex` (see docs/extending.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

from harness.registry import FAMILIES

log = logging.getLogger("harness")


class Family:
    name: ClassVar[str]
    default_loss: ClassVar[str] = "margin-mse"
    random_init: ClassVar[bool] = False  # building it from a backbone draws new weights (seed-dependent)
    #: a plug-in family's ``[student.<name>]`` table: a frozen dataclass of ``harness.recipe.fields.param``
    #: fields, validated with the recipe like a built-in table (the shipped families' tables are in the schema)
    Settings: ClassVar["type | None"] = None

    def build(self, path: Path, settings: dict, calibration_texts: Sequence[str] = (), field: str = "student.model"):
        raise NotImplementedError

    def section(self, recipe):
        """The recipe's ``[student.<family>]`` section (None: the family has none)."""
        if self.Settings is not None:
            from harness.recipe.fields import plugin_settings

            return plugin_settings(recipe.student, self.name, self.Settings)
        return getattr(recipe.student, self.name, None)

    def settings(self, recipe) -> dict[str, Any]:
        """Family settings for the constructor, from the recipe."""
        section = self.section(recipe)
        return dict(vars(section)) if section is not None else {}

    def fixed_query_length(self, recipe) -> bool:
        """Whether served queries keep the training query length (else: the backbone's maximum)."""
        return False

    def adapt(self, student, recipe, corpus_texts: "Iterator[str]") -> dict[str, Any]:
        """Fit a freshly built student to its training corpus before training (``corpus_texts``: the corpus's
        passages as they are encoded, streamed); returns figures for the run's training info. Default: nothing."""
        return {}

    def index_key(self, recipe) -> dict[str, Any]:
        """The index settings that change what the index stage writes."""
        return {}

    def search_key(self, recipe) -> dict[str, Any]:
        """The index settings that change a search's results."""
        return {}

    def student_key(self, recipe) -> dict[str, Any]:
        """Facts that make two students of this family different beyond their settings (training only)."""
        return {}

    def contrastive_temperature(self, recipe) -> float:
        """The in-batch contrastive temperature where a recipe leaves it to the family (``temperature = 0``):
        1.0 for scores on an open scale (dot products, MaxSim sums)."""
        return 1.0

    def identity(self, recipe) -> dict[str, Any]:
        """Facts that make two students of this family different, trained or not."""
        return {}

    def regulariser(self, recipe):
        """(regulariser name, λ_q, λ_d, share of the training steps over which λ ramps up) added to the
        distillation loss, or None."""
        return None

    def learning_rates(self, recipe, student) -> "list[tuple[list, float]]":
        """(parameters, peak learning rate) for the student's parameters that train at a rate of their own
        (no weight decay; the same warm-up and decay); the rest train at ``train.lr``. What this returns for
        a recipe must be in :meth:`student_key`."""
        return []

    def set_serving_lengths(self, model_dir: Path, query_len: int, doc_len: int) -> "dict[str, int]":
        """Make a saved student folder read texts as a run served them (queries at ``query_len`` tokens,
        passages at ``doc_len``) when a tool outside the harness loads it; a saved folder records its
        training lengths. Returns what the folder now says ({} where the family has nothing to set)."""
        return {}


@FAMILIES.register("splade")
class SpladeFamily(Family):
    name, default_loss = "splade", "mse"

    def build(self, path, settings, calibration_texts=(), field="student.model"):
        from harness.students.splade import build_splade

        return build_splade(path, settings, calibration_texts, field)

    def settings(self, recipe):
        from harness.students import eval_lengths

        out = {k: v for k, v in vars(recipe.student.splade).items()
               if k not in ("lambda_q", "lambda_d", "flops_ramp", "bias_lr")}  # training settings: student_key
        if not out.get("vocab_words"):  # (absent at its default: students built before it keep their key)
            out.pop("vocab_words", None)
        out["calibration_max_len"] = eval_lengths(recipe)[1]  # the sparse start counts terms as the index reads
        return out

    def index_key(self, recipe):
        return {"impact": vars(recipe.index.impact)}

    def student_key(self, recipe):
        s = recipe.student.splade
        key: dict[str, Any] = {"flops": {"lambda_q": s.lambda_q, "lambda_d": s.lambda_d, "flops_ramp": s.flops_ramp}}
        if s.bias_lr:  # (absent at its default: students trained before it keep their key)
            key["bias_lr"] = s.bias_lr
        return key

    def learning_rates(self, recipe, student):
        lr, bias = recipe.student.splade.bias_lr, student.vocab_bias()
        return [([bias], lr)] if lr and bias is not None else []

    def identity(self, recipe):
        from harness.students.maxpool import VERSION

        out: dict[str, Any] = {"maxpool": VERSION}  # the pooled values' numerics: calibration, training, encoding
        if recipe.student.layers > 0:  # a cut SPLADE's head is re-calibrated after truncation
            out["sparse_start"] = "calibrated after truncation"
        return out

    def adapt(self, student, recipe, corpus_texts):
        n = recipe.student.splade.vocab_words
        if not n:
            return {}
        from harness.students.splade import add_domain_words, domain_words

        words = domain_words(student.tokenizer, corpus_texts, n)
        added = add_domain_words(student, words)
        log.info("splade: %d domain words of the training corpus are vocabulary terms (%d new: %s ...)",
                 len(words), added, ", ".join(words[:5]))
        return {"vocab_words_added": added}

    def regulariser(self, recipe):
        s = recipe.student.splade
        return "flops", s.lambda_q, s.lambda_d, s.flops_ramp

    def set_serving_lengths(self, model_dir, query_len, doc_len):
        from harness.students.splade import write_sparse_encoder_files

        # SparseEncoder has one length for queries and passages; queries are far shorter than either
        write_sparse_encoder_files(Path(model_dir), doc_len)
        return {"max_seq_length": doc_len}


@FAMILIES.register("colbert")
class ColbertFamily(Family):
    name, random_init = "colbert", True  # a fresh projection

    def build(self, path, settings, calibration_texts=(), field="student.model"):
        from harness.students.colbert import build_colbert

        return build_colbert(path, settings, field)

    def fixed_query_length(self, recipe):
        return recipe.student.colbert.query_augment  # queries are padded to the training length with [MASK]

    def index_key(self, recipe):
        return {"plaid": {k: v for k, v in vars(recipe.index.plaid).items() if k in ("nbits", "kmeans_niters")}}

    def search_key(self, recipe):
        return dict(vars(recipe.index.plaid))

    def set_serving_lengths(self, model_dir, query_len, doc_len):
        # PyLate (and sentence-transformers' MultiVectorEncoder, which reads PyLate's config) take the query and
        # document lengths from config_sentence_transformers.json; both count the marker token, which the
        # transformer's max_seq_length leaves out (as ColBERT.save writes it)
        model_dir = Path(model_dir)
        _update_json(model_dir / "config_sentence_transformers.json",
                     {"query_length": query_len, "document_length": doc_len})
        _update_json(model_dir / "sentence_bert_config.json", {"max_seq_length": doc_len - 1})
        return {"query_length": query_len, "document_length": doc_len}


@FAMILIES.register("dense")
class DenseFamily(Family):
    name = "dense"

    def build(self, path, settings, calibration_texts=(), field="student.model"):
        from harness.students.dense import build_dense

        return build_dense(path, settings, field)

    def settings(self, recipe):
        from harness.students import dense_embedding

        s = recipe.student
        return dense_embedding(s.model, s.dense.pooling, s.dense.similarity)

    def index_key(self, recipe):
        return {"faiss": vars(recipe.index.faiss)}

    def contrastive_temperature(self, recipe):
        # cosine scores lie in [-1, 1]: a softmax over them at temperature 1 is nearly flat (the true passage's
        # probability can rise from 1/n to at most e^2/n). 0.05 is SimCSE's (Gao et al., EMNLP 2021) and
        # sentence-transformers' MultipleNegativesRankingLoss scale of 20. SciFact dev, dense multi-task:
        # nDCG@10 0.7973 at 0.05 against 0.7529 at 1.0
        return 0.05 if self.settings(recipe).get("normalize") else 1.0

    def set_serving_lengths(self, model_dir, query_len, doc_len):
        # SentenceTransformer has one length for queries and passages: the passages'
        _update_json(Path(model_dir) / "sentence_bert_config.json", {"max_seq_length": doc_len})
        return {"max_seq_length": doc_len}


def family_of(recipe) -> Family:
    return FAMILIES[recipe.student.family]()


def _update_json(path: Path, values: dict) -> None:
    import json

    obj = json.loads(path.read_text()) if path.is_file() else {}
    obj.update(values)
    path.write_text(json.dumps(obj, indent=2) + "\n")
