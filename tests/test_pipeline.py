"""aelab.pipeline: a fixed-seed one-epoch run gives the metrics stored in tests/expected/run_metrics.json (any change to
a metric, a loss or the training loop shows up as a diff), and a trainer this machine cannot run is refused in one
line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import SMALL, compose_cfg

EXPECTED = Path(__file__).parent / "expected" / "run_metrics.json"
GOLDEN_RUN = [*SMALL, "model=vae", "model.latent_dim=4", "trainer.max_epochs=1", "trainer.precision=32-true",
              "callbacks=minimal", "logger=none", "seed=7"]  # fmt: skip


def golden_metrics(tmp_path, data_dir) -> dict[str, float]:
    from aelab.pipeline import train

    cfg = compose_cfg("train", [o for o in GOLDEN_RUN if not o.startswith("callbacks.")], tmp_path, data_dir)
    metrics, _ = train(cfg)
    return {k: round(float(v), 6) for k, v in sorted(metrics.items())}


def test_a_fixed_seed_one_epoch_run_gives_the_stored_metrics(tmp_path, fake_data_dir):
    """A VAE on the synthetic digits, one epoch, seed 7, fp32: its test metrics equal the golden file's to 1e-4
    (relative). Regenerate only for an intended change, and say why in the commit:
    ``python tests/test_pipeline.py --regenerate``."""
    expected = json.loads(EXPECTED.read_text())
    got = golden_metrics(tmp_path, fake_data_dir)
    assert set(got) == set(expected["metrics"])
    for key, value in expected["metrics"].items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_a_trainer_this_machine_cannot_run_is_one_line(make_cfg):
    import torch

    from aelab.errors import AelabError, DeviceError
    from aelab.pipeline import build_trainer

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="trainer=cpu") as err:
        build_trainer(make_cfg(["trainer=gpu"], small=False).trainer, logger=False, callbacks=[])
    assert isinstance(err.value, AelabError) and "\n" not in str(err.value)


if __name__ == "__main__" and "--regenerate" in sys.argv:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_fake_mnist, make_image_folder  # noqa: F401  (the fixtures' data, made here)

    with tempfile.TemporaryDirectory() as tmp:
        data = make_fake_mnist(Path(tmp) / "data")
        metrics = golden_metrics(Path(tmp) / "run", data)
    EXPECTED.write_text(json.dumps({"run": GOLDEN_RUN, "metrics": metrics}, indent=1) + "\n")
    print(f"wrote {EXPECTED}")
