"""aelab: an experiment framework for autoencoders on PyTorch Lightning and Hydra.

Importing :mod:`aelab` registers the OmegaConf resolvers the configs in ``conf/`` use
(see :mod:`aelab.utils.config`).
"""

import warnings

from aelab.utils.config import CONF_DIR, register_resolvers

# conf/hydra/launcher/submitit_*.yaml keep the submitit plugin's names (hydra/launcher=submitit_slurm) and are
# checked against its schema of the same name, which Hydra 1.3 (pinned <1.4) still does but calls deprecated.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name")

__version__ = "0.1.0"
__all__ = ["CONF_DIR", "__version__"]

register_resolvers()
