"""Small composable losses, one per module, each with its equation and paper (cf. sentence-transformers' losses/).

Scores are (B, G) tensors: B queries, each with a group of G passages, the positive first.
"""

from harness.distill.losses.contrastive import InBatchContrastive
from harness.distill.losses.flops import FLOPS, flops_weight
from harness.distill.losses.kl import ListwiseKL
from harness.distill.losses.margin_mse import MarginMSE
from harness.distill.losses.mlm import MaskedLM, mask_tokens
from harness.distill.losses.mse import PointwiseMSE

__all__ = ["FLOPS", "InBatchContrastive", "ListwiseKL", "MarginMSE", "MaskedLM", "PointwiseMSE", "flops_weight",
           "mask_tokens"]
