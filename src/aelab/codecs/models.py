"""The learned image codecs, named and shaped as CompressAI's: :class:`FactorizedPrior` (Ballé, Laparra &
Simoncelli, "End-to-end Optimized Image Compression", ICLR 2017), :class:`ScaleHyperprior` (Ballé, Minnen, Singh,
Hwang & Johnston, "Variational Image Compression with a Scale Hyperprior", ICLR 2018) and
:class:`MeanScaleHyperprior` (Minnen, Ballé & Toderici, "Joint Autoregressive and Hierarchical Priors for Learned
Image Compression", NeurIPS 2018, Sec. 2, without the context model): two classes, as CompressAI writes them,
over :class:`HyperpriorModel`, what they share (the entropy models of ``z`` and ``y``, one string per image, the
exact fixed-point coding); each says what its ``h_a`` reads and what its ``h_s`` predicts.

Each is a plain ``nn.Module``: ``forward`` gives the rate–distortion objective
(:class:`~aelab.codecs.loss.RateDistortionLoss`) as a :class:`~aelab.models.ModelOutput`; after
:meth:`CompressionModel.update` has frozen the entropy models' integer tables, ``compress(x)`` gives one byte
string per image and ``decompress(strings, shape)`` the images back (the file format around those strings is
:mod:`aelab.codecs.container`'s). Images are ``(B, C, H, W)`` in [0, 1], any size (reflect-padded to the
transforms' grid and cropped back).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from aelab.codecs.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from aelab.codecs.loss import RateDistortionLoss
from aelab.codecs.range_coder import new_decoder, new_encoder, to_bytes
from aelab.codecs.transforms import AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform
from aelab.models.outputs import ModelOutput


class CompressionModel(nn.Module):
    """Base of the learned codecs (CompressAI's ``CompressionModel``): the analysis and synthesis transforms
    ``g_a`` / ``g_s`` (stride-2 5×5 convolutions with GDN, :mod:`aelab.codecs.transforms`), the rate–distortion
    objective, and the entropy models' :meth:`update`.

    Args:
        image_shape: the training images' ``(C, H, W)`` (C is what counts: any size is coded; a per-image file of
            the training size carries no size field).
        hidden_channels: N, the channels between the transforms' stages.
        latent_channels: M, the channels of the latent map ``y``.
        stages: stride-2 stages of ``g_a`` (2 for 28×28 MNIST: a 7×7 map; 4 for photographs: H/16).
        lmbda, distortion: the rate–distortion trade-off (:class:`~aelab.codecs.loss.RateDistortionLoss`).
        padding_mode: how ``g_a`` pads an image to its grid: ``reflect`` or ``zeros``.

    Terms: ``bpp`` (the estimated rate, bits per pixel), ``bpp_y`` (and ``bpp_z``), ``distortion``.
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        hidden_channels: int = 64,
        latent_channels: int = 32,
        stages: int = 2,
        lmbda: float = 0.01,
        distortion: str = "mse",
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        self.g_a = AnalysisTransform(image_shape, hidden_channels, latent_channels, stages, padding_mode)
        self.g_s = SynthesisTransform(image_shape, hidden_channels, latent_channels, stages)
        self.criterion = RateDistortionLoss(lmbda, distortion)

    # ------------------------------------------------------------------ what the container reads
    @property
    def image_channels(self) -> int:
        """C of the images this codec codes."""
        return int(self.g_a.in_shape[0])

    @property
    def training_size(self) -> tuple[int, int]:
        """``(H, W)`` of the training images."""
        return tuple(int(s) for s in self.g_a.in_shape[1:])

    def latent_grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the latent map of an ``H × W`` image."""
        f = int(self.g_a.factor)
        return -(-int(size[0]) // f), -(-int(size[1]) // f)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ training and the estimated rate
    def latents(
        self, x: Tensor, noise: bool, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(ŷ (B, M, h, w), {name: likelihoods})`` of images: noisy latents (``noise``, training) or rounded."""
        raise NotImplementedError

    def synthesize(self, y_hat: Tensor, size: tuple[int, int]) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] of size ``size`` from a latent map."""
        return torch.sigmoid(self.g_s(y_hat, tuple(size)))

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The rate–distortion objective of images ``x`` (noisy latents in training, rounded in evaluation)."""
        y_hat, likelihoods = self.latents(x, self.training, generator)
        x_hat = self.synthesize(y_hat, tuple(x.shape[-2:]))
        terms = self.criterion(likelihoods, x_hat, x)
        loss = terms.pop("loss")
        return ModelOutput(loss, None, y_hat, {k: v.detach() for k, v in terms.items()}, reconstruction=x_hat)

    def reconstruct(self, x: Tensor) -> Tensor:
        """The images the codec's files decode to (up to the uint8 rounding): from the rounded latents."""
        return self.synthesize(self.latents(x, noise=False)[0], tuple(x.shape[-2:]))

    def rate_bits(self, x: Tensor) -> Tensor:
        """The estimated rate of each image at evaluation (rounded latents), bits ``(B,)``."""
        likelihoods = self.latents(x, noise=False)[1]
        return sum(-torch.log2(p).flatten(1).sum(1) for p in likelihoods.values())

    # ------------------------------------------------------------------ coding
    def update(self, force: bool = False) -> bool:
        """Freeze every entropy model's integer coding tables from the current weights (CompressAI's ``update``);
        call it after training and before :meth:`compress` (a checkpoint written by aelab-train holds them
        already). Without ``force`` tables that are there are kept. Returns whether any were rebuilt."""
        models = [m for m in self.modules() if isinstance(m, EntropyModel) and (force or not m.ready)]
        for module in models:
            module.update(force=True)
        return bool(models)

    def compress(self, x: Tensor) -> dict:
        """Images ``(B, C, H, W)`` in [0, 1] of one size → ``{"strings": one bytes per image, "shape": (H, W),
        "x_hat": the images the decoder will rebuild}``."""
        raise NotImplementedError

    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict:
        """The strings of :meth:`compress` (images of size ``shape``) → ``{"x_hat": (B, C, H, W) in [0, 1]}``."""
        raise NotImplementedError


class FactorizedPrior(CompressionModel):
    """``y = g_a(x)``, ``ŷ`` under the learned factorized density (:class:`EntropyBottleneck`), ``x̂ = g_s(ŷ)``:
    Ballé et al. 2017 (CompressAI's ``FactorizedPrior``).

    Args:
        entropy_bottleneck: the density of ``y`` (its channels = ``latent_channels``; default: Ballé et al.'s).
        Other arguments: as for :class:`CompressionModel`.
    """

    def __init__(self, *args, entropy_bottleneck: EntropyBottleneck | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        m = self.g_a.out_dim
        self.entropy_bottleneck = (
            entropy_bottleneck if entropy_bottleneck is not None else EntropyBottleneck(m)
        )
        if self.entropy_bottleneck.channels != m:
            raise ValueError(
                f"the entropy bottleneck has {self.entropy_bottleneck.channels} channels, the latents {m}: leave "
                "model.entropy_bottleneck.channels to ${model.latent_channels}"
            )

    def latents(self, x, noise, generator=None):
        y_hat = self.entropy_bottleneck.quantize(self.g_a(x).float(), noise, generator)
        return y_hat, {"y": self.entropy_bottleneck.likelihood(y_hat)}

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict:
        y = torch.round(self.g_a(x).float()).cpu().long()
        strings = self.entropy_bottleneck.compress(y)
        size = tuple(x.shape[-2:])
        return {"strings": strings, "shape": size, "x_hat": self.synthesize(y.float().to(x.device), size)}

    @torch.no_grad()
    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict:
        y_hat = self.entropy_bottleneck.decompress(strings, self.latent_grid(shape))
        return {"x_hat": self.synthesize(y_hat.to(self.device), tuple(shape))}


def _units(params: Tensor | None, bits: int, device: torch.device) -> Tensor | None:
    """Fixed-point parameters (× ``2**bits``) in units, float32 on ``device`` (``None``, no means, stays so)."""
    return None if params is None else (params / float(1 << bits)).float().to(device)


class HyperpriorModel(CompressionModel):
    """What :class:`ScaleHyperprior` and :class:`MeanScaleHyperprior` share: ``y = g_a(x)``, side information ``z =
    h_a(y)`` under a factorized density (:class:`EntropyBottleneck`), and ``y`` under a Gaussian
    (:class:`GaussianConditional`) whose parameters ``h_s(ẑ)`` predicts per position: a blank border and a stroke
    centre are priced apart. Training adds uniform noise to ``y`` and ``z``; evaluation and coding round them. At
    coding time ``h_s`` runs in exact fixed point (:mod:`aelab.codecs.integer`): an encoder and any decoder derive
    the same parameters from ``ẑ``, and so the same tables. A string holds ``ẑ``, then ``ŷ`` (one range coder,
    :mod:`aelab.codecs.range_coder`, shared by both entropy models).

    A subclass says what ``h_a`` reads and what ``h_s`` predicts: :meth:`hyper_transforms`,
    :meth:`gaussian_params` and :meth:`exact_params` (``means`` is ``None`` where only scales are predicted).

    Args:
        hyper_channels: channels of ``z`` (and of ``h_a`` / ``h_s``).
        hyper_stages: stride-2 stages of ``h_a`` (1: MNIST's 7×7 latents → 4×4 ``z``; Ballé et al. use 2).
        entropy_bottleneck: the density of ``z`` (default: Ballé et al.'s, ``hyper_channels`` channels).
        gaussian_conditional: the density of ``y`` given ``ẑ`` (default: CompressAI's scale table).
        Other arguments: as for :class:`CompressionModel`.

    Terms: ``bpp`` = ``bpp_y`` + ``bpp_z``, ``distortion``.
    """

    def __init__(
        self,
        *args,
        hyper_channels: int = 32,
        hyper_stages: int = 1,
        entropy_bottleneck: EntropyBottleneck | None = None,
        gaussian_conditional: GaussianConditional | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.h_a, self.h_s = self.hyper_transforms(self.g_a.out_dim, hyper_channels, hyper_stages)
        self.entropy_bottleneck = (
            entropy_bottleneck if entropy_bottleneck is not None else EntropyBottleneck(hyper_channels)
        )
        if self.entropy_bottleneck.channels != hyper_channels:
            raise ValueError(
                f"the entropy bottleneck of z has {self.entropy_bottleneck.channels} channels, h_a {hyper_channels}: "
                "leave model.entropy_bottleneck.channels to ${model.hyper_channels}"
            )
        self.gaussian_conditional = (
            gaussian_conditional if gaussian_conditional is not None else GaussianConditional()
        )

    # ------------------------------------------------------------------ what a subclass says
    def hyper_transforms(
        self, latent_channels: int, hyper_channels: int, hyper_stages: int
    ) -> tuple[HyperAnalysis, HyperSynthesis]:
        """``(h_a, h_s)`` for ``M = latent_channels`` (built once, in this order, by ``__init__``)."""
        raise NotImplementedError

    def gaussian_params(self, z_hat: Tensor, grid: tuple[int, int]) -> tuple[Tensor | None, Tensor]:
        """``(means or None, scales)`` ``(B, M, h, w)`` of ``y`` from ``ẑ`` (float, for training and the estimate)."""
        raise NotImplementedError

    def exact_params(self, z_int: Tensor, grid: tuple[int, int]) -> tuple[Tensor | None, Tensor]:
        """:meth:`gaussian_params` in exact fixed point from the integers ``ẑ``: ``(means or None, scales)`` as
        float64 integers times ``2**scale_bits``, on the CPU (what the coder uses)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def hyper_grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        """``(h', w')`` of ``z`` for latents of ``grid``."""
        f = int(self.h_a.factor)
        return -(-grid[0] // f), -(-grid[1] // f)

    def latents(self, x, noise, generator=None):
        y = self.g_a(x).float()
        z_hat = self.entropy_bottleneck.quantize(self.h_a(y).float(), noise, generator)
        grid = tuple(y.shape[-2:])
        if noise:
            means, scales = self.gaussian_params(z_hat, grid)
        else:  # evaluation: the coder's own (fixed-point) parameters, so x̂ and the rate are those of the files
            bits = self.gaussian_conditional.scale_bits
            means, scales = (_units(p, bits, y.device) for p in self.exact_params(z_hat.double(), grid))
        y_hat = self.gaussian_conditional.quantize(y, noise, generator, means)
        likelihoods = {
            "y": self.gaussian_conditional.likelihood(y_hat, scales, means),
            "z": self.entropy_bottleneck.likelihood(z_hat),
        }
        return y_hat, likelihoods

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict:
        gc, eb = self.gaussian_conditional, self.entropy_bottleneck
        y = self.g_a(x).float()
        z = torch.round(self.h_a(y).float()).cpu().long()
        grid = tuple(y.shape[-2:])
        means_int, scales_int = self.exact_params(z.double(), grid)
        indexes = gc.indexes(scales_int)
        q = gc.symbols(y, means_int)
        strings = []
        for i in range(len(x)):
            encoder = new_encoder()
            eb.compress_into(encoder, z[i].reshape(len(z[i]), -1).numpy())
            gc.compress_into(encoder, q[i].reshape(-1).numpy(), indexes[i].reshape(-1).numpy())
            strings.append(to_bytes(encoder))
        size = tuple(x.shape[-2:])
        x_hat = self.synthesize(gc.dequantize(q, means_int).float().to(x.device), size)
        return {"strings": strings, "shape": size, "x_hat": x_hat}

    def decode_side_information(self, strings: Sequence[bytes], shape: tuple[int, int]):
        """Open one range decoder per string and read its side information ẑ, which comes first in every
        string: ``(decoders, ẑ (B, C_z, h_z, w_z) float64, y's grid (h, w))``; the decoders go on to y."""
        grid = self.latent_grid(shape)
        hz, wz = self.hyper_grid(grid)
        decoders = [new_decoder(s) for s in strings]
        z = np.stack([self.entropy_bottleneck.decompress_from(d, hz * wz) for d in decoders])
        return decoders, torch.from_numpy(z).view(len(strings), -1, hz, wz).double(), grid

    @torch.no_grad()
    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict:
        gc = self.gaussian_conditional
        decoders, z, grid = self.decode_side_information(strings, shape)
        means_int, scales_int = self.exact_params(z, grid)
        indexes = gc.indexes(scales_int)
        q = np.stack([gc.decompress_from(d, indexes[i].reshape(-1).numpy()) for i, d in enumerate(decoders)])
        y_hat = gc.dequantize(torch.from_numpy(q).view_as(scales_int), means_int)
        return {"x_hat": self.synthesize(y_hat.float().to(self.device), tuple(shape))}


class ScaleHyperprior(HyperpriorModel):
    """The scale hyperprior (Ballé, Minnen, Singh, Hwang & Johnston 2018; CompressAI's ``ScaleHyperprior``):
    ``h_a`` reads ``|y|`` and ``h_s(ẑ)`` predicts the ``M`` scales of a zero-mean Gaussian per position; ``ŷ =
    round(y)`` in evaluation and coding.

    Args:
        as for :class:`HyperpriorModel`.
    """

    def hyper_transforms(self, latent_channels, hyper_channels, hyper_stages):
        h_a = HyperAnalysis(latent_channels, hyper_channels, hyper_stages, absolute=True)
        return h_a, HyperSynthesis(hyper_channels, latent_channels, hyper_stages)

    def gaussian_params(self, z_hat, grid):
        return None, self.h_s(z_hat, grid)

    def exact_params(self, z_int, grid):
        return None, self.h_s.forward_exact(z_int, grid, self.gaussian_conditional.scale_bits)


class MeanScaleHyperprior(HyperpriorModel):
    """The mean–scale hyperprior (Minnen, Ballé & Toderici 2018, Sec. 2, without the context model; CompressAI's
    ``MeanScaleHyperprior``): ``h_a`` reads ``y`` itself and ``h_s(ẑ)`` predicts ``2M`` channels, the means then
    the scales of the Gaussian per position; ``ŷ = round(y − μ) + μ`` in evaluation and coding.

    Args:
        as for :class:`HyperpriorModel`.
    """

    def hyper_transforms(self, latent_channels, hyper_channels, hyper_stages):
        h_a = HyperAnalysis(latent_channels, hyper_channels, hyper_stages, absolute=False)
        return h_a, HyperSynthesis(hyper_channels, 2 * latent_channels, hyper_stages)

    def gaussian_params(self, z_hat, grid):
        means, scales = self.h_s(z_hat, grid).chunk(2, dim=1)
        return means, scales

    def exact_params(self, z_int, grid):
        means, scales = self.h_s.forward_exact(z_int, grid, self.gaussian_conditional.scale_bits).chunk(
            2, dim=1
        )
        return means, scales


__all__ = [
    "CompressionModel",
    "FactorizedPrior",
    "HyperpriorModel",
    "MeanScaleHyperprior",
    "ScaleHyperprior",
]
