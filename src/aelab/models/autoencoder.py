"""The plain autoencoder, base of the deterministic models: a ``torch.nn.Module`` with no Lightning in it."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from aelab.models import objectives
from aelab.models.components.pca_start import (
    LinearSkipDecoder,
    LinearSkipEncoder,
    fit_pca_start,
    zero_last_layer,
)
from aelab.models.outputs import OUTPUTS, ModelOutput, activate


class Autoencoder(nn.Module):
    """Autoencoder: ``x → encoder → z → decoder → logits``, ``x̂ = output(logits)``, trained to reconstruct ``x``.

    With MLP parts this is the AE (``model=ae``), with conv parts the ConvAE (``model=conv_ae``). Usable in any
    training loop::

        model = Autoencoder(MLPEncoder(32), MLPDecoder(32))
        out = model(x)              # ModelOutput: out.loss, out.logits, out.z, out.terms
        out.loss.backward()

    Args:
        encoder: maps inputs ``(B, *shape)`` to codes ``(B, latent_dim)``; exposes ``out_dim``.
        decoder: maps codes ``(B, latent_dim)`` to logits ``(B, *shape)``; exposes ``latent_dim``.
        latent_dim: size of the code; when given, checked against the parts.
        loss: ``bce`` (binary cross-entropy on logits; pixels in [0, 1]) or ``mse`` (squared error in the data's
            units); both means over values and examples.
        output: the output activation: ``sigmoid`` (pixels in [0, 1]) or ``identity`` (unbounded values, e.g.
            standardized table columns).
        init: ``random`` (the parts' own initialization) or ``pca``: the PCA start
            (:mod:`aelab.models.components.pca_start`): linear encoder and decoder paths beside the parts, set to the
            PCA of the code size by :meth:`fit_pca` (aelab's LightningModule calls it on the training split when a
            run starts), the parts' last layers at zero, a sigmoid output replaced by ``clamp`` — so the model starts
            at PCA's reconstruction; ``mse`` only.
        pca_lr_scale: the learning rate of the PCA start's linear paths relative to the rest's (:meth:`param_groups`;
            0.1: the start moves slowly while the residual paths learn, which measured better than 1 or 0 on the
            photo patches).

    Raises:
        ValueError: for an unknown ``loss``, ``output`` or ``init``, ``bce`` without a sigmoid output or with the
            PCA start, or parts whose sizes disagree with ``latent_dim``.
    """

    #: the data this model takes (the data contract's sample kinds): images and table records
    sample_kinds = ("image", "table")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int | None = None,
        loss: str = "bce",
        output: str = "sigmoid",
        init: str = "random",
        pca_lr_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if loss not in objectives.LOSSES:
            raise ValueError(f"model.loss must be one of {objectives.LOSSES}, got {loss!r}")
        if output not in OUTPUTS:
            raise ValueError(f"model.output must be one of {OUTPUTS}, got {output!r}")
        if loss == "bce" and output != "sigmoid":
            raise ValueError("model.loss=bce needs values in [0, 1] (output=sigmoid): use model.loss=mse")
        if init not in ("random", "pca"):
            raise ValueError(f"model.init must be random or pca, got {init!r}")
        if latent_dim is not None:
            self.check_parts(encoder, decoder, int(latent_dim))
        self.init, self.pca_lr_scale = init, float(pca_lr_scale)
        if init == "pca":
            if loss != "mse":
                raise ValueError(
                    "model.init=pca starts at PCA's reconstruction, a squared error: use model.loss=mse"
                )
            output = "clamp" if output == "sigmoid" else output
            zero_last_layer(encoder)
            zero_last_layer(decoder)
            encoder = LinearSkipEncoder(encoder, encoder.in_shape, int(decoder.latent_dim))
            decoder = LinearSkipDecoder(decoder, decoder.out_shape)
        self.loss, self.output = loss, output
        self.encoder = encoder
        self.decoder = decoder

    # ------------------------------------------------------------------ the autoencoder's view
    @property
    def latent_dim(self) -> int:
        """Numbers in a code."""
        return int(self.decoder.latent_dim)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(B, latent_dim)`` of inputs ``(B, *shape)`` (images ``(B, C, H, W)`` in [0, 1])."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructions ``(B, *shape)`` in the data's units (pixels in [0, 1]) from codes ``(B, latent_dim)``."""
        return activate(self.decoder(z), self.output)

    def reconstruct(self, x: Tensor) -> Tensor:
        """The deterministic reconstruction the metrics and dashboards use: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 10) -> Tensor:
        """Decodes of the straight line between the codes of two inputs ``(*shape)``, ends included:
        ``(steps, *shape)`` (for a VAE, between the posterior means)."""
        device = next(self.parameters()).device
        z = self.encode(torch.stack([x_a, x_b]).to(device))
        t = torch.linspace(0, 1, steps, device=z.device)[:, None]
        return self.decode((1 - t) * z[0] + t * z[1])

    def param_groups(self) -> list[dict]:
        """The parameters as optimizer groups: the PCA start's linear paths (``init=pca``) with ``lr_scale`` =
        ``pca_lr_scale`` (aelab's LightningModule scales their learning rate by it), the rest at the optimizer's."""
        if self.init != "pca":
            return [{"params": list(self.parameters())}]
        linear = {id(p) for path in (self.encoder, self.decoder) for p in path.linear.parameters()}
        return [
            {"params": [p for p in self.parameters() if id(p) not in linear]},
            {"params": [p for p in self.parameters() if id(p) in linear], "lr_scale": self.pca_lr_scale},
        ]

    def fit_pca(self, x: Tensor, max_examples: int = 20000, seed: int = 0) -> float:
        """The PCA start: set the linear paths to the PCA of the training examples ``x`` ``(N, *shape)``
        (:func:`aelab.models.components.pca_start.fit_pca_start`); returns the variance fraction kept.

        Raises:
            ValueError: for a model built without ``init=pca``.
        """
        if self.init != "pca":
            raise ValueError("fit_pca needs a model built with init=pca")
        return fit_pca_start(self.encoder, self.decoder, x, max_examples, seed)

    def fit_start(self, datamodule) -> str | None:
        """What the model does once before a run trains from scratch (aelab's LightningModule calls it on rank 0
        at the fit's start; a run that continues from a checkpoint keeps its weights): with ``init=pca``, the PCA
        start fitted on the training split (:meth:`fit_pca`). Returns a line for the log, or ``None``."""
        if self.init != "pca":
            return None
        from aelab.data.resident import as_float

        kept = self.fit_pca(as_float(datamodule.split_tensors("train")[0]))
        return f"PCA start: {self.encoder.code_size} components keep {kept:.1%} of the training variance"

    def fit_start_tensors(self) -> list[Tensor]:
        """The tensors :meth:`fit_start` sets, which every DDP rank receives from rank 0 (the PCA start's paths)."""
        if self.init != "pca":
            return []
        return [t for path in (self.encoder, self.decoder) for t in (path.mean, path.linear.weight)]

    # ------------------------------------------------------------------ the objective
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

    def inputs(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(input, target)`` of a clean batch: the AE reconstructs its input (the DAE corrupts it, a binarizing
        VAE resamples it)."""
        return x, x

    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The mean per-value reconstruction loss (:func:`aelab.models.objectives.reconstruction_loss`)."""
        return objectives.reconstruction_loss(logits, target, self.loss, self.output)

    def regularizer(
        self, z: Tensor, logits: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, tuple[float, Tensor]]:
        """Extra penalties of the plain autoencoder's objective: ``{name: (weight, value)}`` of the codes ``z`` and
        the decoder's logits (``generator`` feeds any random draw); the loss adds ``weight · value`` and ``value``
        is logged as ``*/<name>``. None here: the RAE, WAE and a model of your own add theirs without copying
        :meth:`forward`."""
        return {}

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The objective of one clean batch ``x`` (``generator`` feeds any random draw; ``step``, the training step,
        feeds schedules such as a KL warm-up)."""
        x_in, target = self.inputs(x, generator)
        z = self.encoder(x_in)
        logits = self.decoder(z)
        loss = self.reconstruction_loss(logits, target)
        terms = {}
        for name, (weight, value) in self.regularizer(z, logits, generator).items():
            loss = loss + weight * value
            terms[name] = value.detach()
        if not self.training:
            terms |= self.diagnostics(x, x_in)
        return ModelOutput(loss, logits, z, terms, output=self.output)

    def diagnostics(self, x: Tensor, x_in: Tensor) -> dict[str, Tensor]:
        """Evaluation-only terms of a batch, from the clean ``x`` and the model's input ``x_in`` (none here; the
        DAE's noisy-input PSNR)."""
        return {}

    def split_metrics(self) -> dict[str, Metric]:
        """torchmetrics metrics over a whole validation/test split, fed ``ModelOutput.stats[name]`` each batch
        (none here; the VQ-VAE's codebook usage, the sparse AE's dead latents)."""
        return {}
