"""What the codes are good for: linear probes and k-NN (features), anomaly detection."""

from __future__ import annotations

import logging

import numpy as np
import torch

from aelab.errors import ConfigError, MissingDataError
from aelab.evaluation.context import EvalContext, requires
from aelab.evaluation.detection import BASELINES, baseline_scorers, detection_figures
from aelab.evaluation.features import knn_accuracy, linear_probe_accuracy
from aelab.evaluation.metrics import auroc, mse_per_image, to_float
from aelab.evaluation.scores import anomaly_scores, elbo_scores, record_scorer
from aelab.models.capabilities import Autoencoding, Probabilistic

log = logging.getLogger("aelab")


@requires(Autoencoding, kinds=("image", "table"))
def features(
    ctx: EvalContext, knn_k: int = 5, max_train: int | None = None, seed: int = 0
) -> dict[str, float]:
    """Linear-probe and k-NN accuracy of the codes, and of the PCA codes of the same size (labelled data only),
    fitted on the training codes — at most ``max_train`` of them, a seeded subset shared by both
    (``test/features/num_train`` says how many)."""
    if not ctx.labelled:
        return ctx.skip("features", f"{ctx.datamodule.name} has no labels to probe the codes with")
    pca_train, pca_test = ctx.pca_codes
    codes_train, train_y = ctx.codes_train, ctx.train_y
    if max_train is not None and len(train_y) > int(max_train):
        pick = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(int(seed)))[
            : int(max_train)
        ]
        codes_train, pca_train, train_y = codes_train[pick], pca_train[pick], train_y[pick]
    k = int(knn_k)
    return {
        "test/features/linear_probe_acc": linear_probe_accuracy(
            codes_train, train_y, ctx.codes_test, ctx.test_y
        ),
        "test/features/knn_acc": knn_accuracy(codes_train, train_y, ctx.codes_test, ctx.test_y, k),
        "test/features/pca_linear_probe_acc": linear_probe_accuracy(pca_train, train_y, pca_test, ctx.test_y),
        "test/features/pca_knn_acc": knn_accuracy(pca_train, train_y, pca_test, ctx.test_y, k),
        "test/features/num_train": float(len(train_y)),
    }


@requires(Autoencoding, kinds=("image", "table", "series"))
def anomaly(
    ctx: EvalContext,
    ood_data=None,
    ood_required: bool = False,
    baselines=BASELINES,
    seed: int = 0,
) -> dict[str, float]:
    """Anomaly detection with the model's scores (reconstruction error; −ELBO for a VAE):

    - for data whose test split marks anomalies (the data contract's ``anomaly_labels``: a table's labelled
      records), the one-class protocol: ``test/anomaly/auroc``, ``average_precision`` and
      ``f1_at_val_p<percentile>`` (the flag threshold is that percentile of the validation inliers' scores,
      ``data.contamination``), and the same figures of each of ``baselines`` fitted on the same training records
      (``test/anomaly/<baseline>_auroc``, ...; :mod:`aelab.evaluation.detection`); the score histograms of inliers
      and anomalies and the ROC curves go to the loggers;
    - one-class over image classes when the run kept only some (``data.train_classes``:
      ``test/anomaly/oneclass_auroc``);
    - the test split against the test split of ``ood_data`` (any datamodule of the same shape:
      ``test/anomaly/ood_auroc``, ``ood_auroc_elbo``).

    Per-example scores go to ``anomaly_scores.npz``. An out-of-distribution set that cannot be read is skipped with a
    warning when it is the default one, and stops the evaluation when it was chosen (``ood_required``).

    Raises:
        MissingDataError: when a chosen set's files cannot be read.
        ConfigError: when the set's images are not of the model's shape.
    """
    out: dict[str, float] = {}
    model, bs, device = ctx.model, ctx.batch_size, ctx.device
    score_in = mse_per_image(ctx.recon, ctx.x_test)
    probabilistic = isinstance(model, Probabilistic)
    if probabilistic:
        elbo_in = elbo_scores(model, ctx.x_test, bs, device, seed=0)
    labels = getattr(ctx.datamodule, "anomaly_labels", None)
    flags = labels("test") if callable(labels) else None
    if flags is not None:
        out |= _one_class_records(ctx, flags, elbo_in if probabilistic else score_in, baselines, int(seed))
    classes = ctx.datamodule.train_classes
    if classes:
        is_anom = ~torch.isin(ctx.test_y, torch.tensor(list(classes)))
        out["test/anomaly/oneclass_auroc"] = auroc(score_in, is_anom)
        if probabilistic:
            out["test/anomaly/oneclass_auroc_elbo"] = auroc(elbo_in, is_anom)
    if ood_data is None:
        return out
    try:  # through the data contract; nothing is downloaded
        ood_u8, _ = ood_data.split_tensors("test")
    except (FileNotFoundError, RuntimeError) as err:
        if ood_required:
            raise MissingDataError(
                f"the chosen out-of-distribution set {getattr(ood_data, 'name', type(ood_data).__name__)} cannot be "
                f"read: {str(err).splitlines()[0]}; fix its files, or choose another with data@ood=<data config>"
            ) from None
        log.warning(
            "anomaly detection vs %s skipped: %s (`make data` unpacks Fashion-MNIST from ../shared/data)",
            getattr(ood_data, "name", type(ood_data).__name__),
            str(err).splitlines()[0],
        )
        return out
    if tuple(ood_u8.shape[1:]) != ctx.image_shape:
        raise ConfigError(
            f"the out-of-distribution set {ood_data.name} has images {list(ood_u8.shape[1:])}, the model's are "
            f"{list(ctx.image_shape)} (C, H, W): give it the same shape (e.g. ood.image_size="
            f"{list(ctx.image_shape[1:])} ood.channels={ctx.image_shape[0]} for an image folder), or "
            "suite.sections.anomaly.ood_data=null"
        )
    ood = anomaly_scores(model, ood_u8, bs, device, seed=1)
    labels = torch.cat([torch.zeros(len(score_in)), torch.ones(len(ood["recon"]))])
    out["test/anomaly/ood_auroc"] = auroc(torch.cat([score_in, ood["recon"]]), labels)
    saved = {
        "recon_in": score_in.numpy(),
        "recon_ood": ood["recon"].numpy(),
        "ood_name": np.array(ood_data.name),
    }
    if probabilistic:
        out["test/anomaly/ood_auroc_elbo"] = auroc(torch.cat([elbo_in, ood["elbo"]]), labels)
        saved |= {"elbo_in": elbo_in.numpy(), "elbo_ood": ood["elbo"].numpy()}
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(ctx.output_dir / "anomaly_scores.npz", **saved)
    return out


def _one_class_records(ctx: EvalContext, flags: torch.Tensor, scores: torch.Tensor, baselines, seed: int):
    """The figures of the one-class protocol on records whose test split marks anomalies (see :func:`anomaly`)."""
    model, dm = ctx.model, ctx.datamodule
    x_val = to_float(dm.split_tensors("val")[0])
    score = record_scorer(model, dm, ctx.batch_size, ctx.device)  # what aelab-score scores with
    if getattr(dm, "standardize_errors", False) and not isinstance(model, Probabilistic):
        scores = score(ctx.x_test)  # the standardised errors (the plain MSE and −ELBO were computed already)
    val = score(x_val)
    percentile = float(getattr(dm, "threshold_percentile", 95.0))
    tag = f"p{percentile:g}"
    all_scores = {"model": (scores.numpy(), val.numpy())}
    train = to_float(ctx.train_u8).flatten(1).numpy()
    test, valx = ctx.x_test.flatten(1).numpy(), x_val.flatten(1).numpy()
    for name, fit in baseline_scorers(ctx.pca_size, seed).items():
        if name in tuple(baselines):
            score = fit(train)
            all_scores[name] = (np.asarray(score(test)), np.asarray(score(valx)))
    if ctx.x_test.ndim == 3 and "rockad" in tuple(
        baselines
    ):  # whole series (T, C): ROCKAD, on the series themselves
        from aelab.evaluation.series import rockad_scorer

        score = rockad_scorer(seed)(to_float(ctx.train_u8).numpy())
        all_scores["rockad"] = (score(ctx.x_test.numpy()), score(x_val.numpy()))
    out: dict[str, float] = {
        "test/anomaly/num_anomalies": float(flags.sum()),
        "test/anomaly/num_records": float(len(flags)),
    }
    for name, (test_scores, val_scores) in all_scores.items():
        figures = detection_figures(test_scores, flags.numpy(), val_scores, percentile)
        prefix = "test/anomaly/" if name == "model" else f"test/anomaly/{name}_"
        out |= {f"{prefix}auroc": figures["auroc"], f"{prefix}average_precision": figures["average_precision"],
                f"{prefix}f1_at_val_{tag}": figures["f1"]}  # fmt: skip
    out["test/anomaly/threshold"] = detection_figures(scores.numpy(), flags.numpy(), val.numpy(), percentile)[
        "threshold"
    ]
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(ctx.output_dir / "anomaly_scores.npz", is_anomaly=flags.numpy(),
             **{f"{name}_test": t for name, (t, _) in all_scores.items()})  # fmt: skip
    _draw_detection(ctx, flags.numpy(), {k: t for k, (t, _) in all_scores.items()})
    return out


def _draw_detection(ctx: EvalContext, flags: np.ndarray, scores: dict[str, np.ndarray]) -> None:
    """The model's score histograms of inliers and anomalies and every detector's ROC curve, to the loggers."""
    if not ctx.loggers:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from aelab.media import Media

    media = Media(ctx.loggers)
    model = torch.from_numpy(np.asarray(scores["model"], dtype=np.float64))
    media.histogram("anomaly/scores_inliers", model[torch.from_numpy(flags == 0)], ctx.step)
    media.histogram("anomaly/scores_anomalies", model[torch.from_numpy(flags == 1)], ctx.step)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(flags, s)
        ax.plot(fpr, tpr, lw=2 if name == "model" else 1, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC, {ctx.datamodule.name} test split")
    ax.legend(loc="lower right")
    media.figure("anomaly/roc", fig, ctx.step)
