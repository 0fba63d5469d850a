"""The data contract: what every aelab datamodule provides to models, evaluation, dashboards and figures.

Nothing outside :mod:`aelab.data` knows which dataset it has: the evaluation suite, the dashboards, the
report's figures and the compression tools read the image shape, the classes and the splits through this
protocol only. :class:`aelab.data.ImageDataModule` implements it for any set of images held as uint8
tensors; MNIST, Fashion-MNIST, image folders and the bundled sets are subclasses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class ImageData(Protocol):
    """A labelled or unlabelled image set with fixed ``train`` / ``val`` / ``test`` splits.

    Attributes:
        name: a short name for captions and cache files (``"MNIST"``, ``"digits"``, the folder's name).
        image_shape: ``(C, H, W)`` of every image (C = 1 grey, 3 RGB).
        num_classes: the number of classes, ``None`` when the images have no labels.
        class_names: one name per class (``None`` without labels).
        train_classes: the classes kept in ``train``/``val`` (the one-class protocol), ``None`` for all.
        cache_dir: where aelab may cache what it derives from this data (decoded images, feature networks).
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int | None
    class_names: list[str] | None
    train_classes: list[int] | None

    @property
    def cache_dir(self) -> Path: ...

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """uint8 images ``(N, C, H, W)`` (0..255) and int64 labels ``(N,)`` (``None`` without labels) of
        ``train``, ``val`` or ``test``."""
        ...

    def sample_images(self, n: int, split: str = "val") -> tuple[Tensor, Tensor | None]:
        """The first ``n`` images of a split as float ``(n, C, H, W)`` in [0, 1], and their labels."""
        ...


__all__ = ["ImageData"]
