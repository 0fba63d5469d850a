"""How useful codes are as features: linear-probe and k-NN accuracy (scikit-learn)."""

from __future__ import annotations

import numpy as np
from torch import Tensor


def linear_probe_accuracy(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, max_iter: int = 1000, seed: int = 0
) -> float:
    """Accuracy in [0, 1] of logistic regression on standardized codes (fit on train, score on test)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    clf.fit(np.asarray(train_x), np.asarray(train_y))
    return float(clf.score(np.asarray(test_x), np.asarray(test_y)))


def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int = 5) -> float:
    """Accuracy in [0, 1] of a k-nearest-neighbour classifier (Euclidean, majority vote) on raw codes."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=k, n_jobs=-1).fit(np.asarray(train_x), np.asarray(train_y))
    return float(clf.score(np.asarray(test_x), np.asarray(test_y)))
