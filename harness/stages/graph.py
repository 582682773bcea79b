"""The stage graph of one run: which recipe sections and upstream stages each stage function receives.

    bm25 ─┬─ groups ─┬─ answer key (static) ──┐
          │          ├─ teacher (online) ──────┼─▶ student ─▶ index (per corpus) ─▶ retrieve ─▶ evaluate
          │          └─ larger student (self) ─┘                                    (per recipe, eval set)
          └─ teacher rerank (per eval set) ─▶ reference

A teacher may itself be another recipe's trained student (``teacher.student.recipe``): its graph is built beside
this one (:meth:`StageGraph.recipe_graph`) and its student stage is part of the teacher's key. A student may start
from another recipe's trained student (``student.init_recipe``, any family): that stage is its backbone in its key.

Stage functions (``harness/stages/<stage>.py``) never see the run; this module is the only place that
reads a recipe to wire them. Loaded things (runs, groups, the answer key, models, a teacher's passage
embeddings) are memoised in the run's cache, which a suite shares between its recipes (content-keyed).
Variants reach the stages they need through ``ctx.stages``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.artifacts import Stage
from harness.data import Dataset
from harness.stages import answer_key as _answer_key
from harness.stages import bm25 as _bm25
from harness.stages import evaluate as _evaluate
from harness.stages import groups as _groups
from harness.stages import index as _index
from harness.stages import retrieve as _retrieve
from harness.stages import student as _student
from harness.stages import teacher as _teacher

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import RunContext


def needed_recipes(recipe) -> list[str]:
    """The recipes whose trained students this recipe's graph reads (a suite runs them first): a
    self-distilled student's teacher (``distill.self.teacher``), the student this one starts from
    (``student.init_recipe``) and a student that teaches (``teacher.student.recipe``), as the recipe names them."""
    from harness.pipeline import uses_teacher

    out = []
    if recipe.method == "student":
        from harness.distill.variants import variant_of

        first = variant_of(recipe).after(recipe)
        if first:
            out.append(first)
        if recipe.student.init_recipe:
            out.append(recipe.student.init_recipe)
    if uses_teacher(recipe) and "student" in _teacher.members(recipe.teacher):
        out.append(recipe.teacher.student.recipe)
    return list(dict.fromkeys(out))


def answer_key_needs(recipe) -> list[str]:
    """The recipes whose trained students the answer key reads (a student that teaches)."""
    return [recipe.teacher.student.recipe] if "student" in _teacher.members(recipe.teacher) else []


class StageGraph:
    def __init__(self, ctx: "RunContext"):
        self.ctx = ctx

    @property
    def recipe(self):
        return self.ctx.recipe

    @property
    def store(self):
        return self.ctx.store

    def _memo(self, key: str, make):
        return self.ctx.memo(key, make)

    # ---- data: the training part and the dev part of train.dataset -------------------------------------

    def _split(self) -> "tuple[Dataset, Dataset | None]":
        t = self.recipe.train

        def make():
            part, dev, problems = _groups.split(t, self.recipe.data.on_problem)
            self.ctx.warnings.extend(problems)
            return part, dev

        return self._memo(f"split:{t.dataset}:{t.dev_fraction}:{t.dev_max_queries}", make)

    def train_dataset(self) -> Dataset:
        """The training queries: ``train.dataset`` without its dev split, then cut to ``train.max_queries``."""
        t = self.recipe.train
        return self._memo(f"train:{t.dataset}:{t.dev_fraction}:{t.dev_max_queries}:{t.max_queries}:"
                          f"{t.pseudo_queries}:{t.pseudo_max_queries}",
                          lambda: _groups.training_part(self._split()[0], t))

    def dev_dataset(self) -> "Dataset | None":
        """The dev split carved from ``train.dataset`` (never trained on); None when ``train.dev_fraction`` is 0."""
        return self._split()[1]

    # ---- 1 BM25 ------------------------------------------------------------------------------------------

    def bm25_index(self, ds: Dataset) -> Stage:
        return _bm25.bm25_index(self.store, ds, self.recipe.data.doc_fields)

    def bm25_run(self, ds: Dataset, depth: int) -> Stage:
        return _bm25.bm25_run(self.store, self.bm25_index(ds), ds, self.recipe.bm25, depth)

    def bm25_hits(self, ds: Dataset, depth: int):
        stage = self.bm25_run(ds, depth)
        return self._memo(f"bm25-run:{stage.hash}", lambda: _bm25.read_run(stage))

    # ---- 2 training groups -------------------------------------------------------------------------------

    def pool(self) -> Stage:
        """BM25's top-``negatives.depth`` of the training queries: where hard negatives come from."""
        return self.bm25_run(self.train_dataset(), self.recipe.negatives.depth)

    def groups(self) -> Stage:
        return _groups.groups_stage(self.store, self.train_dataset(), self.pool(), self.recipe.negatives,
                                    self.recipe.seed)

    # ---- 3 teacher -------------------------------------------------------------------------------------

    def finetuned_teacher(self) -> "Stage | None":
        t, r = self.recipe.teacher, self.recipe
        if not (t.finetune.enabled and "cross-encoder" in _teacher.members(t)):
            return None
        return _teacher.finetune_stage(self.store, t.finetune, self.groups(), self.train_dataset(),
                                       r.data.doc_fields, r.seed, r.train.checkpoint_every)

    def teacher_student(self) -> "_teacher.TeacherStudent | None":
        """The trained student that teaches, when ``[teacher]`` names a "student" member (trained here when
        its recipe's run has not trained it yet)."""
        t = self.recipe.teacher
        if "student" not in _teacher.members(t):
            return None
        from harness.students import eval_lengths

        graph = self.recipe_graph(t.student.recipe, "teacher.student.recipe")
        stage = graph.student()
        query, doc = eval_lengths(graph.recipe)
        return _teacher.TeacherStudent(stage, graph.recipe.student.family, t.student.query_max_len or query,
                                       t.student.doc_max_len or doc, graph.trained_student)

    def teacher_key(self) -> dict[str, Any]:
        r = self.recipe
        return _teacher.teacher_key(r.teacher, r.data.doc_fields, r.bm25, self.finetuned_teacher(),
                                    self.teacher_student())

    def teacher(self, corpus: Dataset):
        """The recipe's teacher over ``corpus`` (built once per run, or per suite)."""
        from harness.recipe.loader import config_hash

        r = self.recipe
        return self._memo(f"teacher:{config_hash(self.teacher_key())}:{corpus.corpus_fingerprint()}",
                          lambda: _teacher.build_teacher(r.teacher, corpus, r.data.doc_fields, r.bm25,
                                                         self.finetuned_teacher(), lambda: self.bm25_index(corpus),
                                                         self.teacher_student()))

    def teacher_rerank(self, ds: Dataset) -> Stage:
        candidates = self.bm25_run(ds, self.recipe.teacher.rerank_depth)
        return _teacher.rerank_stage(self.store, self.teacher_key(), candidates, ds, lambda: self.teacher(ds))

    # ---- 4 answer key ------------------------------------------------------------------------------------

    def answer_key(self) -> Stage:
        train = self.train_dataset()
        return _answer_key.answer_key_stage(self.store, self.teacher_key(), self.groups(), self.pool(), train,
                                            lambda: self.teacher(train))

    def answer_key_frame(self):
        stage = self.answer_key()
        return self._memo(f"answer-key:{stage.hash}", lambda: _answer_key.read(stage))

    # ---- 5 student -------------------------------------------------------------------------------------

    def student(self) -> Stage:
        """The student, trained by the recipe's variant (or only initialised, for variant "none")."""
        from harness.distill.variants import variant_of

        ctx, variant, train = self.ctx, variant_of(self.recipe), self.train_dataset()
        init = variant.init_backbone(ctx)  # a trained student this one starts from (self-distillation)
        if init is None and self.recipe.student.init_recipe:
            init = self.init_student()
        targets = target_key = groups = None
        if variant.trains:
            targets, target_key = variant.targets(ctx)
            groups = self.groups()
        return _student.student_stage(
            self.store, self.recipe, train, groups=groups, targets=targets, target_key=target_key, init=init,
            plugins=ctx.loaded.plugins,
            extra_step=lambda student, doc_text, seed: variant.extra_step(ctx, student, doc_text, seed),
            refresh=lambda doc_text, tg: variant.refresh(ctx, train, doc_text, tg))

    def trained_student(self):
        """The student model (loaded once per run, or per suite)."""
        stage = self.student()
        return self._memo(f"student:{stage.hash}", lambda: _student.load(stage))

    def init_student(self) -> Stage:
        """The trained student (``student.init_recipe``) this one starts from, of any family."""
        return self.recipe_graph(self.recipe.student.init_recipe, "student.init_recipe").student()

    def self_teacher(self) -> "StageGraph":
        """The graph of the recipe (``distill.self.teacher``) whose trained student teaches this one."""
        return self.recipe_graph(self.recipe.distill.self.teacher, "distill.self.teacher", same_family=True)

    def recipe_graph(self, spec: str, field: str, same_family: bool = False) -> "StageGraph":
        """The graph of another recipe (named by ``field``) whose trained student this run needs: a
        self-distilled student's teacher, the student this one starts from (``student.init_recipe``), or a
        student that teaches (``teacher.student.recipe``)."""
        from harness.context import RunContext
        from harness.errors import RecipeError
        from harness.recipe import load_recipe

        ctx = self.ctx

        # the same --set overrides as this run (a CI slice trains its teacher-student on the same slice), less
        # those that define this recipe's own student and teacher when another family's student teaches
        own = ("name", "description") if same_family else ("name", "description", "teacher", "student", "distill",
                                                           "negatives")

        def make() -> RunContext:
            overrides = [o for o in ctx.loaded.overrides if o.split("=", 1)[0].strip().split(".", 1)[0] not in own]
            try:
                loaded = load_recipe(spec, overrides)
            except RecipeError as exc:  # name the field that points there, then what is wrong with it
                raise RecipeError([f"{ctx.loaded.source_of(field)}: {field}: {p}" for p in exc.problems]) from None
            if loaded.recipe.method != "student" or loaded.recipe.distill.variant in ("none", "self"):
                raise RecipeError([f"{ctx.loaded.source_of(field)}: {field}: {spec} must train a student "
                                   "(method \"student\", a variant other than none/self)"])
            if same_family and loaded.recipe.student.family != ctx.recipe.student.family:
                raise RecipeError([f"{ctx.loaded.source_of(field)}: {field}: {spec} trains a "
                                   f"{loaded.recipe.student.family} student; self-distillation needs the same "
                                   f"family ({ctx.recipe.student.family})"])
            if field == "teacher.student.recipe" and "student" in _teacher.members(loaded.recipe.teacher):
                raise RecipeError([f"{ctx.loaded.source_of(field)}: {field}: {spec} is itself taught by a student "
                                   f"({loaded.recipe.teacher.student.recipe}); name the recipe that trains it "
                                   "from a teacher model"])
            return RunContext(loaded, ctx.store, ctx.store.root / loaded.name, cache=ctx.cache)

        return self._memo(f"recipe-ctx:{field}:{spec}", make).stages

    # ---- 6 index ---------------------------------------------------------------------------------------

    def index(self, ds: Dataset) -> Stage:
        return _index.index_stage(self.store, self.recipe, self.student(), ds, self.trained_student)

    # ---- 7 retrieve ------------------------------------------------------------------------------------

    def retrieve(self, ds: Dataset) -> Stage:
        """The run file of ``ds`` by the recipe's method (bm25, rerank, student)."""
        r = self.recipe
        if r.method == "bm25":
            stage = self.bm25_run(ds, r.eval.depth)
            key, produce = {"bm25-run": stage.hash}, _retrieve.copy_of(stage)
        elif r.method == "rerank":
            stage = self.teacher_rerank(ds)
            key, produce = {"teacher-rerank": stage.hash}, _retrieve.copy_of(stage)
        else:
            key, produce = _retrieve.student_search(r, self.index(ds), ds, self.trained_student, self.ctx.loaded.name)
        return _retrieve.retrieve_stage(self.store, self.ctx.run_name, ds, r.method, key, produce)

    # ---- 8 evaluate ------------------------------------------------------------------------------------

    def evaluate(self, ds: Dataset, retrieve: Stage) -> Stage:
        return _evaluate.evaluate_stage(self.store, self.ctx.run_name, retrieve, ds, self.recipe.eval.measures)

    def teacher_reference(self, datasets: list[Dataset]) -> dict[str, Any]:
        """Teacher-as-reranker vs BM25 at ``teacher.rerank_depth`` per eval set (warns when the teacher is weaker)."""
        depth = self.recipe.teacher.rerank_depth
        ref, warnings = _evaluate.teacher_reference(
            [(ds, self.teacher_rerank(ds), self.bm25_run(ds, depth)) for ds in datasets],
            self.recipe.eval.measures, depth)
        self.ctx.warnings.extend(warnings)
        return ref
