"""The pipeline's cached stages, one module each, in pipeline order:

    bm25.py        1  Lucene index per corpus; BM25 top-k per (queries, depth)
    groups.py      2  train.dataset split (dev part held out); positives + BM25 hard negatives per query
    teacher.py     3  a cross-encoder fine-tuned here; the teacher's identity; the teacher reranking BM25
    answer_key.py  4  the teacher's score of every training pair
    student.py     5  the student, trained by the recipe's variant
    index.py       6  the student's index over an eval corpus
    retrieve.py    7  a run file per (recipe, eval set)
    evaluate.py    8  ir_measures per (recipe, eval set); the teacher-vs-BM25 reference

Each stage function takes the store, the typed recipe sections it reads and the upstream stages it depends
on, and builds its cache key from exactly those; :mod:`harness.stages.graph` is the one place that wires
them from a recipe (``ctx.stages``). See :mod:`harness.artifacts.store` for what a stage is on disk.
"""
