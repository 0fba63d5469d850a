"""The sections of the evaluation suite: each a function ``section(ctx, **params) -> {metric: value}``.

``conf/suite/<preset>.yaml: sections`` chooses them by ``_target_`` (``_partial_: true``): a new measurement is a
new function here (or anywhere importable) plus a config entry. Each section applies only where it makes sense
(likelihood to :class:`~aelab.models.capabilities.Probabilistic` models, the probe and the Fréchet distance to
labelled data, image sections to images, the recommendation figures to interaction data: the sample ``kinds`` a
section declares with :func:`~aelab.evaluation.context.requires`) and otherwise returns ``{}``, saying once why.
All figures are on the test split; baselines are fitted on the training split. Shapes, byte counts and class
counts come from the data (:class:`aelab.data.ImageData`), never from MNIST.

Each section lives in the module of its topic (:mod:`.reconstruction`, :mod:`.representation`, :mod:`.likelihood`,
:mod:`.generation`, :mod:`.compression`, :mod:`.recommendation`, :mod:`.series`, :mod:`.text`); they are all importable from here, the
``_target_`` path the suite's configs use (``aelab.evaluation.sections.<name>``).
"""

from aelab.evaluation.sections.compression import classical_codecs, codec, compression
from aelab.evaluation.sections.generation import default_sampler, fid, generation
from aelab.evaluation.sections.likelihood import likelihood
from aelab.evaluation.sections.recommendation import recommend
from aelab.evaluation.sections.reconstruction import denoising, reconstruction
from aelab.evaluation.sections.representation import anomaly, features
from aelab.evaluation.sections.series import series_anomaly
from aelab.evaluation.sections.text import text

__all__ = [
    "anomaly",
    "classical_codecs",
    "codec",
    "compression",
    "default_sampler",
    "denoising",
    "features",
    "fid",
    "generation",
    "likelihood",
    "recommend",
    "reconstruction",
    "series_anomaly",
    "text",
]
