"""Search: the harness's index interface against the raw library on the same index and query vectors
(floor: 0.95 of the throughput). SPLADE: ``ImpactIndex.search`` vs Pyserini's ``LuceneImpactSearcher``
``batch_search`` with the same quantised query weights; dense: ``FaissIndex.search`` vs ``faiss`` ``search``.

    python benchmarks/search.py [--family splade|dense|all] [--docs 5183] [--queries 300] [--k 1000]

The vectors are the untrained students' over SciFact (passages at 256 tokens); the two runs must be the same.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import report, take_turns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="all", choices=["all", "splade", "dense"])
    ap.add_argument("--docs", type=int, default=0, help="0 = the whole corpus")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("HARNESS_PROGRESS", "0")

    import numpy as np

    from harness.data import open_dataset
    from harness.models import resolve_model
    from harness.recipe import load_recipe
    from harness.registry import INDEXES
    from harness.students import build_student, student_settings

    ds = open_dataset("beir/scifact/test", max_docs=args.docs, max_queries=args.queries)
    texts = [d.contents(["title", "text"]) for d in ds.docs()]
    queries = list(ds.queries.values())
    for family in (["splade", "dense"] if args.family == "all" else [args.family]):
        recipe = load_recipe(f"scifact/{family}-untrained").recipe
        student = build_student(family, resolve_model("minilm"), student_settings(recipe), texts[:64])
        d_reps = student.infer_docs(texts, args.max_len)
        q_reps = student.infer_queries(queries, 64)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            INDEXES[family].write(d_reps, out, recipe.index, True)
            index = INDEXES[family].open(out, recipe.index)
            if family == "splade":
                from pyserini.search.lucene import LuceneImpactSearcher

                from harness.index.impact import _Precomputed, default_threads, quantize

                scale = recipe.index.impact.quantization
                keys = [str(i) for i in range(len(q_reps))]
                encoder = _Precomputed({k: quantize(r, scale) for k, r in zip(keys, q_reps)})
                raw_searcher = LuceneImpactSearcher(str(out / "index"), encoder, min_idf=-1)

                def raw():
                    hits = raw_searcher.batch_search(keys, keys, k=args.k, threads=default_threads())
                    return [[(int(h.docid), h.score / scale ** 2) for h in hits[key]] for key in keys]
            else:
                import faiss

                flat = faiss.read_index(str(out / "index" / "faiss.index"))
                qv = np.ascontiguousarray(np.stack(q_reps).astype(np.float32))

                def raw():
                    scores, ids = flat.search(qv, min(args.k, flat.ntotal))
                    return [[(int(i), float(s)) for i, s in zip(ri, rs) if i >= 0] for ri, rs in zip(ids, scores)]

            def harness():
                return index.search(q_reps, args.k)

            raw()
            harness()  # warm-up: JVM / index loading
            best, hits = take_turns({"raw": raw, "harness": harness}, args.repeats)
            t_raw, t_h, a, b = best["raw"], best["harness"], hits["raw"][-1], hits["harness"][-1]
            index.close()
        same = all([d for d, _ in x[:10]] == [d for d, _ in y[:10]] for x, y in zip(a, b))
        assert same, "the harness's top-10 differs from the library's"
        report(f"search-{family}", t_raw / t_h, 0.95, docs=len(texts), queries=len(queries), k=args.k,
               raw_queries_per_s=round(len(queries) / t_raw, 1), harness_queries_per_s=round(len(queries) / t_h, 1))


if __name__ == "__main__":
    main()
