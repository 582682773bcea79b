"""Suites fanned out through submitit: each recipe one job, a shared answer key one job before its students.

    harness suite scifact --executor slurm --slurm-partition gpu [--slurm-gpus 1] [--slurm-time 240]
    harness suite scifact --executor local --workers 2

The jobs follow the stage graph: one job per distinct answer key (the teacher scoring the training pairs)
runs before the students that train on it, and a self-distilled student's job after the job of the recipe
that trains its teacher-student (likewise a job taught by a student, ``teacher.student.recipe``, and its
answer key's job, after the job that trains that student). Under Slurm every job is submitted at once with
``afterok`` dependencies (``--kill-on-invalid-dep``: a failed prerequisite cancels what needs it) and Slurm
schedules them; the local executor (submitit's, one process per job) starts a job when its prerequisites
have finished and fewer than ``workers`` run. Jobs share one runs directory: the per-stage locks
(:mod:`harness.artifacts.locks`, lock files beside the stages, holder host and pid recorded) make every
stage built once however many jobs need it, on one machine or several sharing a filesystem. The submitting
process waits, then writes the suite's table as ``harness suite`` does; submitit's logs are in
``<runs>/_jobs/``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.recipe import LoadedRecipe, find_recipe

log = logging.getLogger("harness")

EXECUTORS = ("local", "slurm")


@dataclass
class Job:
    name: str  # the recipe's name, or "answer-key:<id>"
    kind: str  # "recipe" | "answer-key"
    recipe: str  # the recipe file the job loads
    needs: list[str] = field(default_factory=list)  # names of the jobs that must finish first


def _answer_key_id(loaded: LoadedRecipe) -> str:
    """What determines a recipe's answer key, from its validated fields (without building anything)."""
    from harness.recipe.loader import config_hash

    c = loaded.config
    return config_hash({"teacher": c["teacher"], "train": {k: c["train"][k] for k in
                                                          ("dataset", "dev_fraction", "dev_max_queries", "max_queries")},
                        "negatives": c["negatives"], "bm25": c["bm25"], "fields": c["data"]["doc_fields"],
                        "seed": c["seed"], "plugins": loaded.plugins})[:12]


def plan(recipes: Sequence[LoadedRecipe]) -> list[Job]:
    """The suite's jobs, each after the jobs it needs (answer keys first)."""
    from harness.distill.variants import variant_of
    from harness.stages.graph import answer_key_needs, needed_recipes

    jobs: dict[str, Job] = {}
    by_path = {find_recipe(x.path).resolve(): x.name for x in recipes}

    def in_suite(specs: Sequence[str]) -> list[str]:
        return [n for n in (by_path.get(find_recipe(s).resolve()) for s in specs) if n]

    for x in recipes:
        needs = []
        if x.recipe.method == "student" and variant_of(x.recipe).uses_answer_key(x.recipe):
            key = f"answer-key:{_answer_key_id(x)}"
            # after the job that trains the student that teaches, if the answer key reads one
            jobs.setdefault(key, Job(key, "answer-key", str(x.path), in_suite(answer_key_needs(x.recipe))))
            needs.append(key)
        needs += [n for n in in_suite(needed_recipes(x.recipe)) if n not in needs]
        jobs[x.name] = Job(x.name, "recipe", str(x.path), needs)
    order = [j for j in jobs.values() if j.kind == "answer-key"] + [j for j in jobs.values() if j.kind == "recipe"]
    done: set[str] = set()
    out: list[Job] = []
    while order:  # prerequisites first (a self-distilled recipe after its teacher's, a taught one after its teacher)
        ready = [j for j in order if all(n in done for n in j.needs)]
        if not ready:
            raise ValueError("suite: circular recipe dependencies: " + ", ".join(j.name for j in order))
        for j in ready:
            out.append(j)
            done.add(j.name)
            order.remove(j)
    return out


def run_job(kind: str, recipe: str, overrides: Sequence[str], runs_dir: str, force: bool, seeds: int,
            quiet: bool = False) -> dict[str, Any]:
    """One job, in its own process (submitit pickles this call): build an answer key, or run a recipe."""
    from harness.cli import _setup_logging
    from harness.recipe import load_recipe

    _setup_logging(quiet)
    loaded = load_recipe(recipe, list(overrides))
    if kind == "answer-key":
        from harness.pipeline import build_answer_key

        return build_answer_key(loaded, Path(runs_dir), force=force)
    if seeds > 1:
        from harness.seeds import run_seeds

        return run_seeds(recipe, overrides, Path(runs_dir), seeds, force=force)
    from harness.pipeline import run_recipe

    return run_recipe(loaded, Path(runs_dir), force=force)


LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # a month: no limit in practice


def job_error(exc: BaseException) -> str:
    """One line for a failed job: the last line of the job's own traceback (its "error: …" or exception), not
    submitit's wrapper, whose message ends with the paths of the job's logs."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if "----------------------" in lines:  # FailedJobError: the job's traceback sits between two rules
        body = lines[lines.index("----------------------") + 1:]
        body = body[:body.index("----------------------")] if "----------------------" in body else body
        if body:
            return body[-1]
    return next((ln for ln in lines if "has not produced any output" in ln), lines[-1] if lines else
                type(exc).__name__)


def make_executor(kind: str, folder: Path, slurm: "dict[str, Any] | None" = None):
    import submitit

    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        # submitit's local default is a 2-minute limit: at 90 s the job is signalled as timed out and a student
        # still training fails (it did in CI). A local job runs as long as its recipe needs.
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return ex
    if kind == "slurm":
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        s = slurm or {}
        params: dict[str, Any] = {"timeout_min": int(s.get("time") or 240), "nodes": 1, "tasks_per_node": 1,
                                  "cpus_per_task": int(s.get("cpus") or 8), "gpus_per_node": int(s.get("gpus") or 0),
                                  "name": "harness"}
        if s.get("partition"):
            params["slurm_partition"] = s["partition"]
        ex.update_parameters(**params)
        return ex
    raise ValueError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {kind!r}")


def execute(recipes: Sequence[LoadedRecipe], runs_dir: Path, overrides: Sequence[str] = (), executor: str = "local",
            workers: int = 2, force: bool = False, seeds: int = 1, slurm: "dict[str, Any] | None" = None,
            poll: float = 2.0) -> "tuple[dict[str, dict], dict[str, str], dict[str, float]]":
    """Run the suite's jobs; returns (payload per recipe, error per failed job, wall seconds per job)."""
    jobs = plan(recipes)
    folder = Path(runs_dir) / "_jobs"
    folder.mkdir(parents=True, exist_ok=True)
    ex = make_executor(executor, folder, slurm)
    log.info("suite: %d jobs through submitit (%s%s): %s", len(jobs), executor,
             f", {workers} at a time" if executor == "local" else "",
             ", ".join(j.name + (f" (after {', '.join(j.needs)})" if j.needs else "") for j in jobs))
    submitted: dict[str, Any] = {}
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    results: dict[str, dict] = {}
    failed: dict[str, str] = {}
    args = lambda j: (j.kind, j.recipe, list(overrides), str(runs_dir), force, seeds)  # noqa: E731

    if executor == "slurm":  # everything at once; Slurm holds each job until its prerequisites succeed
        for j in jobs:
            deps = [submitted[n].job_id for n in j.needs]
            extra = {"dependency": "afterok:" + ":".join(deps), "kill-on-invalid-dep": "yes"} if deps else {}
            ex.update_parameters(slurm_additional_parameters=extra, name=f"harness-{j.name}")
            submitted[j.name] = ex.submit(run_job, *args(j))
            started[j.name] = time.perf_counter()
            log.info("suite: %s submitted as Slurm job %s", j.name, submitted[j.name].job_id)
    pending = [j for j in jobs if j.name not in submitted]
    try:
        _wait(pending, submitted, started, seconds, results, failed, ex, args, workers, poll)
    except KeyboardInterrupt:  # the jobs go too (finished stages stay and are reused by a re-run)
        for name, job in submitted.items():
            if job is not None and name not in seconds:
                job.cancel(check=False)
        raise
    return ({n: p for n, p in results.items() if not n.startswith("answer-key:")}, failed, seconds)


def _wait(pending, submitted, started, seconds, results, failed, ex, args, workers, poll) -> None:
    while pending or any(n not in seconds for n in submitted):
        for name, job in submitted.items():
            if name in seconds or not job.done():
                continue
            seconds[name] = round(time.perf_counter() - started[name], 1)
            try:
                results[name] = job.result()
                log.info("suite: %s done in %.0f s", name, seconds[name])
            except Exception as exc:  # submitit re-raises the job's error (or says the job died)
                failed[name] = job_error(exc)
                log.debug("suite: %s: %s", name, exc)
                log.error("suite: %s failed: %s (log: %s)", name, failed[name], getattr(job, "paths", None)
                          and job.paths.stderr)
        for j in list(pending):  # the local executor: start what is ready, up to `workers` at once
            if any(n in failed for n in j.needs):
                failed[j.name] = "not run: " + ", ".join(n for n in j.needs if n in failed) + " failed"
                seconds[j.name] = 0.0
                submitted[j.name] = None
                pending.remove(j)
                continue
            running = sum(1 for n in submitted if n not in seconds)
            if running >= workers or not all(n in results for n in j.needs):
                continue
            submitted[j.name] = ex.submit(run_job, *args(j))
            started[j.name] = time.perf_counter()
            pending.remove(j)
            log.info("suite: %s started (job %s)", j.name, submitted[j.name].job_id)
        time.sleep(poll)
