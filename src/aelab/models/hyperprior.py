"""A learned codec with a hyperprior: Ballé, Minnen, Singh, Hwang & Johnston, "Variational Image Compression with a
Scale Hyperprior", ICLR 2018 (CompressAI's ``ScaleHyperprior``), and the mean–scale hyperprior of Minnen, Ballé &
Toderici, "Joint Autoregressive and Hierarchical Priors for Learned Image Compression", NeurIPS 2018, Sec. 2,
without its context model (CompressAI's ``MeanScaleHyperprior``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from aelab.codecs import bitstream
from aelab.models.codec import LearnedCodec
from aelab.models.components.entropy import EntropyBottleneck, GaussianConditional
from aelab.models.outputs import LossOutput


class HyperpriorCodec(LearnedCodec):
    """``y = g_a(x)``, side information ``z = h_a(y)`` under a factorized density, and ``y`` under a Gaussian
    whose scales (and means) ``h_s(ẑ)`` predicts per position — a blank border and a stroke centre are priced
    apart. Training uses additive uniform noise on ``y`` and ``z`` (Ballé et al. 2018, Sec. 2); evaluation and
    coding round ``z`` and ``y − μ``: ``ŷ = round(y − μ) + μ`` (Minnen et al. 2018; ``μ = 0`` for the scale
    hyperprior). The rate is ``R = −Σ log2 p(ŷ | ẑ) − Σ log2 p(ẑ)`` in bits per pixel; the loss is
    ``R + λ · 255² · MSE`` as for :class:`LearnedCodec` (λ on CompressAI's scale).

    At coding time ``h_s`` runs in float64 and every scale is quantized up to the Gaussian conditional's scale
    table, so the encoder and any decoder pick the same model from ``ẑ`` (the file holds ``ẑ`` first, then
    ``ŷ``).

    Args:
        encoder, decoder: ``g_a`` and ``g_s`` (:class:`~aelab.models.components.AnalysisTransform` /
            ``SynthesisTransform``).
        hyper_encoder, hyper_decoder: ``h_a`` and ``h_s`` (:class:`~aelab.models.components.HyperAnalysis` /
            ``HyperSynthesis``; ``h_s`` gives M channels of scales, or 2M — means then scales — with ``mean``).
        entropy_model: the factorized density of ``z`` (its channels = ``h_a``'s).
        gaussian_conditional: the conditional density of ``y`` (:class:`~aelab.models.components.GaussianConditional`).
        mean: the mean–scale hyperprior (Minnen et al.) instead of the scale hyperprior (Ballé et al.).
        hyper_channels, hyper_stages: sizes the config shares between the parts (hyperparameters).
        Other arguments: as for :class:`LearnedCodec`.

    Metrics, besides the codec's: ``*/bpp_y`` and ``*/bpp_z`` (the two parts of the estimated rate).
    """

    extra_terms = ("bpp", "bpp_y", "bpp_z", "distortion")
    hparams_ignore = (*LearnedCodec.hparams_ignore, "hyper_encoder", "hyper_decoder", "gaussian_conditional")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        hyper_encoder: nn.Module,
        hyper_decoder: nn.Module,
        entropy_model: EntropyBottleneck,
        gaussian_conditional: GaussianConditional,
        mean: bool = True,
        hyper_channels: int | None = None,
        hyper_stages: int | None = None,
        **kwargs,
    ) -> None:
        # the factorized density codes z here: its channels are h_a's, not g_a's
        if entropy_model.channels != hyper_encoder.out_dim:
            raise ValueError(
                f"the entropy model of z ({entropy_model.channels} channels) and h_a ({hyper_encoder.out_dim}) must "
                "share the hyper channels: leave them to ${model.hyper_channels}"
            )
        super().__init__(encoder, decoder, _Channels(encoder.out_dim), **kwargs)
        self.entropy_model = entropy_model
        self.hyper_encoder = hyper_encoder
        self.hyper_decoder = hyper_decoder
        self.gaussian_conditional = gaussian_conditional
        self.mean = bool(mean)

    # ------------------------------------------------------------------ the Gaussian's parameters
    def gaussian_params(
        self, z_hat: Tensor, grid: tuple[int, int], exact: bool = False
    ) -> tuple[Tensor, Tensor]:
        """``(means, scales)`` ``(B, M, h, w)`` from ``ẑ`` (means 0 for the scale hyperprior); ``exact``: in
        float64 (the coder's, identical at encoder and decoder)."""
        if exact:
            params = {k: v.double() for k, v in self.hyper_decoder.state_dict().items()}
            with torch.autocast(z_hat.device.type, enabled=False):
                out = torch.func.functional_call(self.hyper_decoder, params, (z_hat.double(), grid))
        else:
            out = self.hyper_decoder(z_hat, grid)
        if self.mean:
            means, scales = out.chunk(2, dim=1)
        else:
            means, scales = torch.zeros_like(out), out
        return means, scales

    def _y_groups(self, y: Tensor, means: Tensor, scales: Tensor) -> tuple[bitstream.SymbolGroup, Tensor]:
        gc = self.gaussian_conditional
        q = torch.round(y.double() - means).clamp(-gc.max_symbol, gc.max_symbol)
        y_hat = (q + means).float()
        b = y.shape[0]
        stds = gc.table[gc.indexes(scales)].cpu().numpy().reshape(b, -1)
        group = bitstream.SymbolGroup(
            gc.coding_family(),
            stds.shape[1],
            q.cpu().numpy().astype(np.int32).reshape(b, -1),
            (np.zeros_like(stds), stds),
        )
        return group, y_hat

    # ------------------------------------------------------------------ the symbols (aelab.codecs.bitstream)
    def encode_symbols(self, x: Tensor, context: dict) -> tuple[list[bitstream.SymbolGroup], Tensor]:
        y = self.encoder(x).float()
        z_groups, z_hat = self.factorized_groups(torch.round(self.hyper_encoder(y).float()), context)
        means, scales = self.gaussian_params(z_hat, tuple(y.shape[-2:]), exact=True)
        y_group, y_hat = self._y_groups(y, means, scales)
        return [*z_groups, y_group], y_hat

    def decode_symbols(self, read, count: int, size: tuple[int, int], context: dict, device="cpu") -> Tensor:
        grid = self.latent_grid(size)
        f = int(self.hyper_encoder.factor)
        z_hat = self.factorized_read(read, count, (-(-grid[0] // f), -(-grid[1] // f)), context, device)
        means, scales = self.gaussian_params(z_hat, grid, exact=True)
        gc = self.gaussian_conditional
        stds = gc.table[gc.indexes(scales)].cpu().numpy().reshape(count, -1)
        q = read(bitstream.SymbolGroup(gc.coding_family(), stds.shape[1], None, (np.zeros_like(stds), stds)))
        return (torch.from_numpy(q).to(device).double().view_as(means) + means).float()

    # ------------------------------------------------------------------ the autoencoder's view
    def quantized_latents(self, x: Tensor) -> Tensor:
        y = self.encoder(x).float()
        z_hat = torch.round(self.hyper_encoder(y).float())
        means, _ = self.gaussian_params(z_hat, tuple(y.shape[-2:]))
        return torch.round(y - means) + means

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        y = self.encoder(x_in).float()
        z = self.hyper_encoder(y).float()

        def noisy(v: Tensor) -> Tensor:
            return v + torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype) - 0.5

        z_tilde = noisy(z) if stage == "train" else torch.round(z)
        means, scales = self.gaussian_params(z_tilde, tuple(y.shape[-2:]))
        y_tilde = noisy(y) if stage == "train" else torch.round(y - means) + means
        pixels = x_in.shape[0] * x_in.shape[-2] * x_in.shape[-1]
        bpp_y = -torch.log2(self.gaussian_conditional.likelihood(y_tilde, scales, means)).sum() / pixels
        bpp_z = -torch.log2(self.entropy_model.likelihood(z_tilde)).sum() / pixels
        bpp = bpp_y + bpp_z
        x_hat = self.synthesize(y_tilde, tuple(x_in.shape[-2:]))
        distortion = self.distortion_of(x_hat, target)
        scale = 255.0**2 if self.hparams.distortion == "mse" else 1.0
        loss = bpp + self.hparams.lmbda * scale * distortion
        extras = {
            "bpp": bpp.detach(),
            "bpp_y": bpp_y.detach(),
            "bpp_z": bpp_z.detach(),
            "distortion": distortion.detach(),
        }
        return LossOutput(loss, None if stage == "train" else x_hat, extras)

    def rate_bits(self, x: Tensor) -> Tensor:
        """The estimated rate of each image at evaluation (rounded latents), in bits ``(B,)``."""
        y = self.encoder(x).float()
        z_hat = torch.round(self.hyper_encoder(y).float())
        means, scales = self.gaussian_params(z_hat, tuple(y.shape[-2:]))
        y_hat = torch.round(y - means) + means
        bits_y = -torch.log2(self.gaussian_conditional.likelihood(y_hat, scales, means)).flatten(1).sum(1)
        return bits_y - torch.log2(self.entropy_model.likelihood(z_hat)).flatten(1).sum(1)


class _Channels:
    """Stands in for the latents' density at the parent's channel check (this codec's density of y is the
    Gaussian conditional)."""

    def __init__(self, channels: int) -> None:
        self.channels = int(channels)
