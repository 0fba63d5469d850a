"""Sentences: likelihood, what the codes carry, reconstructions, samples and interpolations."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from aelab.evaluation.context import EvalContext, requires

log = logging.getLogger("aelab")

PAD, EOS = 0, 3


def _batches(x: torch.Tensor, size: int):
    for i in range(0, len(x), size):
        yield x[i : i + size]


def _reconstruct(model, x: torch.Tensor, beam_size: int) -> torch.Tensor:
    """``model.reconstruct(x)``, with ``beam_size`` passed only when it is not 1 (a model of a user's own may decode
    greedily only)."""
    return model.reconstruct(x) if beam_size == 1 else model.reconstruct(x, beam_size)


def token_accuracy(decoded: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    """``(token accuracy, exact-match rate)`` of greedy decodes ``(N, T)`` against the inputs ``(N, T)``: over each
    input's target positions (its tokens and ``[EOS]``, not ``[BOS]`` or padding), the share decoded right; a
    sentence matches exactly when all of its are."""
    target, got = x[:, 1:], decoded[:, 1 : x.shape[1]]
    if got.shape[1] < target.shape[1]:
        got = torch.nn.functional.pad(got, (0, target.shape[1] - got.shape[1]), value=PAD)
    mask = target != PAD
    right = (got == target) & mask
    return float(right.sum() / mask.sum().clamp(min=1)), float((right.sum(1) == mask.sum(1)).float().mean())


def probe_accuracy(train_x, train_y, test_x, test_y, seed: int = 0) -> float:
    """Test accuracy of scikit-learn's logistic regression (standardised features, ``max_iter=2000``) fitted on the
    training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean())


def tfidf_probe_accuracy(train_texts, train_y, test_texts, test_y, seed: int = 0) -> float:
    """The bag-of-words baseline: TF-IDF of words and word pairs (scikit-learn's ``TfidfVectorizer``, sublinear
    term frequency, terms seen twice) and logistic regression, fitted on the training texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0, random_state=seed)
    clf.fit(vec.fit_transform(train_texts), train_y)
    return float((clf.predict(vec.transform(test_texts)) == np.asarray(test_y)).mean())


@requires(kinds=("tokens",))
def text(
    ctx: EvalContext,
    k: int = 20,
    num_sentences: int | None = None,
    mi_sentences: int = 1000,
    samples: int = 8,
    interpolations: int = 2,
    steps: int = 6,
    seed: int = 0,
    beam_size: int = 1,
) -> dict[str, float]:
    """The figures of a sentence model on the test split (:mod:`aelab.models.text`):

    - ``test/text/nll_per_token`` and ``ppl`` (e^nll): the language model's and the autoencoder's exact negative
      log-likelihood (the autoencoder's given its own code), the VAE's importance-weighted bound with ``k`` draws
      (Burda et al. 2016); ``test/text/k`` records ``k``;
    - for the VAE: ``kl`` (nats per sentence), ``active_units`` (Burda et al. 2016, §5.2) and ``mutual_info``
      I(x; z) (Hoffman & Johnson 2016; on the first ``mi_sentences``);
    - for models with a code: ``token_accuracy`` and ``exact_match`` of greedy decodes (beam search with
      ``beam_size > 1``; never teacher-forced; ``test/text/beam_size`` records it), and a
      linear probe of the codes on the data's probe classes, ``test/features/linear_probe_acc``, beside TF-IDF +
      logistic regression on the same split, ``test/features/tfidf_probe_acc``;
    - samples (the VAE's from the prior, the language model's drawn) and interpolations between pairs of test
      sentences, as text in TensorBoard and ``text_samples.txt``.
    """
    from aelab.models.code_metrics import active_units, mutual_information

    model, dm, device = ctx.model, ctx.datamodule, ctx.device
    x, y = dm.split_tensors("test")
    if num_sentences is not None:
        x, y = x[: int(num_sentences)], None if y is None else y[: int(num_sentences)]
    gen = torch.Generator(device=device).manual_seed(int(seed))
    bs = ctx.batch_size
    probabilistic = hasattr(model, "posterior")
    draws = int(k) if probabilistic else 1
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for b in _batches(x, max(1, bs // max(1, draws // 10))):
            b = b.to(device)
            nll += float(model.sequence_nll(b, gen, draws).double().sum())
            tokens += int((b[:, 1:] != PAD).sum())
    out = {"test/text/nll_per_token": nll / tokens, "test/text/ppl": math.exp(nll / tokens),
           "test/text/num_sentences": float(len(x))}  # fmt: skip
    if probabilistic:
        out["test/text/k"] = float(draws)
        with torch.no_grad():
            post = [model.posterior(b.to(device)) for b in _batches(x, bs)]
        mu = torch.cat([p[0] for p in post]).float().cpu()
        logvar = torch.cat([p[1] for p in post]).float().cpu()
        out["test/text/kl"] = float((0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean())
        out["test/text/active_units"] = float(active_units(mu))
        m = int(mi_sentences)
        out["test/text/mutual_info"] = mutual_information(
            mu[:m], logvar[:m], torch.Generator().manual_seed(seed)
        )
    lines: list[str] = []
    has_code = hasattr(model, "encode") and hasattr(model, "decode")
    if has_code:
        with torch.no_grad():
            decoded = torch.cat(
                [_reconstruct(model, b.to(device), int(beam_size)).cpu() for b in _batches(x, bs)]
            )
        acc, exact = token_accuracy(decoded, x)
        out |= {"test/text/token_accuracy": acc, "test/text/exact_match": exact,
                "test/text/beam_size": float(beam_size)}  # fmt: skip
        how = "greedy" if int(beam_size) <= 1 else f"beam search, {int(beam_size)} hypotheses"
        lines += [f"## Reconstructions ({how})", ""]
        for i in range(min(5, len(x))):
            lines += [f"- in:  {dm.decode(x[i])}", f"  out: {dm.decode(decoded[i])}"]
        out |= _probes(ctx, model, dm, seed)
        lines += ["", "## Interpolations between test sentences", ""]
        with torch.no_grad():
            for j in range(min(int(interpolations), len(x) // 2)):
                a, b = x[2 * j : 2 * j + 1].to(device), x[2 * j + 1 : 2 * j + 2].to(device)
                za, zb = model.encode(a), model.encode(b)
                t = torch.linspace(0, 1, int(steps), device=device)[:, None]
                path = model.decode((1 - t) * za + t * zb, x.shape[1])
                lines += [f"{j + 1}."] + [f"   {s:.1f}: {dm.decode(row)}" for s, row in zip(t[:, 0].tolist(), path.cpu(),
                                                                                         strict=True)]  # fmt: skip
    else:
        ctx.skip(
            "text.codes", f"{type(model).__name__} has no code: no reconstruction, probe or interpolation"
        )
    if hasattr(model, "sample") and int(samples) > 0:
        with torch.no_grad():
            drawn = model.sample(int(samples), x.shape[1], generator=gen).cpu()
        what = "the prior (greedy decodes)" if probabilistic else "the model"
        lines += ["", f"## Samples from {what}", "", *[f"- {dm.decode(row)}" for row in drawn]]
    if lines:
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        (ctx.output_dir / "text_samples.txt").write_text("\n".join(lines) + "\n")
        if ctx.loggers:
            from aelab.media import Media

            Media(ctx.loggers).text("text/samples", "\n".join(lines), ctx.step)
    return out


def _probes(ctx: EvalContext, model, dm, seed: int) -> dict[str, float]:
    """The linear probe of the codes and the TF-IDF baseline on the data's probe classes (labelled data only)."""
    train_x, train_y = dm.split_tensors("train")
    test_x, test_y = dm.split_tensors("test")
    if train_y is None or test_y is None:
        ctx.skip("text.probe", f"{dm.name} has no labels (data.label_column)")
        return {}
    names = list(dm.class_names or [])
    wanted = [names.index(c) for c in (getattr(dm, "probe_classes", None) or names)]
    keep_train = np.isin(train_y.numpy(), wanted)
    keep_test = np.isin(test_y.numpy(), wanted)
    codes_train = ctx.map(model.encode, train_x[torch.from_numpy(keep_train)]).numpy()
    codes_test = ctx.map(model.encode, test_x[torch.from_numpy(keep_test)]).numpy()
    ytr, yte = train_y.numpy()[keep_train], test_y.numpy()[keep_test]
    texts_train = [t for t, keep in zip(dm.texts["train"], keep_train, strict=True) if keep]
    texts_test = [t for t, keep in zip(dm.texts["test"], keep_test, strict=True) if keep]
    return {
        "test/features/linear_probe_acc": probe_accuracy(codes_train, ytr, codes_test, yte, seed),
        "test/features/tfidf_probe_acc": tfidf_probe_accuracy(texts_train, ytr, texts_test, yte, seed),
        "test/features/num_train": float(keep_train.sum()),
    }
