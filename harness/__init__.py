"""distill-harness: an evaluation-centric benchmark harness for knowledge distillation in neural retrieval.

The pipeline is visible in the sub-packages:
recipe → data → (teacher → distill → student) → index → evaluate → report.
"""

__version__ = "0.1.0"
