"""USAD: UnSupervised Anomaly Detection on multivariate time series (Audibert et al., KDD 2020)."""

from __future__ import annotations

import copy

from torch import Tensor, nn
from torch.func import functional_call

from aelab.models.autoencoder import Autoencoder, Latent
from aelab.models.outputs import activate


def _reset(module: nn.Module) -> None:
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def _frozen(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` with its parameters detached: gradients reach ``x`` (and what made it), not the module."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, (x,))


class USAD(Autoencoder):
    """One encoder ``E`` and two decoders ``D1``, ``D2`` trained in two phases, then adversarially (Audibert et al.,
    KDD 2020, §3): ``AE1 = D1∘E``, ``AE2 = D2∘E``. At epoch ``n`` (from 1), with ``W`` a window,

    - ``L1 = 1/n ‖W − AE1(W)‖² + (1 − 1/n) ‖W − AE2(AE1(W))‖²`` trains ``E`` and ``D1`` (eq. 7),
    - ``L2 = 1/n ‖W − AE2(W)‖² − (1 − 1/n) ‖W − AE2(AE1(W))‖²`` trains ``E`` and ``D2`` (eq. 8),

    so early epochs reconstruct and later ones make ``AE1`` fool ``AE2`` while ``AE2`` learns to tell real windows
    from ``AE1`` 's. Each norm here is the mean squared error over the window's values. The paper steps two
    optimizers one after the other on each batch; aelab's one optimizer steps ``L1 + L2`` once, with each decoder's
    parameters receiving only its own player's loss (the other decoder enters with detached parameters) and the
    encoder both, as it does under the paper's two optimizers.

    The anomaly score of a window is ``α ‖W − AE1(W)‖² + β ‖W − AE2(AE1(W))‖²`` (eq. 9), per point here
    (:meth:`point_scores`); validation and test report its mean as the loss.

    Args:
        encoder, decoder: ``E`` and ``D1`` (the paper's: MLPs on the flattened window); ``D2`` is a copy of
            ``D1`` with fresh weights.
        latent_dim: the code size (the paper's ``Z``).
        alpha, beta: the score's weights (the paper's sensitivity trade-off; α + β = 1, α = β = 0.5 by default).
        output: the output activation (``identity`` for scaled series; the paper min-max scales and ends in a
            sigmoid).
        corruption: a corruption of the input (denoising), as for every autoencoder.

    Raises:
        ValueError: for negative ``alpha`` or ``beta`` or both zero.
    """

    sample_kinds = ("series", "table")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int | None = None,
        alpha: float = 0.5,
        beta: float = 0.5,
        output: str = "identity",
        corruption: nn.Module | None = None,
    ) -> None:
        super().__init__(encoder, decoder, latent_dim, loss="mse", output=output, corruption=corruption)
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(
                f"model.alpha={alpha}, model.beta={beta} must be ≥ 0 and not both 0 (0.5, 0.5: the paper's)"
            )
        self.alpha, self.beta = float(alpha), float(beta)
        self.decoder2 = copy.deepcopy(decoder)
        _reset(self.decoder2)
        self.epoch = 1

    def train_epoch_start(self, epoch: int) -> None:
        """Epoch ``n = epoch + 1`` weighs the two phases (1/n reconstruction, 1 − 1/n adversarial)."""
        self.epoch = int(epoch) + 1

    def _out(self, logits: Tensor) -> Tensor:
        return activate(logits, self.output)

    def objective(self, latent: Latent, logits, target, generator=None, step=None):
        w = target
        ae1 = self._out(logits)
        mse = lambda a: (a.float() - w.float()).pow(2).mean()  # noqa: E731
        if not self.training:
            ae2ae1 = self._out(self.decoder2(self.encoder(ae1)))
            rec1, rec12 = mse(ae1), mse(ae2ae1)
            loss = self.alpha * rec1 + self.beta * rec12
            return loss, {"usad/rec1": rec1.detach(), "usad/rec2_of_1": rec12.detach()}
        n = float(self.epoch)
        ae2 = self._out(self.decoder2(latent.z))
        # L1 trains E and D1: D2 enters with detached parameters
        l1 = mse(ae1) / n + (1 - 1 / n) * mse(self._out(_frozen(self.decoder2, self.encoder(ae1))))
        # L2 trains E and D2: D1's output enters through detached parameters
        ae1_d2 = self._out(_frozen(self.decoder, latent.z))
        l2 = mse(ae2) / n - (1 - 1 / n) * mse(self._out(self.decoder2(self.encoder(ae1_d2))))
        return l1 + l2, {"usad/l1": l1.detach(), "usad/l2": l2.detach()}

    def point_scores(self, x: Tensor) -> Tensor:
        """``α (W − AE1(W))² + β (W − AE2(AE1(W)))²`` per point of windows ``(B, T, C)``, averaged over channels:
        ``(B, T)`` (Audibert et al. 2020, eq. 9)."""
        ae1 = self.reconstruct(x)
        ae2ae1 = self._out(self.decoder2(self.encoder(ae1)))
        x = x.float()
        return (self.alpha * (ae1.float() - x).pow(2) + self.beta * (ae2ae1.float() - x).pow(2)).mean(-1)
