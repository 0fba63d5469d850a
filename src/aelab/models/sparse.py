"""Sparse autoencoders: an overcomplete code of which only a few units are active per example."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torchmetrics import Metric

from aelab.models.autoencoder import Autoencoder, Latent
from aelab.models.code_metrics import DeadFraction

SPARSITIES = ("topk", "l1")


class UnitNormColumns(nn.Module):
    """A parametrization keeping every column of a weight ``(out, in)`` at unit L2 norm: ``W = V / ‖V‖_col``. The
    gradient reaching ``V`` is the gradient of ``W`` with its component along each column removed (divided by
    ‖V‖), which is Gao et al.'s projection; the renormalization after each step is implicit."""

    def forward(self, v: Tensor) -> Tensor:
        return v / v.norm(dim=0, keepdim=True).clamp_min(1e-12)


class SparseAutoencoder(Autoencoder):
    """A sparse autoencoder: ``z = sparsify(encoder(x))``, ``x̂ = decoder(z)``.

    * ``sparsity="topk"``: only the ``k`` largest pre-activations of each code survive, through a ReLU (Makhzani &
      Frey, "k-Sparse Autoencoders", ICLR 2014; the TopK activation of Gao et al., "Scaling and Evaluating Sparse
      Autoencoders", 2024, eq. 3): at most ``k`` active units per example.
    * ``sparsity="l1"``: ``z = ReLU(encoder(x))`` with ``l1_coeff · ‖z‖₁`` (mean over examples) added to the loss.

    Against dead latents (Gao et al. 2024, Sec. 2.4 and Appendix A), each optional:

    * ``aux_k > 0``: the AuxK loss. A latent that has not fired for ``dead_steps`` training steps is dead; the
      ``aux_k`` largest pre-activations among the dead ones, ``z_aux``, model what the live code missed:
      ``L_aux = loss(s + W_dec z_aux, x)`` with ``s`` the (detached) logits of the main reconstruction; for a
      linear decoder output this is Gao et al.'s ``‖e − ê‖²``, ``e = x − x̂``, ``ê = W_dec z_aux``. The loss
      adds ``aux_coeff · L_aux`` (their α = 1/32).
    * ``unit_norm_decoder``: the decoder's columns (one per latent) stay at unit norm (:class:`UnitNormColumns`).
    * ``tied_init``: the encoder's first linear layer starts as the transpose of the decoder's.

    Hooks (:class:`~aelab.models.Autoencoder`): :meth:`latent` sparsifies (and the L1 penalty), :meth:`objective`
    adds the AuxK loss; :meth:`~aelab.models.Autoencoder.inputs` is the base class's, so a ``corruption`` makes a
    denoising sparse AE (input corrupted, the clean batch the target of the loss and the AuxK loss).

    Args:
        encoder, decoder, latent_dim, loss, output, corruption: as for :class:`~aelab.models.Autoencoder`
            (``latent_dim`` typically larger than the input: an overcomplete code).
        sparsity: ``topk`` or ``l1``.
        k: active units per code with ``topk``.
        l1_coeff: weight of the L1 penalty with ``l1``.
        aux_k: latents of the AuxK loss (0: off; Gao et al. use 512, or half the code when smaller).
        aux_coeff: α, the AuxK loss's weight.
        dead_steps: training steps without firing after which a latent counts as dead for the AuxK loss.
        unit_norm_decoder: keep the decoder's latent columns at unit norm.
        tied_init: initialize the encoder's first linear layer as the decoder's transpose.

    Terms: ``sparsity/l0`` (active units per example), ``sparsity/l1`` (‖z‖₁ per example), ``sparsity/aux``
    (training, with AuxK); over a whole split ``sparsity/dead_fraction`` (:meth:`split_metrics`).

    Raises:
        ValueError: for an unknown ``sparsity``, ``k`` or ``aux_k`` outside [1, latent_dim], or dictionary options
            with a decoder that is not one linear layer.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int | None = None,
        sparsity: str = "topk",
        k: int = 32,
        l1_coeff: float = 1e-3,
        aux_k: int = 0,
        aux_coeff: float = 1 / 32,
        dead_steps: int = 200,
        unit_norm_decoder: bool = False,
        tied_init: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(encoder, decoder, latent_dim=latent_dim, **kwargs)
        if sparsity not in SPARSITIES:
            raise ValueError(f"model.sparsity must be one of {SPARSITIES}, got {sparsity!r}")
        if sparsity == "topk" and not 1 <= int(k) <= self.latent_dim:
            raise ValueError(f"model.k={k} must be in [1, latent_dim={self.latent_dim}]")
        if not 0 <= int(aux_k) <= self.latent_dim:
            raise ValueError(f"model.aux_k={aux_k} must be in [0, latent_dim={self.latent_dim}]")
        self.sparsity, self.k, self.l1_coeff = sparsity, int(k), float(l1_coeff)
        self.aux_k, self.aux_coeff, self.dead_steps = int(aux_k), float(aux_coeff), int(dead_steps)
        #: training steps since each latent last fired (the AuxK loss's dead latents; a resumed run counts afresh)
        self.register_buffer(
            "steps_since_fired", torch.zeros(self.latent_dim, dtype=torch.long), persistent=False
        )
        linear = self._decoder_linear()
        if (unit_norm_decoder or tied_init or aux_k) and linear is None:
            raise ValueError(
                "model.unit_norm_decoder, tied_init and aux_k need a decoder that is one Linear layer from the code "
                "to the outputs (model.decoder.hidden_dims=[] with MLP parts)"
            )
        if unit_norm_decoder:
            parametrize.register_parametrization(linear, "weight", UnitNormColumns())
        if tied_init:
            enc = next((m for m in self.encoder.modules() if isinstance(m, nn.Linear)), None)
            if enc is None or enc.weight.shape != linear.weight.T.shape:
                raise ValueError(
                    "model.tied_init needs an encoder whose first layer is the decoder's transposed shape"
                )
            with torch.no_grad():
                enc.weight.copy_(linear.weight.T)

    # ------------------------------------------------------------------ the decoder's dictionary
    def _decoder_linear(self) -> nn.Linear | None:
        layers = [
            m for m in self.decoder.modules() if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)
        ]
        if (
            len(layers) != 1
            or not isinstance(layers[0], nn.Linear)
            or layers[0].in_features != self.latent_dim
        ):
            return None
        return layers[0]

    def decoder_weight(self) -> Tensor | None:
        """``W_dec`` ``(outputs, latent_dim)``: the decoder's weight when the decoder is one linear layer from the
        code to the outputs (no hidden layer, no convolution), else None."""
        linear = self._decoder_linear()
        return None if linear is None else linear.weight

    def sparsify(self, h: Tensor) -> Tensor:
        """The sparse code of encoder outputs ``(B, latent_dim)``."""
        if self.sparsity == "l1":
            return torch.relu(h)
        top = torch.topk(h, self.k, dim=1)
        return torch.zeros_like(h).scatter(1, top.indices, torch.relu(top.values))

    def encode(self, x: Tensor) -> Tensor:
        """Sparse codes ``(B, latent_dim)`` (non-negative; at most ``k`` non-zero with ``topk``)."""
        return self.sparsify(self.encoder(x))

    # ------------------------------------------------------------------ the objective
    def split_metrics(self) -> dict[str, Metric]:
        return {"sparsity/dead_fraction": DeadFraction(self.latent_dim)}

    def latent(self, h: Tensor, generator: torch.Generator | None = None) -> Latent:
        """The sparse code of the pre-activations ``h`` (:meth:`sparsify`), with ``sparsity/l0`` and
        ``sparsity/l1`` (a penalty weighted ``l1_coeff`` with ``sparsity=l1``, else logged only); in training with
        AuxK, the count of steps since each latent fired."""
        z = self.sparsify(h)
        l1 = z.abs().sum(1).mean()
        terms = {"sparsity/l0": (z != 0).sum(1).float().mean()}
        penalties = {}
        if self.sparsity == "l1":
            penalties["sparsity/l1"] = (self.l1_coeff, l1)
        else:
            terms["sparsity/l1"] = l1
        if self.training and self.aux_k:
            with torch.no_grad():
                self.steps_since_fired.add_(1).masked_fill_((z != 0).any(0), 0)
        return Latent(z=z, h=h, penalties=penalties, terms=terms, stats={"sparsity/dead_fraction": z})

    def objective(
        self,
        latent: Latent,
        logits: Tensor | None,
        target: Tensor,
        generator: torch.Generator | None = None,
        step: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The base objective (reconstruction + L1 penalty), plus ``aux_coeff · L_aux`` in training with AuxK
        (:meth:`aux_loss`, against the same clean target)."""
        loss, terms = super().objective(latent, logits, target, generator, step)
        if self.training and self.aux_k:
            aux = self.aux_loss(latent.h, logits, target, self.steps_since_fired > self.dead_steps)
            loss = loss + self.aux_coeff * aux
            terms["sparsity/aux"] = aux.detach()
        return loss, terms

    def aux_loss(self, h: Tensor, logits: Tensor, target: Tensor, dead: Tensor) -> Tensor:
        """The AuxK loss (see the class docstring) of pre-activations ``h`` ``(B, latent_dim)``, the main logits and
        the ``dead`` mask ``(latent_dim,)``; 0 when no latent is dead."""
        n_dead = int(dead.sum())
        if n_dead == 0:
            return torch.zeros((), device=h.device)
        masked = h.masked_fill(~dead, float("-inf"))
        top = torch.topk(masked, min(self.aux_k, n_dead), dim=1)
        z_aux = torch.zeros_like(h).scatter(1, top.indices, torch.relu(top.values))
        e_hat = (z_aux @ self.decoder_weight().T).view_as(logits)
        return self.reconstruction_loss(logits.detach() + e_hat, target)
