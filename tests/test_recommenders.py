"""aelab.models.recommenders: each formula against a value computed here (by hand, numpy or torch.distributions),
RecVAE's phases and prior copy, CDAE's user vectors, EASE's choice of λ, and every model trained in a plain PyTorch
loop on a toy 40 users × 30 items matrix."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import distributions as D

from aelab import CONF_DIR
from aelab.models import (
    CDAE,
    EASE,
    ModelOutput,
    MultDAE,
    MultVAE,
    RecVAE,
    ease_weights,
    multinomial_log_likelihood,
)
from aelab.models.objectives import log_normal
from aelab.utils.ranking import mask_seen, ndcg_at_k

USERS, ITEMS = 40, 30


def toy(users: int = USERS, items: int = ITEMS, seed: int = 0) -> torch.Tensor:
    """0/1 item vectors ``(users, items)`` with structure to learn: each user takes most of one of three item blocks
    and a few random items; every user has at least one item."""
    g = torch.Generator().manual_seed(seed)
    block = torch.arange(items) * 3 // items  # three blocks of items
    group = torch.randint(0, 3, (users,), generator=g)
    p = torch.where(block[None, :] == group[:, None], 0.6, 0.05)
    x = torch.bernoulli(p, generator=g)
    x[torch.arange(users), torch.randint(0, items, (users,), generator=g)] = 1.0
    return x


# ---------------------------------------------------------------------------------------------- formulas
def test_multinomial_log_likelihood_by_hand():
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    lse = math.log(math.exp(0.0) + math.exp(1.0) + math.exp(2.0))
    expected = [(0.0 - lse) + (2.0 - lse), math.log(1.0 / 3.0)]
    assert multinomial_log_likelihood(logits, x).tolist() == pytest.approx(expected, abs=1e-6)


def test_ease_weights_match_a_dense_numpy_solve():
    rng = np.random.default_rng(0)
    x = (rng.random((50, 12)) < 0.3).astype(np.float64)
    lam = 7.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(12))
    expected = np.eye(12) - p / np.diag(p)[None, :]  # B = I − P · diagMat(1 ⊘ diag(P)) (Steck 2019, eq. 8)
    np.fill_diagonal(expected, 0.0)
    b = ease_weights(torch.from_numpy(x).float(), lam)
    assert b.dtype == torch.float32 and b.shape == (12, 12)
    np.testing.assert_allclose(b.numpy(), expected, atol=1e-6)
    assert torch.all(torch.diagonal(b) == 0)
    assert not np.allclose(expected, 0.0)  # the toy has item-item structure to find
    with pytest.raises(ValueError, match="λ"):
        ease_weights(torch.from_numpy(x).float(), 0.0)


# ---------------------------------------------------------------------------------------------- Mult-VAE
def test_mult_vae_beta_schedule():
    model = MultVAE(ITEMS, hidden_dims=(16,), latent_dim=4, anneal_cap=0.2, total_anneal_steps=1000)
    assert model.beta(0) == 0.0
    assert model.beta(100) == pytest.approx(0.1)  # mid-anneal: step / total
    assert model.beta(200) == pytest.approx(0.2)
    assert model.beta(5000) == pytest.approx(0.2)  # past the cap
    assert model.beta(None) == pytest.approx(0.2)  # evaluation: the cap
    x = toy()[:8]
    torch.manual_seed(0)
    out = model.train()(x, generator=torch.Generator().manual_seed(1), step=100)
    assert out.terms["beta"].item() == pytest.approx(0.1)
    assert out.loss.item() == pytest.approx((out.terms["nll"] + 0.1 * out.terms["kl"]).item(), rel=1e-5)
    out = model.train()(x, generator=torch.Generator().manual_seed(1), step=0)
    assert out.loss.item() == pytest.approx(out.terms["nll"].item(), rel=1e-6)  # β = 0 at step 0
    out = model.eval()(x)  # evaluation: z = μ, β = the cap
    mu, logvar = model.posterior(x)
    nll = -multinomial_log_likelihood(model.decoder(mu), x).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    assert out.terms["beta"].item() == pytest.approx(0.2)
    assert out.loss.item() == pytest.approx((nll + 0.2 * kl).item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------- RecVAE
def small_recvae(**kwargs) -> RecVAE:
    torch.manual_seed(0)
    return RecVAE(ITEMS, hidden_dim=16, latent_dim=4, **kwargs)


def test_recvae_composite_prior_against_torch_distributions():
    model = small_recvae(prior_weights=(0.2, 0.5, 0.3))
    with torch.no_grad():  # the prior's encoder differs from the encoder, so the old posterior is its own
        for p in model.prior_encoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = toy()[:3]
    z = torch.tensor([[0.0, 0.5, -1.0, 3.0], [2.0, -0.2, 0.1, -4.0], [0.3, 0.3, -0.3, 10.0]])
    mu_old, logvar_old = model.prior_encoder(F.normalize(x, dim=1))
    loc = torch.stack([torch.zeros_like(mu_old), mu_old, torch.zeros_like(mu_old)], -1)
    scale = torch.stack(
        [torch.ones_like(mu_old), (0.5 * logvar_old).exp(), torch.full_like(mu_old, math.exp(5.0))], -1
    )
    mixture = D.MixtureSameFamily(D.Categorical(probs=torch.tensor([0.2, 0.5, 0.3])), D.Normal(loc, scale))
    expected = mixture.log_prob(z).sum(-1)  # a mixture per coordinate, summed (the authors' code)
    assert torch.allclose(model.log_prior(z, x), expected.detach(), atol=1e-5)
    # the encoder's posterior does not enter the prior
    assert not torch.allclose(model.encoder(F.normalize(x, dim=1))[0], mu_old)


def test_recvae_kl_weight_is_gamma_times_the_users_item_count():
    model = small_recvae(gamma=0.05).eval()
    x = toy()[:6]
    out = model(x)
    mu, logvar = model.posterior(x)
    nll = -multinomial_log_likelihood(model.decoder(mu), x)
    kl = log_normal(mu, mu, logvar) - model.log_prior(mu, x)  # the one-sample estimate at z = μ (evaluation)
    expected = (nll + 0.05 * x.sum(1) * kl).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert len(set(x.sum(1).tolist())) > 1  # users differ in item count: a batch-wide β would differ
    assert out.terms["beta"].item() == pytest.approx(0.05 * x.sum(1).mean().item(), rel=1e-6)


def test_recvae_phases_and_prior_copy():
    model = small_recvae(enc_epochs=3, dec_epochs=1).train()
    params = lambda part: list(part.parameters())  # noqa: E731
    x = toy()[:8]
    with torch.no_grad():  # before the first phase the prior is the initial encoder; move the encoder away
        model.encoder.mu.weight.add_(1.0)
    assert not torch.equal(model.prior_encoder.mu.weight, model.encoder.mu.weight)
    expected = {0: "encoder", 1: "encoder", 2: "encoder", 3: "decoder", 4: "encoder", 7: "decoder"}
    for epoch in range(8):
        model.train_epoch_start(epoch)
        phase = expected.get(epoch, "encoder" if epoch % 4 < 3 else "decoder")
        assert model.phase == phase
        assert all(p.requires_grad == (phase == "encoder") for p in params(model.encoder)), epoch
        assert all(p.requires_grad == (phase == "decoder") for p in params(model.decoder)), epoch
        assert not any(p.requires_grad for p in params(model.prior_encoder))
        if epoch in (0, 4):  # an encoder phase begins: the prior copies the encoder
            assert all(
                torch.equal(a, b)
                for a, b in zip(
                    model.prior_encoder.state_dict().values(),
                    model.encoder.state_dict().values(),
                    strict=True,
                )
            )
        else:
            assert not torch.equal(model.prior_encoder.mu.weight, model.encoder.mu.weight), epoch
        model.zero_grad(set_to_none=True)
        out = model(x, generator=torch.Generator().manual_seed(epoch))
        out.loss.backward()
        frozen = model.decoder if phase == "encoder" else model.encoder
        trained = model.encoder if phase == "encoder" else model.decoder
        assert all(p.grad is None for p in params(frozen)) and all(
            p.grad is not None for p in params(trained)
        )
        if phase == "decoder":  # the decoder phase's loss is the NLL alone
            assert out.loss.item() == pytest.approx(out.terms["nll"].item(), rel=1e-6)
        else:
            assert out.loss.item() != pytest.approx(out.terms["nll"].item(), rel=1e-6)
        with torch.no_grad():  # "training" this epoch: the encoder moves (in the encoder phase)
            if phase == "encoder":
                model.encoder.mu.weight.add_(0.5)
    # the prior copy is in the state dict, so a checkpoint brings it back
    clone = RecVAE(ITEMS, hidden_dim=16, latent_dim=4)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.prior_encoder.mu.weight, model.prior_encoder.mu.weight)
    assert any(k.startswith("prior_encoder.") for k in model.state_dict())
    assert not {id(p) for g in model.param_groups() for p in g["params"]} & {
        id(p) for p in params(model.prior_encoder)
    }


def test_recvae_decoder_phase_has_no_input_dropout():
    """In the decoder phase the encoder sees the clean normalised input: the generator's first draw is z's noise, so
    the logits are the decoder's at μ + σ ε with that ε (a dropout draw first would change ε and the encoder's
    input)."""
    model = small_recvae()
    model.train_epoch_start(3)  # the decoder phase (enc_epochs=3)
    x = toy()[:8]
    a = model(x, generator=torch.Generator().manual_seed(5))
    mu, logvar = model.posterior(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a.logits, model.decoder(mu + (0.5 * logvar).exp() * eps), atol=1e-5)


# ---------------------------------------------------------------------------------------------- CDAE
def test_cdae_users_none_is_a_zero_user_vector():
    torch.manual_seed(0)
    model = CDAE(ITEMS, num_users=USERS, hidden_dim=8).eval()
    x = toy()[:5]
    users = torch.tensor([0, 3, 7, 11, 39])
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.user_embedding.weight.zero_()
    none = model(x)
    assert torch.allclose(none.logits, zeroed(x, users=users).logits)
    assert not torch.allclose(none.logits, model(x, users=users).logits)  # the user vectors matter
    assert torch.allclose(none.x_hat, torch.sigmoid(none.logits))
    with pytest.raises(ValueError, match="data.num_users"):
        model(x, users=torch.tensor([0, 1, 2, 3, USERS]))


def test_cdae_batch_kwargs_training_vs_held_out_batch():
    x = toy()[:4]
    users = torch.tensor([5, 6, 7, 8])
    kwargs = CDAE.batch_kwargs((x, users))
    assert set(kwargs) == {"users"} and torch.equal(kwargs["users"], users)
    assert CDAE.batch_kwargs((x, torch.zeros_like(x))) == {}  # (fold-in, held-out): unseen users
    assert CDAE.batch_kwargs(x) == {}


# ---------------------------------------------------------------------------------------------- EASE
class FakeInteractions:
    """A datamodule's ``split_tensors`` and nothing else."""

    def __init__(self, train: torch.Tensor, fold_in: torch.Tensor, heldout: torch.Tensor) -> None:
        self.splits = {"train": (train, torch.arange(len(train))), "val": (fold_in, heldout)}

    def split_tensors(self, split: str):
        return self.splits[split]


def val_ndcg(train: torch.Tensor, fold_in: torch.Tensor, heldout: torch.Tensor, lam: float) -> float:
    values = ndcg_at_k(mask_seen(fold_in @ ease_weights(train, lam), fold_in), heldout, 100)
    return values[~torch.isnan(values)].mean().item()


def test_ease_chooses_the_lambda_with_the_best_validation_ndcg():
    train = toy(seed=1)
    val = toy(users=30, seed=2)
    g = torch.Generator().manual_seed(3)
    held_mask = torch.rand(val.shape, generator=g) < 0.3
    fold_in, heldout = val * ~held_mask, val * held_mask
    candidates = [0.5, 5.0, 30.0, 300.0, 3000.0]
    ndcg = {lam: val_ndcg(train, fold_in, heldout, lam) for lam in candidates}
    ranked = sorted(candidates, key=lambda v: -ndcg[v])
    assert ndcg[ranked[0]] > ndcg[ranked[1]] > ndcg[ranked[-1]]  # the toy tells the values apart
    grid = [ranked[1], ranked[0], *ranked[2:]]  # the best neither first nor last, nor the extreme values
    model = EASE(ITEMS, lambdas=grid)
    message = model.fit_start(FakeInteractions(train, fold_in, heldout))
    best = ranked[0]
    assert model.lam_chosen.item() == pytest.approx(best)
    assert torch.allclose(model.B, ease_weights(train, best), atol=1e-6)
    assert f"λ={best:g}" in message and "30 validation users" in message and f"{ndcg[best]:.3f}" in message
    assert model.fit_start_tensors()[0] is model.B and model.fit_start_tensors()[1] is model.lam_chosen
    assert {"B", "lam_chosen"} <= set(model.state_dict()) and not list(model.parameters())


def test_ease_fixed_lambda_and_forward():
    train = toy(seed=1)
    model = EASE(ITEMS, lam=50.0)
    message = model.fit_start(FakeInteractions(train, train[:0], None))  # a fixed λ needs no validation users
    b = ease_weights(train, 50.0)
    assert (
        model.lam_chosen.item() == 50.0 and torch.allclose(model.B, b, atol=1e-6) and "model.lam" in message
    )
    x = toy(users=6, seed=4)
    out = model(x)
    assert torch.allclose(out.x_hat, x @ b, atol=1e-5) and torch.equal(out.logits, out.x_hat)
    assert out.loss.item() == pytest.approx((x - x @ b).pow(2).sum(1).mean().item(), rel=1e-5)
    assert not out.loss.requires_grad and not hasattr(model, "encode")
    # fitting lowers the squared error from B = 0's (the initial loss, Σ x²)
    assert out.loss.item() < x.pow(2).sum(1).mean().item()
    with pytest.raises(ValueError, match="model.lam"):
        EASE(ITEMS).fit_start(FakeInteractions(train, train[:0], None))


# ---------------------------------------------------------------------------------------------- shapes, checks, configs
def every_model():
    torch.manual_seed(0)
    return {
        "mult_dae": MultDAE(ITEMS, hidden_dims=(32,), latent_dim=8),
        "mult_vae": MultVAE(ITEMS, hidden_dims=(32,), latent_dim=8, total_anneal_steps=20),
        "recvae": RecVAE(ITEMS, hidden_dim=32, latent_dim=8),
        "cdae": CDAE(ITEMS, num_users=USERS, hidden_dim=16),
    }


@pytest.mark.parametrize("name", ["mult_dae", "mult_vae", "recvae", "cdae"])
def test_outputs_are_item_probabilities(name):
    model = every_model()[name].eval()
    x = toy()[:5]
    out = model(x)
    assert isinstance(out, ModelOutput) and out.output == "identity" and out.x_hat.shape == (5, ITEMS)
    assert model.encode(x).shape == (5, model.latent_dim) and torch.allclose(model.reconstruct(x), out.x_hat)
    if name == "cdae":
        assert torch.allclose(out.x_hat, torch.sigmoid(out.logits))
    else:
        assert torch.allclose(out.x_hat, torch.softmax(out.logits, -1)) and torch.allclose(
            out.x_hat.sum(1), torch.ones(5)
        )
    assert torch.isfinite(model(torch.zeros(2, ITEMS)).loss)  # a user with no item: no division by zero


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: MultDAE(ITEMS, dropout=1.0), "model.dropout"),
        (lambda: MultVAE(ITEMS, anneal_cap=1.5), "model.anneal_cap"),
        (lambda: MultDAE(ITEMS, activation="gelu"), "model.activation"),
        (lambda: RecVAE(ITEMS, prior_weights=(0.5, 0.5, 0.5)), "model.prior_weights"),
        (lambda: RecVAE(ITEMS, enc_epochs=0), "model.enc_epochs"),
        (lambda: CDAE(ITEMS, num_users=0), "model.num_users"),
        (lambda: CDAE(ITEMS, num_users=3, loss="hinge"), "model.loss"),
        (lambda: EASE(ITEMS, lambdas=()), "model.lambdas"),
        (lambda: EASE(0), "model.num_items"),
    ],
)
def test_bad_hyperparameters_name_their_override(build, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


@pytest.mark.parametrize("name", ["mult_dae", "mult_vae", "recvae", "cdae", "ease"])
def test_configs_instantiate_with_the_datas_sizes(name):
    cfg = OmegaConf.create({"data": {"shape": [ITEMS], "num_users": USERS}})
    cfg.model = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    model = instantiate(cfg.model)
    assert model.num_items == ITEMS and getattr(model, "num_users", USERS) == USERS
    assert torch.isfinite(model.eval()(toy()[:3]).loss)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", ["mult_dae", "mult_vae", "recvae", "cdae"])
def test_a_plain_pytorch_loop_lowers_the_loss(name):
    model = every_model()[name]
    x, users = toy(), torch.arange(USERS)
    kwargs = {"users": users} if name == "cdae" else {}

    def eval_loss() -> float:
        with torch.no_grad():
            return model.eval()(x, **kwargs).loss.item()

    initial = eval_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    step = 0
    for epoch in range(8):
        if hasattr(model, "train_epoch_start"):
            model.train_epoch_start(epoch)  # RecVAE: 3 encoder epochs, 1 decoder epoch, twice
        model.train()
        for _ in range(8):
            optimizer.zero_grad(set_to_none=True)
            model(x, generator=g, step=step, **kwargs).loss.backward()
            optimizer.step()
            step += 1
    final = eval_loss()
    assert final < 0.9 * initial, (initial, final)


def test_cdae_is_not_taken_for_a_model_with_a_corruption_module():
    from aelab.models import CDAE
    from aelab.models.capabilities import Denoising

    model = CDAE(num_items=30, num_users=4)
    assert not isinstance(model, Denoising) and model.corruption_rate == 0.5  # its input dropout is a rate


def test_recvae_copies_the_prior_once_per_encoder_phase_even_when_an_epoch_restarts():
    """A run resumed mid-epoch calls the epoch's start again: the prior keeps the encoder of the phase's start."""
    from aelab.models import RecVAE

    model = RecVAE(num_items=12, hidden_dim=8, latent_dim=4, enc_epochs=3, dec_epochs=1)
    model.train_epoch_start(4)  # a cycle's first epoch: the prior copies the encoder
    at_start = {k: v.clone() for k, v in model.prior_encoder.state_dict().items()}
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)  # the epoch trains the encoder ...
    model.train_epoch_start(4)  # ... and a resume inside it starts epoch 4 again
    assert all(torch.equal(v, at_start[k]) for k, v in model.prior_encoder.state_dict().items())
    assert int(model.state_dict()["prior_epoch"]) == 4  # saved in the checkpoint
    model.train_epoch_start(8)  # the next cycle copies again
    assert not all(torch.equal(v, at_start[k]) for k, v in model.prior_encoder.state_dict().items())
