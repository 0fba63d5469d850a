"""Dashboards: reconstructions, denoising, samples, interpolations, latent space — to every logger of the run.

Each picture is drawn by :mod:`aelab.visuals` and sent by :class:`aelab.media.Media` to TensorBoard, MLflow or
Weights & Biases in that logger's own way (a logger that cannot show a kind of item says so once).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from aelab import visuals
from aelab.media import Media
from aelab.models.capabilities import Autoencoding, Denoising, Generative


def sharded(trainer: pl.Trainer) -> bool:
    """True under FSDP-like strategies, where a forward pass on rank zero alone would deadlock."""
    return "FSDP" in type(trainer.strategy).__name__ or "DeepSpeed" in type(trainer.strategy).__name__


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
        self._batch: tuple[Tensor, Tensor | None] | None = None

    #: draws pictures of the examples (skipped for data that are not images: no ``image_shape`` in the contract)
    images_only = True

    def applies(self, net) -> bool:
        """Whether this dashboard shows something of the model ``net`` (the LightningModule's ``net``)."""
        return True

    def fixed_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor | None]:
        if self._batch is None:
            self._batch = trainer.datamodule.sample_images(self.num_images, self.split)
        x, y = self._batch
        # only class labels colour and name the points (a held-out user's item vector is no label)
        labels = y if y is not None and y.ndim == 1 and not y.is_floating_point() else None
        return x.to(pl_module.device), labels

    def _can_draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        if not trainer.is_global_zero or not self.applies(pl_module.net) or not trainer.loggers:
            return False
        datamodule = getattr(trainer, "datamodule", None)
        if self.images_only and getattr(datamodule, "image_shape", None) is None:
            return False
        if sharded(trainer):
            rank_zero_warn(
                f"{type(self).__name__} is skipped: parameters are sharded ({type(trainer.strategy).__name__})"
            )
            return False
        return getattr(trainer, "datamodule", None) is not None

    def _draw_now(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw on rank zero in eval mode; a dashboard that cannot be drawn (a split too small for a statistic, a
        figure the plotting library refuses) is skipped with a warning naming it: a dashboard never ends a run."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                self.draw(Media(trainer.loggers), trainer, pl_module)  # pl_module.net is the model drawn
        except Exception as err:  # any drawing failure is reported, never fatal
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            rank_zero_warn(
                f"dashboard {type(self).__name__} skipped at epoch {trainer.current_epoch}: {first}"
            )
        finally:
            pl_module.train(was_training)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_validation_end (not *_epoch_end): Lightning calls callbacks' epoch-end hooks before the module's,
        # and the module's hook is where a non-finite validation loss stops the run before anything draws.
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        if self._can_draw(trainer, pl_module):
            self._draw_now(trainer, pl_module)

    def draw(self, media: Media, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError


class ReconstructionLogger(_Dashboard):
    """``reconstructions``: fixed validation images in pairs of rows, ``per_row`` originals over their
    reconstructions (32 images, 8 per row: an 8×8 grid).

    Args:
        per_row: images per row.
    """

    def __init__(self, num_images: int = 32, per_row: int = 8, **kwargs) -> None:
        super().__init__(num_images=num_images, **kwargs)
        self.per_row = max(1, int(per_row))

    def draw(self, media, trainer, pl_module) -> None:
        x, _ = self.fixed_batch(trainer, pl_module)
        pairs = visuals.reconstruction_pairs(x, pl_module.net.reconstruct(x), self.per_row)
        media.image("reconstructions", pairs, trainer.global_step)


class DenoisingLogger(_Dashboard):
    """``denoising``: clean / corrupted (seeded) / denoised rows; only for models with a ``corruption``."""

    def applies(self, net) -> bool:
        return isinstance(net, Denoising)

    def draw(self, media, trainer, pl_module) -> None:
        x, _ = self.fixed_batch(trainer, pl_module)
        media.image(
            "denoising", visuals.rows(*visuals.denoising_strip(pl_module.net, x)), trainer.global_step
        )


class GenerationLogger(_Dashboard):
    """``samples``: a grid of decoder means at fixed prior draws ``z ~ N(0, I)`` (models with a prior);
    ``interpolation``: two test images with the decodes of the straight line between their codes.

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

    def applies(self, net) -> bool:
        return isinstance(net, Generative)

    def draw(self, media, trainer, pl_module) -> None:
        samples = visuals.prior_samples(pl_module.net, self.num_samples, self.seed, pl_module.device)
        media.image("samples", visuals.grid(samples), trainer.global_step)
        x, _ = self.fixed_batch(trainer, pl_module)
        path = visuals.interpolation(pl_module.net, x[0], x[1], self.interpolation_steps)
        media.image("interpolation", visuals.rows(path), trainer.global_step)


class _LatentDashboard(_Dashboard):
    """Base of the latent-space views: codes ``encode(x)`` of the first ``num_images`` validation images."""

    images_only = False

    def __init__(self, num_images: int = 1000, **kwargs) -> None:
        super().__init__(num_images=num_images, **kwargs)

    def applies(self, net) -> bool:
        return isinstance(net, Autoencoding)

    def codes(self, trainer, pl_module) -> tuple[Tensor, Tensor | None, Tensor]:
        x, y = self.fixed_batch(trainer, pl_module)
        z = torch.cat([pl_module.net.encode(c).flatten(1) for c in x.split(500)])
        return x, y, z.float().cpu()


class LatentHistogramLogger(_LatentDashboard):
    """``latent/codes``: histogram of every code value; ``latent/std_per_dim``: spread of each dimension."""

    def draw(self, media, trainer, pl_module) -> None:
        _, _, z = self.codes(trainer, pl_module)
        finite = z[torch.isfinite(z)]
        if finite.numel():
            media.histogram("latent/codes", finite, trainer.global_step)
        if len(z) < 2:  # a spread needs two codes: a one-example split has none (not logged, said once)
            rank_zero_warn(f"latent/std_per_dim not logged: the {self.split} split has {len(z)} example(s)")
            return
        media.histogram("latent/std_per_dim", z.std(0), trainer.global_step)


class LatentScatterLogger(_LatentDashboard):
    """``latent/scatter``: matplotlib scatter of 2-D codes coloured by class (only when ``latent_dim == 2``)."""

    def applies(self, net) -> bool:
        return isinstance(net, Autoencoding) and net.latent_dim == 2

    def draw(self, media, trainer, pl_module) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _, y, z = self.codes(trainer, pl_module)
        names = trainer.datamodule.class_names
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        points = visuals.latent_scatter(ax, z, y, names)
        visuals.class_colorbar(fig, points, ax, names)
        ax.set_title(f"latent codes, epoch {trainer.current_epoch}")
        media.figure("latent/scatter", fig, trainer.global_step)


class LatentProjectorLogger(_LatentDashboard):
    """Embedding projector: codes of validation images with their class names and image thumbnails.

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
        if trainer.current_epoch == 0 and trainer.global_step == 0:
            return
        if self._can_draw(trainer, pl_module):
            self._draw_now(trainer, pl_module)

    def draw(self, media, trainer, pl_module) -> None:
        x, y, z = self.codes(trainer, pl_module)
        names = trainer.datamodule.class_names
        labels = None if y is None else [names[i] if names else str(i) for i in y.tolist()]
        images = x.cpu() if getattr(trainer.datamodule, "image_shape", None) is not None else None
        media.embedding("latent", z, labels, images, trainer.global_step)
