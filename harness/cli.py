"""The ``harness`` command. Heavy libraries are imported inside the subcommands, so ``--help`` is instant.

Exit status: 0 success; 1 a failure during the run; 2 bad input (recipe, dataset, model), reported
before any expensive work starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EPILOG = """examples:
  harness quickstart                                   the main job on the embedded default (recipes/quickstart/)
  harness run recipes/baselines/bm25-scifact.toml      a recipe file (or a shipped name: baselines/bm25-scifact)
  harness run baselines/bm25-scifact --set 'eval.datasets=["cisi"]' --set name=bm25-cisi --json
  harness answer-key recipes/baselines/teacher-scifact.toml   build/reuse the teacher's answer key
  harness validate recipes/baselines/bm25-scifact.toml
  harness recipes                                      list the shipped recipes
  harness table runs/ --baseline bm25-scifact --measures nDCG@10 R@100 --format md
  harness run scifact/dense-static --seeds 3           three training seeds: runs/<name>/seed-{0,1,2}/, mean ± std
  harness compare runs/scifact-dense-static runs/scifact-dense-online   paired test, effect size, verdict
  harness check runs/bm25-scifact --junit gate.xml     the regression gate (recipes/**/<name>.expect.toml)
  harness leaderboard runs/ --suite scifact            leaderboards/scifact/{README.md,results.csv,index.html}

environment:
  HARNESS_DATA_DIR   folders holding BEIR-layout datasets (<dir>/<name>/corpus.jsonl ...), ':'-separated
  HARNESS_RUNS_DIR   where runs/ go (default ./runs)
"""


def _add_recipe_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("recipe", nargs=None if required else "?", help="recipe file, or a shipped recipe name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value (TOML syntax), e.g. --set eval.depth=100; repeatable")


log = logging.getLogger("harness")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the results as one JSON object on the last line of stdout")
    p.add_argument("--force", action="store_true", help="recompute every stage, even when a finished one exists")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="root of the run directories (default $HARNESS_RUNS_DIR or ./runs)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="distill-harness: train, index and evaluate distilled retrievers from declarative recipes.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a recipe end to end", formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipe_args(p)
    _add_run_args(p)
    _add_seeds_arg(p)
    p.add_argument("--nproc", type=int, default=0, metavar="N",
                   help="run across N processes on this machine (launches torchrun --nproc-per-node N): the "
                        "training batch, the answer key and the corpus encoding are shared; rank 0 writes")

    p = sub.add_parser("quickstart", help="the main job on the embedded default: BM25, the teacher and the dense "
                                          "student untrained and distilled on SciFact (recipes/quickstart/), then a "
                                          "table")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value")
    _add_run_args(p)

    p = sub.add_parser("suite", help="run every recipe of a folder, sharing stages (e.g. recipes/scifact)")
    p.add_argument("folder", help="a folder of recipes, or a shipped one: scifact, baselines, msmarco")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value in every recipe")
    p.add_argument("--only", default=None, metavar="PATTERN", help="only recipes whose file name matches one of these globs (comma-separated: \"dense-*,bm25\")")
    _add_run_args(p)
    _add_seeds_arg(p)
    g = p.add_argument_group("on a cluster (submitit; one job per recipe, answer keys first)")
    g.add_argument("--executor", choices=["local", "slurm"], default=None,
                   help="local: parallel local processes; slurm: Slurm jobs with afterok dependencies "
                        "(default: every recipe in this process)")
    g.add_argument("--workers", type=int, default=2, help="local executor: jobs at once (2)")
    g.add_argument("--slurm-partition", default=None, help="slurm: partition")
    g.add_argument("--slurm-gpus", type=int, default=0, help="slurm: GPUs per job (0)")
    g.add_argument("--slurm-cpus", type=int, default=8, help="slurm: CPUs per job (8)")
    g.add_argument("--slurm-time", type=int, default=240, help="slurm: minutes per job (240)")

    p = sub.add_parser("answer-key", help="build (or reuse) the recipe's answer key: teacher scores of every "
                                          "training pair, as parquet")
    _add_recipe_args(p)
    _add_run_args(p)

    p = sub.add_parser("validate", help="check a recipe without running it (exit 2 when invalid)")
    _add_recipe_args(p)
    p.add_argument("--data", action="store_true",
                   help="also check that every dataset can be found (reads local files; may download)")

    sub.add_parser("recipes", help="list the recipes shipped with the harness")

    runs_help = "run directories, or runs roots holding many (e.g. runs/)"
    p = sub.add_parser("table", help="compare runs: a table with a baseline row, differences and significance",
                       description="Rows = recipes; columns = dataset x measure plus efficiency. Every cell but the "
                                   "baseline's shows its difference; a paired two-sided t-test over per-query values, "
                                   "Holm-corrected across the table, marks significant cells with a dagger.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help=runs_help)
    _add_table_args(p)
    p.add_argument("--format", choices=["md", "csv", "html", "latex"], default="md", help="output format (md)")
    p.add_argument("--out", type=Path, default=None, help="write to this file (default: stdout)")

    p = sub.add_parser("compare", help="is run A better than run B? a paired test over per-query values "
                                       "(seed-averaged), the effect size, the CI of the difference and a verdict",
                       description="Pairs A's and B's per-query values on every query both evaluated (per dataset "
                                   "and measure), tests them with a paired two-sided t-test and prints the mean "
                                   "difference A - B, its confidence interval, Cohen's d_z and one verdict line "
                                   "per comparison: A better / B better / indistinguishable at alpha. Exit status: "
                                   "0, or 1 with --fail-if-worse when A is significantly worse than B on any "
                                   "comparison; 2 on bad input.")
    p.add_argument("run_a", metavar="RUN_A", help="a run directory (a multi-seed run gives seed-averaged values)")
    p.add_argument("run_b", metavar="RUN_B", help="the run A is compared with")
    p.add_argument("--measures", nargs="+", default=None, metavar="MEASURE",
                   help="measures to compare (default: every measure both runs have)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                   help="datasets to compare (default: every dataset both runs have)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level; with several comparisons, Holm-corrected across them (0.05)")
    p.add_argument("--fail-if-worse", action="store_true", help="exit 1 when A is significantly worse than B")
    p.add_argument("--json", action="store_true", help="print the comparisons as one JSON object on stdout")

    p = sub.add_parser("check", help="the regression gate: compare runs with <recipe>.expect.toml beside their "
                                     "recipes (exit 1 on any FAIL, 2 on bad input)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help=runs_help)
    p.add_argument("--junit", type=Path, default=None, metavar="FILE", help="also write JUnit XML here")
    p.add_argument("--strict", action="store_true",
                   help="a run without an expect file, or an expected dataset/measure the run lacks, is a FAIL")
    p.add_argument("--allow-missing", action="store_true",
                   help="pass a run that matches nothing of its expect file (by default that is a FAIL)")
    p.add_argument("--write-expect", action="store_true",
                   help="instead of checking, write (or update) each run's <recipe>.expect.toml from its results")
    p.add_argument("--tolerance", type=float, default=None,
                   help="with --write-expect: the file's default tolerance (default: the file's, else 0.001)")
    p.add_argument("--measures", nargs="+", default=None, metavar="MEASURE",
                   help="with --write-expect: only these measures (default: every one the run evaluated)")

    p = sub.add_parser("gc", help="remove what killed or failed runs left in runs directories (unfinished "
                                  "builds of dead processes, corrupted stages set aside, finished stages' "
                                  "resumable state) and say how much it freed")
    p.add_argument("runs", nargs="+", metavar="RUNS_DIR", help="runs roots (e.g. runs/)")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")

    p = sub.add_parser("export", help="take a finished run outside the harness: the student with its model card, "
                                      "TREC run files, per-query metrics, the leaderboard rows")
    p.add_argument("run", type=Path, help="a run directory (runs/<recipe>)")
    p.add_argument("--to", type=Path, required=True, metavar="DIR", help="where to write them")

    p = sub.add_parser("leaderboard", help="write leaderboards/<suite>/: README.md, results.csv, index.html, plots")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help=runs_help)
    p.add_argument("--suite", required=True, help="the leaderboard's name")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: leaderboards/<suite>)")
    _add_table_args(p)
    return parser


def _seeds(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def _add_seeds_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=_seeds, default=1, metavar="N",
                   help="train N students with training seeds train.seed .. train.seed + N - 1 (one run directory "
                        "each, <name>/seed-<k>/) and write their mean ± std as <name>/results.json; stages that do "
                        "not depend on the training seed (BM25, teacher, answer key) are built once")


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", default=None, metavar="RECIPE",
                   help="the row others are compared with (default: the first BM25 run, else the first run)")
    p.add_argument("--measures", nargs="+", default=None, metavar="MEASURE",
                   help="measures to show, e.g. nDCG@10 R@100 (default: all)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="DATASET", help="datasets to show (default: all)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm's correction (0.05)")
    p.add_argument("--ci", action="store_true",
                   help="show a 95%% bootstrap confidence interval (queries resampled) in every cell")


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    from harness.encoding import rank_tag  # each rank's lines carry its rank under torchrun

    handler.setFormatter(logging.Formatter(f"%(asctime)s {rank_tag()}%(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger("harness")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def _print_table(payload: dict) -> None:
    results, std = payload["results"], payload.get("std") or {}
    measures = list(dict.fromkeys(m for r in results.values() for m in r))
    width = max([len("dataset")] + [len(d) for d in results])
    cell = 18 if std else 9
    print(f"{'dataset':<{width}}  " + "  ".join(f"{m:>{cell}}" for m in measures))
    for ds, values in results.items():
        texts = [f"{values[m]:.4f}" + (f" ± {std[ds][m]:.4f}" if m in std.get(ds, {}) else "") for m in measures]
        print(f"{ds:<{width}}  " + "  ".join(f"{t:>{cell}}" for t in texts))
    if std:
        print(f"mean ± std over {payload['seeds']['n']} training seeds {payload['seeds']['train_seeds']}")
    print(f"run directory: {payload['run_dir']}")


def _launch(nproc: int, argv: "list[str]") -> int:
    """``harness run --nproc N ...``: the same command under torchrun, N processes on this machine."""
    import shutil
    import subprocess

    from harness.errors import UserInputError

    if nproc < 1:
        raise UserInputError(f"--nproc: expected a positive integer, got {nproc}")
    rest, skip = [], False
    for a in argv:  # the command without --nproc
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])
    cmd += ["--standalone", f"--nproc-per-node={nproc}", "-m", "harness", *rest]
    log.info("launch %s", " ".join(cmd))
    return subprocess.call(cmd)


def _cmd_run(args: argparse.Namespace, recipe_spec: str) -> int:
    from harness.pipeline import run_recipe
    from harness.recipe import load_recipe

    runs_dir = args.runs_dir or Path(os.environ.get("HARNESS_RUNS_DIR", "runs"))
    if args.seeds > 1:
        from harness.seeds import run_seeds

        payload = run_seeds(recipe_spec, args.overrides, runs_dir, args.seeds, force=args.force)
    else:
        payload = run_recipe(load_recipe(recipe_spec, args.overrides), runs_dir, force=args.force)
    from harness import distributed

    if not distributed.is_main():  # rank 0 reports
        return 0
    if args.json:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        _print_table(payload)
    return 0


def _where_time_goes(out: dict) -> str:
    """The suite's time from an empty cache by stage kind (each stage once, whenever it was built)."""
    from harness.artifacts import format_time_by_stage_kind

    rows = [(r["stage"], r["seconds"], r["count"]) for r in out.get("time_by_stage", [])]
    return (f"where the time goes (from an empty cache, {out.get('cold_cache_seconds', 0):.0f} s): "
            + format_time_by_stage_kind(rows)) if rows else ""


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from harness.report.results import load_runs
    from harness.report.tables import build_table
    from harness.suite import run_suite

    runs_dir = args.runs_dir or Path(os.environ.get("HARNESS_RUNS_DIR", "runs"))
    out = run_suite("quickstart", runs_dir, args.overrides, force=args.force)
    if args.json:
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    else:
        runs = load_runs([r["run_dir"] for r in out["recipes"].values()])
        table = build_table(runs, measures=["nDCG@10", "R@100"])
        sys.stdout.write(table.render("md"))
        print(f"\nquickstart: {len(out['recipes'])} recipes in {out['seconds']:.0f} s; run directories under {runs_dir}/; "
              f"compare more runs with `harness table {runs_dir}`")
        print(_where_time_goes(out))
        print("next: the other families, e.g. `harness run scifact/colbert-online` or `harness run "
              "scifact/splade-static`; every family x variant: `harness suite scifact` (reuses these runs)")
        for name, err in out["failed"].items():
            print(f"{name}: FAILED: {err.splitlines()[0]}")
    return 1 if out["failed"] else 0


def _cmd_suite(args: argparse.Namespace) -> int:
    from harness.suite import run_suite

    runs_dir = args.runs_dir or Path(os.environ.get("HARNESS_RUNS_DIR", "runs"))
    if args.workers < 1:
        from harness.errors import UserInputError

        raise UserInputError(f"--workers: expected a positive integer, got {args.workers}")
    slurm = {"partition": args.slurm_partition, "gpus": args.slurm_gpus, "cpus": args.slurm_cpus,
             "time": args.slurm_time}
    out = run_suite(args.folder, runs_dir, args.overrides, args.only, force=args.force, seeds=args.seeds,
                    executor=args.executor, workers=args.workers, slurm=slurm)
    if args.json:
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    else:
        for name, r in out["recipes"].items():
            std = r.get("std") or {}
            cells = "  ".join(f"{ds} {v.get('nDCG@10', float('nan')):.4f}"
                              + (f" ± {std[ds]['nDCG@10']:.4f}" if "nDCG@10" in std.get(ds, {}) else "")
                              for ds, v in r["results"].items())
            print(f"{name:<32} {r['seconds']:>8.0f} s  nDCG@10: {cells}")
        for name, err in out["failed"].items():
            print(f"{name:<32} FAILED: {err.splitlines()[0]}")
        cold = out["cold_cache_seconds"]
        print(f"suite: {len(out['recipes'])} ok, {len(out['failed'])} failed, {out['seconds']:.0f} s "
              f"(from an empty cache: {cold:.0f} s = {cold / 3600:.2f} h, each stage built once)")
        print(_where_time_goes(out))
    return 1 if out["failed"] else 0


def _cmd_answer_key(args: argparse.Namespace) -> int:
    from harness.pipeline import build_answer_key
    from harness.recipe import load_recipe

    loaded = load_recipe(args.recipe, args.overrides)
    runs_dir = args.runs_dir or Path(os.environ.get("HARNESS_RUNS_DIR", "runs"))
    payload = build_answer_key(loaded, runs_dir, force=args.force)
    if args.json:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        info = payload["info"]
        print(f"answer key: {payload['path']}")
        print(f"  {info['pairs']} pairs of {info['queries']} queries; teacher {payload['teacher']['kind']}; "
              f"positives {info['positive_mean']:.3f} vs negatives {info['negative_mean']:.3f} on average")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.recipe import load_recipe

    loaded = load_recipe(args.recipe, args.overrides)
    if args.data:
        from harness.pipeline import prepare_datasets

        prepare_datasets(loaded)
    print(f"{loaded.path}: ok (recipe {loaded.name}, method {loaded.recipe.method}, hash {loaded.hash[:12]})")
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    from harness.report.results import load_runs
    from harness.report.tables import build_table

    table = build_table(load_runs(args.runs), baseline=args.baseline, measures=args.measures,
                        datasets=args.datasets, alpha=args.alpha, ci=args.ci)
    text = table.render(args.format)
    if args.out:
        from harness.report.files import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.report.compare import compare_runs
    from harness.report.results import load_runs

    (a,), (b,) = _one_run(args.run_a, "RUN_A"), _one_run(args.run_b, "RUN_B")
    report = compare_runs(a, b, measures=args.measures, datasets=args.datasets, alpha=args.alpha)
    sys.stdout.write(report.to_json() + "\n" if args.json else report.text())
    return 1 if args.fail_if_worse and report.a_worse else 0


def _one_run(path: str, what: str):
    from harness.report.results import ReportInputError, load_runs

    runs = load_runs([path])
    if len(runs) != 1:
        raise ReportInputError(f"{what}: {path} holds {len(runs)} runs; give one run directory")
    return runs


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.report.gate import run_gate, write_junit
    from harness.report.results import load_runs

    if args.write_expect:
        from harness.report.gate import write_expect_files
        from harness.report.results import ReportInputError

        if args.tolerance is not None and args.tolerance < 0:
            raise ReportInputError(f"--tolerance: expected a number >= 0, got {args.tolerance}")
        for run, path, what in write_expect_files(load_runs(args.runs), args.tolerance, args.measures):
            print(f"{run.label}: {what}" + (f" {path}" if path else ""))
        return 0
    report = run_gate(load_runs(args.runs), strict=args.strict, allow_missing=args.allow_missing)
    sys.stdout.write(report.text())
    if args.junit:
        write_junit(report, args.junit)
        print(f"wrote {args.junit}", file=sys.stderr)
    return report.exit_code


def _cmd_gc(args: argparse.Namespace) -> int:
    from harness.artifacts.gc import collect
    from harness.errors import UserInputError

    total = 0
    for root in args.runs:
        if not Path(root).is_dir():
            raise UserInputError(f"{root}: no such runs directory")
        found = collect(Path(root), dry_run=args.dry_run)
        for path, size, why in found.removed:
            print(f"{'would remove' if args.dry_run else 'removed'}  {_fmt_bytes(size):>9}  {path}  ({why})")
        for path, why in found.kept:
            print(f"kept     {'':>9}  {path}  ({why})")
        total += found.bytes
    print(f"gc: {'would free' if args.dry_run else 'freed'} {_fmt_bytes(total)}")
    return 0


def _fmt_bytes(n: int) -> str:
    from harness.report.tables import fmt_bytes

    return fmt_bytes(n)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.report.leaderboard import build_leaderboard
    from harness.report.results import load_runs

    out = args.out or Path("leaderboards") / args.suite
    written = build_leaderboard(load_runs(args.runs), args.suite, out, baseline=args.baseline,
                                measures=args.measures, datasets=args.datasets, alpha=args.alpha, ci=args.ci)
    for name in written:
        print(out / name)
    return 0


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from harness import __version__

        print(f"distill-harness {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 0
    _setup_logging(getattr(args, "quiet", False))
    from harness.errors import HarnessError

    try:
        if args.command in ("run", "quickstart", "suite", "answer-key"):
            from harness.encoding import check_environment

            check_environment()
        if args.command == "run":
            if getattr(args, "nproc", 0):
                return _launch(args.nproc, list(sys.argv[1:] if argv is None else argv))
            from harness import distributed

            distributed.init()  # under torchrun: join the other ranks
            return _cmd_run(args, args.recipe)
        if args.command == "quickstart":
            return _cmd_quickstart(args)
        if args.command == "suite":
            return _cmd_suite(args)
        if args.command == "answer-key":
            return _cmd_answer_key(args)
        if args.command == "validate":
            return _cmd_validate(args)
        if args.command == "table":
            return _cmd_table(args)
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "gc":
            return _cmd_gc(args)
        if args.command == "leaderboard":
            return _cmd_leaderboard(args)
        if args.command == "export":
            from harness.report.export import export_run

            written = export_run(args.run, args.to)
            for k, v in written.items():
                for path in ([v] if isinstance(v, str) else v):
                    print(f"{k:<8} {path}")
            return 0
        if args.command == "recipes":
            from harness.recipe import builtin_recipes

            print("\n".join(builtin_recipes()))
            return 0
    except HarnessError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept and will be reused", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return 2
