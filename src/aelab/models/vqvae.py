"""Vector-quantized autoencoder (van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation Learning",
NeurIPS 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from aelab.models.autoencoder import Autoencoder, Latent
from aelab.models.code_metrics import CodebookUsage, CodePerplexity
from aelab.models.components.quantizer import VectorQuantizer, perplexity


class VQVAE(Autoencoder):
    """VQ-VAE: ``x → encoder → z_e → nearest code e_k → decoder → x̂``, codes learned by EMA.

    The encoder's output is a set of vectors of ``quantizer.code_dim``: a feature map ``(B, D, h, w)`` from a
    spatial conv encoder (``ConvEncoder(spatial=True)``, one code per position of the ``h × w`` grid), or a flat
    ``(B, P·D)`` from an MLP encoder (``P`` codes). Each vector is replaced by its nearest codebook entry
    (:class:`~aelab.models.components.VectorQuantizer`: straight-through gradient, commitment loss, EMA codebook,
    dead-code restarts). An image is thus ``P`` indices of ``ceil(log2 K)`` bits each.

    Args:
        encoder: a spatial conv encoder with ``out_dim = code_dim``, or an MLP encoder with
            ``out_dim = P · code_dim``.
        decoder: its mirror (``latent_dim = code_dim`` spatial, ``P · code_dim`` MLP).
        quantizer: the codebook.
        code_dim: the code dimension the config shares between the parts (checked against the quantizer's).
        loss, output: as for :class:`~aelab.models.Autoencoder` (``mse``, van den Oord et al.'s choice, by default).
        corruption: as for :class:`~aelab.models.Autoencoder`: the input is corrupted, the clean batch is the
            target (a denoising VQ-VAE).

    Hooks (:class:`~aelab.models.Autoencoder`): :meth:`latent` quantizes (the quantizer's losses are its
    penalties); the rest is the base class's.

    The code of an image (:meth:`encode`) is its quantized vectors, flattened: ``(B, latent_dim)`` with
    ``latent_dim = P · code_dim``; :meth:`code_indices` / :meth:`codes_from_indices` convert to and from the
    ``(B, P)`` indices. Terms: ``commitment`` (β‖z_e − sg[e]‖²), ``codebook`` (0 with EMA), and in training
    ``vq/perplexity`` of the batch; over a whole split ``vq/perplexity`` and ``vq/codebook_usage``
    (:meth:`split_metrics`).

    Raises:
        ValueError: when the encoder's output does not split into ``code_dim`` vectors.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        quantizer: VectorQuantizer,
        code_dim: int | None = None,
        loss: str = "mse",
        output: str = "sigmoid",
        corruption: nn.Module | None = None,
    ) -> None:
        super().__init__(encoder, decoder, latent_dim=None, loss=loss, output=output, corruption=corruption)
        self.quantizer = quantizer
        d = quantizer.code_dim
        if code_dim is not None and int(code_dim) != d:
            raise ValueError(f"model.code_dim={code_dim} differs from the quantizer's code_dim={d}")
        if getattr(encoder, "spatial", False):
            if encoder.out_dim != d or decoder.latent_dim != d:
                raise ValueError(
                    f"a spatial VQ-VAE needs encoder.out_dim = decoder.latent_dim = quantizer.code_dim = {d}, got "
                    f"{encoder.out_dim} and {decoder.latent_dim}: leave them to ${{model.code_dim}}"
                )
            self.grid: tuple[int, int] | None = tuple(encoder.grid)
            self.positions = self.grid[0] * self.grid[1]
        else:
            if encoder.out_dim % d or decoder.latent_dim != encoder.out_dim:
                raise ValueError(
                    f"an MLP VQ-VAE needs encoder.out_dim = decoder.latent_dim = P · code_dim ({d}), got "
                    f"{encoder.out_dim} and {decoder.latent_dim}"
                )
            self.grid = None
            self.positions = encoder.out_dim // d

    # ------------------------------------------------------------------ codes
    @property
    def codebook_size(self) -> int:
        """K, the codebook entries."""
        return int(self.quantizer.num_codes)

    @property
    def latent_dim(self) -> int:
        """Floats in a code: ``P · code_dim`` (what it stores is ``P`` indices)."""
        return self.positions * self.quantizer.code_dim

    def _vectors(self, h: Tensor) -> Tensor:
        """Encoder output → ``(B·P, D)`` vectors."""
        d = self.quantizer.code_dim
        if self.grid is not None:
            return h.permute(0, 2, 3, 1).reshape(-1, d)
        return h.reshape(-1, d)

    def _decoder_input(self, vectors: Tensor, batch: int) -> Tensor:
        d = self.quantizer.code_dim
        if self.grid is not None:
            return vectors.view(batch, *self.grid, d).permute(0, 3, 1, 2).contiguous()
        return vectors.view(batch, self.positions * d)

    def encode(self, x: Tensor) -> Tensor:
        """The quantized code vectors of images ``(B, C, H, W)``, flattened: ``(B, latent_dim)``."""
        v = self._vectors(self.encoder(x))
        return self.quantizer.lookup(self.quantizer.nearest(v)).reshape(len(x), -1)

    def decode(self, z: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] from flattened code vectors ``(B, latent_dim)``."""
        return super().decode(self._decoder_input(z.reshape(-1, self.quantizer.code_dim), len(z)))

    def code_indices(self, codes: Tensor) -> Tensor:
        """Codebook indices ``(N, P)`` of codes ``(N, latent_dim)`` (each vector's nearest entry), on the CPU."""
        device = self.quantizer.embedding.device
        return (
            self.quantizer.nearest(codes.reshape(-1, self.quantizer.code_dim).to(device))
            .view(len(codes), -1)
            .cpu()
        )

    def codes_from_indices(self, indices: Tensor) -> Tensor:
        """Codes ``(N, latent_dim)`` of codebook indices ``(N, P)``."""
        device = self.quantizer.embedding.device
        return self.quantizer.lookup(indices.long().to(device)).reshape(len(indices), -1)

    # ------------------------------------------------------------------ the objective
    def split_metrics(self) -> dict[str, Metric]:
        k = self.codebook_size
        return {"vq/perplexity": CodePerplexity(k), "vq/codebook_usage": CodebookUsage(k)}

    def latent(self, h: Tensor, generator: torch.Generator | None = None) -> Latent:
        """Each vector of the encoder's output ``h`` replaced by its nearest code (straight-through; the EMA update
        in training), in the decoder's layout; the quantizer's ``commitment`` and ``codebook`` losses are penalties
        of weight 1; ``vq/perplexity`` of the batch in training, the indices for the split metrics in evaluation."""
        quantized, indices, losses = self.quantizer(self._vectors(h))
        z = self._decoder_input(quantized, len(h))
        terms, stats = {}, {}
        if self.training:
            terms["vq/perplexity"] = perplexity(torch.bincount(indices, minlength=self.codebook_size))
        else:
            stats = {"vq/perplexity": indices, "vq/codebook_usage": indices}
        penalties = {name: (1.0, value) for name, value in losses.items()}
        return Latent(z=z, h=h, penalties=penalties, terms=terms, stats=stats)
