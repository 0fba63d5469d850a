"""Text: the tokenizer and the splits, the refusals, the token NLL, active units, I(x; z), the KL schedules and free
bits against their formulas, the sentence models, the section and aelab-encode."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from aelab.data.text import BOS, EOS, PAD, UNK, TextDataModule
from aelab.errors import ConfigError, DataError
from helpers import run_inprocess

WORDS = ["good", "bad", "film", "plot", "actor", "great", "boring", "story", "fun", "dull"]


def _docs(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        mood = ["good", "great", "fun"] if label == "pos" else ["bad", "boring", "dull"]
        words = [str(rng.choice(mood)), *rng.choice(WORDS[2:5], size=int(rng.integers(2, 6))).tolist()]
        rows.append((" ".join(words), label))
    return pd.DataFrame(rows, columns=["review", "verdict"])


def _dm(path, **kw) -> TextDataModule:
    kw = {"text_column": "review", "label_column": "verdict", "max_length": 6, "min_frequency": 1, "val_size": 10,
          "test_size": 10, "batch_size": 8} | kw  # fmt: skip
    return TextDataModule(path=str(path), **kw)


# ---------------------------------------------------------------------------------------------- data
def test_sequences_are_bos_tokens_eos_then_padding_and_the_tokenizer_sees_the_training_split_only(tmp_path):
    frame = _docs()
    frame.loc[0, "review"] = "good film " + "plot " * 10  # 12 tokens: truncated to 6
    frame.to_csv(tmp_path / "docs.csv", index=False)
    dm = _dm(tmp_path / "docs.csv")
    x, y = dm.split_tensors("train")
    assert dm.sample_kind == "tokens" and dm.shape == (8,) and x.dtype == torch.int64 and x.shape[1] == 8
    assert (x[:, 0] == BOS).all() and ((x == EOS).sum(1) == 1).all()
    length = (x != PAD).sum(1)
    assert all(x[i, length[i] - 1] == EOS for i in range(len(x)))  # padding only after [EOS]
    assert sorted(set(y.tolist())) == [0, 1] and dm.class_names == ["neg", "pos"]
    # a word only the test split holds is unknown to the tokenizer
    test_doc = dm.texts["test"][0]
    assert "zebra" not in dm.tokenizer.get_vocab()
    ids, truncated, unknown = dm.encode([test_doc + " zebra", "good " * 20])
    assert unknown == 1 and truncated == 1 and ids[0].tolist().count(UNK) == 1
    state = dm.state_dict()
    assert state["kind"] == "tokens" and isinstance(state["tokenizer"], str) and state["max_length"] == 6
    # the same seed gives the same split
    assert torch.equal(_dm(tmp_path / "docs.csv").split_tensors("test")[0], dm.split_tensors("test")[0])
    assert dm.decode(x[0]) == dm.texts["train"][0].lower()[: len(dm.decode(x[0]))]


def test_a_text_file_holds_one_document_per_line(tmp_path):
    (tmp_path / "docs.txt").write_text("\n".join(_docs().review) + "\n\n")
    dm = TextDataModule(
        path=str(tmp_path / "docs.txt"), max_length=6, min_frequency=1, val_size=10, test_size=10
    )
    assert sum(len(dm.split_tensors(s)[0]) for s in ("train", "val", "test")) == 120
    assert dm.split_tensors("train")[1] is None


@pytest.mark.parametrize("damage, kw, error, message", [
    ("empty", {}, DataError, r"the file holds no document"),
    ("latin", {}, DataError, r"are not utf-8: set data\.encoding"),
    ("one_class", {}, DataError, r"holds one class only \('neg'\).*data\.label_column=null"),
    (None, {"vocab_size": 4}, ConfigError, r"data\.vocab_size=4 leaves no room beside the 4 special tokens"),
    (None, {"text_column": "body"}, ConfigError, r"data\.text_column='body' is not a column"),
])  # fmt: skip
def test_bad_text_is_refused_naming_the_file_and_the_fix(tmp_path, damage, kw, error, message):
    path = tmp_path / "docs.csv"
    frame = _docs()
    if damage == "one_class":
        frame["verdict"] = "neg"
    if damage == "empty":
        path = tmp_path / "docs.txt"
        path.write_text("\n \n")
        kw = {"text_column": None, "label_column": None}
    elif damage == "latin":
        path = tmp_path / "docs.txt"
        path.write_bytes("un film très bien\n".encode("latin-1"))
        kw = {"text_column": None, "label_column": None}
    else:
        frame.to_csv(path, index=False)
    with pytest.raises(error, match=message) as info:
        _dm(path, **kw).setup()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- formulas
def test_the_masked_token_nll_against_a_hand_computation():
    from aelab.models.text import masked_token_nll

    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
    targets = torch.tensor([[1, 1, PAD]])  # the third position is padding: not counted
    nll, tokens = masked_token_nll(logits, targets)
    assert nll.item() == pytest.approx(-math.log(0.25) - math.log(0.8), rel=1e-5) and tokens.item() == 2


def test_the_decoders_nll_on_non_padding_targets_is_the_masked_nll_of_its_logits():
    """TokenDecoder.nll runs the output layer on the non-padding targets only: the same figures as
    masked_token_nll of the full logits, with and without a code."""
    from aelab.models.text import TokenDecoder, masked_token_nll

    torch.manual_seed(0)
    for latent in (0, 4):
        dec = TokenDecoder(11, latent_dim=latent, embedding_dim=6, hidden_size=8).eval()
        x = torch.tensor([[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, PAD, PAD]])
        z = torch.randn(2, latent) if latent else None
        nll, tokens = dec.nll(x[:, :-1], x[:, 1:], z)
        want, want_tokens = masked_token_nll(dec(x[:, :-1], z), x[:, 1:])
        torch.testing.assert_close(nll, want)
        assert tokens.tolist() == want_tokens.tolist() == [4, 2]


def test_beam_search_finds_the_most_likely_sequence_and_one_hypothesis_is_greedy():
    """On a toy vocabulary (6 tokens) and 3 steps, a beam of 16 holds every prefix, so its answer is the most likely
    sequence of all (enumerated here and scored by the decoder's own NLL); a beam of 1 is the greedy decode."""
    import itertools

    from aelab.models.text import TokenDecoder

    torch.manual_seed(3)
    for cell in ("lstm", "gru"):
        dec = TokenDecoder(6, latent_dim=3, embedding_dim=4, hidden_size=5, cell=cell).eval()
        z = torch.randn(2, 3)
        assert torch.equal(dec.beam(z, 4, beam_size=1), dec.greedy(z, 4))
        found = dec.beam(z, 4, beam_size=16)
        for i in range(2):
            best, best_lp = None, -math.inf
            for seq in itertools.product([UNK, EOS, 4, 5], repeat=3):
                if EOS in seq:  # after [EOS] a sequence is padded
                    seq = seq[: seq.index(EOS) + 1] + (PAD,) * (2 - seq.index(EOS))
                x = torch.tensor([[BOS, *seq]])
                lp = -dec.nll(x[:, :-1], x[:, 1:], z[i : i + 1])[0].item()
                if lp > best_lp + 1e-6:
                    best, best_lp = x[0], lp
            assert found[i].tolist() == best.tolist(), cell


def test_active_units_on_a_toy_posterior_and_mutual_information():
    from aelab.models.code_metrics import active_units, mutual_information

    mu = torch.zeros(100, 3)
    mu[:, 0] = torch.linspace(-1, 1, 100)  # variance 0.34 > 0.01: active
    mu[:, 1] = 0.05 * torch.linspace(-1, 1, 100)  # variance 0.00085: inactive
    assert active_units(mu) == 1
    same = mutual_information(torch.zeros(200, 2), torch.zeros(200, 2), torch.Generator().manual_seed(0))
    assert abs(same) < 0.05  # every posterior the same: no information
    # two far-apart posteriors, half the data each: I(x; z) = log 2 (the code tells which half)
    two = torch.cat([torch.full((100, 1), -20.0), torch.full((100, 1), 20.0)])
    assert mutual_information(two, torch.zeros(200, 1), torch.Generator().manual_seed(0)) == pytest.approx(
        math.log(2), abs=0.02
    )  # one Monte Carlo draw per posterior: within ±0.02


def test_the_kl_schedules_and_free_bits_against_their_formulas():
    from aelab.models.text import free_bits_kl, kl_annealing_weight

    assert kl_annealing_weight(None, "logistic", 100) == 1.0  # evaluation: the ELBO
    assert kl_annealing_weight(50, "linear", 200) == 0.25 and kl_annealing_weight(500, "linear", 200) == 1.0
    assert kl_annealing_weight(50, "logistic", 100) == pytest.approx(0.5)
    assert kl_annealing_weight(0, "logistic", 100) == pytest.approx(1 / (1 + math.exp(5)))
    # Fu et al.: 4 cycles of 100 steps over 400, rising over the first half of each
    assert [
        kl_annealing_weight(s, "cyclical", 400, 4, 0.5) for s in (0, 25, 50, 99, 100, 125, 400)
    ] == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0])
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]])  # per-dimension means 0.2 and 3.0
    assert free_bits_kl(kl, 0.5).item() == pytest.approx(0.5 + 3.0)
    assert free_bits_kl(kl, 0.0).item() == pytest.approx((2.1 + 4.3) / 2)
    with pytest.raises(ValueError, match="kl_schedule='warm'"):
        kl_annealing_weight(1, "warm", 10)


# ---------------------------------------------------------------------------------------------- models
def _models(vocab: int = 20, latent: int = 4):
    from aelab.models.components import GRUEncoder
    from aelab.models.text import LanguageModel, SentenceVAE, TextAutoencoder, TokenDecoder

    torch.manual_seed(0)
    ae = TextAutoencoder(GRUEncoder(latent, (8, 6), 16), TokenDecoder(vocab, latent, 6, 16), vocab, latent, 6)
    vae = SentenceVAE(GRUEncoder(2 * latent, (8, 6), 16), TokenDecoder(vocab, latent, 6, 16), vocab, latent, 6,
                      word_dropout=0.5, kl_schedule="linear", kl_anneal_steps=10)  # fmt: skip
    lm = LanguageModel(TokenDecoder(vocab, 0, 6, 16))
    return ae, vae, lm


def _batch():
    return torch.tensor([[BOS, 5, 6, 7, EOS, PAD, PAD, PAD], [BOS, 8, EOS, PAD, PAD, PAD, PAD, PAD]])


def test_word_dropout_hits_only_words_and_only_in_training():
    _, vae, _ = _models()
    x = _batch().repeat(50, 1)
    vae.train()
    inputs = vae.decoder_inputs(x, torch.Generator().manual_seed(0))
    dropped = inputs == UNK
    assert dropped.any() and not (dropped & ((x[:, :-1] == BOS) | (x[:, :-1] == PAD))).any()
    droppable = (x[:, :-1] != PAD) & (x[:, :-1] != BOS)
    assert 0.4 < dropped.sum() / droppable.sum() < 0.6
    vae.eval()
    assert torch.equal(vae.decoder_inputs(x, None), x[:, :-1])


def test_the_vae_bound_with_one_draw_is_its_elbo_and_the_loss_is_nats_per_token():
    from aelab.models.text import masked_token_nll

    ae, vae, lm = _models()
    x = _batch()
    vae.eval()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    bound = vae.sequence_nll(x, gen(), k=1)
    mu, logvar = vae.posterior(x)
    z = mu + torch.randn(mu.shape, generator=gen()) * (0.5 * logvar).exp()
    nll = masked_token_nll(vae.decoder(x[:, :-1], z), x[:, 1:])[0]
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    # log p(z) − log q(z|x) at one draw differs from −KL by a zero-mean term: compare with the exact single-draw value
    eps = (z - mu) / (0.5 * logvar).exp()
    log_ratio = (-0.5 * z.pow(2)).sum(1) - (-0.5 * eps.pow(2) - 0.5 * logvar).sum(1)
    assert torch.allclose(bound, nll - log_ratio, atol=1e-4)
    assert torch.allclose(vae.sequence_nll(x, gen(), k=50).mean(), (nll + kl).mean(), rtol=0.5)
    out = vae(x, generator=gen())
    assert out.loss.item() == pytest.approx(((nll + kl).sum() / 6).item(), rel=1e-4)  # 6 target tokens
    assert lm(x).loss.item() == pytest.approx(lm.sequence_nll(x).sum().item() / 6, rel=1e-5)
    assert ae(x).terms.keys() == {"nll_per_token"} and set(vae.term_names()) == set(out.terms)


def test_greedy_decoding_starts_with_bos_and_pads_after_eos():
    ae, _, lm = _models()
    out = ae.reconstruct(_batch())
    assert out.shape == (2, 8) and (out[:, 0] == BOS).all()
    for row in out.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])
    assert lm.sample(3, 8, torch.Generator().manual_seed(0)).shape == (3, 8)


# ---------------------------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def trained_text(tmp_path_factory, fake_data_dir):
    """A text AE trained 12 epochs on toy reviews (checkpoint path, run folder, the frame)."""
    from aelab.cli.train import main
    from conftest import MNIST_SMALL, SMALL

    root = tmp_path_factory.mktemp("text")
    frame = _docs(160)
    frame.to_csv(root / "docs.csv", index=False)
    argv = [o for o in SMALL if o not in MNIST_SMALL] + [
        "data=text", f"data.path={root / 'docs.csv'}", "data.text_column=review", "data.label_column=verdict",
        "data.max_length=8", "data.min_frequency=1", "data.val_size=16", "data.test_size=32", "data.batch_size=16",
        "model=text_ae", "model.latent_dim=8", "model.embedding_dim=16", "model.encoder.hidden_size=32",
        "model.decoder.embedding_dim=16", "model.decoder.hidden_size=32", "trainer.max_epochs=12",
        "optimizer.lr=0.01",
        f"hydra.run.dir={root / 'run'}",
    ]  # fmt: skip
    mp = pytest.MonkeyPatch()
    try:
        run_inprocess(main, argv, mp, fake_data_dir)
    finally:
        mp.undo()
    return root / "run" / "checkpoints" / "last.ckpt", root / "run", frame


def test_a_training_run_reports_the_text_figures_and_the_probe_beside_tfidf(trained_text):
    _, run, _ = trained_text
    metrics = json.loads((run / "metrics.json").read_text())
    metrics = metrics.get("metrics", metrics)
    for key in ("test/text/nll_per_token", "test/text/ppl", "test/text/token_accuracy", "test/text/exact_match",
                "test/features/linear_probe_acc", "test/features/tfidf_probe_acc"):  # fmt: skip
        assert key in metrics, key
    assert metrics["test/text/ppl"] == pytest.approx(math.exp(metrics["test/text/nll_per_token"]))
    # better than the unigram model of the training tokens (its cross-entropy on the test tokens, computed here)
    dm = TextDataModule(path=str(run.parent / "docs.csv"), text_column="review", label_column="verdict",
                        max_length=8, min_frequency=1, val_size=16, test_size=32)  # fmt: skip
    train, test = dm.split_tensors("train")[0][:, 1:], dm.split_tensors("test")[0][:, 1:]
    counts = torch.bincount(train[train != PAD], minlength=dm.num_tokens).double() + 1
    unigram = -torch.log(counts / counts.sum())[test[test != PAD]].mean().item()
    assert metrics["test/text/nll_per_token"] < unigram - 0.2
    assert metrics["test/features/tfidf_probe_acc"] > 0.9  # the mood words give the verdict away
    assert "Interpolations" in (run / "text_samples.txt").read_text()


def test_aelab_encode_writes_one_code_per_document_and_counts_unknown_tokens(trained_text, tmp_path, capsys):
    from aelab.cli.encode import main

    ckpt, _, frame = trained_text
    (tmp_path / "new.txt").write_text("good film zebra\nbad plot\n")
    assert (
        main([str(ckpt), "--input", str(tmp_path / "new.txt"), "--out", str(tmp_path / "codes.parquet")]) == 0
    )
    codes = pd.read_parquet(tmp_path / "codes.parquet")
    assert list(codes.columns[:2]) == ["index", "text"] and codes.shape == (2, 2 + 8)
    assert "1 unknown tokens" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (b"\n\n", r"holds no document"),
    ("tr\xe8s".encode("latin-1"), r"not utf-8"),
])  # fmt: skip
def test_aelab_encode_refuses_bad_input_in_one_line_and_writes_nothing(
    trained_text, tmp_path, capsys, content, message
):
    from aelab.cli.encode import main

    ckpt, _, _ = trained_text
    (tmp_path / "bad.txt").write_bytes(content)
    out = tmp_path / "codes.parquet"
    assert main([str(ckpt), "--input", str(tmp_path / "bad.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not out.exists()


def test_bpe_pieces_decode_back_into_words():
    from aelab.data.text import train_tokenizer

    tok = train_tokenizer(["walking talker walks", "talking walker talks"] * 5, "bpe", 24, 1, True)
    enc = tok.encode("walking talker", add_special_tokens=False)
    assert len(enc.tokens) > 2  # split into pieces
    assert tok.decode(enc.ids) == "walking talker"


def test_a_transformer_encoder_reads_batches_cut_after_their_longest_sentence():
    from aelab.models.components import TransformerSeriesEncoder
    from aelab.models.text import TextAutoencoder, TokenDecoder

    model = TextAutoencoder(
        TransformerSeriesEncoder(4, (8, 6), 8, 2, 1, 16), TokenDecoder(20, 4, 6, 16), 20, 4, 6
    )
    out = model(_batch())  # cut to 5 steps of the 8
    assert torch.isfinite(out.loss) and model.encode(_batch()).shape == (2, 4)
