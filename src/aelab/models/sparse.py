"""Sparse autoencoders: an overcomplete code of which only a few units are active per image."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from aelab.models.autoencoder import Autoencoder
from aelab.models.code_metrics import DeadFraction
from aelab.models.outputs import LossOutput


class SparseAutoencoder(Autoencoder):
    """A sparse autoencoder: ``z = sparsify(encoder(x))``, ``x̂ = decoder(z)``.

    * ``sparsity="topk"`` — only the ``k`` largest pre-activations of each code survive, through a ReLU
      (Makhzani & Frey, "k-Sparse Autoencoders", ICLR 2014; the TopK activation of Gao et al., "Scaling and
      Evaluating Sparse Autoencoders", 2024, eq. 3): exactly at most ``k`` active units per image.
    * ``sparsity="l1"`` — ``z = ReLU(encoder(x))`` with ``l1_coeff · ‖z‖₁`` (mean over images) added to the loss.

    Against dead latents (Gao et al. 2024, Sec. 2.4 and Appendix A), each optional:

    * ``aux_k > 0``: the AuxK loss. A latent that has not fired for ``dead_steps`` training steps is dead; the
      ``aux_k`` largest pre-activations among the dead ones, ``z_aux``, model what the live code missed:
      ``L_aux = mean (x − dec_out(s + W_dec z_aux))²`` with ``s`` the (detached) logits of the main
      reconstruction — for a linear decoder output this is Gao et al.'s ``‖e − ê‖²``, ``e = x − x̂``,
      ``ê = W_dec z_aux``; the loss adds ``aux_coeff · L_aux`` (their α = 1/32).
    * ``unit_norm_decoder``: the columns of the decoder's first linear layer (one per latent) are kept at unit
      norm: the gradient's component along each column is removed before the step and the columns are
      renormalized after it.
    * ``tied_init``: the encoder's first linear layer starts as the transpose of the decoder's.

    Args:
        encoder, decoder, latent_dim, loss, optimizer, scheduler, compile, compile_mode, nan_check_every,
            channels_last, eval_seed: as for :class:`~aelab.models.Autoencoder` (``latent_dim`` typically larger
            than the image: an overcomplete code).
        sparsity: ``topk`` or ``l1``.
        k: active units per code with ``topk``.
        l1_coeff: weight of the L1 penalty with ``l1``.
        aux_k: latents of the AuxK loss (0: off; Gao et al. use 512, or half the code when smaller).
        aux_coeff: α, the AuxK loss's weight.
        dead_steps: training steps without firing after which a latent counts as dead for the AuxK loss.
        unit_norm_decoder: keep the decoder's latent columns at unit norm.
        tied_init: initialize the encoder's first linear layer as the decoder's transpose.

    Metrics, besides the AE's: ``*/sparsity/l0`` (active units per image, mean), ``*/sparsity/l1`` (‖z‖₁ per
    image), and over the whole split ``val|test/sparsity/dead_fraction`` (the fraction of code units never
    active).

    Raises:
        ValueError: for an unknown ``sparsity``, or ``k`` outside [1, latent_dim].
    """

    extra_terms = ("sparsity/l0", "sparsity/l1")  # and train/sparsity/aux with aux_k

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
        if sparsity not in ("topk", "l1"):
            raise ValueError(f"model.sparsity must be 'topk' or 'l1', got {sparsity!r}")
        if sparsity == "topk" and not 1 <= int(k) <= self.latent_dim:
            raise ValueError(f"model.k={k} must be in [1, latent_dim={self.latent_dim}]")
        if not 0 <= int(aux_k) <= self.latent_dim:
            raise ValueError(f"model.aux_k={aux_k} must be in [0, latent_dim={self.latent_dim}]")
        #: training steps since each latent last fired (the AuxK loss's dead latents)
        self.register_buffer(  # not in checkpoints: a resumed run counts afresh
            "steps_since_fired", torch.zeros(self.latent_dim, dtype=torch.long), persistent=False
        )
        if (unit_norm_decoder or tied_init or aux_k) and self.decoder_weight() is None:
            raise ValueError(
                "model.unit_norm_decoder, tied_init and aux_k need a decoder that is one Linear layer from the code "
                "to the pixels (model.decoder.hidden_dims=[] with MLP parts)"
            )
        if unit_norm_decoder:
            self._normalize_decoder()
        if tied_init:
            enc = self.encoder_weight()
            if enc is None or enc.shape != self.decoder_weight().T.shape:
                raise ValueError(
                    "model.tied_init needs an encoder whose first layer is the decoder's transposed shape"
                )
            with torch.no_grad():
                enc.copy_(self.decoder_weight().T)

    # ------------------------------------------------------------------ the decoder's dictionary
    def _first_linear(self, module: nn.Module) -> nn.Linear | None:
        return next((m for m in module.modules() if isinstance(m, nn.Linear)), None)

    def decoder_weight(self) -> Tensor | None:
        """``W_dec`` ``(C·H·W, latent_dim)``: the decoder's weight when the decoder is one linear layer from the code
        to the pixels (no hidden layer, no convolution), else None."""
        layers = [
            m for m in self.decoder.modules() if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)
        ]
        if (
            len(layers) != 1
            or not isinstance(layers[0], nn.Linear)
            or layers[0].in_features != self.latent_dim
        ):
            return None
        return layers[0].weight

    def encoder_weight(self) -> Tensor | None:
        """The encoder's first linear layer's weight ``(·, C·H·W)``, or None."""
        lin = self._first_linear(self.encoder)
        return None if lin is None else lin.weight

    @torch.no_grad()
    def _normalize_decoder(self) -> None:
        w = self.decoder_weight()
        w.div_(w.norm(dim=0, keepdim=True).clamp_min(1e-12))

    def on_after_backward(self) -> None:
        if self.hparams.get("unit_norm_decoder") and self.decoder_weight().grad is not None:
            w = self.decoder_weight()
            with torch.no_grad():  # the gradient's component along each unit column changes only its norm
                w.grad.sub_(w * (w.grad * w).sum(0, keepdim=True))

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.hparams.get("unit_norm_decoder"):
            self._normalize_decoder()

    def sparsify(self, h: Tensor) -> Tensor:
        """The sparse code of encoder outputs ``(B, latent_dim)``."""
        if self.hparams.sparsity == "l1":
            return torch.relu(h)
        top = torch.topk(h, int(self.hparams.k), dim=1)
        return torch.zeros_like(h).scatter(1, top.indices, torch.relu(top.values))

    def encode(self, x: Tensor) -> Tensor:
        """Sparse codes ``(B, latent_dim)`` (non-negative; at most ``k`` non-zero with ``topk``)."""
        return self.sparsify(self.encoder(x))

    def make_metrics(self, stage: str) -> dict[str, Metric]:
        return {**super().make_metrics(stage), "sparsity/dead_fraction": DeadFraction(self.latent_dim)}

    def aux_loss(self, h: Tensor, logits: Tensor, target: Tensor, dead: Tensor) -> Tensor:
        """The AuxK loss (see the class docstring) of pre-activations ``h`` ``(B, latent_dim)``, the main logits
        and the ``dead`` mask ``(latent_dim,)``; 0 when no latent is dead."""
        n_dead = int(dead.sum())
        if n_dead == 0:
            return torch.zeros((), device=h.device)
        masked = h.masked_fill(~dead, float("-inf"))
        top = torch.topk(masked, min(int(self.hparams.aux_k), n_dead), dim=1)
        z_aux = torch.zeros_like(h).scatter(1, top.indices, torch.relu(top.values))
        e_hat = (z_aux @ self.decoder_weight().T).view_as(logits)
        return self.reconstruction_loss(logits.detach() + e_hat, target)

    def loss_terms(
        self, x_in: Tensor, target: Tensor, stage: str, generator: torch.Generator | None = None
    ) -> LossOutput:
        h = self.encoder(x_in)
        z = self.sparsify(h)
        logits = self.decoder(z)
        l1 = z.abs().sum(1).mean()
        loss = self.reconstruction_loss(logits, target)
        if self.hparams.sparsity == "l1":
            loss = loss + self.hparams.l1_coeff * l1
        extras = {"sparsity/l0": (z != 0).sum(1).float().mean(), "sparsity/l1": l1}
        if stage == "train" and self.hparams.get("aux_k"):
            with torch.no_grad():
                fired = (z != 0).any(0)
                self.steps_since_fired.add_(1).masked_fill_(fired, 0)
            aux = self.aux_loss(h, logits, target, self.steps_since_fired > int(self.hparams.dead_steps))
            loss = loss + self.hparams.aux_coeff * aux
            extras["sparsity/aux"] = aux.detach()
        if stage == "train":
            return LossOutput(loss, None, extras)
        return LossOutput(loss, torch.sigmoid(logits), {**extras, "sparsity/dead_fraction": z})
