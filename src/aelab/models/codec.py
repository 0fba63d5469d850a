"""A learned image codec (Ballé, Laparra & Simoncelli, "End-to-end Optimized Image Compression", ICLR 2017)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.codecs import bitstream
from aelab.models.autoencoder import Autoencoder
from aelab.models.components.entropy import EntropyBottleneck
from aelab.models.outputs import LossOutput


class LearnedCodec(Autoencoder):
    """An autoencoder trained for rate + λ·distortion, whose quantized latents are entropy-coded to real files.

    ``y = g_a(x)``; in training ``ỹ = y + U(−½, ½)`` (the additive-noise proxy of rounding, Ballé et al. 2017,
    Sec. 2), at evaluation and coding time ``ŷ = round(y)``; ``x̂ = sigmoid(g_s(ŷ))``. The rate is
    ``R = −Σ log2 p(ŷ)`` under the learned factorized density (:class:`~aelab.models.components.EntropyBottleneck`; with it alone this is CompressAI's ``FactorizedPrior``),
    in bits per pixel (pixels = H·W of the image); the loss is ``R + λ · 255² · D`` with D the MSE of pixels in
    [0, 1] (so λ is on CompressAI's scale, 0.0018 … 0.0483 for photographs), or ``R + λ · (1 − MS-SSIM)``.
    `aelab.codecs.bitstream` writes ``ŷ`` with a range coder (``constriction``) driven by the same density: the
    reported rate is the file's.

    Args:
        encoder: the analysis transform (:class:`~aelab.models.components.AnalysisTransform`).
        decoder: the synthesis transform (:class:`~aelab.models.components.SynthesisTransform`).
        entropy_model: the density of the latents (its channels = the analysis transform's).
        lmbda: λ, the rate–distortion trade-off (higher: more bits, less distortion).
        distortion: ``mse`` or ``ms_ssim`` (torchmetrics; needs images of at least 161 px a side).
        latent_channels, hidden_channels, stages: the sizes the config shares between the parts (hyperparameters).
        optimizer, scheduler, compile, compile_mode, nan_check_every, channels_last, eval_seed: as for
            :class:`~aelab.models.Autoencoder`.

    Metrics, besides the AE's: ``*/bpp`` (estimated rate, bits per pixel) and ``*/distortion``; the real file's
    rate is the evaluation's ``test/codec/...``.
    """

    extra_terms = ("bpp", "distortion")
    #: what measures a codec: its reconstructions, its real files (rate, round trip, speed) and the classical
    #: codecs on the same images — no probe, anomaly, denoising or generation
    eval_sections = ("reconstruction", "codec", "classical_codecs")
    hparams_ignore = (*Autoencoder.hparams_ignore, "entropy_model")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        entropy_model: EntropyBottleneck,
        lmbda: float = 0.01,
        distortion: str = "mse",
        latent_channels: int | None = None,
        hidden_channels: int | None = None,
        stages: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(encoder, decoder, latent_dim=None, loss="mse", **kwargs)
        if distortion not in ("mse", "ms_ssim"):
            raise ValueError(f"model.distortion must be 'mse' or 'ms_ssim', got {distortion!r}")
        if float(lmbda) <= 0:
            raise ValueError(f"model.lmbda={lmbda} must be > 0")
        if entropy_model.channels != encoder.out_dim or decoder.latent_dim != encoder.out_dim:
            raise ValueError(
                f"the entropy model ({entropy_model.channels}), the analysis ({encoder.out_dim}) and the synthesis "
                f"transform ({decoder.latent_dim}) must share the latent channels: leave them to ${{model.latent_channels}}"
            )
        self.entropy_model = entropy_model

    @property
    def latent_dim(self) -> int:
        """Numbers in the latent map of a training-size image: ``M · h · w``."""
        return self.encoder.out_dim * self.encoder.grid[0] * self.encoder.grid[1]

    # ------------------------------------------------------------------ the Codec protocol (aelab.codecs)
    @property
    def image_channels(self) -> int:
        """C of the images this codec codes."""
        return int(self.encoder.in_shape[0])

    @property
    def training_size(self) -> tuple[int, int]:
        """``(H, W)`` of the training images (a per-image file of this size carries no size field)."""
        return tuple(int(s) for s in self.encoder.in_shape[1:])

    def compress(self, images, fingerprint: str, batch_size: int = 500, device="cpu"):
        """uint8 images ``(C, H, W)`` (any sizes) → ``(one file's bytes, the uint8 reconstructions its decoder
        gives)`` (:mod:`aelab.codecs.bitstream`)."""
        return bitstream.encode(self, images, fingerprint, batch_size, device)

    def decompress(self, data: bytes, source: str, fingerprint: str, batch_size: int = 500, device="cpu"):
        """A file's bytes → its uint8 images; refuses (naming ``source``) another format, checkpoint or a damaged
        file."""
        return bitstream.decode(self, data, source, fingerprint, batch_size, device)

    def compress_each(self, images, fingerprint: str, batch_size: int = 500, device="cpu"):
        """uint8 images → ``(one file's bytes per image, the uint8 reconstructions)`` (header ≤ 8 bytes)."""
        return bitstream.encode_each(self, images, fingerprint, batch_size, device)

    def decompress_each(self, files, fingerprint: str, batch_size: int = 500, device="cpu"):
        """Per-image files ``[(bytes, source name)]`` → their uint8 images (each file checked first)."""
        return bitstream.decode_each(self, files, fingerprint, batch_size, device)

    # ------------------------------------------------------------------ the symbols (aelab.codecs.bitstream)
    def coding_context(self) -> dict:
        """What the coder needs once per file: per latent channel the lowest coded value, the highest, and
        constriction's categorical of the density's pmf over that support."""
        import constriction

        lo, pmfs = self.entropy_model.coding_tables()
        cats = [constriction.stream.model.Categorical(p.astype(np.float64), perfect=False) for p in pmfs]
        return {"lo": lo, "hi": lo + np.asarray([len(p) for p in pmfs]) - 1, "categorical": cats}

    @staticmethod
    def factorized_groups(v_hat: Tensor, context: dict) -> tuple[list[bitstream.SymbolGroup], Tensor]:
        """Rounded values ``(B, M, h, w)`` clamped to the factorized density's support: one symbol group per
        channel, and the clamped values (what the decoder rebuilds)."""
        lo = torch.as_tensor(context["lo"], device=v_hat.device).view(1, -1, 1, 1)
        hi = torch.as_tensor(context["hi"], device=v_hat.device).view(1, -1, 1, 1)
        v_hat = torch.maximum(torch.minimum(v_hat, hi.to(v_hat.dtype)), lo.to(v_hat.dtype))
        symbols = (v_hat.long() - lo).cpu().numpy().astype(np.int32)
        b, m = symbols.shape[:2]
        groups = [
            bitstream.SymbolGroup(
                context["categorical"][c], symbols[:, c].size // b, symbols[:, c].reshape(b, -1)
            )
            for c in range(m)
        ]
        return groups, v_hat

    @staticmethod
    def factorized_read(read, count: int, grid: tuple[int, int], context: dict, device) -> Tensor:
        """The inverse of :meth:`factorized_groups`: ``(count, M, h, w)`` values from the decoder."""
        h, w = grid
        channels = [
            torch.from_numpy(read(bitstream.SymbolGroup(cat, h * w)) + int(lo)).view(count, h, w)
            for cat, lo in zip(context["categorical"], context["lo"], strict=True)
        ]
        return torch.stack(channels, 1).float().to(device)

    def latent_grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the latent map of an ``H × W`` image."""
        f = int(self.encoder.factor)
        return -(-size[0] // f), -(-size[1] // f)

    def encode_symbols(self, x: Tensor, context: dict) -> tuple[list[bitstream.SymbolGroup], Tensor]:
        """Images ``(B, C, H, W)`` in [0, 1] → the symbol groups of their rounded latents and ``ŷ`` (clamped)."""
        return self.factorized_groups(torch.round(self.encoder(x)), context)

    def decode_symbols(self, read, count: int, size: tuple[int, int], context: dict, device="cpu") -> Tensor:
        """``ŷ (count, M, h, w)`` of ``count`` images of ``size`` from the groups :meth:`encode_symbols` wrote."""
        return self.factorized_read(read, count, self.latent_grid(size), context, device)

    # ------------------------------------------------------------------ the autoencoder's view
    def quantized_latents(self, x: Tensor) -> Tensor:
        """``ŷ (B, M, h, w)``: the latents the decoder synthesizes from (rounded; unclamped)."""
        return torch.round(self.encoder(x))

    def latents(self, x: Tensor) -> Tensor:
        """The rounded latent map ``ŷ`` ``(B, M, h, w)`` of images ``(B, C, H, W)`` (what the bitstream holds)."""
        return self.quantized_latents(x)

    def synthesize(self, y_hat: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] from a latent map (cropped to ``out_size``, default the training size)."""
        return torch.sigmoid(self.decoder(y_hat, out_size))

    def encode(self, x: Tensor) -> Tensor:
        """The quantized latents, flattened: ``(B, latent_dim)`` (training-size images)."""
        return self.quantized_latents(x).flatten(1)

    def decode(self, z: Tensor) -> Tensor:
        m, (h, w) = self.encoder.out_dim, self.encoder.grid
        return self.synthesize(z.view(-1, m, h, w))

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.synthesize(self.quantized_latents(x), tuple(x.shape[-2:]))

    def forward(self, x: Tensor) -> Tensor:
        return self.reconstruct(x)

    def rate_bits(self, x: Tensor) -> Tensor:
        """The estimated rate of each image at evaluation (rounded latents), in bits ``(B,)``."""
        return -torch.log2(self.entropy_model.likelihood(self.quantized_latents(x))).flatten(1).sum(1)

    def distortion_of(self, x_hat: Tensor, target: Tensor) -> Tensor:
        if self.hparams.distortion == "mse":
            return F.mse_loss(x_hat.float(), target.float())
        from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

        return 1 - ms_ssim(x_hat.float(), target.float(), data_range=1.0)

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        y = self.encoder(x_in)
        if stage == "train":
            noise = torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype) - 0.5
            y_tilde = y + noise
        else:
            y_tilde = torch.round(y)
        bits = -torch.log2(self.entropy_model.likelihood(y_tilde)).sum()
        bpp = bits / (x_in.shape[0] * x_in.shape[-2] * x_in.shape[-1])
        x_hat = self.synthesize(y_tilde, tuple(x_in.shape[-2:]))
        distortion = self.distortion_of(x_hat, target)
        scale = 255.0**2 if self.hparams.distortion == "mse" else 1.0
        loss = bpp + self.hparams.lmbda * scale * distortion
        extras = {"bpp": bpp.detach(), "distortion": distortion.detach()}
        return LossOutput(loss, None if stage == "train" else x_hat, extras)
