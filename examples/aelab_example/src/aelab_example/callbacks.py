"""A callback of your own: the mean norm of the codes of the validation images, logged every epoch."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class CodeNormMonitor(pl.Callback):
    """Logs ``val/code_norm``: the mean Euclidean norm of the codes of the first ``num_images`` validation images.

    Args:
        num_images: validation images encoded.
    """

    def __init__(self, num_images: int = 256) -> None:
        self.num_images = int(num_images)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or getattr(trainer, "datamodule", None) is None:
            return
        x, _ = trainer.datamodule.sample_images(self.num_images, "val")
        with torch.no_grad():
            norm = pl_module.net.encode(x.to(pl_module.device)).float().norm(dim=1).mean()  # the module's model
        pl_module.log("val/code_norm", norm, sync_dist=True)
