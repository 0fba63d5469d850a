"""What the codes are good for: linear probes and k-NN (features), anomaly detection."""

from __future__ import annotations

import logging

import numpy as np
import torch

from aelab.errors import ConfigError, MissingDataError
from aelab.evaluation.context import EvalContext, requires
from aelab.evaluation.features import knn_accuracy, linear_probe_accuracy
from aelab.evaluation.metrics import (
    auroc,
    mse_per_image,
)
from aelab.evaluation.scores import anomaly_scores, elbo_scores
from aelab.models.capabilities import Autoencoding, Probabilistic

log = logging.getLogger("aelab")


@requires(Autoencoding)
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


@requires(Autoencoding)
def anomaly(ctx: EvalContext, ood_data=None, ood_required: bool = False) -> dict[str, float]:
    """AUROC of the anomaly scores (reconstruction error; −ELBO for a VAE): one-class when the run kept only some
    classes (``data.train_classes``: ``test/anomaly/oneclass_auroc``), and the test split against the test split of
    ``ood_data`` (any datamodule of the same image shape: ``test/anomaly/ood_auroc``, ``ood_auroc_elbo``).
    Per-image scores go to ``anomaly_scores.npz`` (ROC curves). A set that cannot be read is skipped with a
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
