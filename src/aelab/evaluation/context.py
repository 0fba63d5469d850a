"""What every evaluation section shares, built once per ``aelab-eval``; and :func:`requires`, how a section says
what a model must be able to do for it to apply."""

from __future__ import annotations

import logging
import math
import time
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from aelab.codecs import classical
from aelab.codecs import pca as pca_codec
from aelab.evaluation.metrics import map_batches, to_float
from aelab.models.capabilities import Autoencoding

log = logging.getLogger("aelab")


def requires(*protocols: type, images: bool = False, kinds=None):
    """Mark a section function with what it measures: it applies (``enabled: auto``) to models that implement
    every one of ``protocols`` (:mod:`aelab.models.capabilities`) and to data of one of the sample ``kinds``
    (:data:`aelab.data.contract.SAMPLE_KINDS`; ``None``: any kind). ``images=True`` is ``kinds=("image",)``.

    Sets ``fn.requires`` (the protocols), ``fn.kinds`` (a tuple of kinds, or ``None``) and ``fn.images``.

    Raises:
        ValueError: for a kind not in ``SAMPLE_KINDS``, or ``images=True`` with ``kinds`` that leave out ``image``.
    """
    from aelab.data.contract import SAMPLE_KINDS

    if kinds is not None:
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        unknown = [k for k in kinds if k not in SAMPLE_KINDS]
        if unknown:
            raise ValueError(
                f"requires(kinds=...): unknown sample kinds {unknown}; the kinds are {SAMPLE_KINDS}"
            )
        if images and "image" not in kinds:
            raise ValueError(f"requires(images=True, kinds={kinds}): a section about images needs kind image")
    elif images:
        kinds = ("image",)

    def mark(fn):
        fn.requires, fn.images, fn.kinds = tuple(protocols), bool(images), kinds
        return fn

    return mark


class EvalContext:
    """The model on its device in eval mode, the data (through the data contract, :class:`aelab.data.Data`), the
    batch size and output folder, and what several sections use — test codes (timed), reconstructions, training
    codes and the PCA baseline of the code size — each computed on first use.

    Args:
        model: an aelab model (a plain ``nn.Module``).
        datamodule: its datamodule (``split_tensors`` gives the examples ``(N, *shape)``, uint8 images or float
            rows, and labels or ``None``).
        output_dir: where sections write files (PNGs, scores) beside ``metrics.json``.
        device: where the model runs.
        batch_size: images per forward pass.
        loggers: the evaluation's Lightning loggers (sections send their images there too).
        step: the global step the loggers record the images at.
        precision: the evaluation's Lightning precision (``32-true``, ``bf16-mixed``); sections that run long
            forward passes (the likelihood) may use it.
    """

    def __init__(
        self,
        model,
        datamodule,
        output_dir: str | Path,
        device: torch.device,
        batch_size: int,
        loggers: list | None = None,
        step: int = 0,
        precision: str = "32-true",
    ) -> None:
        self.model = model.to(device).eval()
        self.precision = str(precision)
        self.datamodule = datamodule
        self.output_dir = Path(output_dir)
        self.device = device
        self.batch_size = int(batch_size)
        self.loggers = list(loggers or [])
        self.step = int(step)
        #: why sections that ran returned nothing (:meth:`skip`): ``{section: reason}``
        self.skipped: dict[str, str] = {}
        self.train_u8, self.train_y = datamodule.split_tensors("train")
        self.test_u8, self.test_y = datamodule.split_tensors("test")
        self.image_shape: tuple[int, ...] = tuple(self.test_u8.shape[1:])  # (C, H, W), or (F,) for table rows
        self.x_test = to_float(self.test_u8)  # (N, *shape); pixels in [0, 1]
        self.encode_images_per_s: float | None = None
        self.codes_test: Tensor | None = None
        if isinstance(self.model, Autoencoding):
            t0 = time.perf_counter()
            self.codes_test = self.map(self.model.encode, self.test_u8)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.encode_images_per_s = len(self.test_u8) / (time.perf_counter() - t0)

    @property
    def raw_bytes(self) -> int:
        """Bytes of one raw uint8 image: ``C·H·W``."""
        return classical.raw_bytes_per_image(self.image_shape)

    @property
    def labelled(self) -> bool:
        """Whether the data has labels (the probe, the one-class protocol and the Fréchet distance need them)."""
        return self.test_y is not None and self.train_y is not None

    def map(self, fn, images: Tensor) -> Tensor:
        """``fn`` over ``images`` (uint8/float images or codes) in batches on the device, results on the CPU."""
        return map_batches(fn, images, self.batch_size, self.device)

    def skip(self, section: str, why: str) -> dict[str, float]:
        """Log once why ``section`` does not apply here (and keep it in :attr:`skipped`, which the suite writes to
        ``suite_skipped.json``); returns no figures."""
        log.info("evaluation section %s skipped: %s", section, why)
        self.skipped[section] = why
        return {}

    @cached_property
    def recon(self) -> Tensor:
        """Reconstructions of the test images, ``(N, C, H, W)`` in [0, 1]."""
        return self.map(self.model.reconstruct, self.test_u8)

    @cached_property
    def codes_train(self) -> Tensor:
        """Codes of the training images ``(N, latent_dim)``."""
        return self.map(self.model.encode, self.train_u8)

    @property
    def pca_size(self) -> int:
        """Components of the PCA baseline: the code size, at most the pixels (and images) there are."""
        return min(int(self.model.latent_dim), math.prod(self.image_shape), len(self.train_u8))

    @cached_property
    def pca(self):
        """scikit-learn PCA with as many components as the code has dimensions (:attr:`pca_size`), fitted on the
        training images."""
        return pca_codec.fit_pca(to_float(self.train_u8), self.pca_size)

    @cached_property
    def pca_codes(self) -> tuple[Tensor, Tensor]:
        """PCA codes of the training and the test images: the baseline of the same size."""
        train = torch.from_numpy(self.pca.transform(to_float(self.train_u8).flatten(1).numpy())).float()
        test = torch.from_numpy(self.pca.transform(self.x_test.flatten(1).numpy())).float()
        return train, test

    def pca_decode(self, codes: Tensor) -> Tensor:
        """PCA codes back to images ``(N, C, H, W)`` in [0, 1]."""
        return pca_codec.pca_decode(self.pca, codes, self.image_shape)
