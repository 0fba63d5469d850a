"""Where the Hydra configs live, and the OmegaConf resolvers they use.

The configs live in ``conf/`` at the repository's top level. An editable install finds them next to
``src/``; a wheel carries a copy as ``aelab/conf``. No environment variable is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

_PKG_DIR = Path(__file__).resolve().parents[1]  # src/aelab
_REPO_CANDIDATE = _PKG_DIR.parents[1]  # the checkout, for an editable install


def _find_conf_dir() -> Path:
    for candidate in (_REPO_CANDIDATE / "conf", _PKG_DIR / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"aelab's Hydra configs were not found in {_REPO_CANDIDATE / 'conf'} nor {_PKG_DIR / 'conf'}; "
        "reinstall aelab (`make install`) from a full checkout."
    )


CONF_DIR: Path = _find_conf_dir()


def repo_root() -> str:
    """The checkout holding ``conf/`` (editable install), else the current working directory."""
    if CONF_DIR.parent == _REPO_CANDIDATE:
        return str(_REPO_CANDIDATE)
    return os.getcwd()


def register_resolvers() -> None:
    """Register ``${aelab.root:}`` and ``${aelab.mul:a,b}`` (idempotent)."""
    if not OmegaConf.has_resolver("aelab.root"):
        OmegaConf.register_new_resolver("aelab.root", repo_root)
    if not OmegaConf.has_resolver("aelab.mul"):
        OmegaConf.register_new_resolver("aelab.mul", lambda a, b: a * b)
