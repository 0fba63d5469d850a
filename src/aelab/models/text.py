"""Sentence models on token ids ``(B, T)`` (``[PAD]`` = 0, ``[BOS] … [EOS]``; :mod:`aelab.data.text`): a text
autoencoder, Bowman et al.'s sentence VAE and the same-size language model. The loss of each is the NLL of the batch's
tokens (plus β·KL for the VAE) over its token count: nats per token (terms ``nll_per_token``, ``kl``, ``beta``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aelab.models.components.token_decoder import (  # noqa: F401  (re-exported: the text configs name them here)
    BOS,
    EOS,
    PAD,
    UNK,
    TokenDecoder,
    decoder_nll,
    masked_token_nll,
    trimmed,
)
from aelab.models.outputs import ModelOutput

KL_SCHEDULES = ("none", "linear", "logistic", "cyclical")


def kl_annealing_weight(
    step: int | None, schedule: str, steps: int, cycles: int = 4, ratio: float = 0.5
) -> float:
    """β at a training step (1 in evaluation, ``step=None``):

    - ``none``: 1;
    - ``linear``: ``min(1, step / steps)``;
    - ``logistic``: ``1 / (1 + exp(−k (step − steps/2)))`` with ``k = 10 / steps`` (Bowman et al., CoNLL 2016,
      §3.1: a sigmoid from ≈ 0 to ≈ 1 over ``steps``);
    - ``cyclical``: ``steps`` split into ``cycles`` cycles; in each, β rises linearly from 0 to 1 over its first
      ``ratio`` and stays at 1 (Fu et al., NAACL 2019, eq. 5, M = cycles, R = ratio); 1 after ``steps``.

    Raises:
        ValueError: for an unknown schedule, ``steps < 1`` or a ratio outside (0, 1].
    """
    if schedule not in KL_SCHEDULES:
        raise ValueError(f"model.kl_schedule={schedule!r} must be one of {KL_SCHEDULES}")
    if step is None or schedule == "none":
        return 1.0
    if steps < 1:
        raise ValueError(f"model.kl_anneal_steps={steps} must be at least 1")
    if schedule == "linear":
        return min(1.0, step / steps)
    if schedule == "logistic":
        return 1.0 / (1.0 + math.exp(-10.0 / steps * (step - steps / 2)))
    if not 0 < ratio <= 1:
        raise ValueError(f"model.cycle_ratio={ratio} must be in (0, 1]")
    if step >= steps:
        return 1.0
    period = steps / cycles
    tau = (step % period) / period
    return min(1.0, tau / ratio)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float) -> Tensor:
    """The KL term with free bits (Kingma et al., NeurIPS 2016, "Improved variational inference with inverse
    autoregressive flow", §C.8, each latent dimension its own group): ``Σ_j max(λ, E_batch[KL_j])`` per sentence,
    so a dimension's KL below λ nats costs nothing and is not pushed to 0. ``kl_per_dim`` is ``(B, D)``;
    returns the per-sentence value the loss adds (a scalar: the batch mean)."""
    if free_bits <= 0:
        return kl_per_dim.sum(1).mean()
    return kl_per_dim.mean(0).clamp(min=free_bits).sum()


class TextAutoencoder(nn.Module):
    """A recurrent (or Transformer) encoder of a sentence to a code, and an autoregressive decoder conditioned on it
    (teacher forcing in training; :meth:`reconstruct` decodes greedily).

    Args:
        encoder: a sequence encoder of embeddings ``(B, T, E)`` with a padding mask ``(B, T)`` to ``(B, out_dim)``
            (``model/encoder=gru|lstm|transformer``; ``out_dim`` = ``latent_dim``, twice it for the VAE).
        decoder: a :class:`TokenDecoder` with ``latent_dim`` and the data's vocabulary.
        vocab_size: the vocabulary (the data's ``num_tokens``).
        latent_dim: the code size.
        embedding_dim: the encoder's token embeddings' size.
        word_dropout: the share of the decoder's input tokens replaced by ``[UNK]`` in training (Bowman et al. 2016,
            §3.2: it makes the decoder lean on the code); 0: none.

    Raises:
        ValueError: for parts whose sizes disagree, or a word dropout outside [0, 1].
    """

    sample_kinds = ("tokens",)

    def __init__(
        self,
        encoder: nn.Module,
        decoder: TokenDecoder,
        vocab_size: int,
        latent_dim: int = 32,
        embedding_dim: int = 256,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        if getattr(encoder, "out_dim", self.encoder_out_dim()) != self.encoder_out_dim():
            raise ValueError(f"{type(self).__name__} with latent_dim={latent_dim} needs an encoder with out_dim="
                             f"{self.encoder_out_dim()}: leave model.encoder.out_dim to its default")  # fmt: skip
        if decoder.latent_dim != self.latent_dim or decoder.vocab_size != int(vocab_size):
            raise ValueError("the decoder's latent_dim and vocab_size must be the model's: leave model.decoder's to "
                             "their interpolations")  # fmt: skip
        if not 0 <= float(word_dropout) <= 1:
            raise ValueError(f"model.word_dropout={word_dropout} must be in [0, 1]")
        self.embedding = nn.Embedding(int(vocab_size), int(embedding_dim), padding_idx=PAD)
        self.encoder, self.decoder = encoder, decoder
        self.word_dropout = float(word_dropout)

    def encoder_out_dim(self) -> int:
        return self.latent_dim

    def term_names(self) -> list[str]:
        return ["nll_per_token"]

    # ------------------------------------------------------------------ codes
    def features(self, x: Tensor) -> Tensor:
        """The encoder's output ``(B, out_dim)`` of token ids ``(B, T)`` (its padding mask from ``[PAD]``)."""
        return self.encoder(self.embedding(x), mask=x != PAD)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(B, latent_dim)`` of token ids ``(B, T)``."""
        return self.features(x)

    def decode(self, z: Tensor, length: int = 50, beam_size: int = 1) -> Tensor:
        """Decodes ``(B, length)`` of codes ``(B, latent_dim)``: greedy, or beam search with ``beam_size > 1``
        (:meth:`TokenDecoder.beam`; it refuses a beam size below 1)."""
        if int(beam_size) == 1:
            return self.decoder.greedy(z, length)
        return self.decoder.beam(z, length, beam_size)

    def reconstruct(self, x: Tensor, beam_size: int = 1) -> Tensor:
        """Decodes ``(B, T)`` of the codes of ``x`` ``(B, T)`` (not teacher-forced; greedy unless ``beam_size > 1``)."""
        return self.decode(self.encode(x), x.shape[1], beam_size)

    # ------------------------------------------------------------------ the objective
    def decoder_inputs(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """The decoder's inputs (``x`` without its last position), with word dropout in training (never ``[BOS]``
        or padding)."""
        inputs = x[:, :-1]
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=x.device, generator=generator) < self.word_dropout
            drop &= (inputs != PAD) & (inputs != BOS)
            inputs = inputs.masked_fill(drop, UNK)
        return inputs

    def latent(self, h: Tensor, generator: torch.Generator | None, step: int | None):
        """``(z, code, penalty per sentence, terms)`` from the encoder's output: the code itself here."""
        return h, h, None, {}

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        x = trimmed(x)
        z, code, penalty, terms = self.latent(self.features(x), generator, step)
        nll, tokens = decoder_nll(self.decoder, self.decoder_inputs(x, generator), x[:, 1:], z)
        total = tokens.sum().clamp(min=1)
        loss = nll.sum() / total
        if penalty is not None:
            loss = loss + penalty * len(x) / total
        terms = {"nll_per_token": (nll.sum() / total).detach(), **{k: v.detach() for k, v in terms.items()}}
        return ModelOutput(loss, None, code, terms, output="identity")

    @torch.no_grad()
    def sequence_nll(self, x: Tensor, generator: torch.Generator | None = None, k: int = 1) -> Tensor:
        """Each sequence's negative log-likelihood (nats, summed over its tokens) given its code ``(B,)``."""
        x = trimmed(x)
        return decoder_nll(self.decoder, x[:, :-1], x[:, 1:], self.encode(x))[0]


class SentenceVAE(TextAutoencoder):
    """Bowman et al.'s sentence VAE ("Generating sentences from a continuous space", CoNLL 2016): a Gaussian
    posterior ``q(z|x) = N(μ, σ²)`` from the encoder, a standard normal prior, the decoder conditioned on a draw.
    −ELBO = E_q[−log p(x|z)] + KL(q ‖ p), with the fixes that keep the KL from collapsing to 0:

    - KL annealing (``kl_schedule``: ``logistic`` as Bowman §3.1, ``linear``, or ``cyclical`` as Fu et al., NAACL
      2019) over ``kl_anneal_steps`` steps (:func:`kl_annealing_weight`);
    - word dropout (``word_dropout``, Bowman §3.2);
    - free bits (``free_bits`` λ nats per dimension, Kingma et al. 2016; :func:`free_bits_kl`).

    Args:
        as for :class:`TextAutoencoder`, and the KL settings above; ``cycles`` and ``cycle_ratio`` shape the
        cyclical schedule (Fu et al.'s M = 4, R = 0.5).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: TokenDecoder,
        vocab_size: int,
        latent_dim: int = 32,
        embedding_dim: int = 256,
        word_dropout: float = 0.25,
        kl_schedule: str = "logistic",
        kl_anneal_steps: int = 2000,
        cycles: int = 4,
        cycle_ratio: float = 0.5,
        free_bits: float = 0.0,
    ) -> None:
        super().__init__(encoder, decoder, vocab_size, latent_dim, embedding_dim, word_dropout)
        kl_annealing_weight(
            0, kl_schedule, int(kl_anneal_steps), int(cycles), float(cycle_ratio)
        )  # checked now
        if float(free_bits) < 0:
            raise ValueError(f"model.free_bits={free_bits} must be ≥ 0 nats per dimension")
        self.kl_schedule, self.kl_anneal_steps = kl_schedule, int(kl_anneal_steps)
        self.cycles, self.cycle_ratio, self.free_bits = int(cycles), float(cycle_ratio), float(free_bits)

    def encoder_out_dim(self) -> int:
        return 2 * self.latent_dim

    def term_names(self) -> list[str]:
        return ["nll_per_token", "kl", "beta"]

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, log σ²)`` of ``q(z|x)``, each ``(B, latent_dim)``."""
        mu, logvar = self.features(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-20.0, 10.0)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean μ ``(B, latent_dim)``."""
        return self.posterior(x)[0]

    def latent(self, h: Tensor, generator: torch.Generator | None, step: int | None):
        mu, logvar = h.chunk(2, dim=-1)
        logvar = logvar.clamp(-20.0, 10.0)
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        z = mu + eps * (0.5 * logvar).exp()
        kl_dims = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, D), nats
        beta = kl_annealing_weight(step if self.training else None, self.kl_schedule, self.kl_anneal_steps, self.cycles,
                         self.cycle_ratio)  # fmt: skip
        kl_term = free_bits_kl(kl_dims, self.free_bits) if self.training else kl_dims.sum(1).mean()
        terms = {"kl": kl_dims.sum(1).mean(), "beta": torch.tensor(beta, device=mu.device)}
        return z, mu, beta * kl_term, terms

    def sample(self, n: int, length: int = 50, generator: torch.Generator | None = None) -> Tensor:
        """Greedy decodes ``(n, length)`` of draws from the prior ``N(0, I)``."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return self.decode(z, length)

    @torch.no_grad()
    def sequence_nll(self, x: Tensor, generator: torch.Generator | None = None, k: int = 1) -> Tensor:
        """The importance-weighted bound on each sequence's −log p(x) with ``k`` draws from ``q(z|x)`` (Burda et al.,
        ICLR 2016, eq. 8): ``−log (1/k Σ_i p(x|z_i) p(z_i) / q(z_i|x))``, nats ``(B,)``; ``k = 1`` is −ELBO."""
        x = trimmed(x)
        mu, logvar = self.posterior(x)
        std = (0.5 * logvar).exp()
        weights = []
        for _ in range(int(k)):
            eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
            z = mu + eps * std
            nll = decoder_nll(self.decoder, x[:, :-1], x[:, 1:], z)[0]
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(1)
            weights.append(-nll + log_pz - log_qz)
        w = torch.stack(weights).double()
        return -(torch.logsumexp(w, 0) - math.log(len(weights))).float()


class LanguageModel(nn.Module):
    """The language-model baseline: the decoder of the sentence models without a code (``latent_dim = 0``), the
    same size otherwise; its NLL per token is the yardstick of the sentence VAE's (Bowman et al. 2016, Table 2).

    Args:
        decoder: a :class:`TokenDecoder` with ``latent_dim=0``.

    Raises:
        ValueError: for a decoder with a code.
    """

    sample_kinds = ("tokens",)

    def __init__(self, decoder: TokenDecoder) -> None:
        super().__init__()
        if decoder.latent_dim:
            raise ValueError("a language model's decoder has no code: set model.decoder.latent_dim=0")
        self.decoder = decoder

    def term_names(self) -> list[str]:
        return ["nll_per_token"]

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        x = trimmed(x)
        nll, tokens = decoder_nll(self.decoder, x[:, :-1], x[:, 1:])
        total = tokens.sum().clamp(min=1)
        loss = nll.sum() / total
        return ModelOutput(loss, None, None, {"nll_per_token": loss.detach()}, output="identity")

    @torch.no_grad()
    def sequence_nll(self, x: Tensor, generator: torch.Generator | None = None, k: int = 1) -> Tensor:
        """Each sequence's negative log-likelihood (nats) ``(B,)``."""
        x = trimmed(x)
        return decoder_nll(self.decoder, x[:, :-1], x[:, 1:])[0]

    def sample(self, n: int, length: int = 50, generator: torch.Generator | None = None) -> Tensor:
        """Sampled sequences ``(n, length)``."""
        device = next(self.parameters()).device
        return self.decoder.greedy(None, length, batch=n, device=device, generator=generator, sample=True)
