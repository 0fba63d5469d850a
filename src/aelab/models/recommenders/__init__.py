"""Autoencoders for top-N recommendation from implicit feedback: plain ``torch.nn.Module`` s with no Lightning in them.

One example is a user's item vector ``x`` ``(I,)`` of 0/1 entries (batches ``(B, I)`` float32). Training batches are
``(x, users)``, ``users`` the int64 rows ``(B,)`` of the training users; validation and test batches are
``(fold-in items (B, I), held-out items (B, I))`` of users never seen in training (strong generalization, Liang et
al., "Variational Autoencoders for Collaborative Filtering", WWW 2018, §4.2). Every model's ``ModelOutput`` holds the
scores it ranks items by: ``reconstruction`` in the data's units (item probabilities: a softmax for the multinomial
models, a sigmoid for CDAE, EASE's scores themselves), ``logits`` the raw scores, ``output="identity"``.

* :class:`MultDAE`, :class:`MultVAE`: the multinomial denoising and variational autoencoders (Liang et al. 2018);
* :class:`RecVAE`: the composite prior, a KL weight per user and alternating encoder/decoder epochs (Shenbin et al.,
  "RecVAE: a New Variational Autoencoder for Top-N Recommendations with Implicit Feedback", WSDM 2020);
* :class:`CDAE`: a denoising autoencoder with a vector per training user (Wu et al., "Collaborative Denoising
  Auto-Encoders for Top-N Recommender Systems", WSDM 2016);
* :class:`EASE`: the closed-form item-item model (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
  WWW 2019), fitted once at the start of a run; :func:`ease_weights` is its formula.

Losses are means over users of per-user sums over items, in nats (EASE: a squared error in item units).
"""

from aelab.models.recommenders.cdae import CDAE
from aelab.models.recommenders.common import float32_scores, multinomial_log_likelihood
from aelab.models.recommenders.ease import EASE, ease_from_gram, ease_weights, item_gram
from aelab.models.recommenders.multinomial import MultDAE, MultVAE
from aelab.models.recommenders.recvae import RecVAE, RecVAEEncoder

__all__ = [
    "CDAE",
    "EASE",
    "MultDAE",
    "MultVAE",
    "RecVAE",
    "RecVAEEncoder",
    "ease_from_gram",
    "ease_weights",
    "float32_scores",
    "item_gram",
    "multinomial_log_likelihood",
]
