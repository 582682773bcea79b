"""Online variant, optionally: re-mine each training query's hard negatives with the current student.

Every ``distill.online.remine_every`` steps the student encodes the training corpus, searches it
exhaustively for every training query, and each example's negatives are redrawn (seeded by seed, query and
step) from the student's top ``remine_depth``, positives excluded — the negatives then track what the
student currently confuses (cf. ANCE, Xiong et al., ICLR 2021). Costly: one corpus encoding per refresh.
"""

from __future__ import annotations

import logging
import random
from typing import Mapping, Sequence

log = logging.getLogger("harness")


def student_top_k(student, doc_ids: Sequence[str], doc_texts: Sequence[str], queries: Mapping[str, str],
                  k: int) -> dict[str, list[str]]:
    """Exhaustive top-k of the student over the given passages, per query (the family's index interface:
    a family with no registered index is an error, not a silent dense search)."""
    from harness.registry import INDEXES

    backend = INDEXES[student.family]
    qids = list(queries)
    d_reps = student.infer_docs(doc_texts)
    q_reps = student.infer_queries([queries[q] for q in qids])
    hits = backend.exhaustive(q_reps, d_reps, k)
    return {q: [doc_ids[i] for i, _ in h] for q, h in zip(qids, hits)}


def remine_examples(examples: Sequence[tuple[str, tuple[str, ...]]], top: Mapping[str, list[str]],
                    positives: Mapping[str, set], seed: int, step: int) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for qid, docs in examples:
        pool = [d for d in top.get(qid, []) if d not in positives.get(qid, set())]
        n = len(docs) - 1
        if len(pool) < n:
            out.append((qid, docs))
            continue
        rng = random.Random(f"{seed}:{qid}:{step}")
        picked = set(rng.sample(pool, n))
        out.append((qid, (docs[0], *[d for d in pool if d in picked])))
    return out


def remine_hook(online, train, doc_text, seed: int, targets=None):
    """The training loop's ``refresh``: every ``online.remine_every`` steps, new negatives from the student's
    top ``online.remine_depth`` over ``train``'s corpus (a teacher in the step re-plans its passages)."""
    docs = list(train.docs())
    positives = {q: {d for d, rel in judged.items() if rel > 0} for q, judged in train.qrels.items()}

    def refresh(student, examples, step):
        if step % online.remine_every:
            return None
        log.info("online: re-mining negatives with the student at step %d", step)
        top = student_top_k(student, [d.doc_id for d in docs], [doc_text(d.doc_id) for d in docs],
                            {q: train.queries[q] for q in {q for q, _ in examples}}, online.remine_depth)
        new = remine_examples(examples, top, positives, seed, step)
        if hasattr(targets, "prepare"):
            targets.prepare(new, train.queries)  # the new negatives, in a plan fixed by the new examples
        return new

    return refresh
