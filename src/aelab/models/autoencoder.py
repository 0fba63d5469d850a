"""The plain autoencoder LightningModule, base of every aelab model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, MeanSquaredError, Metric
from torchmetrics.image import PeakSignalNoiseRatio

from aelab.models.outputs import LossOutput

EVAL_STAGES = ("val", "test")


def divergence_message(what: str, step: int | None = None, epoch: int | None = None) -> str:
    """The line a diverged run stops with: what happened, where, and the fixes."""
    where = f"by step {step} (epoch {epoch})" if step is not None else ""
    return (
        f"training diverged: {what} {where}. Lower the learning rate (model.optimizer.lr=...), clip "
        "gradients (trainer.gradient_clip_val=1.0) or check the input range; the checkpoints of the last "
        "finite epoch are kept and no non-finite checkpoint or metric was written"
    )


def psnr_metric() -> PeakSignalNoiseRatio:
    """Mean over images of the per-image PSNR in dB for pixels in [0, 1]: ``10 log10(1 / MSE_i)``."""
    return PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3))


class Autoencoder(pl.LightningModule):
    """Autoencoder: ``x → encoder → z → decoder → x̂`` trained to reconstruct ``x``.

    With MLP parts this is the AE (``model=ae``), with conv parts the ConvAE (``model=conv_ae``).

    Args:
        encoder: ``nn.Module`` mapping images ``(B, C, H, W)`` in [0, 1] to codes ``(B, latent_dim)``;
            must expose ``out_dim``.
        decoder: ``nn.Module`` mapping codes ``(B, latent_dim)`` to pixel logits ``(B, C, H, W)``;
            must expose ``latent_dim``.
        latent_dim: size of the code; when given, checked against the parts.
        loss: reconstruction loss, ``"bce"`` (binary cross-entropy on logits) or ``"mse"`` (on
            ``sigmoid(logits)``); both are means over pixels and images.
        optimizer: a partial optimizer (``_partial_: true`` in Hydra) taking ``params``.
        scheduler: optional partial LR scheduler taking ``optimizer``; stepped per epoch, monitoring
            ``val/loss`` when it is a ReduceLROnPlateau.
        compile: ``torch.compile`` the encoder and decoder (in place) at fit/test start.
        compile_mode: ``torch.compile`` mode (``default``, ``reduce-overhead``, ``max-autotune``).
        eval_seed: base seed of every validation/test random draw (DAE noise, VAE binarization and posterior
            samples), so those numbers repeat across epochs, runs and ``aelab-eval``; see :meth:`eval_generator`.
        channels_last: keep conv weights in the channels-last (NHWC) memory format, which oneDNN and cuDNN
            run faster (measured: docs/BENCHMARKS.md); no effect on MLP parts.
        nan_check_every: check the training loss for NaN/inf every this many steps (a host sync; done by
            :class:`aelab.callbacks.DivergenceGuard`, which aelab-train always adds); ``0``: only at epoch ends.

    Metrics (torchmetrics, DDP-correct; pixels in [0, 1]): ``train/loss``; ``val/loss``, ``val/mse``,
    ``val/psnr``; ``test/loss``, ``test/mse``, ``test/psnr`` (dB, mean of per-image PSNR).

    Raises:
        ValueError: for an unknown ``loss``, or parts whose sizes disagree with ``latent_dim``.
        FloatingPointError: when the training loss or the validation/test loss becomes NaN or infinite.
    """

    #: names of the extra per-batch terms a subclass's :meth:`loss_terms` returns (averaged as metrics; a name a
    #: subclass's :meth:`make_metrics` gives its own torchmetrics ``Metric`` is fed the term's value raw instead)
    extra_terms: tuple[str, ...] = ()
    #: the evaluation sections (conf/suite/*.yaml) that measure something about this model: those with
    #: ``enabled: auto`` run for it by default (aelab.evaluation.suite.applies); a subclass narrows or widens them
    eval_sections: tuple[str, ...] = (
        "reconstruction",
        "compression",
        "features",
        "anomaly",
        "denoising",
        "fid",
    )
    #: constructor arguments kept out of ``hparams`` (modules and factories; checkpoints stay plain data)
    hparams_ignore: tuple[str, ...] = ("encoder", "decoder", "optimizer", "scheduler")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int | None = None,
        loss: str = "bce",
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        compile: bool = False,
        compile_mode: str = "default",
        nan_check_every: int = 50,
        channels_last: bool = False,
        eval_seed: int = 1234,
    ) -> None:
        super().__init__()
        if loss not in ("bce", "mse"):
            raise ValueError(f"model.loss must be 'bce' or 'mse', got {loss!r}")
        # Plain values only: checkpoints then load with torch.load(weights_only=True).
        self.save_hyperparameters(logger=False, ignore=list(self.hparams_ignore))
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if latent_dim is not None:
            self.check_parts(encoder, decoder, int(latent_dim))
        self.encoder = encoder
        self.decoder = decoder
        self.metrics = nn.ModuleDict({s: nn.ModuleDict(self.make_metrics(s)) for s in EVAL_STAGES})
        self._compiled = False
        self._train_sums: dict[str, Tensor] = {}
        self._train_steps = 0

    # ------------------------------------------------------------------ public API
    @property
    def latent_dim(self) -> int:
        return int(self.decoder.latent_dim)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(B, latent_dim)`` of images ``(B, C, H, W)`` in [0, 1]."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] from codes ``(B, latent_dim)``."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction ``(B, C, H, W)`` in [0, 1] of images ``(B, C, H, W)`` in [0, 1]."""
        return self.decode(self.encode(x))

    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction used by metrics and dashboards (the forward pass here)."""
        return self(x)

    @torch.no_grad()
    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 10) -> Tensor:
        """Decodes of the straight line between the codes of two images ``(C, H, W)`` in [0, 1], ends
        included: ``(steps, C, H, W)`` in [0, 1] (for a VAE, between the posterior means)."""
        z = self.encode(torch.stack([x_a, x_b]).to(self.device))
        t = torch.linspace(0, 1, steps, device=z.device)[:, None]
        return self.decode((1 - t) * z[0] + t * z[1])

    # ------------------------------------------------------------------ hooks for subclasses
    def encoder_out_dim(self, latent_dim: int) -> int:
        """Features the encoder must output for a code of ``latent_dim`` (the code itself, for an AE)."""
        return latent_dim

    def check_parts(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int) -> None:
        want = self.encoder_out_dim(latent_dim)
        got = getattr(encoder, "out_dim", want)
        if got != want:
            raise ValueError(
                f"{type(self).__name__} with latent_dim={latent_dim} needs an encoder with out_dim={want}, got "
                f"{got}: leave model.encoder.out_dim to its default interpolation of model.latent_dim"
            )
        if getattr(decoder, "latent_dim", latent_dim) != latent_dim:
            raise ValueError(
                f"decoder.latent_dim={decoder.latent_dim} differs from latent_dim={latent_dim}: leave "
                "model.decoder.latent_dim to its default ${model.latent_dim}"
            )

    def make_metrics(self, stage: str) -> dict[str, Metric]:
        metrics: dict[str, Metric] = {"loss": MeanMetric(), "mse": MeanSquaredError(), "psnr": psnr_metric()}
        metrics.update({name: MeanMetric() for name in self.extra_terms})
        return metrics

    def eval_generator(self, stage: str, batch_idx: int, device: torch.device) -> torch.Generator | None:
        """``None`` while training (fresh randomness every step); for a validation/test batch a generator
        seeded by ``eval_seed``, the stage, the DDP rank and the batch index, so those numbers repeat exactly
        across epochs, runs and ``aelab-eval``. It feeds every random draw of the batch, in order."""
        if stage == "train":
            return None
        offset = {"val": 0, "test": 1_000_000}.get(stage, 2_000_000)
        seed = self.hparams.eval_seed + offset + 10_000 * self.global_rank + batch_idx
        return torch.Generator(device=device).manual_seed(seed)

    def model_input(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(input, target)`` for a batch of clean images; the AE reconstructs its input."""
        return x, x

    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean per-pixel reconstruction loss of logits ``(B, C, H, W)`` against targets in [0, 1]."""
        if self.hparams.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(torch.sigmoid(logits), target)

    def regularizer(self, z: Tensor, x_hat: Tensor) -> dict[str, tuple[float, Tensor]]:
        """Extra penalties of the plain autoencoder's loss: ``{name: (weight, value)}`` of the codes ``z``
        ``(B, latent_dim)`` and the reconstructions ``x_hat`` ``(B, C, H, W)`` in [0, 1]; the loss adds
        ``weight · value`` and ``value`` becomes the metric ``*/<name>`` (list the name in ``extra_terms``).
        None here: a subclass adds a penalty without copying the forward pass."""
        return {}

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        """The loss of one batch (:class:`~aelab.models.outputs.LossOutput`: loss, reconstruction in [0, 1] or
        ``None`` in training, extra terms); ``generator`` feeds any random draw (``None``: the global RNG)."""
        z = self.encoder(x_in)
        logits = self.decoder(z)
        loss = self.reconstruction_loss(logits, target)
        # the reconstruction in [0, 1], computed once, and only where it is used: by a subclass's regularizer, and
        # in validation/test (plain training never needs it)
        regularized = type(self).regularizer is not Autoencoder.regularizer
        x_hat = torch.sigmoid(logits) if regularized or stage != "train" else None
        terms = {}
        for name, (weight, value) in (self.regularizer(z, x_hat) if regularized else {}).items():
            loss = loss + weight * value
            terms[name] = value.detach()
        return LossOutput(loss, None if stage == "train" else x_hat, terms)

    # ------------------------------------------------------------------ Lightning
    def _maybe_compile(self) -> None:
        if self.hparams.compile and not self._compiled:
            self.encoder.compile(mode=self.hparams.compile_mode)
            self.decoder.compile(mode=self.hparams.compile_mode)
            self._compiled = True

    def setup(self, stage: str) -> None:
        if self.hparams.get("channels_last"):
            self.encoder.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)
        self._maybe_compile()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x_in, target = self.model_input(batch[0])
        loss, _, extras = self.loss_terms(x_in, target, "train")
        self.log_train_terms({"loss": loss, **extras})
        return loss

    def log_train_terms(self, terms: dict[str, Tensor]) -> None:
        """Log ``train/<name>`` as the mean over the steps since the last logging step.

        The running sums stay on the device, and ``self.log`` is called only on the steps where Lightning
        writes to the loggers (every ``trainer.log_every_n_steps``): each ``self.log`` call costs about a
        millisecond of host time in Lightning's result bookkeeping, more than a small model's step.
        """
        for name, value in terms.items():
            value = value.detach()
            self._train_sums[name] = value if name not in self._train_sums else self._train_sums[name] + value
        self._train_steps += 1
        if self._trainer is None:
            return
        every = max(1, self.trainer.log_every_n_steps)
        if (self.global_step + 1) % every and not self.trainer.fast_dev_run:
            return
        for name, total in self._train_sums.items():
            self.log(
                f"train/{name}",
                total / self._train_steps,
                on_step=True,
                on_epoch=False,
                prog_bar=name == "loss",
            )
        self._train_sums.clear()
        self._train_steps = 0

    def eval_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> None:
        x = batch[0]
        generator = self.eval_generator(stage, batch_idx, x.device)
        x_in, target = self.model_input(x, generator)
        loss, x_hat, extras = self.loss_terms(x_in, target, stage, generator)
        m = self.metrics[stage]
        m["loss"].update(loss, weight=x.shape[0])
        for (
            name,
            value,
        ) in extras.items():  # per-batch means of extra_terms; a subclass's own metrics take raw input
            if isinstance(m[name], MeanMetric):
                m[name].update(value, weight=x.shape[0])
            else:
                m[name].update(value)
        self.update_reconstruction_metrics(m, x, x_in, x_hat)

    def update_reconstruction_metrics(self, m: nn.ModuleDict, x: Tensor, x_in: Tensor, x_hat: Tensor) -> None:
        x_hat = (
            x_hat.contiguous()
        )  # channels-last conv outputs of several channels: torchmetrics flattens by view
        m["mse"].update(x_hat, x)
        m["psnr"].update(x_hat, x)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.eval_step(batch, batch_idx, "test")

    def _log_eval_metrics(self, stage: str) -> None:
        # compute() all-reduces across DDP ranks; every rank then logs the same global value.
        values = {name: metric.compute() for name, metric in self.metrics[stage].items()}
        for metric in self.metrics[stage].values():
            metric.reset()
        if not torch.isfinite(values["loss"]):
            what = f"the {stage} loss is {values['loss'].item()}"
            if stage == "val" and not self.trainer.sanity_checking:
                raise FloatingPointError(divergence_message(what, self.global_step, self.current_epoch))
            raise FloatingPointError(
                f"{what}: the weights hold NaN/inf or the data is broken; nothing was written as a result"
            )
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss")

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-3)
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": "val/loss",
                "interval": "epoch",
                "frequency": 1,
            },
        }
