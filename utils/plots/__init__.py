"""Figures of the course, one module per topic; every public name is importable from ``utils.plots``.

- :mod:`~utils.plots.scenes`: scenes, label maps, training curves, confusion matrices, heat maps;
- :mod:`~utils.plots.softmax`: temperatures and input scaling;
- :mod:`~utils.plots.toy`: the 2-D toy (max-softmax and ensemble mutual information on the plane);
- :mod:`~utils.plots.fooling`: fooling images and predictions on out-of-distribution inputs;
- :mod:`~utils.plots.attacks`: adversarial sweeps and attacked scenes;
- :mod:`~utils.plots.calibration`: reliability diagrams, metric curves, the temperature explorer;
- :mod:`~utils.plots.uncertainty`: MC-dropout and ensemble maps;
- :mod:`~utils.plots.detection`: confidence histograms, ROC and risk-coverage curves;
- :mod:`~utils.plots.scores`, :mod:`~utils.plots.conformal`, :mod:`~utils.plots.segments`,
  :mod:`~utils.plots.active`: the figures of the chapters on other scores, guarantees, segments and
  active learning, and :mod:`~utils.plots.report`: the heat maps of a diagnosis of any model (each
  module lists its public names in ``__all__``).

Every function returns the matplotlib ``Figure`` it drew (or a widget), so a chapter can show it,
save it or test it.
"""

from ._base import overlay
from .attacks import attack_explorer, attack_view, show_attack_sweep
from .calibration import (
    calibration_view,
    show_curves,
    show_reliability,
    temperature_explorer,
)
from .detection import confidence_histogram, show_risk_coverage, show_roc
from .fooling import show_fooling, show_predictions
from .series import show_series
from .scenes import (
    explorer_choices,
    explorer_view,
    heatmap_explorer,
    show_class_probabilities,
    show_confusion,
    show_heatmaps,
    show_image_grid,
    show_scenes,
    show_training,
)
from .softmax import show_scaling, show_temperatures, softmax_explorer
from .toy import show_toy_plane
from .uncertainty import members_explorer, members_view, show_uncertainty_maps

__all__ = [
    "attack_explorer",
    "attack_view",
    "calibration_view",
    "confidence_histogram",
    "explorer_choices",
    "explorer_view",
    "heatmap_explorer",
    "members_explorer",
    "members_view",
    "overlay",
    "show_attack_sweep",
    "show_class_probabilities",
    "show_confusion",
    "show_curves",
    "show_fooling",
    "show_heatmaps",
    "show_image_grid",
    "show_predictions",
    "show_reliability",
    "show_risk_coverage",
    "show_roc",
    "show_scaling",
    "show_scenes",
    "show_series",
    "show_temperatures",
    "show_toy_plane",
    "show_training",
    "show_uncertainty_maps",
    "softmax_explorer",
    "temperature_explorer",
]

# Chapter modules that list their public names in __all__ (one line each, so they never conflict).
from . import active as _active, conformal as _conformal, scores as _scores, segments as _segments  # noqa: E402
from . import report as _report  # noqa: E402
from .active import *  # noqa: E402,F401,F403
from .conformal import *  # noqa: E402,F401,F403
from .scores import *  # noqa: E402,F401,F403
from .segments import *  # noqa: E402,F401,F403
from .report import *  # noqa: E402,F401,F403

__all__ += [*_active.__all__, *_conformal.__all__, *_scores.__all__, *_segments.__all__, *_report.__all__]
