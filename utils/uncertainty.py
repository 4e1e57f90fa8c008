"""Predictive distributions from one model, MC dropout or a deep ensemble, and their entropy decomposition.

For ``T`` stochastic forward passes or ensemble members with per-pixel class probabilities
``p^(t)``, the predictive distribution is the mean ``p_bar = (1/T) sum_t p^(t)`` and, in nats:

* total uncertainty ``H[p_bar]`` (predictive entropy),
* aleatoric part ``(1/T) sum_t H[p^(t)]`` (expected entropy),
* epistemic part ``H[p_bar] - (1/T) sum_t H[p^(t)]``, the mutual information between the label and
  the model (BALD; Houlsby et al. 2011, Gal et al. 2017). It is >= 0 by Jensen's inequality, and 0
  when all members agree.

The maximum entropy is ``log K``. :func:`mc_dropout` and :func:`ensemble` stream: per batch they add
up the members' probabilities and entropies, so memory is that of one predictive distribution
unless ``keep_members=True``. Every function takes any model whose forward returns ``(B, K, H, W)``
logits or a dict holding them under ``"out"``, restores every module's train/eval flag afterwards
(even on error), and returns tensors on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .models import UNet, _check_images, forward_logits, mc_dropout_mode

__all__ = ["Predictive", "decompose", "ensemble", "entropy", "foreground_or_background", "mc_dropout", "single"]


def entropy(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Return the Shannon entropy ``-sum p log p`` (nats) of ``probs`` along ``dim``, with ``0 log 0 = 0``."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor, got {probs.dtype}")
    return -torch.special.xlogy(probs, probs).sum(dim)


@dataclass
class Predictive:
    """A predictive distribution per pixel: mean probabilities and mean member entropy over ``samples`` members.

    ``probs`` ``(N, K, H, W)`` holds ``p_bar``; ``expected_entropy`` ``(N, H, W)`` the aleatoric part;
    ``members`` ``(T, N, K, H, W)`` each member's probabilities, only when they were kept.
    """

    probs: torch.Tensor
    expected_entropy: torch.Tensor
    samples: int
    members: torch.Tensor | None = None

    @property
    def total_entropy(self) -> torch.Tensor:
        """Predictive entropy ``H[p_bar]`` ``(N, H, W)``, in nats (total uncertainty)."""
        return entropy(self.probs, dim=1)

    @property
    def mutual_information(self) -> torch.Tensor:
        """Mutual information ``H[p_bar] - E_t H[p^(t)]`` ``(N, H, W)`` (epistemic), clamped at 0.

        The clamp only removes float round-off: the exact value is never negative.
        """
        return (self.total_entropy - self.expected_entropy).clamp_min(0.0)

    @property
    def max_softmax(self) -> torch.Tensor:
        """Confidence ``max_k p_bar_k`` ``(N, H, W)``."""
        return self.probs.amax(1)

    @property
    def prediction(self) -> torch.Tensor:
        """Predicted label map ``argmax_k p_bar_k`` ``(N, H, W)``."""
        return self.probs.argmax(1)

    def subset(self, n: int) -> Predictive:
        """Return the predictive distribution of the first ``n`` kept members (needs ``keep_members=True``)."""
        if self.members is None:
            raise ValueError("subset needs the members' probabilities: predict with keep_members=True")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.samples:
            raise ValueError(f"n must be an int in [1, {self.samples}], got {n!r}")
        members = self.members[:n]
        return Predictive(members.mean(0), entropy(members, dim=2).mean(0), n, members)


def decompose(member_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(total, aleatoric, epistemic)`` entropies ``(N, H, W)`` of member probabilities ``(T, N, K, H, W)``.

    ``total = aleatoric + epistemic``; the epistemic part (mutual information) is clamped at 0 to
    remove float round-off only.
    """
    if not isinstance(member_probs, torch.Tensor):
        raise TypeError(f"member_probs must be a torch.Tensor, got {type(member_probs).__name__}")
    if member_probs.ndim < 3 or member_probs.shape[0] < 1:
        raise ValueError(
            f"member_probs must have shape (T, N, K, ...) with T >= 1, got {tuple(member_probs.shape)}"
        )
    total = entropy(member_probs.mean(0), dim=1)
    aleatoric = entropy(member_probs, dim=2).mean(0)
    epistemic = (total - aleatoric).clamp_min(0.0)
    return total, aleatoric, epistemic


def foreground_or_background(probs: torch.Tensor, dim: int = 1, background: int = 0) -> torch.Tensor:
    """Collapse class probabilities along ``dim`` into two: ``(p_background, 1 - p_background)``.

    The entropies of the result ask only "object or background?", the question on an object's rim.
    """
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point torch.Tensor, got {type(probs).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -probs.ndim <= dim < probs.ndim:
        raise ValueError(f"dim must be an int in [{-probs.ndim}, {probs.ndim - 1}], got {dim!r}")
    k = probs.shape[dim]
    if isinstance(background, bool) or not isinstance(background, int) or not 0 <= background < k:
        raise ValueError(f"background must be a class index in [0, {k - 1}], got {background!r}")
    bg = probs.select(dim, background)
    return torch.stack([bg, 1 - bg], dim=dim)


# --------------------------------------------------------------------------------------------------
# running models


@contextmanager
def _restore_modes(models: Sequence[nn.Module]) -> Iterator[None]:
    """Restore every module's own train/eval flag on exit."""
    flags = [(m, m.training) for model in models for m in model.modules()]
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def _forked_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the CPU generator (and that of ``device`` if it is a CUDA device) inside; restore the caller's after."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index]):
            torch.default_generator.manual_seed(seed)
            torch.cuda.default_generators[index].manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_model(model: nn.Module, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


@torch.no_grad()
def _stream(
    passes: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    images: torch.Tensor,
    batch_size: int,
    keep_members: bool,
    progress: bool = False,
    desc: str = "passes",
) -> Predictive:
    """Run every pass on every batch of ``images``; accumulate mean probabilities and mean entropy on the CPU.

    With ``progress``, a bar (titled ``desc``) counts the passes: one per member or sample and batch.
    """
    _check_images(images, "images")
    _check_positive_int(batch_size, "batch_size")
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    t, n = len(passes), images.shape[0]
    out: dict[str, torch.Tensor] = {}  # filled in place, batch by batch: no per-batch copies to concatenate
    start = 0
    batches = images.split(batch_size)
    with tqdm(total=len(batches) * t, desc=desc, disable=not progress, leave=False) as bar:
        for batch in batches:
            prob_sum = ent_sum = None
            stop = start + batch.shape[0]
            for i, run in enumerate(passes):
                p = torch.softmax(run(batch).float(), dim=1)
                if not out:
                    out = {"probs": torch.empty((n, *p.shape[1:])), "ent": torch.empty((n, *p.shape[2:]))}
                    if keep_members:
                        out["members"] = torch.empty((t, n, *p.shape[1:]))
                elif p.shape[1] != out["probs"].shape[1]:
                    raise ValueError(f"member {i} predicts {p.shape[1]} classes, expected {out['probs'].shape[1]} like the first")
                h = entropy(p, dim=1)
                if prob_sum is None:
                    prob_sum, ent_sum = p.clone(), h
                else:
                    prob_sum += p.to(prob_sum.device)
                    ent_sum += h.to(ent_sum.device)
                if keep_members:
                    out["members"][i, start:stop] = p.cpu()
                bar.update(1)
            out["probs"][start:stop] = (prob_sum / t).cpu()
            out["ent"][start:stop] = (ent_sum / t).cpu()
            start = stop
    return Predictive(out["probs"], out["ent"], t, out.get("members"))


def single(
    model: nn.Module, images: torch.Tensor, batch_size: int = 16, device: torch.device | str | None = None
) -> Predictive:
    """Return the eval-mode softmax of ``model`` on ``images`` ``(N, C, H, W)`` as a one-member :class:`Predictive`.

    Its mutual information is 0 and its expected entropy equals its total entropy.
    """
    _check_model(model)
    dev = torch.device(device) if device is not None else _model_device(model)
    with _restore_modes([model]):
        model.eval()
        return _stream([lambda x: forward_logits(model, x.to(dev))], images, batch_size, keep_members=False)


def mc_dropout(
    model: nn.Module,
    images: torch.Tensor,
    samples: int = 20,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    seed: int = 0,
    keep_members: bool = False,
    progress: bool = False,
) -> Predictive:
    """Return the MC-dropout predictive distribution of ``model`` over ``samples`` passes (Gal & Ghahramani 2016).

    Dropout layers are on and BatchNorm uses its running statistics (:func:`utils.models.mc_dropout_mode`);
    the model's train/eval flags are restored afterwards. The dropout masks come from a generator seeded
    with ``seed`` inside a forked RNG, so the caller's global RNG is untouched and the result is
    repeatable for the same ``(seed, batch_size, device)``. Raises ``ValueError`` if the model has no
    dropout layer. ``progress`` shows a bar over the samples (the result is the same either way).
    """
    _check_model(model)
    _check_positive_int(samples, "samples")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _check_images(images, "images")
    dev = torch.device(device) if device is not None else _model_device(model)

    run = _sampler(model, dev)
    with _restore_modes([model]):
        mc_dropout_mode(model)
        with _forked_rng(seed, dev):
            return _stream([run] * samples, images, batch_size, keep_members, progress, "MC-dropout samples")


_CHUNK = 16  # images per convolution call inside an MC-dropout batch (faster in cache than 64)


def _sampler(model: nn.Module, dev: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return one MC-dropout pass on a batch; for the course's :class:`~utils.models.UNet`, the same samples with less work.

    The stem (the first block) and the next encoder block hold no dropout layer, so every sample of a
    batch shares their outputs: they are computed once per batch. Each sample's dropout masks are drawn
    for the whole batch, exactly as the plain forward pass draws them (:meth:`~utils.models.UNet.dropout_noise`), and then applied to slices
    of ``_CHUNK`` images, so that the masks, and hence the samples, do not depend on the chunking. Any
    other model (or a UNet subclass with its own ``forward``, or with forward hooks) runs whole.
    """
    if type(model).forward is not UNet.forward or model._forward_hooks or model._forward_pre_hooks:
        return lambda x: forward_logits(model, x.to(dev))
    cache: dict[str, torch.Tensor] = {}

    def run(x: torch.Tensor) -> torch.Tensor:
        if cache.get("batch") is not x:                  # a new batch: its dropout-free part, once
            cache["batch"] = x
            cache["stem"] = torch.cat([model.stem(c) for c in x.to(dev).split(_CHUNK)])
            firsts = [model.first_block(c) for c in cache["stem"].split(_CHUNK)]
            cache["first"] = None if firsts[0] is None else torch.cat(firsts)
        stem, first = cache["stem"], cache["first"]
        starts = range(0, stem.shape[0], _CHUNK)
        parts = [None] * len(starts) if first is None else first.split(_CHUNK)
        noise = model.dropout_noise(stem.shape[0], stem)  # None when dropout is off
        return torch.cat([model.forward_from_stem(c, None if noise is None else [n[i : i + _CHUNK] for n in noise], f)
                          for i, c, f in zip(starts, stem.split(_CHUNK), parts)])  # fmt: skip

    return run


def ensemble(
    models: Sequence[nn.Module],
    images: torch.Tensor,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    keep_members: bool = False,
    progress: bool = False,
) -> Predictive:
    """Return the deep-ensemble predictive distribution of ``models``, each in eval mode (Lakshminarayanan et al. 2017).

    With ``device=None`` each member runs on the device of its own parameters. All members must
    predict the same number of classes. Train/eval flags are restored afterwards. ``progress`` shows
    a bar over the members (the result is the same either way).
    """
    if isinstance(models, nn.Module) or not isinstance(models, Sequence):
        raise TypeError(f"models must be a sequence (list or tuple) of torch.nn.Module, got {type(models).__name__}")
    if len(models) == 0:
        raise ValueError("models must hold at least one model")
    for i, model in enumerate(models):
        _check_model(model, f"models[{i}]")
    _check_images(images, "images")

    def runner(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        dev = torch.device(device) if device is not None else _model_device(model)
        return lambda x: forward_logits(model, x.to(dev))

    with _restore_modes(models):
        for model in models:
            model.eval()
        return _stream([runner(m) for m in models], images, batch_size, keep_members, progress, "ensemble members")
