"""Distillation variants: where a student's training targets come from, and what its step adds.

Each variant is a :class:`Variant` registered in :data:`harness.registry.VARIANTS` under the name a recipe
writes in ``distill.variant``; the student stage (:mod:`harness.stages.student`), the pipeline's checks
and the suite's ordering ask the variant, never its name. A new variant is one class (see
``docs/extending.md``):

* ``targets(ctx)`` → (a :class:`~harness.distill.targets.TargetSource`, the JSON-able key that identifies
  it in the student's cache key); ``ctx.stages`` (:class:`~harness.stages.graph.StageGraph`) gives the
  stages it may need: ``answer_key()``, ``teacher(corpus)``, ``teacher_key()``, ``groups()``,
  ``train_dataset()``, ``bm25_hits(ds, depth)``, ``self_teacher()``;
* ``uses_teacher``: its targets come from ``[teacher]`` (the run prepares the teacher, checks it against
  BM25 and reports it); ``scaled_targets``: they are scores on the teacher's scale (``distill.target_scale``
  applies); ``fixed_loss`` / ``fixed_settings``: a loss and ``[distill]`` values it always trains with;
* optional hooks: ``extra_step`` (auxiliary losses), ``refresh`` (new negatives during training),
  ``init_backbone`` (start from another trained student), ``check`` (before any work), ``after`` (recipes
  a suite must run first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from harness.registry import VARIANTS

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import RunContext


class Variant:
    name: ClassVar[str]
    trains: ClassVar[bool] = True
    uses_teacher: ClassVar[bool] = False
    scaled_targets: ClassVar[bool] = True
    fixed_loss: ClassVar["str | None"] = None
    fixed_settings: ClassVar[dict[str, Any]] = {}  # [distill] values the variant always trains with
    #: a plug-in variant's ``[distill.<name>]`` table (a frozen dataclass of ``param`` fields, validated with the
    #: recipe; in the student's key); read it with :meth:`settings`
    Settings: ClassVar["type | None"] = None

    def settings(self, recipe):
        """This variant's ``[distill.<name>]`` table (its defaults when the recipe has none)."""
        from harness.recipe.fields import plugin_settings

        return plugin_settings(recipe.distill, self.name, self.Settings) if self.Settings is not None else None

    def targets(self, ctx: "RunContext") -> "tuple[Any, dict[str, Any]]":
        raise NotImplementedError

    def extra_step(self, ctx: "RunContext", student, doc_text, seed: int):
        """A module ``(student, q_rep, d_rep, qids, doc_ids, step) -> (loss, parts)`` added to each step."""
        return None

    def refresh(self, ctx: "RunContext", train, doc_text, targets):
        """``(student, examples, step) -> examples | None``: replaces the examples' negatives mid-training."""
        return None

    def init_backbone(self, ctx: "RunContext"):
        """A trained student's stage to start from (None: the recipe's ``student.model``)."""
        return None

    def check(self, ctx: "RunContext") -> None:
        """Fail before any work (e.g. a teacher recipe that cannot load)."""

    def after(self, recipe) -> "str | None":
        """A recipe this one needs trained first (a suite runs it earlier)."""
        return None

    def uses_answer_key(self, recipe) -> bool:
        """Its targets are the answer key (a suite on a cluster builds each answer key in a job of its own,
        before the students that need it)."""
        return False


@VARIANTS.register("none")
class Untrained(Variant):
    """The untrained student: what distillation has to beat."""
    name, trains = "none", False


@VARIANTS.register("static")
class Static(Variant):
    """The answer key: teacher scores computed once, offline, for every training group."""
    name, uses_teacher = "static", True

    def targets(self, ctx):
        from harness.distill.targets import StaticTargets

        return StaticTargets(ctx.stages.answer_key_frame()), {"answer-key": ctx.stages.answer_key().hash}

    def uses_answer_key(self, recipe):
        return True


@VARIANTS.register("online")
class Online(Variant):
    """The teacher scores each batch inside the training step (optionally re-mining negatives)."""
    name, uses_teacher = "online", True

    def targets(self, ctx):
        from harness.distill.targets import OnlineTargets

        graph = ctx.stages
        train = graph.train_dataset()
        return (OnlineTargets(graph.teacher(train), graph.bm25_hits(train, ctx.recipe.negatives.depth)),
                {"teacher": graph.teacher_key(), "remine": vars(ctx.recipe.distill.online), "plan": "fixed-v1"})

    def refresh(self, ctx, train, doc_text, targets):
        if not ctx.recipe.distill.online.remine_every:
            return None
        from harness.distill.remine import remine_hook
        from harness.stages.student import training_seed

        return remine_hook(ctx.recipe.distill.online, train, doc_text, training_seed(ctx.recipe), targets)


@VARIANTS.register("margin")
class Margin(Variant):
    """No teacher: Margin-MSE towards a constant margin between the positive and every negative."""
    name, scaled_targets, fixed_loss = "margin", False, "margin-mse"
    fixed_settings = {"pairs": "positive"}  # the margin lies between the positive and each negative

    def targets(self, ctx):
        from harness.distill.targets import MarginTargets

        return MarginTargets(ctx.recipe.distill.margin), {"margin": ctx.recipe.distill.margin}


@VARIANTS.register("self")
class Self(Variant):
    """A larger trained student of the same family teaches (and, optionally, is the starting point)."""
    name = "self"

    def targets(self, ctx):
        from harness.distill.targets import SelfTargets
        from harness.encoding import get_device

        teacher = ctx.stages.self_teacher()
        train = ctx.stages.train_dataset()
        docs, fields = train.doc_store(), ctx.recipe.data.doc_fields
        return (SelfTargets(teacher.trained_student().to(get_device()), lambda d: docs[d].contents(fields)),
                {"self-teacher": teacher.student().hash})

    def init_backbone(self, ctx):
        if not ctx.recipe.distill.self.init_from_teacher:
            return None
        return ctx.stages.self_teacher().student()

    def check(self, ctx):
        ctx.stages.self_teacher()

    def after(self, recipe):
        return recipe.distill.self.teacher


@VARIANTS.register("multitask")
class Multitask(Variant):
    """A base variant's targets + MLM on the positives + in-batch contrastive."""
    name = "multitask"
    uses_teacher = True  # its bases that need no teacher are not worth a teacher-free special case

    def targets(self, ctx):
        base = VARIANTS[ctx.recipe.distill.multitask.base]()
        source, key = base.targets(ctx)
        from harness.distill.multitask import MLM_ROWS_MULTIPLE

        out = {"base": key, "multitask": vars(resolved(ctx.recipe))}
        if ctx.recipe.distill.multitask.mlm > 0:  # its head reads the masked positions in padded blocks
            out["mlm_rows_multiple"] = MLM_ROWS_MULTIPLE
        return source, out

    def extra_step(self, ctx, student, doc_text, seed):
        from harness.distill.multitask import MultitaskAux

        return MultitaskAux(student, resolved(ctx.recipe), doc_text, seed)

    def refresh(self, ctx, train, doc_text, targets):
        return VARIANTS[ctx.recipe.distill.multitask.base]().refresh(ctx, train, doc_text, targets)

    def uses_answer_key(self, recipe):
        return VARIANTS[recipe.distill.multitask.base]().uses_answer_key(recipe)


def resolved(recipe):
    """The recipe's ``[distill.multitask]`` with ``temperature = 0`` replaced by the student family's own (the
    value trained with, and what the student's key records: a recipe that writes the family's value out is
    the same student)."""
    import dataclasses

    from harness.students.families import family_of

    cfg = recipe.distill.multitask
    if cfg.temperature:
        return cfg
    return dataclasses.replace(cfg, temperature=family_of(recipe).contrastive_temperature(recipe))


def variant_of(recipe) -> Variant:
    return VARIANTS[recipe.distill.variant]()


def effective(distill):
    """A ``[distill]`` section (the recipe's dataclass, or any object with its attributes) with its variant's
    fixed loss and settings applied: what the objective trains with, and what the student's key records."""
    v = VARIANTS[distill.variant]
    fixed = dict(v.fixed_settings)
    if v.fixed_loss:
        fixed["loss"] = v.fixed_loss
    if not fixed:
        return distill
    import dataclasses

    if dataclasses.is_dataclass(distill):
        return dataclasses.replace(distill, **fixed)
    from types import SimpleNamespace

    return SimpleNamespace(**{**vars(distill), **fixed})
