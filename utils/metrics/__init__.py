"""Metrics of the course, one module per concern; every public name is importable from ``utils.metrics``.

- :mod:`~utils.metrics.segmentation`: confusion matrix, IoU, pixel and digit accuracy, max-softmax, NLL,
  boundary masks;
- :mod:`~utils.metrics.calibration`: the streaming :class:`CalibrationMeter` (ECE, ACE, MCE, SCE, NLL,
  Brier) and reliability bins;
- :mod:`~utils.metrics.detection`: AUROC, ROC curves, AUPR, FPR at 95 % TPR, per-image scores, a streaming binned meter;
- :mod:`~utils.metrics.selective`: risk-coverage curves, AURC / E-AURC, and PAvPU.

All functions honour an ignore index (pixels labelled :data:`utils.config.IGNORE_INDEX` count
nowhere) and work on any number of classes.

Scores of uncertainty follow one convention: a *score* is larger where the model should be less
sure (``1 - max-softmax``, entropy, mutual information), and an AUROC asks how well it ranks the
*positive* pixels (misclassified, or out-of-distribution) above the others. Hendrycks & Gimpel
rank the mirror image (correct pixels by max-softmax); the AUROC is the same number.
"""

from .calibration import CalibrationMeter, ReliabilityBins, calibration_report
from .detection import (
    DetectionMeter,
    aupr,
    auroc,
    detection_report,
    fpr_at_tpr,
    image_scores,
    masked_mean,
    misclassification_auroc,
    ood_auroc,
    roc_curve,
)
from .segmentation import (
    boundary_mask,
    confusion_matrix,
    digit_accuracy,
    iou_per_class,
    max_softmax,
    mean_iou,
    nll,
    pixel_accuracy,
)
from .selective import PAvPUMeter, aurc, pavpu, risk_coverage

__all__ = [
    "CalibrationMeter",
    "DetectionMeter",
    "PAvPUMeter",
    "ReliabilityBins",
    "aupr",
    "aurc",
    "auroc",
    "boundary_mask",
    "calibration_report",
    "confusion_matrix",
    "detection_report",
    "digit_accuracy",
    "fpr_at_tpr",
    "image_scores",
    "iou_per_class",
    "masked_mean",
    "max_softmax",
    "mean_iou",
    "misclassification_auroc",
    "nll",
    "ood_auroc",
    "pavpu",
    "pixel_accuracy",
    "risk_coverage",
    "roc_curve",
]
