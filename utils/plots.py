"""Figures of the course: scene grids, mask overlays, training curves, confusion matrices and heat maps.

Every function returns the matplotlib ``Figure`` it drew (or a widget), so a chapter can show it,
save it or test it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import draw_segmentation_masks

from .config import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from .data import PALETTE

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
    "show_temperatures",
    "show_training",
    "show_uncertainty_maps",
    "softmax_explorer",
    "temperature_explorer",
]

HEATMAP_CMAP = "inferno"


def _as_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W) or (1, H, W), got {tuple(image.shape)}")
    return image.detach().float().cpu()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _show_gray(ax: plt.Axes, image: torch.Tensor) -> None:
    ax.imshow(_np(_as_image(image)), cmap="gray", vmin=0, vmax=1)


def overlay(image: torch.Tensor, label: torch.Tensor, alpha: float = 0.55) -> np.ndarray:
    """Return an ``(H, W, 3)`` uint8 picture of ``image`` with the digit classes of ``label`` coloured in."""
    img = _as_image(image)
    if not isinstance(label, torch.Tensor) or label.shape != img.shape:
        raise ValueError(f"label must be a tensor of shape {tuple(img.shape)}, got {getattr(label, 'shape', label)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    rgb = (img.clamp(0, 1) * 255).to(torch.uint8).expand(3, *img.shape).clone()
    label = label.detach().cpu()
    present = [k for k in range(1, NUM_CLASSES) if (label == k).any()]
    if present:
        masks = torch.stack([label == k for k in present])
        rgb = draw_segmentation_masks(rgb, masks, alpha=alpha, colors=[PALETTE[k] for k in present])
    if (label == IGNORE_INDEX).any():
        rgb = draw_segmentation_masks(rgb, (label == IGNORE_INDEX)[None], alpha=alpha, colors=[(128, 128, 128)])
    return rgb.permute(1, 2, 0).numpy()


def _legend(fig: Figure, classes: Sequence[int] = range(1, NUM_CLASSES)) -> None:
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.array(PALETTE[k]) / 255) for k in classes]
    fig.legend(handles, [CLASS_NAMES[k] for k in classes], loc="lower center", ncol=len(handles), frameon=False,
               title="digit class", bbox_to_anchor=(0.5, -0.02))  # fmt: skip


def show_scenes(images: torch.Tensor, labels: torch.Tensor, n: int = 8, title: str | None = None) -> Figure:
    """Draw the first ``n`` scenes (top row) above their label maps overlaid in colour (bottom row)."""
    n = min(n, len(images))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.7), squeeze=False)
    for i in range(n):
        _show_gray(axes[0, i], images[i])
        axes[1, i].imshow(overlay(images[i], labels[i]))
        axes[0, i].set_title(f"scene {i}", fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    axes[0, 0].text(-8, 32, "image", rotation=90, va="center", ha="right", fontsize=9)
    axes[1, 0].text(-8, 32, "label", rotation=90, va="center", ha="right", fontsize=9)
    _legend(fig)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def show_training(losses: Sequence[float], history: Sequence[dict], smooth: int = 20) -> Figure:
    """Plot the per-step training loss (raw and smoothed) and, if present, validation mIoU per epoch."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    steps = np.arange(1, len(losses) + 1)
    ax1.plot(steps, losses, color="0.75", lw=0.8, label="per step")
    if len(losses) >= smooth:
        kernel = np.ones(smooth) / smooth
        ax1.plot(steps[smooth - 1 :], np.convolve(losses, kernel, mode="valid"), color="C0", label=f"mean of {smooth}")
    ax1.set(xlabel="optimiser step", ylabel="cross-entropy (nats)", yscale="log", title="training loss")
    ax1.legend()
    if history and "val_miou" in history[0]:
        x = [h["step"] for h in history]
        ax2.plot(x, [h["val_miou"] for h in history], "o-", label="mIoU")
        ax2.plot(x, [h["val_pixel_accuracy"] for h in history], "s-", label="pixel accuracy")
        ax2.set(xlabel="optimiser step", ylim=(0, 1.02), title="validation")
        ax2.legend()
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    return fig


def show_confusion(conf: torch.Tensor, digits_only: bool = True) -> Figure:
    """Draw the row-normalised confusion matrix (log colour scale), by default between digit classes only."""
    if not isinstance(conf, torch.Tensor) or conf.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"conf must be a ({NUM_CLASSES}, {NUM_CLASSES}) tensor, got {getattr(conf, 'shape', conf)}")
    c = conf.double()
    keep = slice(1, None) if digits_only else slice(None)
    c = c[keep, keep]
    rates = (c / c.sum(1, keepdim=True).clamp(min=1)).numpy()
    names = CLASS_NAMES[keep]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    shown = np.where(rates > 0, rates, np.nan)
    im = ax.imshow(shown, cmap="Blues", norm=plt.matplotlib.colors.LogNorm(vmin=1e-4, vmax=1))
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(im, ax=ax, label="fraction of the true class's pixels")
    fig.tight_layout()
    return fig


def show_heatmaps(
    images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, indices: Sequence[int] = (0, 1, 2, 3)
) -> Figure:
    """For each scene: image, truth, prediction, max-softmax heat map and the misclassified pixels."""
    indices = list(indices)
    fig, axes = plt.subplots(len(indices), 5, figsize=(11, 2.3 * len(indices)), squeeze=False, layout="constrained")
    titles = ["image", "ground truth", "prediction", "max-softmax", "errors (red)"]
    for row, i in enumerate(indices):
        p = probs[i]
        pred = p.argmax(0)
        conf = _np(p.amax(0))
        _show_gray(axes[row, 0], images[i])
        axes[row, 1].imshow(overlay(images[i], labels[i]))
        axes[row, 2].imshow(overlay(images[i], pred))
        hm = axes[row, 3].imshow(conf, cmap=HEATMAP_CMAP, vmin=1 / NUM_CLASSES, vmax=1)
        wrong = ((pred != labels[i]) & (labels[i] != IGNORE_INDEX)).cpu()
        err = np.zeros((*wrong.shape, 4))
        err[wrong.numpy()] = (1, 0, 0, 1)
        axes[row, 4].imshow(conf, cmap="gray", vmin=0, vmax=1)
        axes[row, 4].imshow(err)
        axes[row, 0].set_ylabel(f"scene {i}")
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
    fig.colorbar(hm, ax=axes[:, -1], shrink=0.8, label="max-softmax")
    return fig


def show_class_probabilities(image: torch.Tensor, probs: torch.Tensor) -> Figure:
    """Draw the image and the softmax probability map of each of the 11 classes for one scene."""
    if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or probs.shape[0] != NUM_CLASSES:
        raise ValueError(f"probs must be ({NUM_CLASSES}, H, W), got {getattr(probs, 'shape', probs)}")
    fig, axes = plt.subplots(2, 6, figsize=(12, 4.4), layout="constrained")
    _show_gray(axes[0, 0], image)
    axes[0, 0].set_title("image", fontsize=10)
    for k in range(NUM_CLASSES):
        ax = axes.flat[k + 1]
        im = ax.imshow(_np(probs[k]), cmap=HEATMAP_CMAP, vmin=0, vmax=1)
        ax.set_title(f"p(class = {CLASS_NAMES[k]})", fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="softmax probability")
    return fig


def confidence_histogram(groups: dict[str, torch.Tensor], bins: int = 50) -> Figure:
    """Overlay histograms (as densities, log y-axis) of max-softmax values for named groups of pixels."""
    if not groups:
        raise ValueError("groups must name at least one group of confidence values")
    fig, ax = plt.subplots(figsize=(8.4, 3.4))
    edges = np.linspace(1 / NUM_CLASSES, 1, bins + 1)
    for name, values in groups.items():
        v = values.detach().float().cpu().numpy().ravel()
        ax.hist(v, bins=edges, density=True, histtype="step", lw=1.8, label=f"{name} (n = {v.size:,})")
    ax.set(xlabel="max-softmax", ylabel="density", yscale="log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def explorer_view(image: torch.Tensor, label: torch.Tensor, probs: torch.Tensor, which: str = "max-softmax") -> Figure:
    """Draw one view of the heat-map explorer: truth, prediction, and ``which`` map (max-softmax or a class)."""
    choices = explorer_choices()
    if which not in choices:
        raise ValueError(f"which must be one of {choices}, got {which!r}")
    if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or probs.shape[0] != NUM_CLASSES:
        raise ValueError(f"probs must be ({NUM_CLASSES}, H, W), got {getattr(probs, 'shape', probs)}")
    heat = probs.amax(0) if which == "max-softmax" else probs[choices.index(which) - 1]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    axes[0].imshow(overlay(image, label))
    axes[0].set_title("ground truth")
    axes[1].imshow(overlay(image, probs.argmax(0)))
    axes[1].set_title("prediction")
    im = axes[2].imshow(_np(heat), cmap=HEATMAP_CMAP, vmin=0, vmax=1)
    axes[2].set_title(which)
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    return fig


def explorer_choices() -> list[str]:
    """Return the maps the explorer offers: max-softmax, then each class's probability."""
    return ["max-softmax"] + [f"p(class = {name})" for name in CLASS_NAMES]


def heatmap_explorer(images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor):
    """Return an ipywidgets explorer: pick a scene and a map (max-softmax or one class's probability)."""
    import ipywidgets as widgets

    scene = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="scene")
    which = widgets.Dropdown(options=explorer_choices(), value="max-softmax", description="map")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            explorer_view(images[scene.value], labels[scene.value], probs[scene.value], which.value)
            plt.show()

    scene.observe(draw, names="value")
    which.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([scene, which]), out])


# --- Chapter 2: softmax, temperature, scaling, ROC -------------------------------------------------


def _softmax_panel(ax: plt.Axes, logits: Sequence[float], temperature: float, names: Sequence[str] | None = None) -> None:
    z = torch.as_tensor(logits, dtype=torch.float64)
    p = (z / temperature).softmax(0).numpy()
    names = list(names) if names is not None else [f"class {k}" for k in range(len(p))]
    bars = ax.bar(names, p, color=[f"C{k}" for k in range(len(p))])
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set(ylim=(0, 1.1), title=f"T = {temperature:g}", ylabel="probability")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)


def show_temperatures(
    logits: Sequence[float], temperatures: Sequence[float] = (0.5, 1.0, 2.0, 5.0), names: Sequence[str] | None = None
) -> Figure:
    """Draw ``softmax(logits / T)`` as bars for each temperature ``T``, beside the logits themselves."""
    logits = [float(v) for v in logits]
    if len(logits) < 2:
        raise ValueError(f"logits must hold at least 2 values, got {len(logits)}")
    if not temperatures or min(temperatures) <= 0:
        raise ValueError(f"temperatures must be positive, got {temperatures!r}")
    if names is not None and len(names) != len(logits):
        raise ValueError(f"names must have one entry per logit ({len(logits)}), got {len(names)}")
    width = 2.6 if len(logits) <= 5 else 3.4
    fig, axes = plt.subplots(1, len(temperatures) + 1, figsize=(width * (len(temperatures) + 1), 3.0))
    labels = list(names) if names is not None else [f"class {k}" for k in range(len(logits))]
    axes[0].bar(labels, logits, color=[f"C{k}" for k in range(len(logits))])
    axes[0].set(title="logits z", ylabel="logit")
    axes[0].tick_params(axis="x", labelrotation=45, labelsize=8)
    for ax, t in zip(axes[1:], temperatures):
        _softmax_panel(ax, logits, t, names)
    fig.tight_layout()
    return fig


def softmax_explorer(logits: Sequence[float] = (2.0, 1.0, 0.5, -1.0)):
    """Return an ipywidgets demo: one slider per logit and one for the temperature, redrawing the softmax."""
    import ipywidgets as widgets

    sliders = [widgets.FloatSlider(value=float(v), min=-5, max=5, step=0.1, description=f"z{k}") for k, v in enumerate(logits)]
    temp = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1.3, step=0.05, description="T")
    shift = widgets.FloatSlider(value=0.0, min=-5, max=5, step=0.5, description="add c")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.5, 3))
            _softmax_panel(ax, [s.value + shift.value for s in sliders], temp.value)
            plt.show()

    for w in (*sliders, temp, shift):
        w.observe(draw, names="value")
    draw()
    return widgets.HBox([widgets.VBox([*sliders, shift, temp]), out])


def show_scaling(alphas: Sequence[float], mean_msp: Sequence[float], logit_norm: Sequence[float], mark: float = 100.0) -> Figure:
    """Plot mean max-softmax (left) and mean logit norm (right, log-log) against the input scale alpha."""
    if not len(alphas) == len(mean_msp) == len(logit_norm) or len(alphas) < 2:
        raise ValueError("alphas, mean_msp and logit_norm must have the same length (at least 2)")
    a = np.asarray(alphas, float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.3))
    ax1.plot(a, mean_msp, "o-", ms=3)
    ax1.axhline(0.99, color="0.5", ls="--", lw=1, label="0.99")
    ax1.axvline(mark, color="C3", ls=":", lw=1.2, label=f"alpha = {mark:g}")
    ax1.set(xscale="log", xlabel="input scale alpha", ylabel="mean max-softmax", title="confidence on alpha * x")
    ax1.legend(loc="lower right")
    norm = np.asarray(logit_norm, float)
    ax2.loglog(a, norm, "o-", ms=3, label="measured")
    ax2.loglog(a, norm[-1] * a / a[-1], color="0.5", ls="--", lw=1, label="slope 1 (linear growth)")
    ax2.axvline(mark, color="C3", ls=":", lw=1.2)
    ax2.set(xlabel="input scale alpha", ylabel="mean logit norm", title="size of the logits")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    return fig


def show_roc(curves: dict[str, tuple[torch.Tensor, torch.Tensor]], max_points: int = 2000) -> Figure:
    """Draw ROC curves: ``curves`` maps a legend name to ``(score, positive)`` (higher score = more positive)."""
    from .metrics import auroc, roc_curve

    if not curves:
        raise ValueError("curves must name at least one (score, positive) pair")
    fig, ax = plt.subplots(figsize=(4.4, 4))
    for name, (score, positive) in curves.items():
        fpr, tpr = roc_curve(score, positive, max_points=max_points)
        ax.plot(fpr.numpy(), tpr.numpy(), label=f"{name} (AUROC {auroc(score, positive):.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance (0.5)")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


# --- Chapter 3: fooling images and out-of-distribution inputs -------------------------------------


def _prediction_grid(
    images: torch.Tensor, probs: torch.Tensor, titles: Sequence[Sequence[str]] | None, width: float
) -> tuple[Figure, np.ndarray]:
    """Draw image / predicted label map / max-softmax rows, one column per image (``titles``: per row)."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(width * n + 0.6, 4.5), squeeze=False, layout="constrained")
    for i in range(n):
        _show_gray(axes[0, i], images[i])
        axes[1, i].imshow(overlay(images[i], probs[i].argmax(0), alpha=0.8))
        hm = axes[2, i].imshow(_np(probs[i].amax(0)), cmap=HEATMAP_CMAP, vmin=1 / NUM_CLASSES, vmax=1)
        for row, row_titles in enumerate(titles or []):
            if row_titles:
                axes[row, i].set_title(row_titles[i], fontsize=9 if row == 0 else 8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, name in enumerate(["image", "prediction", "max-softmax"]):
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.colorbar(hm, ax=axes[2, :], shrink=0.9, label="max-softmax")
    return fig, axes


def show_fooling(images: torch.Tensor, probs: torch.Tensor, targets: Sequence[int]) -> Figure:
    """For each fooling image: the image (top), its predicted label map (middle) and max-softmax (bottom)."""
    n = len(images)
    if not (len(probs) == len(targets) == n) or n == 0:
        raise ValueError("images, probs and targets must have the same, non-zero length")
    shares = [(probs[i].argmax(0) == targets[i]).float().mean().item() for i in range(n)]
    titles = [
        [f"target {CLASS_NAMES[t]}" for t in targets],
        [f"{share:.0%} target" for share in shares],
        [f"MSP {probs[i].amax(0).mean().item():.3f}" for i in range(n)],
    ]
    fig, _ = _prediction_grid(images, probs, titles, width=1.35)
    return fig


def show_predictions(images: torch.Tensor, probs: torch.Tensor, titles: Sequence[str] | None = None) -> Figure:
    """For each image: the image (top), its predicted label map (middle) and max-softmax heat map (bottom)."""
    n = len(images)
    if len(probs) != n or n == 0:
        raise ValueError("images and probs must have the same, non-zero length")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")
    fig, _ = _prediction_grid(images, probs, [titles] if titles is not None else None, width=1.5)
    _legend(fig)
    fig.get_layout_engine().set(rect=(0, 0.07, 1, 0.93))
    return fig


# --- Chapter 4: adversarial perturbations ----------------------------------------------------------


def show_attack_sweep(eps: Sequence[float], rows: dict[str, Sequence[float]], reference: dict[str, float] | None = None) -> Figure:
    """Plot attack results against epsilon (> 0; axis in units of 1/255): ``rows`` maps a curve name to its values.

    Curves (and ``reference`` lines: name -> value) whose name contains "mIoU" go to the left panel,
    the others (confidences) to the right one.
    """
    e = np.asarray(eps, float) * 255
    if len(e) == 0 or (e <= 0).any():
        raise ValueError("eps must hold positive values")
    if any(len(v) != len(e) for v in rows.values()):
        raise ValueError("every curve in rows must have one value per eps")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, values in rows.items():
        ax = ax1 if "mIoU" in name else ax2
        ax.plot(e, values, "o-", ms=4, label=name)
    for name, value in (reference or {}).items():
        ax = ax1 if "mIoU" in name else ax2
        ax.axhline(value, color="0.5", ls=":", lw=1)
        ax.text(e[-1], value, f"{name} ", ha="right", va="bottom", fontsize=7.5, color="0.3")
    ax1.set(xlabel="epsilon (x 1/255)", ylabel="test mIoU", ylim=(0, 1.05), title="accuracy under attack")
    ax2.set(xlabel="epsilon (x 1/255)", ylabel="mean max-softmax", ylim=(0.4, 1.05), title="confidence under attack")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(e, [f"{v:g}" for v in e])
        ax.minorticks_off()
        ax.legend(fontsize=8, loc="lower left" if ax is ax1 else "lower right")
    fig.tight_layout()
    return fig


def attack_view(
    image: torch.Tensor, adv: torch.Tensor, label: torch.Tensor, probs_clean: torch.Tensor, probs_adv: torch.Tensor, title: str = ""
) -> Figure:
    """Draw one attacked scene: clean and attacked images, the perturbation magnified, predictions and heat map."""
    delta = _np(_as_image(adv) - _as_image(image))
    span = max(float(np.abs(delta).max()), 1e-8)
    fig, axes = plt.subplots(1, 6, figsize=(13.5, 2.7), layout="constrained")
    _show_gray(axes[0], image)
    axes[0].set_title("clean image")
    im = axes[1].imshow(delta, cmap="RdBu_r", vmin=-span, vmax=span)
    axes[1].set_title(f"perturbation (max {span * 255:.0f}/255)")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    _show_gray(axes[2], adv)
    axes[2].set_title("attacked image")
    axes[3].imshow(overlay(image, probs_clean.argmax(0)))
    axes[3].set_title("prediction, clean")
    axes[4].imshow(overlay(adv, probs_adv.argmax(0)))
    axes[4].set_title("prediction, attacked")
    hm = axes[5].imshow(_np(probs_adv.amax(0)), cmap=HEATMAP_CMAP, vmin=1 / NUM_CLASSES, vmax=1)
    axes[5].set_title("max-softmax, attacked")
    fig.colorbar(hm, ax=axes[5], shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


def attack_explorer(
    image: torch.Tensor, label: torch.Tensor, advs: dict[float, torch.Tensor], probs: dict[float, torch.Tensor]
):
    """Return an ipywidgets demo: an epsilon slider over precomputed attacks (``advs``/``probs`` keyed by eps)."""
    import ipywidgets as widgets

    keys = sorted(advs)
    if sorted(probs) != keys or 0.0 not in keys:
        raise ValueError("advs and probs must share their eps keys, including 0.0 (the clean scene)")
    slider = widgets.SelectionSlider(options=[(f"{k * 255:g}/255", k) for k in keys], value=keys[0], description="epsilon")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            k = slider.value
            attack_view(image, advs[k], label, probs[0.0], probs[k], title=f"epsilon = {k * 255:g}/255")
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])


# --- Chapters 5-7: calibration, MC dropout and ensembles, risk-coverage ----------------------------


def _reliability_panel(ax: plt.Axes, bins, title: str) -> None:
    """Draw one reliability diagram (accuracy per equal-width confidence bin) from a ``ReliabilityBins``."""
    edges = np.asarray(bins.edges, float)
    acc, conf, count = (np.asarray(v, float) for v in (bins.accuracy, bins.confidence, bins.count))
    lo, width = edges[:-1], np.diff(edges)
    filled = count > 0
    ax.bar(lo[filled], acc[filled], width[filled], align="edge", color="tab:blue", edgecolor="white", label="accuracy")
    gap_lo = np.minimum(acc, conf)
    ax.bar(
        lo[filled], np.abs(acc - conf)[filled], width[filled], bottom=gap_lo[filled], align="edge",
        color="tab:red", alpha=0.35, hatch="//", edgecolor="tab:red", lw=0, label="gap to the diagonal",
    )
    ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max-softmax)", ylabel="accuracy", title=title)
    share = ax.inset_axes((0.17, 0.6, 0.4, 0.3))
    share.bar(lo, np.where(count > 0, count / max(count.sum(), 1), np.nan), width, align="edge", color="0.45")
    share.set_yscale("log")
    share.set_ylim(1e-5, 1.5)
    share.set_xlim(0, 1)
    share.set_title("share of pixels", fontsize=7)
    share.tick_params(labelsize=6)


def show_reliability(diagrams: dict, scores: dict[str, float] | None = None) -> Figure:
    """Draw reliability diagrams side by side: ``diagrams`` maps a title to a ``metrics.ReliabilityBins``.

    ``scores`` optionally maps the same titles to an ECE, printed in each panel.
    """
    if not diagrams:
        raise ValueError("diagrams must hold at least one ReliabilityBins")
    n = len(diagrams)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.7), squeeze=False, layout="constrained")
    for ax, (title, bins) in zip(axes[0], diagrams.items()):
        _reliability_panel(ax, bins, title)
        if scores and title in scores:
            ax.text(0.97, 0.04, f"ECE {scores[title]:.4f}", ha="right", va="bottom", transform=ax.transAxes, fontsize=9)
    axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1, 0.12), fontsize=7.5, frameon=False)
    return fig


def show_curves(
    x: Sequence[float],
    panels: dict[str, dict[str, Sequence[float]]],
    xlabel: str,
    reference: dict[str, dict[str, float]] | None = None,
    logy: Sequence[str] = (),
) -> Figure:
    """Plot one panel per metric: ``panels`` maps a panel title to {curve name: values, one per ``x``}.

    ``reference`` maps a panel title to {name: value} drawn as dotted horizontal lines; panels named
    in ``logy`` get a log y-axis.
    """
    if not panels:
        raise ValueError("panels must hold at least one panel")
    xs = np.asarray(x, float)
    for title, curves in panels.items():
        if any(len(v) != len(xs) for v in curves.values()):
            raise ValueError(f"every curve of panel {title!r} must have one value per x")
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.9 * n, 3.4), squeeze=False, layout="constrained")
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, values in curves.items():
            ax.plot(xs, values, "o-", ms=4, label=name)
        for name, value in (reference or {}).get(title, {}).items():
            ax.axhline(value, color="0.5", ls=":", lw=1)
            ax.text(xs[-1], value, f"{name} ", ha="right", va="bottom", fontsize=7.5, color="0.3")
        ax.set(xlabel=xlabel, title=title)
        if title in logy:
            ax.set_yscale("log")
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        if len(curves) > 1:
            ax.legend(fontsize=7.5)
    return fig


def calibration_view(logits: torch.Tensor, target: torch.Tensor, temperature: float, fitted: float | None = None) -> Figure:
    """Draw the reliability diagram and the confidence histogram of ``logits / temperature`` (one slider view)."""
    from .metrics import CalibrationMeter

    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    probs = (logits.float() / temperature).softmax(1)
    meter = CalibrationMeter(num_classes=probs.shape[1]).update(probs, target)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.6), layout="constrained")
    _reliability_panel(ax1, meter.reliability(), f"T = {temperature:.2f}")
    ax1.text(0.97, 0.04, f"ECE {meter.ece():.4f}\nNLL {meter.nll():.4f}", ha="right", va="bottom",
             transform=ax1.transAxes, fontsize=9)
    conf = probs.amax(1)[target != IGNORE_INDEX]
    ax2.hist(_np(conf).ravel(), bins=np.linspace(1 / probs.shape[1], 1, 41), color="0.45")
    ax2.set(yscale="log", xlabel="confidence (max-softmax)", ylabel="pixels", title="where the confidences lie")
    if fitted is not None:
        fig.suptitle(f"temperature T = {temperature:.2f} (fitted on validation: {fitted:.2f})", fontsize=10)
    return fig


def temperature_explorer(logits: torch.Tensor, target: torch.Tensor, fitted: float | None = None):
    """Return an ipywidgets demo: a temperature slider that redraws :func:`calibration_view`."""
    import ipywidgets as widgets

    slider = widgets.FloatLogSlider(value=1.0, base=10, min=-0.7, max=0.7, step=0.02, description="T")
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            calibration_view(logits, target, slider.value, fitted)
            plt.show()

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])


def _map_panel(fig: Figure, ax: plt.Axes, values: torch.Tensor, vmax: float, title: str) -> None:
    im = ax.imshow(_np(values), cmap=HEATMAP_CMAP, vmin=0, vmax=vmax)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)


def show_uncertainty_maps(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    row_titles: Sequence[str] | None = None,
    labels: torch.Tensor | None = None,
    predictions: torch.Tensor | None = None,
) -> Figure:
    """Draw one row per image: the image (with the prediction overlaid if given) and each named map.

    ``images`` is ``(R, 1, H, W)``, each map ``(R, H, W)``; every map column shares one colour scale
    (from 0 to the column's largest value), so rows can be compared. ``labels`` adds a truth column.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be (R, 1, H, W), got {getattr(images, 'shape', type(images))}")
    rows = images.shape[0]
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor) or m.shape != (rows,) + images.shape[-2:]:
            raise ValueError(f"map {name!r} must be (R, H, W) = {(rows,) + tuple(images.shape[-2:])}")
    if row_titles is not None and len(row_titles) != rows:
        raise ValueError(f"row_titles must have {rows} entries, got {len(row_titles)}")
    extra = (labels is not None) + (predictions is not None)
    cols = 1 + extra + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(2.35 * cols, 2.2 * rows), squeeze=False, layout="constrained")
    vmax = {name: max(float(m.max()), 1e-6) for name, m in maps.items()}
    for r in range(rows):
        c = 0
        _show_gray(axes[r, c], images[r])
        axes[r, c].set_title(row_titles[r] if row_titles else "image", fontsize=9)
        if labels is not None:
            c += 1
            axes[r, c].imshow(overlay(images[r], labels[r]))
            axes[r, c].set_title("truth", fontsize=9)
        if predictions is not None:
            c += 1
            axes[r, c].imshow(overlay(images[r], predictions[r]))
            axes[r, c].set_title("prediction", fontsize=9)
        for name, m in maps.items():
            c += 1
            _map_panel(fig, axes[r, c], m[r], vmax[name], name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def members_view(image: torch.Tensor, members: torch.Tensor, count: int, title: str = "") -> Figure:
    """Draw the predictive maps from the first ``count`` of ``members`` ``(T, K, H, W)`` probabilities of one scene."""
    from .uncertainty import decompose

    if not isinstance(members, torch.Tensor) or members.ndim != 4:
        raise ValueError(f"members must be (T, K, H, W) probabilities, got {getattr(members, 'shape', type(members))}")
    if not isinstance(count, int) or not 1 <= count <= members.shape[0]:
        raise ValueError(f"count must be an int in [1, {members.shape[0]}], got {count!r}")
    p = members[:count, None]
    total, aleatoric, epistemic = (v[0] for v in decompose(p))
    mean = p.mean(0)[0]
    log_k = float(np.log(members.shape[1]))
    fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.6), layout="constrained")
    axes[0].imshow(overlay(image, mean.argmax(0)))
    axes[0].set_title("prediction", fontsize=9)
    _map_panel(fig, axes[1], 1 - mean.amax(0), 1 - 1 / members.shape[1], "1 - max-softmax")
    _map_panel(fig, axes[2], total, log_k, "total entropy")
    _map_panel(fig, axes[3], aleatoric, log_k, "expected entropy")
    _map_panel(fig, axes[4], epistemic, 0.5 * log_k, "mutual information")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def members_explorer(image: torch.Tensor, members: dict[str, torch.Tensor]):
    """Return an ipywidgets demo: pick a method (e.g. MC dropout, ensemble) and how many of its samples to average."""
    import ipywidgets as widgets

    if not members:
        raise ValueError("members must map a method name to its (T, K, H, W) probabilities")
    method = widgets.Dropdown(options=list(members), description="method")
    count = widgets.IntSlider(value=1, min=1, max=members[method.value].shape[0], description="samples")
    out = widgets.Output()

    def draw(*_):
        count.max = members[method.value].shape[0]
        with out:
            out.clear_output(wait=True)
            members_view(image, members[method.value], count.value, f"{method.value}, {count.value} sample(s)")
            plt.show()

    method.observe(draw, names="value")
    count.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([method, count]), out])


def show_risk_coverage(
    curves: dict[str, tuple[torch.Tensor, torch.Tensor]], max_points: int = 2000, zoom: float = 0.9
) -> Figure:
    """Plot selective risk against coverage, and the share of errors caught against the share of pixels set aside.

    ``curves`` maps a name to ``(coverage, risk)`` (as from ``metrics.risk_coverage``); the left panel
    shows coverage from ``zoom`` to 1 with a log risk axis, where methods differ.
    """
    if not curves:
        raise ValueError("curves must hold at least one (coverage, risk) pair")
    if not 0 <= zoom < 1:
        raise ValueError(f"zoom must be in [0, 1), got {zoom!r}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.7), layout="constrained")
    for name, (cov, risk) in curves.items():
        cov, risk = np.asarray(cov, float), np.asarray(risk, float)
        caught = 1 - cov * risk / max(risk[-1], 1e-300)  # errors among the pixels set aside, as a share
        if len(cov) > max_points:
            keep = np.unique(np.concatenate([np.linspace(0, len(cov) - 1, max_points).round().astype(int),
                                             np.flatnonzero(cov >= zoom)[:: max(1, (cov >= zoom).sum() // max_points)]]))
            cov, risk, caught = cov[keep], risk[keep], caught[keep]
        ax1.plot(cov, risk, lw=1.6, label=name)
        ax2.plot(1 - cov, caught, lw=1.6, label=name)
    ax1.set(xlabel="coverage (share of pixels kept)", ylabel="error rate of kept pixels", yscale="log",
            xlim=(zoom, 1.0), title="risk-coverage")
    ax2.set(xlabel="share of pixels set aside (least certain first)", ylabel="share of all errors set aside",
            xscale="log", xlim=(1e-4, 1), ylim=(0, 1.02), title="errors caught")
    ax1.legend(fontsize=8)
    return fig


def show_image_grid(grid: torch.Tensor, row_titles: Sequence[str], col_titles: Sequence[str]) -> Figure:
    """Draw a grid of grey images ``(R, C, 1, H, W)`` (e.g. corruption kinds by severity) with row and column titles."""
    if not isinstance(grid, torch.Tensor) or grid.ndim != 5:
        raise ValueError(f"grid must be (R, C, 1, H, W), got {getattr(grid, 'shape', type(grid))}")
    rows, cols = grid.shape[:2]
    if len(row_titles) != rows or len(col_titles) != cols:
        raise ValueError(f"need {rows} row titles and {cols} column titles, got {len(row_titles)} and {len(col_titles)}")
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.75 * rows), squeeze=False, layout="constrained")
    for r in range(rows):
        for c in range(cols):
            _show_gray(axes[r, c], grid[r, c])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(col_titles[c], fontsize=9)
        axes[r, 0].set_ylabel(row_titles[r], fontsize=9)
    return fig
