"""Teachers: cross-encoder (hub name, local path, or fine-tuned here), bi-encoder, and their ensemble with BM25.

All answer :class:`~harness.teachers.base.Teacher`; the stages that identify, fine-tune, build and run
them are :mod:`harness.stages.teacher`.
"""

from harness.teachers.base import Request, Teacher

__all__ = ["Request", "Teacher"]
