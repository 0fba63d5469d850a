"""USAD: UnSupervised Anomaly Detection on multivariate time series (Audibert et al., KDD 2020)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call

from aelab.models.autoencoder import Autoencoder, Latent
from aelab.models.outputs import activate


def _reset(module: nn.Module) -> None:
    for m in module.modules():
        if m is module:
            continue
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        elif hasattr(m, "_reset_parameters"):  # nn.MultiheadAttention's is private
            m._reset_parameters()


class MinMax(nn.Module):
    """The training data's per-feature range (the last dimension: a series' channels, a table's columns), as
    buffers ``lo`` and ``hi`` set by :meth:`USAD.fit_start`; maps data to [0, 1] and back."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("lo", torch.zeros(features))
        self.register_buffer("hi", torch.ones(features))

    def to_unit(self, x: Tensor) -> Tensor:
        return (x - self.lo) / (self.hi - self.lo).clamp(min=1e-8)

    def from_unit(self, u: Tensor) -> Tensor:
        return self.lo + (self.hi - self.lo) * u


class _UnitInput(nn.Module):
    """An encoder that reads its input min–max scaled to [0, 1] (USAD's preprocessing)."""

    def __init__(self, inner: nn.Module, scaling: MinMax) -> None:
        super().__init__()
        self.inner, self.scaling = inner, scaling
        self.out_dim, self.in_shape = inner.out_dim, getattr(inner, "in_shape", None)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(self.scaling.to_unit(x))


class _UnitOutput(nn.Module):
    """A decoder ending in a sigmoid (USAD's), its [0, 1] output mapped back to the data's range."""

    def __init__(self, inner: nn.Module, scaling: MinMax) -> None:
        super().__init__()
        self.inner, self.scaling = inner, scaling
        self.latent_dim, self.out_shape = inner.latent_dim, getattr(inner, "out_shape", None)

    def forward(self, z: Tensor) -> Tensor:
        return self.scaling.from_unit(torch.sigmoid(self.inner(z)))


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
    optimizers one after the other on each batch; aelab's one optimizer alternates the two players by training step
    (even steps ``L1``, odd steps ``L2``), the other decoder entering each with detached parameters, so each
    decoder receives only its own player's loss and the encoder both, in turn. (Stepping ``L1 + L2`` at once
    cancels the adversarial terms in the encoder's gradient: on mitdb ``D2`` then won outright within 5 epochs.)

    The anomaly score of a window is ``α ‖W − AE1(W)‖² + β ‖W − AE2(AE1(W))‖²`` (eq. 9), per point here
    (:meth:`point_scores`); validation and test report its mean as the loss.

    As in the paper, the encoder reads the data min–max scaled to [0, 1] (the training split's range per feature,
    set by :meth:`fit_start`) and both decoders end in a sigmoid, mapped back to the data's range: the adversarial
    term, which ``D2`` maximizes, stays bounded (with unbounded outputs it grew without limit within 10 epochs on
    mitdb).

    Args:
        encoder, decoder: ``E`` and ``D1`` (the paper's: MLPs on the flattened window); ``D2`` is a copy of
            ``D1`` with fresh weights.
        latent_dim: the code size (the paper's ``Z``).
        alpha, beta: the score's weights (the paper's sensitivity trade-off; α + β = 1, α = β = 0.5 by default).
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
        corruption: nn.Module | None = None,
    ) -> None:
        shape = tuple(getattr(encoder, "in_shape", None) or (1,))
        scaling = MinMax(int(shape[-1]))
        decoder2 = copy.deepcopy(decoder)
        _reset(decoder2)
        encoder, decoder = _UnitInput(encoder, scaling), _UnitOutput(decoder, scaling)
        super().__init__(encoder, decoder, latent_dim, loss="mse", output="identity", corruption=corruption)
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(
                f"model.alpha={alpha}, model.beta={beta} must be ≥ 0 and not both 0 (0.5, 0.5: the paper's)"
            )
        self.alpha, self.beta = float(alpha), float(beta)
        self.scaling = scaling
        self.decoder2 = _UnitOutput(decoder2, scaling)
        self.epoch = 1

    def fit_start(self, datamodule) -> str:
        """The training split's range per feature (the min–max scaling of the paper), before training from scratch."""
        from aelab.data.resident import as_float

        x = as_float(datamodule.split_tensors("train")[0])
        flat = x.reshape(-1, x.shape[-1])
        self.scaling.lo.copy_(flat.amin(0))
        self.scaling.hi.copy_(flat.amax(0))
        return f"USAD: inputs min-max scaled to the training range of {flat.shape[1]} features"

    def fit_start_tensors(self) -> list[Tensor]:
        """The range every DDP rank receives from rank 0."""
        return [self.scaling.lo, self.scaling.hi]

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
        phase = 0 if step is None else int(step) % 2
        if phase == 0:  # L1 trains E and D1: D2 enters with detached parameters
            loss = mse(ae1) / n + (1 - 1 / n) * mse(self._out(_frozen(self.decoder2, self.encoder(ae1))))
        else:  # L2 trains E and D2: D1's output enters through detached parameters
            ae2 = self._out(self.decoder2(latent.z))
            ae1_d2 = self._out(_frozen(self.decoder, latent.z))
            loss = mse(ae2) / n - (1 - 1 / n) * mse(self._out(self.decoder2(self.encoder(ae1_d2))))
        return loss, {f"usad/l{phase + 1}": loss.detach()}

    def point_scores(self, x: Tensor) -> Tensor:
        """``α (W − AE1(W))² + β (W − AE2(AE1(W)))²`` per point of windows ``(B, T, C)``, averaged over channels:
        ``(B, T)`` (Audibert et al. 2020, eq. 9)."""
        ae1 = self.reconstruct(x)
        ae2ae1 = self._out(self.decoder2(self.encoder(ae1)))
        x = x.float()
        return (self.alpha * (ae1.float() - x).pow(2) + self.beta * (ae2ae1.float() - x).pow(2)).mean(-1)
