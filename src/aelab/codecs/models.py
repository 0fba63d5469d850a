"""The learned image codecs, named and shaped as CompressAI's: :class:`FactorizedPrior` (Ballé, Laparra &
Simoncelli, "End-to-end Optimized Image Compression", ICLR 2017), :class:`ScaleHyperprior` (Ballé, Minnen, Singh,
Hwang & Johnston, "Variational Image Compression with a Scale Hyperprior", ICLR 2018) and
:class:`MeanScaleHyperprior` (Minnen, Ballé & Toderici, "Joint Autoregressive and Hierarchical Priors for Learned
Image Compression", NeurIPS 2018, Sec. 2, without the context model).

Each is a plain ``nn.Module``: ``forward`` gives the rate–distortion objective
(:class:`~aelab.codecs.loss.RateDistortionLoss`) as a :class:`~aelab.models.ModelOutput`; after
:meth:`CompressionModel.update` has frozen the entropy models' integer tables, ``compress(x)`` gives one byte
string per image and ``decompress(strings, shape)`` the images back (the file format around those strings is
:mod:`aelab.codecs.container`'s). Images are ``(B, C, H, W)`` in [0, 1], any size (reflect-padded to the
transforms' grid and cropped back).
"""

from __future__ import annotations

from collections.abc import Sequence

import constriction
import numpy as np
import torch
from torch import Tensor, nn

from aelab.codecs.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from aelab.codecs.loss import RateDistortionLoss
from aelab.codecs.transforms import AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform
from aelab.models.outputs import ModelOutput


def _new_encoder():
    return constriction.stream.queue.RangeEncoder()


def _string(encoder) -> bytes:
    """The coder's words as bytes, trailing zero bytes dropped (the decoder reads missing words as zeros)."""
    return encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def _decoder(string: bytes):
    padded = string + b"\0" * (-len(string) % 4)
    return constriction.stream.queue.RangeDecoder(np.frombuffer(padded, dtype="<u4").astype(np.uint32))


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
        strings = []
        for image in y:
            encoder = _new_encoder()
            self.entropy_bottleneck.compress_into(encoder, image.reshape(len(image), -1).numpy())
            strings.append(_string(encoder))
        size = tuple(x.shape[-2:])
        return {"strings": strings, "shape": size, "x_hat": self.synthesize(y.float().to(x.device), size)}

    @torch.no_grad()
    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict:
        h, w = self.latent_grid(shape)
        eb = self.entropy_bottleneck
        y = np.stack([eb.decompress_from(_decoder(s), h * w) for s in strings]).reshape(
            len(strings), -1, h, w
        )
        return {"x_hat": self.synthesize(torch.from_numpy(y).float().to(self.device), tuple(shape))}


class ScaleHyperprior(CompressionModel):
    """``y = g_a(x)``, side information ``z = h_a(y)`` under a factorized density, and ``y`` under a Gaussian whose
    scales ``h_s(ẑ)`` predicts per position (Ballé et al. 2018; CompressAI's ``ScaleHyperprior``): a blank border
    and a stroke centre are priced apart. Training adds uniform noise to ``y`` and ``z``; evaluation and coding
    round them. At coding time ``h_s`` runs in exact fixed point (:mod:`aelab.codecs.integer`): an encoder and any
    decoder derive the same scales from ``ẑ``, and so the same tables. A string holds ``ẑ``, then ``ŷ``.

    Args:
        hyper_channels: channels of ``z`` (and of ``h_a`` / ``h_s``).
        hyper_stages: stride-2 stages of ``h_a`` (1: MNIST's 7×7 latents → 4×4 ``z``; Ballé et al. use 2).
        entropy_bottleneck: the density of ``z`` (default: Ballé et al.'s, ``hyper_channels`` channels).
        gaussian_conditional: the density of ``y`` given ``ẑ`` (default: CompressAI's scale table).
        Other arguments: as for :class:`CompressionModel`.

    Terms: ``bpp`` = ``bpp_y`` + ``bpp_z``, ``distortion``.
    """

    #: predict means too (Minnen et al. 2018); the scale hyperprior reads ``|y|`` and predicts scales only
    mean = False

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
        m = self.g_a.out_dim
        self.h_a = HyperAnalysis(m, hyper_channels, hyper_stages, absolute=not self.mean)
        self.h_s = HyperSynthesis(hyper_channels, 2 * m if self.mean else m, hyper_stages)
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

    def hyper_grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        """``(h', w')`` of ``z`` for latents of ``grid``."""
        f = int(self.h_a.factor)
        return -(-grid[0] // f), -(-grid[1] // f)

    def gaussian_params(self, z_hat: Tensor, grid: tuple[int, int]) -> tuple[Tensor | None, Tensor]:
        """``(means or None, scales)`` ``(B, M, h, w)`` of ``y`` from ``ẑ`` (float, for training and the estimate)."""
        out = self.h_s(z_hat, grid)
        return out.chunk(2, dim=1) if self.mean else (None, out)

    def exact_params(self, z_int: Tensor, grid: tuple[int, int]) -> tuple[Tensor | None, Tensor]:
        """:meth:`gaussian_params` in exact fixed point from the integers ``ẑ``: ``(means or None, scales)`` as
        float64 integers times ``2**scale_bits``, on the CPU (what the coder uses)."""
        out = self.h_s.forward_exact(z_int, grid, self.gaussian_conditional.scale_bits)
        return out.chunk(2, dim=1) if self.mean else (None, out)

    def latents(self, x, noise, generator=None):
        y = self.g_a(x).float()
        z_hat = self.entropy_bottleneck.quantize(self.h_a(y).float(), noise, generator)
        grid = tuple(y.shape[-2:])
        if noise:
            means, scales = self.gaussian_params(z_hat, grid)
        else:  # evaluation: the coder's own (fixed-point) parameters, so x̂ and the rate are those of the files
            one = float(1 << self.gaussian_conditional.scale_bits)
            means, scales = (
                None if p is None else (p / one).float().to(y.device)
                for p in self.exact_params(z_hat.double(), grid)
            )
        y_hat = self.gaussian_conditional.quantize(y, noise, generator, means)
        likelihoods = {
            "y": self.gaussian_conditional.likelihood(y_hat, scales, means),
            "z": self.entropy_bottleneck.likelihood(z_hat),
        }
        return y_hat, likelihoods

    def _from_symbols(self, q: Tensor, means_int: Tensor | None) -> Tensor:
        """``ŷ = q + μ`` (float64; μ in fixed point) from the coded integers ``q = round(y − μ)``."""
        q = q.double()
        return q if means_int is None else q + means_int / float(1 << self.gaussian_conditional.scale_bits)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict:
        gc, eb = self.gaussian_conditional, self.entropy_bottleneck
        y = self.g_a(x).float()
        z = torch.round(self.h_a(y).float()).cpu().long()
        grid = tuple(y.shape[-2:])
        means_int, scales_int = self.exact_params(z.double(), grid)
        indexes = gc.indexes(scales_int)
        mu = 0.0 if means_int is None else means_int / float(1 << gc.scale_bits)
        q = torch.round(y.double().cpu() - mu).long()
        strings = []
        for i in range(len(x)):
            encoder = _new_encoder()
            eb.compress_into(encoder, z[i].reshape(len(z[i]), -1).numpy())
            gc.compress_into(encoder, q[i].reshape(-1).numpy(), indexes[i].reshape(-1).numpy())
            strings.append(_string(encoder))
        size = tuple(x.shape[-2:])
        x_hat = self.synthesize(self._from_symbols(q, means_int).float().to(x.device), size)
        return {"strings": strings, "shape": size, "x_hat": x_hat}

    def _read_side_information(self, strings: Sequence[bytes], shape: tuple[int, int]):
        """Open one range decoder per string and read its side information ẑ, which comes first in every
        string: ``(decoders, ẑ (B, C_z, h_z, w_z) float64, y's grid (h, w))``; the decoders go on to y."""
        grid = self.latent_grid(shape)
        hz, wz = self.hyper_grid(grid)
        decoders = [_decoder(s) for s in strings]
        z = np.stack([self.entropy_bottleneck.decompress_from(d, hz * wz) for d in decoders])
        return decoders, torch.from_numpy(z).view(len(strings), -1, hz, wz).double(), grid

    @torch.no_grad()
    def decompress(self, strings: Sequence[bytes], shape: tuple[int, int]) -> dict:
        gc = self.gaussian_conditional
        decoders, z, grid = self._read_side_information(strings, shape)
        means_int, scales_int = self.exact_params(z, grid)
        indexes = gc.indexes(scales_int)
        q = np.stack([gc.decompress_from(d, indexes[i].reshape(-1).numpy()) for i, d in enumerate(decoders)])
        y_hat = self._from_symbols(torch.from_numpy(q).view_as(scales_int), means_int)
        return {"x_hat": self.synthesize(y_hat.float().to(self.device), tuple(shape))}


class MeanScaleHyperprior(ScaleHyperprior):
    """:class:`ScaleHyperprior` whose ``h_s`` predicts means as well as scales, ``h_a`` reading ``y`` itself
    (Minnen et al. 2018, Sec. 2, without the context model; CompressAI's ``MeanScaleHyperprior``); ``ŷ = round(y −
    μ) + μ`` in evaluation and coding."""

    mean = True


__all__ = [
    "CompressionModel",
    "FactorizedPrior",
    "MeanScaleHyperprior",
    "ScaleHyperprior",
]
