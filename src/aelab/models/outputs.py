"""What a model's ``forward`` returns: one typed output (pythae's ``ModelOutput``; CompressAI's ``{"x_hat",
"likelihoods"}``), so a training loop — aelab's LightningModule or ten lines of plain PyTorch — needs nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ModelOutput:
    """One batch through a model.

    Attributes:
        loss: the scalar the model minimizes (a mean over the batch; nats, or bits per pixel plus λ·distortion
            for a codec).
        logits: the decoder's output before its output activation, the data's shape ``(B, ...)`` (images
            ``(B, C, H, W)``); ``None`` where the model gives its reconstruction directly (the codecs).
        z: the latents of the batch: codes ``(B, latent_dim)``, or a latent map ``(B, M, h, w)``.
        terms: each term of the objective and each diagnostic by name, detached scalars (``kl``, ``recon``,
            ``bpp``, ``mmd``, ...): what ``train/<name>``, ``val/<name>`` and ``test/<name>`` log.
        stats: per-batch tensors a whole-split metric consumes, by the metric's name (the VQ-VAE's code indices
            for ``vq/perplexity``, the sparse codes for ``sparsity/dead_fraction``); see the model's
            ``split_metrics()``.
        reconstruction: the reconstruction in the data's units when the model computed it itself (a VAE's
            decode of the posterior mean, a codec's ``x̂``); else :attr:`x_hat` derives it from ``logits``.
        output: the output activation that maps ``logits`` to data units: ``sigmoid`` (pixels in [0, 1]),
            ``identity`` (unbounded values, e.g. standardized table columns) or ``clamp`` (pixels, the PCA start);
            :attr:`x_hat` applies it. A training loop has no use for it: what scores a reconstruction is the data's
            to say (the data contract's ``eval_metrics()``), not the model's output kind.
    """

    loss: Tensor
    logits: Tensor | None = None
    z: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)
    reconstruction: Tensor | None = None
    output: str = "sigmoid"

    @property
    def x_hat(self) -> Tensor:
        """The reconstruction ``(B, ...)`` in the data's units (pixels in [0, 1])."""
        if self.reconstruction is not None:
            return self.reconstruction
        if self.logits is None:
            raise ValueError("this output holds neither a reconstruction nor logits")
        return activate(self.logits, self.output)


OUTPUTS = ("sigmoid", "identity", "clamp")


def activate(logits: Tensor, output: str) -> Tensor:
    """The data-unit values of decoder outputs: ``sigmoid`` (pixels in [0, 1]), ``identity`` (unbounded values) or
    ``clamp`` (pixels in [0, 1] from a decoder that outputs pixels, the PCA start's: clamped on the way forward, the
    gradient passed straight through)."""
    if output == "sigmoid":
        return torch.sigmoid(logits)
    if output == "clamp":
        return logits + (logits.clamp(0.0, 1.0) - logits).detach()
    return logits
