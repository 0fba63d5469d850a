"""Anomaly detection under the one-class protocol: the figures of a score (AUROC, average precision, F1 at a
threshold chosen on the validation inliers) and the baselines every model is measured beside, fitted on the same
training records: scikit-learn's IsolationForest, LocalOutlierFactor (novelty), OneClassSVM, PCA reconstruction
error, and PyOD's AutoEncoder when PyOD is installed (the ``peers`` extra)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

log = logging.getLogger("aelab")

BASELINES = ("iforest", "lof", "ocsvm", "pca", "pyod_ae", "rockad")  # rockad: whole series only


def detection_figures(test_scores, is_anomaly, val_scores, percentile: float) -> dict[str, float]:
    """``auroc``, ``average_precision`` and ``f1`` of scores (higher = more anomalous) against 0/1 labels, the
    threshold being the ``percentile`` of the validation inliers' scores (scikit-learn's metrics).

    Returns:
        ``{"auroc", "average_precision", "f1", "threshold"}``.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    y = np.asarray(is_anomaly).astype(int)
    s = np.asarray(test_scores, dtype=np.float64)
    threshold = float(np.percentile(np.asarray(val_scores, dtype=np.float64), percentile))
    return {
        "auroc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        "f1": float(f1_score(y, s > threshold, zero_division=0.0)),
        "threshold": threshold,
    }


def _pyod_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyod") is not None


def baseline_scorers(code_size: int, seed: int = 0) -> dict[str, Callable]:
    """Each baseline as ``fit(train (N, F)) → score(x (M, F)) → (M,)`` (higher = more anomalous): defaults of each
    library, PCA with ``code_size`` components (the model's code size, at most ``F − 1``)."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    def iforest(train):
        model = IsolationForest(random_state=seed).fit(train)
        return lambda x: -model.score_samples(x)

    def lof(train):
        model = LocalOutlierFactor(n_neighbors=min(20, len(train) - 1), novelty=True).fit(train)
        return lambda x: -model.score_samples(x)

    def ocsvm(train):
        model = OneClassSVM(gamma="scale").fit(train)
        return lambda x: -model.score_samples(x)

    def pca(train):
        k = max(1, min(int(code_size), train.shape[1] - 1, len(train) - 1))
        model = PCA(k, random_state=seed).fit(train)
        return lambda x: ((model.inverse_transform(model.transform(x)) - x) ** 2).mean(1)

    def pyod_ae(train):
        import os

        from pyod.models.auto_encoder import AutoEncoder
        from pytorch_lightning.utilities.seed import isolate_rng

        # PyOD seeds Python's, NumPy's and torch's global generators (and PYTHONHASHSEED): the sections after it
        # keep their own draws
        hashseed = os.environ.get("PYTHONHASHSEED")
        with isolate_rng(include_cuda=False):
            # PyOD drops the last partial batch: fewer records than its 32 would leave it no batch to train on
            batch = min(32, len(train))
            model = AutoEncoder(random_state=seed, verbose=0, device="cpu", batch_size=batch).fit(train)
        if hashseed is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = hashseed
        return lambda x: model.decision_function(x)

    scorers = {"iforest": iforest, "lof": lof, "ocsvm": ocsvm, "pca": pca}
    if _pyod_available():
        scorers["pyod_ae"] = pyod_ae
    else:
        log.info("baseline pyod_ae skipped: PyOD is not installed (pip install -e '.[peers]')")
    return scorers
