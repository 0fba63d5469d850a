"""The plain autoencoder, base of the deterministic models: a ``torch.nn.Module`` with no Lightning in it."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class Latent:
    """What the latent step (:meth:`Autoencoder.latent`) hands the decoder and the objective.

    Attributes:
        z: what the decoder decodes: the code itself (AE, RAE, WAE), the sparse code, the quantized vectors in the
            decoder's layout (VQ-VAE: a map ``(B, D, h, w)`` for a spatial model), a posterior draw (VAE); ``None``
            when the objective decodes draws of its own (the IWAE's ``k`` importance samples).
        h: the encoder's output the step started from (pre-activations, posterior parameters, ``z_e``).
        code: the deterministic code when ``z`` is a draw from it (the VAE's posterior mean μ); ``None``: ``z`` is
            the code. It is :attr:`ModelOutput.z`, and with one the output's reconstruction is ``decode(code)``
            (evaluation; no logits: those of a draw are not the reconstruction).
        params: tensors the objective needs besides ``z`` (the VAE's ``mu`` and ``logvar``).
        penalties: ``{name: (weight, value)}`` of the latent step (the VQ-VAE's commitment and codebook losses, the
            L1 sparse AE's ‖z‖₁): the default :meth:`Autoencoder.objective` adds ``weight · value`` to the loss
            and logs ``value`` as ``*/<name>``.
        terms: ``{name: value}`` logged, not added (the sparse AE's ``sparsity/l0``, the VQ-VAE's batch
            ``vq/perplexity``).
        stats: per-batch tensors of the model's whole-split metrics (:meth:`Autoencoder.split_metrics`), passed on
            as :attr:`ModelOutput.stats` in evaluation (the VQ-VAE's code indices, the sparse codes).
    """

    z: Tensor | None
    h: Tensor | None = None
    code: Tensor | None = None
    params: dict[str, Tensor] = field(default_factory=dict)
    penalties: dict[str, tuple[float, Tensor]] = field(default_factory=dict)
    terms: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """Autoencoder: ``x → encoder → z → decoder → logits``, ``x̂ = output(logits)``, trained to reconstruct ``x``.

    With MLP parts this is the AE (``model=ae``), with conv parts the ConvAE (``model=conv_ae``). Usable in any
    training loop::

        model = Autoencoder(MLPEncoder(32), MLPDecoder(32))
        out = model(x)              # ModelOutput: out.loss, out.logits, out.z, out.terms
        out.loss.backward()

    Every autoencoder of aelab is this class's :meth:`forward`, one template whose steps are hooks a model
    overrides (none overrides :meth:`forward` itself):

    1. :meth:`inputs` — ``(input, target)`` of the clean batch: the corruption (any model given one is denoising),
       the VAE's binarization;
    2. encode — ``h = encoder(input)``;
    3. :meth:`latent` — ``h`` → :class:`Latent`: identity here, the VAE's posterior draw, the VQ-VAE's
       quantization, the sparse AE's sparsity;
    4. decode — ``logits = decoder(latent.z)``;
    5. :meth:`objective` — the loss and its named terms: the reconstruction loss, the latent step's penalties and
       :meth:`regularizer` 's (the RAE, WAE); the VAE's −ELBO, the IWAE's bound;
    6. :meth:`diagnostics` — evaluation-only terms (the DAE's noisy-input PSNR).

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
        corruption: a :class:`~aelab.models.components.Corruption` (gaussian, masking, salt-and-pepper) applied
            to the input in training and evaluation (:meth:`inputs`; the target stays the clean batch): the model
            becomes denoising (the ``Denoising`` capability: the attribute ``corruption`` exists only when given).
            ``None``: the model reconstructs its input.

    Raises:
        ValueError: for an unknown ``loss``, ``output`` or ``init``, ``bce`` without a sigmoid output or with the
            PCA start, or parts whose sizes disagree with ``latent_dim``.
    """

    #: the data this model takes (the data contract's sample kinds): images, table records and series windows
    sample_kinds = ("image", "table", "series")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int | None = None,
        loss: str = "bce",
        output: str = "sigmoid",
        init: str = "random",
        pca_lr_scale: float = 0.1,
        corruption: nn.Module | None = None,
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
        # set only when given: a model without one is not Denoising (aelab.models.capabilities)
        if corruption is not None:
            self.corruption = corruption

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

    def point_scores(self, x: Tensor) -> Tensor:
        """The anomaly score of each point of windows ``x`` ``(B, T, C)``: the squared error of the deterministic
        reconstruction, averaged over the channels: ``(B, T)`` (scaled units squared). A series' per-point score is
        the mean of these over the windows that cover the point (:func:`aelab.data.timeseries.windows_to_points`)."""
        return (self.reconstruct(x).float() - x.float()).pow(2).mean(-1)

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

    # ------------------------------------------------------------------ the forward template and its hooks
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The objective of one clean batch ``x`` ``(B, *shape)``: the template every autoencoder fills
        (:meth:`inputs` → encode → :meth:`latent` → decode → :meth:`objective` → :meth:`diagnostics`, see the class
        docstring). ``generator`` feeds every random draw (seeded in validation/test: the same batch gives the
        same numbers); ``step``, the training step, feeds schedules such as a KL warm-up."""
        x_in, target = self.inputs(x, generator)
        latent = self.latent(self.encoder(x_in), generator)
        logits = None if latent.z is None else self.decoder(latent.z)
        loss, terms = self.objective(latent, logits, target, generator, step)
        terms = {**{name: value.detach() for name, value in latent.terms.items()}, **terms}
        if not self.training:
            terms |= self.diagnostics(x, x_in)
        stats = {} if self.training else dict(latent.stats)
        if latent.code is None:  # the decoder decoded the code itself: its logits are the reconstruction
            return ModelOutput(loss, logits, latent.z, terms, stats=stats, output=self.output)
        # the decoder decoded a draw (the VAE): the reconstruction is the code's decode, no logits
        reconstruction = None if self.training else self.decode(latent.code)
        return ModelOutput(
            loss, None, latent.code, terms, stats=stats, reconstruction=reconstruction, output=self.output
        )

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``corruption(x, generator)`` for a model built with a corruption, else ``x`` itself."""
        corruption = getattr(self, "corruption", None)
        return x if corruption is None else corruption(x, generator)

    def inputs(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Hook 1: ``(input, target)`` of a clean batch ``x``. Here the input is ``x`` corrupted when the model has
        a corruption (:meth:`corrupt`; ``generator`` feeds the noise: seeded in evaluation, ``None`` in training:
        fresh noise every step) and the target the clean ``x`` (the VAE binarizes first, then corrupts)."""
        return self.corrupt(x, generator), x

    def latent(self, h: Tensor, generator: torch.Generator | None = None) -> Latent:
        """Hook 3: the latent step from the encoder's output ``h`` to what the decoder decodes (:class:`Latent`;
        ``generator`` feeds any draw). The identity here (``z = h``); the VAE draws from its posterior, the VQ-VAE
        quantizes, the sparse AE keeps a few units."""
        return Latent(z=h, h=h)

    def objective(
        self,
        latent: Latent,
        logits: Tensor | None,
        target: Tensor,
        generator: torch.Generator | None = None,
        step: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Hook 5: ``(loss, terms)`` of the decoder's ``logits`` against ``target``: the mean reconstruction loss
        (:meth:`reconstruction_loss`) plus ``weight · value`` of each of the latent step's penalties and then of
        :meth:`regularizer` 's; the terms hold each penalty's detached value by name. The VAE puts its −ELBO here,
        the IWAE its bound, the sparse AE adds its AuxK loss."""
        return self.penalized(self.reconstruction_loss(logits, target), {}, latent, logits, generator)

    def penalized(
        self,
        loss: Tensor,
        terms: dict[str, Tensor],
        latent: Latent,
        logits: Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``loss`` plus ``weight · value`` of each penalty of the latent step, then of :meth:`regularizer`, in that
        order, each value logged (detached) in ``terms`` by name: the end of every model's :meth:`objective`."""
        terms = dict(terms)
        penalties = {**latent.penalties, **self.regularizer(latent.z, logits, generator)}
        for name, (weight, value) in penalties.items():
            loss = loss + weight * value
            terms[name] = value.detach()
        return loss, terms

    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The mean per-value reconstruction loss (:func:`aelab.models.objectives.reconstruction_loss`)."""
        return objectives.reconstruction_loss(logits, target, self.loss, self.output)

    def regularizer(
        self, z: Tensor, logits: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, tuple[float, Tensor]]:
        """Extra penalties of every model's objective (:meth:`penalized`): ``{name: (weight, value)}`` of the decoded
        code ``z`` and the decoder's logits (``generator`` feeds any random draw; ``z`` and ``logits`` are ``None``
        for the IWAE, whose bound decodes its own draws); the loss adds ``weight · value`` and ``value`` is logged
        as ``*/<name>``. None here: the RAE, WAE and a model of your own add theirs without copying
        :meth:`forward` or :meth:`objective`."""
        return {}

    def diagnostics(self, x: Tensor, x_in: Tensor) -> dict[str, Tensor]:
        """Hook 6: evaluation-only terms of a batch, from the clean ``x`` and the model's input ``x_in`` (none
        here; the DAE's noisy-input PSNR)."""
        return {}

    def split_metrics(self) -> dict[str, Metric]:
        """torchmetrics metrics over a whole validation/test split, fed ``ModelOutput.stats[name]`` each batch
        (none here; the VQ-VAE's codebook usage, the sparse AE's dead latents)."""
        return {}
