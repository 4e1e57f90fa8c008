"""Out-of-distribution inputs for the course: letter scenes, photo crops and pure noise.

A DigitScenes model has only ever seen handwritten digits on a dark background. To measure whether
its confidence drops on things it was never trained on, the chapters feed it three kinds of
out-of-distribution (OOD) input, all built offline from files that ship inside installed packages
and all deterministic (seeded):

Letter scenes (near OOD)
    A test-split DigitScenes scene (at most three digits, so that there is room left) with one or
    two printed letters A-J (notMNIST's ten letters) added with the digits' geometry: ink height
    uniform in ``config.scale``, rotation uniform in +-``config.max_rotation``, and a position whose
    box covers at most ``config.max_overlap`` of its own area with earlier boxes, found in
    ``config.placement_tries`` tries. One difference: a digit that finds no room is left out, but a
    letter first gets up to ten fresh (height, rotation) draws, because the digits already crowd the
    canvas (with one draw, about a third of the scenes would end up without any letter; with ten,
    about 5 %). Where strokes meet, the image keeps the brighter ink and the letter wins the label.

    The letters are rendered from the TrueType fonts bundled with matplotlib (21 fonts: DejaVu,
    STIX and Computer Modern) and normalised like MNIST and notMNIST: white ink on black, fitted,
    keeping the aspect, into a 20x20 box centred in 28x28. Letter stroke pixels (ink >=
    :data:`utils.config.STROKE_THRESHOLD`) are marked ``ood`` and labelled
    :data:`utils.config.IGNORE_INDEX`, so they count for OOD detection but never for accuracy or IoU.
Photo crops (far OOD)
    Grey, random square crops of the sample photos of ``skimage.data`` that ship inside the
    scikit-image wheel, resized to the scene size.
Noise (farthest OOD)
    Uniform or Gaussian pixel noise.

Letter scene ``i`` of split ``s`` with seed ``r`` is always the same array: its digits are
``make_scene(s, i, r)`` (without noise, at most three digits) and everything added afterwards draws
from ``numpy.random.default_rng([r, 10 + split_id, i])`` alone.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import Dataset

from .config import IGNORE_INDEX, IMAGE_SIZE, SPLITS, STROKE_THRESHOLD
from .data import SceneConfig, _check_split, _draw_glyph, _find_spot, _stack_field, make_scene

__all__ = [
    "FONT_FILES",
    "LETTERS",
    "NOISE_KINDS",
    "PHOTO_NAMES",
    "LetterScene",
    "LetterScenes",
    "font_paths",
    "letter_glyphs",
    "make_letter_scene",
    "noise_images",
    "photo_crops",
]

#: notMNIST's ten letters; a letter's index in this string is its class in :func:`letter_glyphs`.
LETTERS: str = "ABCDEFGHIJ"
#: TrueType fonts bundled with matplotlib (``matplotlib.get_data_path()/fonts/ttf``) used for letters.
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
)
#: ``skimage.data`` images that ship inside the scikit-image wheel (no download needed).
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "rocket",
    "text",
)
#: The kinds of :func:`noise_images`.
NOISE_KINDS: tuple[str, ...] = ("uniform", "gaussian")

_RENDER_PX = 96  # font size at which letters are rendered before being fitted into 20x20
_GLYPH_BOX = 20  # like MNIST / notMNIST: the ink fits a 20x20 box ...
_GLYPH_SIZE = 28  # ... centred in a 28x28 image
_MIN_SIZE = 16  # smallest image side accepted (the same bound as SceneConfig.size)
_LETTER_ROUNDS = 10  # a letter that finds no room gets this many (height, rotation) draws in all
_SPLIT_OFFSET = 10  # letter scenes seed with 10 + split id, never colliding with make_scene's seeds
_PHOTO_STREAM = 7001  # fixed entries of the photo / noise seeds, so they never share a stream
_NOISE_STREAM = 7002


# --- argument checks ------------------------------------------------------------------------------


def _check_count(value: int, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_letters(letters: tuple[int, int]) -> tuple[int, int]:
    if not isinstance(letters, (tuple, list)) or len(letters) != 2:
        raise ValueError(f"letters must be a (low, high) pair of ints, got {letters!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in letters):
        raise TypeError(f"letters must be a (low, high) pair of ints, got {letters!r}")
    lo, hi = int(letters[0]), int(letters[1])
    if not 0 <= lo <= hi:
        raise ValueError(f"letters must satisfy 0 <= low <= high, got {letters!r}")
    return lo, hi


def _check_config(config: SceneConfig | None) -> SceneConfig:
    if config is not None and not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig or None, got {type(config).__name__}")
    return config or SceneConfig()


# --- letters --------------------------------------------------------------------------------------


def font_paths() -> list[pathlib.Path]:
    """Return the absolute paths of :data:`FONT_FILES` (matplotlib's bundled fonts)."""
    import matplotlib

    folder = pathlib.Path(matplotlib.get_data_path()).resolve() / "fonts" / "ttf"
    paths = [folder / name for name in FONT_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"matplotlib {matplotlib.__version__} lacks the bundled font(s) {missing} in {folder}; "
            "the letter glyphs need all of FONT_FILES"
        )
    return paths


def _fit_glyph(ink: np.ndarray) -> np.ndarray:
    """Crop a uint8 ink image to its ink and fit it, keeping its aspect, into 20x20 centred in 28x28."""
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    factor = _GLYPH_BOX / max(h, w)
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
    small = Image.fromarray(crop).resize((new_w, new_h), resample=Image.LANCZOS)
    out = np.zeros((_GLYPH_SIZE, _GLYPH_SIZE), np.float32)
    top, left = (_GLYPH_SIZE - new_h) // 2, (_GLYPH_SIZE - new_w) // 2
    out[top : top + new_h, left : left + new_w] = np.asarray(small, np.float32) / 255.0
    return out


def _render_letter(font: ImageFont.FreeTypeFont, letter: str) -> np.ndarray:
    """Draw ``letter`` in white on a black canvas big enough for any of its metrics; return uint8 ink."""
    left, top, right, bottom = font.getbbox(letter)
    pad = _RENDER_PX // 4
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), letter, font=font, fill=255)
    return np.asarray(canvas, np.uint8)


@lru_cache(maxsize=None)
def _letter_glyphs() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    glyphs, classes, fonts = [], [], []
    for path in font_paths():
        font = ImageFont.truetype(str(path), _RENDER_PX)
        for k, letter in enumerate(LETTERS):
            ink = _render_letter(font, letter)
            if ink.max() == 0:
                raise RuntimeError(f"font {path.name} draws no ink for letter {letter!r}")
            glyphs.append(_fit_glyph(ink))
            classes.append(k)
            fonts.append(path.name)
    x = np.stack(glyphs).astype(np.float32)
    y = np.asarray(classes, np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y, tuple(fonts)


def letter_glyphs() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return every letter in every font: ``(glyphs (N, 28, 28) float32, letter (N,) int64, font per glyph)``."""
    x, y, fonts = _letter_glyphs()
    return x.copy(), y.copy(), list(fonts)


@dataclass
class LetterScene:
    """One DigitScenes scene with printed letters added: image, label map, OOD mask and contents."""

    image: np.ndarray  # (H, W) float32 in [0, 1]
    label: np.ndarray  # (H, W) uint8: 0 = background, k + 1 = digit k, IGNORE_INDEX = letter stroke
    ood: np.ndarray  # (H, W) bool: letter stroke pixels (exactly label == IGNORE_INDEX)
    digits: list[int] = field(default_factory=list)  # class of each placed digit (0-9)
    letters: list[str] = field(default_factory=list)  # each placed letter, in placement order
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # digits', then letters'


def make_letter_scene(
    index: int,
    seed: int = 0,
    split: str = "test",
    letters: tuple[int, int] = (1, 2),
    config: SceneConfig | None = None,
) -> LetterScene:
    """Render letter scene ``index`` of ``split``; the same arguments always give the same arrays."""
    _check_split(split)
    index = _check_count(index, "index")
    seed = _check_count(seed, "seed")
    lo, hi = _check_letters(letters)
    cfg = _check_config(config)
    # The digits: the clean scene of the same split, index and seed, with room left for letters.
    max_digits = min(cfg.max_digits, 3)
    digit_cfg = dataclasses.replace(
        cfg, noise_std=0.0, max_digits=max_digits, min_digits=min(cfg.min_digits, max_digits)
    )
    base = make_scene(split, index, seed, digit_cfg)
    image, label = base.image, base.label
    boxes = list(base.boxes)
    placed: list[str] = []

    glyphs, classes, _ = _letter_glyphs()
    rng = np.random.default_rng([seed, _SPLIT_OFFSET + SPLITS[split], index])
    n = int(rng.integers(lo, hi + 1))
    for _ in range(n):
        k = int(rng.integers(len(glyphs)))
        for _round in range(_LETTER_ROUNDS):  # a fresh height and rotation each round
            glyph = _draw_glyph(rng, glyphs[k], cfg)
            h, w = glyph.shape
            spot = _find_spot(rng, (h, w), boxes, cfg)
            if spot is not None:
                break
        else:
            continue  # no room for this letter after every round: leave it out
        top, left = spot
        window = (slice(top, top + h), slice(left, left + w))
        image[window] = np.maximum(image[window], glyph)
        label[window][glyph >= STROKE_THRESHOLD] = IGNORE_INDEX  # the later object wins
        placed.append(LETTERS[int(classes[k])])
        boxes.append((top, left, h, w))
    if cfg.noise_std > 0:
        image += rng.normal(0.0, cfg.noise_std, image.shape).astype(np.float32)
    np.clip(image, 0.0, 1.0, out=image)
    return LetterScene(image, label, label == IGNORE_INDEX, list(base.digits), placed, boxes)


class LetterScenes(Dataset):
    """Letter scenes as a map-style dataset of ``(image (1, H, W) float32, label (H, W) int64)``.

    All scenes are rendered once, on construction. Letter pixels are labelled ``IGNORE_INDEX`` (255);
    ``ood`` holds the same pixels as a bool mask.
    """

    def __init__(
        self,
        size: int = 200,
        seed: int = 0,
        split: str = "test",
        letters: tuple[int, int] = (1, 2),
        config: SceneConfig | None = None,
    ) -> None:
        _check_split(split)
        size = _check_count(size, "size")
        seed = _check_count(seed, "seed")
        letters = _check_letters(letters)
        self.split, self.seed, self.letter_range = split, seed, letters
        self.config = _check_config(config)
        scenes = [make_letter_scene(i, seed, split, letters, self.config) for i in range(size)]
        s = self.config.size
        self.images = torch.from_numpy(_stack_field(scenes, "image", np.float32, s)).unsqueeze(1)
        self.labels = torch.from_numpy(_stack_field(scenes, "label", np.uint8, s).astype(np.int64))
        self.ood = torch.from_numpy(_stack_field(scenes, "ood", np.bool_, s))
        self.digits: list[list[int]] = [sc.digits for sc in scenes]
        self.letters: list[list[str]] = [sc.letters for sc in scenes]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]


# --- photos ---------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """Load one ``skimage.data`` photo as a read-only grey float32 array in [0, 1]."""
    try:
        import skimage.data
        from skimage.color import rgb2gray
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("photo_crops needs scikit-image: pip install scikit-image") from err
    raw = np.asarray(getattr(skimage.data, name)())
    if raw.ndim == 3:
        grey = rgb2gray(raw[..., :3])  # floats in [0, 1] whatever the input dtype
    elif raw.dtype == np.bool_:
        grey = raw.astype(np.float32)
    elif raw.dtype == np.uint8:
        grey = raw / 255.0
    else:
        grey = (raw - raw.min()) / max(float(raw.max() - raw.min()), 1e-12)
    out = np.clip(np.asarray(grey, np.float32), 0.0, 1.0)
    out.setflags(write=False)
    return out


def photo_crops(n: int, seed: int = 0, size: int = 64, names: tuple[str, ...] = PHOTO_NAMES) -> torch.Tensor:
    """Return ``n`` grey random square crops of ``skimage.data`` photos as ``(n, 1, size, size)`` in [0, 1]."""
    n = _check_count(n, "n")
    seed = _check_count(seed, "seed")
    size = _check_count(size, "size", _MIN_SIZE)
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"names must be a tuple of photo names, got {names!r}")
    if not names:
        raise ValueError(f"names must name at least one photo of {PHOTO_NAMES}")
    unknown = [name for name in names if name not in PHOTO_NAMES]
    if unknown:
        raise ValueError(f"names must be taken from {PHOTO_NAMES}, got unknown {unknown}")
    out = np.empty((n, 1, size, size), np.float32)
    for i in range(n):  # one generator per crop: crop i does not depend on n
        rng = np.random.default_rng([seed, _PHOTO_STREAM, i])
        photo = _photo(names[int(rng.integers(len(names)))])
        short = min(photo.shape)
        side = int(rng.integers(math.ceil(short / 4), short + 1))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(np.ascontiguousarray(photo[top : top + side, left : left + side]), mode="F")
        out[i, 0] = np.asarray(crop.resize((size, size), resample=Image.BILINEAR), np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return torch.from_numpy(out)


# --- noise ----------------------------------------------------------------------------------------


def noise_images(n: int, kind: str = "uniform", seed: int = 0, size: int = 64, std: float = 0.25) -> torch.Tensor:
    """Return ``n`` noise images ``(n, 1, size, size)`` float32 in [0, 1]: U[0, 1] or N(0.5, std²) clipped."""
    n = _check_count(n, "n")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {list(NOISE_KINDS)}, got {kind!r}")
    seed = _check_count(seed, "seed")
    size = _check_count(size, "size", _MIN_SIZE)
    if isinstance(std, bool) or not isinstance(std, (int, float, np.floating)):
        raise TypeError(f"std must be a number, got {type(std).__name__}")
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    rng = np.random.default_rng([seed, _NOISE_STREAM, NOISE_KINDS.index(kind)])
    shape = (n, 1, size, size)
    if kind == "uniform":
        x = rng.random(shape, dtype=np.float32)
    else:
        x = (0.5 + float(std) * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    return torch.from_numpy(x)
