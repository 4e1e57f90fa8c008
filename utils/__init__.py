"""Helpers for the *Beyond Softmax* course: data, models, training, weights, metrics and plots.

The functions work on the course's own U-Net and on any segmentation model whose forward returns
``(B, K, H, W)`` logits or a torchvision-style dict with ``"out"``.
"""

__version__ = "0.1.0"
#: Marks this package as the course's: the chapters' setup cell looks for it to tell it from another ``utils``.
__course__ = "beyond-softmax"
