"""TensorBoard dashboards: reconstructions, denoising, samples, interpolations, latent space."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid

from aelab.models.capabilities import Denoising, Generative
from aelab.utils.run import tensorboard_logger


def sharded(trainer: pl.Trainer) -> bool:
    """True under FSDP-like strategies, where a forward pass on rank zero alone would deadlock."""
    return "FSDP" in type(trainer.strategy).__name__ or "DeepSpeed" in type(trainer.strategy).__name__


def tensorboard_writer(trainer: pl.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the trainer's TensorBoardLogger, or ``None`` when there is none."""
    tb = tensorboard_logger(trainer.loggers)
    return tb.experiment if tb is not None else None


class _Dashboard(pl.Callback):
    """Base: a fixed batch from the datamodule, drawn at the end of each validation on rank zero.

    Args:
        num_images: images in the fixed batch (the first ones of ``split``).
        split: ``val`` or ``test``.
        every_n_epochs: draw every this many epochs.
    """

    def __init__(self, num_images: int = 16, split: str = "val", every_n_epochs: int = 1) -> None:
        self.num_images = num_images
        self.split = split
        self.every_n_epochs = max(1, int(every_n_epochs))
        self._batch: tuple[Tensor, Tensor] | None = None

    def applies(self, pl_module: pl.LightningModule) -> bool:
        return True

    def fixed_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        if self._batch is None:
            x, y = trainer.datamodule.sample_images(self.num_images, self.split)
            self._batch = (x, y)
        x, y = self._batch
        return x.to(pl_module.device), y

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_validation_end (not *_epoch_end): Lightning calls callbacks' epoch-end hooks before the module's,
        # and the module's hook is where a non-finite validation loss stops the run before anything draws.
        if trainer.sanity_checking or not trainer.is_global_zero or not self.applies(pl_module):
            return
        if sharded(trainer):
            rank_zero_warn(
                f"{type(self).__name__} is skipped: parameters are sharded ({type(trainer.strategy).__name__})"
            )
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        writer = tensorboard_writer(trainer)
        if writer is None or getattr(trainer, "datamodule", None) is None:
            return
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            self.draw(writer, trainer, pl_module)
        pl_module.train(was_training)

    def draw(self, writer: SummaryWriter, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError


def _rows(*batches: Tensor) -> Tensor:
    """One grid row per batch (each ``(n, 1, H, W)`` in [0, 1])."""
    n = batches[0].shape[0]
    return make_grid(
        torch.cat([b.float().clamp(0, 1).cpu() for b in batches]), nrow=n, padding=2, pad_value=1.0
    )


class ReconstructionLogger(_Dashboard):
    """``reconstructions``: fixed validation images in pairs of rows, ``per_row`` originals over their
    reconstructions (32 images, 8 per row: an 8×8 grid).

    Args:
        per_row: images per row.
    """

    def __init__(self, num_images: int = 32, per_row: int = 8, **kwargs) -> None:
        super().__init__(num_images=num_images, **kwargs)
        self.per_row = max(1, int(per_row))

    def draw(self, writer, trainer, pl_module) -> None:
        x, _ = self.fixed_batch(trainer, pl_module)
        x_hat = pl_module.reconstruct(x)
        k = self.per_row
        pairs = [t for i in range(0, len(x), k) for t in (x[i : i + k], x_hat[i : i + k])]
        grid = make_grid(
            torch.cat([p.float().clamp(0, 1).cpu() for p in pairs]), nrow=k, padding=2, pad_value=1.0
        )
        writer.add_image("reconstructions", grid, trainer.global_step)


class DenoisingLogger(_Dashboard):
    """``denoising``: clean / corrupted (seeded) / denoised rows; only for models with a ``corruption``."""

    def applies(self, pl_module) -> bool:
        return isinstance(pl_module, Denoising)

    def draw(self, writer, trainer, pl_module) -> None:
        x, _ = self.fixed_batch(trainer, pl_module)
        gen = torch.Generator(device=x.device).manual_seed(0)
        noisy = pl_module.corruption(x, gen)
        writer.add_image("denoising", _rows(x, noisy, pl_module.reconstruct(noisy)), trainer.global_step)


class GenerationLogger(_Dashboard):
    """``samples``: a grid of decoder means at fixed prior draws ``z ~ N(0, I)`` (models with ``sample``);
    ``interpolation``: decodes of the straight line between the codes of two test digits.

    Args:
        num_samples: prior samples in the grid (``nrow`` = its square root, rounded).
        interpolation_steps: points on the line, ends included.
        seed: seed of the prior draws (the same every epoch).
    """

    def __init__(self, num_samples: int = 64, interpolation_steps: int = 10, seed: int = 0, **kwargs) -> None:
        super().__init__(**{"split": "test", "num_images": 2, **kwargs})
        self.num_samples = num_samples
        self.interpolation_steps = interpolation_steps
        self.seed = seed

    def applies(self, pl_module) -> bool:
        return isinstance(pl_module, Generative)

    def draw(self, writer, trainer, pl_module) -> None:
        gen = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        samples = pl_module.sample(self.num_samples, generator=gen)
        nrow = max(1, round(self.num_samples**0.5))
        writer.add_image("samples", make_grid(samples.cpu(), nrow=nrow, pad_value=1.0), trainer.global_step)
        x, _ = self.fixed_batch(trainer, pl_module)
        path = pl_module.interpolate(x[0], x[1], self.interpolation_steps)
        writer.add_image("interpolation", _rows(path), trainer.global_step)


class _LatentDashboard(_Dashboard):
    """Base of the latent-space views: codes ``encode(x)`` of the first ``num_images`` validation images."""

    def __init__(self, num_images: int = 1000, **kwargs) -> None:
        super().__init__(num_images=num_images, **kwargs)

    def codes(self, trainer, pl_module) -> tuple[Tensor, Tensor, Tensor]:
        x, y = self.fixed_batch(trainer, pl_module)
        z = torch.cat([pl_module.encode(c) for c in x.split(500)])
        return x, y, z.float().cpu()


class LatentHistogramLogger(_LatentDashboard):
    """``latent/codes``: histogram of every code value; ``latent/std_per_dim``: spread of each dimension."""

    def draw(self, writer, trainer, pl_module) -> None:
        _, _, z = self.codes(trainer, pl_module)
        writer.add_histogram("latent/codes", z, trainer.global_step)
        writer.add_histogram("latent/std_per_dim", z.std(0), trainer.global_step)


class LatentScatterLogger(_LatentDashboard):
    """``latent/scatter``: matplotlib scatter of 2-D codes coloured by label (only when ``latent_dim == 2``)."""

    def applies(self, pl_module) -> bool:
        return getattr(pl_module, "latent_dim", None) == 2

    def draw(self, writer, trainer, pl_module) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _, y, z = self.codes(trainer, pl_module)
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        points = ax.scatter(z[:, 0], z[:, 1], c=y.numpy(), cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
        fig.colorbar(points, ax=ax, ticks=range(10), label="label")
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        ax.set_title(f"latent codes, epoch {trainer.current_epoch}")
        writer.add_figure("latent/scatter", fig, trainer.global_step, close=True)


class LatentProjectorLogger(_LatentDashboard):
    """Embedding projector: codes of validation images with their labels and digit thumbnails.

    Args:
        every_n_epochs: also draw every this many epochs; ``None`` (default) draws once, when fitting ends.
    """

    def __init__(self, num_images: int = 1000, every_n_epochs: int | None = None, **kwargs) -> None:
        super().__init__(num_images=num_images, every_n_epochs=every_n_epochs or 1, **kwargs)
        self.periodic = every_n_epochs is not None

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.periodic:
            super().on_validation_end(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        if (
            not trainer.is_global_zero
            or sharded(trainer)
            or (trainer.current_epoch == 0 and trainer.global_step == 0)
        ):
            return
        writer = tensorboard_writer(trainer)
        if writer is None or getattr(trainer, "datamodule", None) is None:
            return
        pl_module.eval()
        with torch.no_grad():
            self.draw(writer, trainer, pl_module)

    def draw(self, writer, trainer, pl_module) -> None:
        x, y, z = self.codes(trainer, pl_module)
        writer.add_embedding(
            z, metadata=y.tolist(), label_img=x.cpu(), global_step=trainer.global_step, tag="latent"
        )
