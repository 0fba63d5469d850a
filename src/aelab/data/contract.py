"""The data contract: what every aelab datamodule provides to models, evaluation, dashboards and figures.

Nothing outside :mod:`aelab.data` knows which dataset it has: the module, the evaluation suite, the dashboards and
the report read the *kind* of sample, its shape, the classes and the splits through this protocol only.

Sample kinds (:data:`SAMPLE_KINDS`), each with the shape of one example:

- ``image``: ``(C, H, W)``, stored uint8 (0..255), float in [0, 1] in every batch;
- ``table``: a record ``(F,)`` of transformed features (float; the transform's units);
- ``series``: a window ``(T, C)`` of ``T`` time points and ``C`` channels (float; scaled per channel);
- ``tokens``: a token sequence ``(T,)`` (int64 ids, with a padding mask);
- ``interactions``: a user's item vector ``(I,)`` (0/1 per item; the batches of held-out users are
  ``(fold-in items, held-out items)``).

A datamodule may also declare (each with a default, so an image set declares nothing):

- ``eval_metrics() -> {name: Metric} | None``: the validation/test metrics of its protocol, each updated with
  ``(x_hat, batch)``: images' ``mse`` and ``psnr``, tables' ``mse``, held-out users' Recall@k and NDCG@k (a
  datamodule of your own that declares none gets ``mse``).
- ``monitor`` / ``monitor_mode``: the validation metric that picks the best checkpoint (``val/loss``, ``min``).
- ``train_sections``: the evaluation sections a training run reports right after its test (``("anomaly",)`` for
  labelled records, ``("recommend",)`` for held-out users), so their baselines sit in ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from torch import Tensor

#: the kinds of sample a datamodule may hold (:attr:`Data.sample_kind`)
SAMPLE_KINDS = ("image", "table", "series", "tokens", "interactions")


@runtime_checkable
class Data(Protocol):
    """A set of examples of one kind with fixed ``train`` / ``val`` / ``test`` splits.

    Attributes:
        name: a short name for captions and cache files (``"MNIST"``, ``"digits"``, the file's stem).
        sample_kind: one of :data:`SAMPLE_KINDS`.
        shape: the shape of one example (see the kinds above).
        num_classes: the number of classes, ``None`` without labels.
        class_names: one name per class (``None`` without labels).
        cache_dir: where aelab may cache what it derives from this data (decoded images, feature networks).
    """

    name: str
    sample_kind: str
    num_classes: int | None
    class_names: list[str] | None

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def cache_dir(self) -> Path: ...

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """The examples ``(N, *shape)`` of ``train``, ``val`` or ``test`` and their targets: int64 labels ``(N,)``,
        ``None``, or (held-out users) the held-out item vectors ``(N, I)``."""
        ...


@runtime_checkable
class ImageData(Data, Protocol):
    """An image set (``sample_kind == "image"``): :class:`Data` with the image shape and image samples.

    Attributes:
        image_shape: ``(C, H, W)`` of every image (C = 1 grey, 3 RGB).
        train_classes: the classes kept in ``train``/``val`` (the one-class protocol), ``None`` for all.
    """

    image_shape: tuple[int, int, int]
    train_classes: list[int] | None

    def sample_images(self, n: int, split: str = "val") -> tuple[Tensor, Tensor | None]:
        """The first ``n`` images of a split as float ``(n, C, H, W)`` in [0, 1], and their labels."""
        ...


def sample_kind(datamodule) -> str:
    """The sample kind a datamodule declares (``image`` for one that predates the attribute)."""
    return str(getattr(datamodule, "sample_kind", "image"))


__all__ = ["SAMPLE_KINDS", "Data", "ImageData", "sample_kind"]
