"""Small composable losses, one per module, each with its equation and paper (cf. sentence-transformers' losses/).

Importing this package registers the shipped losses (``LOSSES``: mse, margin-mse, kl; on labels: lce, bce) and regularisers
(``REGULARISERS``: flops); a plug-in registers its own the same way (see :mod:`harness.registry`).

Scores are (B, G) tensors: B queries, each with a group of G passages, the positive first.
"""

from harness.distill.losses.base import Loss
from harness.distill.losses.contrastive import InBatchContrastive
from harness.distill.losses.flops import FLOPS, flops_weight
from harness.distill.losses.kl import ListwiseKL
from harness.distill.losses.labels import ListwiseCE, WeightedBCE
from harness.distill.losses.margin_mse import MarginMSE
from harness.distill.losses.mlm import MaskedLM, mask_tokens
from harness.distill.losses.mse import PointwiseMSE
from harness.distill.losses.regularised import Regularised
from harness.registry import LOSSES, REGULARISERS

__all__ = ["FLOPS", "InBatchContrastive", "LOSSES", "Loss", "ListwiseKL", "MarginMSE", "MaskedLM", "PointwiseMSE", "REGULARISERS",
           "Regularised", "ListwiseCE", "WeightedBCE", "flops_weight", "mask_tokens"]
