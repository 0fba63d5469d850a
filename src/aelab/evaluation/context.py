"""What every evaluation section shares, built once per ``aelab-eval``."""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from aelab.evaluation import compression as C
from aelab.evaluation.metrics import map_batches, to_float


class EvalContext:
    """The model on its device in eval mode, the splits (through the datamodule's public API), the batch size
    and output folder, and what several sections use — test codes (timed), reconstructions, training codes and
    the PCA baseline of the code size — each computed on first use.

    Args:
        model: an aelab model.
        datamodule: its datamodule (``split_tensors`` gives uint8 images ``(N, 28, 28)`` and labels).
        output_dir: where sections write files (PNGs, scores) beside ``metrics.json``.
        device: where the model runs.
        batch_size: images per forward pass.
    """

    def __init__(
        self, model, datamodule, output_dir: str | Path, device: torch.device, batch_size: int
    ) -> None:
        self.model = model.to(device).eval()
        self.datamodule = datamodule
        self.output_dir = Path(output_dir)
        self.device = device
        self.batch_size = int(batch_size)
        self.train_u8, self.train_y = datamodule.split_tensors("train")
        self.test_u8, self.test_y = datamodule.split_tensors("test")
        self.x_test = to_float(self.test_u8)  # (N, 1, 28, 28) in [0, 1]
        t0 = time.perf_counter()
        self.codes_test = self.map(self.model.encode, self.test_u8)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.encode_images_per_s = len(self.test_u8) / (time.perf_counter() - t0)

    def map(self, fn, images: Tensor) -> Tensor:
        """``fn`` over ``images`` (uint8/float images or codes) in batches on the device, results on the CPU."""
        return map_batches(fn, images, self.batch_size, self.device)

    @cached_property
    def recon(self) -> Tensor:
        """Reconstructions of the test images, ``(N, 1, 28, 28)`` in [0, 1]."""
        return self.map(self.model.reconstruct, self.test_u8)

    @cached_property
    def codes_train(self) -> Tensor:
        """Codes of the training images ``(N, latent_dim)``."""
        return self.map(self.model.encode, self.train_u8)

    @cached_property
    def pca(self):
        """scikit-learn PCA with as many components as the code has dimensions, fitted on the training images."""
        return C.fit_pca(to_float(self.train_u8), self.model.latent_dim)

    @cached_property
    def pca_codes(self) -> tuple[Tensor, Tensor]:
        """PCA codes of the training and the test images: the baseline of the same size."""
        train = torch.from_numpy(self.pca.transform(to_float(self.train_u8).flatten(1).numpy())).float()
        test = torch.from_numpy(self.pca.transform(self.x_test.flatten(1).numpy())).float()
        return train, test
