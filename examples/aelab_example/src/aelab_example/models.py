"""A model of your own: an aelab Autoencoder with one more loss term."""

from __future__ import annotations

from torch import Tensor

from aelab.models import Autoencoder


class SmoothAE(Autoencoder):
    """An autoencoder whose reconstructions are penalized by their total variation (the mean absolute difference
    of neighbouring pixels, Rudin, Osher & Fatemi 1992), weighted by ``tv_coeff``: it learns smoother images.

    Args:
        tv_coeff: weight of the total-variation term.
        encoder, decoder, latent_dim, loss, ...: as for :class:`aelab.models.Autoencoder`.

    Metrics, besides the AE's: ``*/tv`` (the total variation of the reconstructions).
    """

    extra_terms = ("tv",)

    def __init__(self, *args, tv_coeff: float = 0.01, **kwargs) -> None:
        super().__init__(*args, **kwargs)

    @staticmethod
    def total_variation(x: Tensor) -> Tensor:
        """Mean absolute difference of vertically and horizontally neighbouring pixels of ``(B, C, H, W)``."""
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()

    def regularizer(self, z: Tensor, x_hat: Tensor) -> dict[str, tuple[float, Tensor]]:
        # the plain AE's loss adds tv_coeff · TV(x̂), and logs TV(x̂) as */tv: no forward pass copied
        return {"tv": (self.hparams.tv_coeff, self.total_variation(x_hat))}
