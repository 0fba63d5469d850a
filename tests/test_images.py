"""Your own images: image folders (grey, RGB, mixed and odd sizes, with and without labels), the decode cache,
every bad input, the bundled sets, and models, evaluation and tools on a shape that is not MNIST's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aelab.data import (
    DigitsDataModule,
    ImageData,
    ImageFolderDataModule,
    MNISTDataModule,
    PhotoPatchesDataModule,
    folder,
)
from aelab.errors import ConfigError, DataError, MissingDataError
from conftest import make_image_folder


def folder_dm(root, **kw) -> ImageFolderDataModule:
    kw = {
        "image_size": 32,
        "channels": 3,
        "val_size": 4,
        "test_size": 4,
        "batch_size": 8,
        "data_dir": str(root.parent / "data"),
        **kw,
    }
    return ImageFolderDataModule(root=str(root), **kw)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("labelled", [True, False])
def test_image_folder_layouts(tmp_path, channels, labelled):
    root = make_image_folder(tmp_path / "imgs", channels=3 if channels == 3 else 1, labelled=labelled)
    dm = folder_dm(root, channels=channels, image_size=[24, 30])
    assert isinstance(dm, ImageData)
    x, y = dm.split_tensors("train")
    assert x.dtype == torch.uint8 and x.shape[1:] == (channels, 24, 30) == dm.image_shape
    sizes = [len(dm.split_tensors(s)[0]) for s in ("train", "val", "test")]
    assert sizes == [16, 4, 4]
    if labelled:
        assert dm.class_names == ["class_0", "class_1"] and dm.num_classes == 2 and set(y.tolist()) == {0, 1}
    else:
        assert y is None and dm.class_names is None and dm.num_classes is None
    batch_x, batch_y = next(iter(dm.train_dataloader()))
    assert batch_x.shape == (8, channels, 24, 30) and batch_x.min() >= 0 and batch_x.max() <= 1
    assert (batch_y == -1).all() == (not labelled)


def test_resize_and_center_crop_match_torchvision(tmp_path):
    """Scaled down to cover the size, then center-cropped: torchvision's Resize(shorter side) + CenterCrop."""
    import torchvision.transforms.functional as TF

    root = tmp_path / "one"
    root.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (50, 41, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(root / "a.png")
    for i in range(9):
        Image.fromarray(rgb).save(root / f"b{i}.png")
    x, _ = folder_dm(root, image_size=32, val_size=1, test_size=1).split_tensors("train")
    ref = TF.center_crop(TF.resize(Image.fromarray(rgb), 32, antialias=True), 32)
    assert torch.equal(x[0], torch.from_numpy(np.asarray(ref).transpose(2, 0, 1).copy()))


def test_decode_cache_is_reused_and_follows_changes(tmp_path, monkeypatch):
    import aelab.data.folder as folder

    root = make_image_folder(tmp_path / "imgs")
    first = folder_dm(root).split_tensors("train")[0]
    caches = list((tmp_path / "data" / "aelab-cache").glob("image_folder-*.npz"))
    assert len(caches) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder, "load_image", no_decoding)
    assert torch.equal(folder_dm(root).split_tensors("train")[0], first)  # read from the cache
    monkeypatch.undo()
    # a changed folder (one more image) is decoded again into a new cache file
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "class_0" / "new.png")
    folder_dm(root).split_tensors("train")
    assert len(list((tmp_path / "data" / "aelab-cache").glob("image_folder-*.npz"))) == 2


def test_a_half_written_cache_is_never_read_back(tmp_path):
    root = make_image_folder(tmp_path / "imgs")
    good = folder_dm(root).split_tensors("train")[0]
    (cache,) = (tmp_path / "data" / "aelab-cache").glob("image_folder-*.npz")
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # a crash mid-write (not atomic)
    assert torch.equal(folder_dm(root).split_tensors("train")[0], good)  # decoded again, not read broken
    assert not list(cache.parent.glob(".*.tmp"))  # the atomic writer leaves no temporary file


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncated", "cannot be decoded"),
        ("not_an_image", "cannot be decoded"),
        ("text_file", "is not an image file"),
        ("empty_class", "holds no images"),
        ("too_small", "smaller than data.image_size"),
        ("loose_file", "lies beside the class folders"),
    ],
)
def test_bad_images_are_named_before_training(tmp_path, damage, expected):
    root = make_image_folder(tmp_path / "imgs")
    bad = root / "class_1" / "img_001.png"
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    elif damage == "not_an_image":
        bad.write_bytes(b"PK\x03\x04 this is a zip archive, not a PNG")
    elif damage == "text_file":
        bad = root / "class_1" / "notes.txt"
        bad.write_text("labels: ...")
    elif damage == "empty_class":
        bad = root / "class_2"
        bad.mkdir()
    elif damage == "too_small":
        Image.fromarray(np.zeros((10, 40, 3), np.uint8)).save(bad)
    else:
        bad = root / "stray.png"
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(bad)
    with pytest.raises(DataError, match=expected) as err:
        folder_dm(root, **({"upscale": False} if damage == "too_small" else {})).setup()
    assert str(bad) in str(err.value)


def test_a_small_image_is_enlarged_by_default_and_counted(tmp_path, caplog):
    """A 10×40 image among 40×40 ones: enlarged to cover 32×32 (torchvision's antialiased resize, then the center
    crop: computed here) and counted in the log; ``upscale=False`` refuses it (test above)."""
    import torchvision.transforms.functional as TF

    root = make_image_folder(tmp_path / "imgs")
    small = root / "class_1" / "img_001.png"
    pixels = np.random.default_rng(0).integers(0, 256, (10, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(small)
    with caplog.at_level("INFO", logger="aelab"):
        got, enlarged = folder.load_image(small, 3, (32, 32))
        folder_dm(root).setup()
    assert enlarged
    with Image.open(small) as img:
        want = TF.center_crop(TF.resize(img.convert("RGB"), [32, 128], antialias=True), [32, 32])
    np.testing.assert_array_equal(got, np.asarray(want).transpose(2, 0, 1))
    assert any("1 of" in r.getMessage() and "enlarged" in r.getMessage() for r in caplog.records)


def test_a_split_that_rounds_to_no_image_says_so(tmp_path):
    root = tmp_path / "three"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / f"{i}.png")
    with pytest.raises(ConfigError, match=r"data.test_size=0.1 of 3 images is 0 images"):
        folder_dm(root, test_size=0.1, val_size=1).setup()


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(MissingDataError, match="data.root"):
        folder_dm(tmp_path / "nope").setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        folder_dm(tmp_path / "empty").setup()
    with pytest.raises(ConfigError, match="data.channels"):
        folder_dm(tmp_path / "empty", channels=2)


def test_test_root_uses_the_training_classes(tmp_path):
    train = make_image_folder(tmp_path / "train", n=20)
    test = make_image_folder(tmp_path / "test", n=6, seed=1)
    dm = folder_dm(train, test_root=str(test), val_size=4)
    assert [len(dm.split_tensors(s)[0]) for s in ("train", "val", "test")] == [16, 4, 6]
    assert set(dm.split_tensors("test")[1].tolist()) == {0, 1}
    (test / "class_9").mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(test / "class_9" / "x.png")
    with pytest.raises(DataError, match="class_9"):
        folder_dm(train, test_root=str(test)).setup()


def test_digits_and_photo_patches():
    digits = DigitsDataModule()
    x, y = digits.split_tensors("train")
    assert x.shape[1:] == (1, 8, 8) and [len(digits.split_tensors(s)[0]) for s in ("train", "val", "test")] == [
        1257, 180, 360,
    ]  # fmt: skip
    assert x.max() == 255 and set(torch.unique(x).tolist()) <= {round(v * 255 / 16) for v in range(17)}
    assert digits.num_classes == 10
    photos = PhotoPatchesDataModule(stride=32)
    train, _ = photos.split_tensors("train")
    test, labels = photos.split_tensors("test")
    assert train.shape[1:] == test.shape[1:] == (3, 32, 32) and labels is None
    whole = photos.test_photos()
    assert len(whole) == 3 and all(p.shape[0] == 3 and min(p.shape[1:]) > 200 for p in whole)
    # the test patches are the held-out photographs' non-overlapping patches, none of a training photograph
    flat = lambda t: {bytes(r.numpy()) for r in t.flatten(1)}  # noqa: E731
    assert not flat(train) & flat(test)
    assert len(test) == sum((p.shape[1] // 32) * (p.shape[2] // 32) for p in whole)


def test_mnist_split_and_numbers_unchanged_by_the_contract(fake_data_dir):
    """MNIST through the base class: the same split as before (a seeded permutation of the 600, val first) and
    the images as (N, 1, 28, 28)."""
    dm = MNISTDataModule(str(fake_data_dir), val_size=100, download=False)
    pool, _ = dm.load_pool()
    perm = torch.randperm(600, generator=torch.Generator().manual_seed(42))
    assert torch.equal(dm.split_tensors("val")[0], pool[perm[:100]])
    assert torch.equal(dm.split_tensors("train")[0], pool[perm[100:]])
    assert dm.image_shape == (1, 28, 28) and dm.class_names == [str(d) for d in range(10)]


@pytest.mark.slow
def test_rgb_folder_end_to_end_through_the_tools(tmp_path, fake_data_dir, monkeypatch):
    """The issue's run: a conv AE on a folder of RGB PNGs of mixed sizes, evaluated with every section that applies
    (raw bytes 3072; an image folder as the OOD set), compressed and decompressed, resumed, swept with -m."""
    from aelab.compress import compress, decompress
    from aelab.eval import evaluate
    from aelab.train import main as train_main
    from aelab.train import resume
    from conftest import compose_cfg
    from helpers import run_inprocess

    root = make_image_folder(tmp_path / "imgs", n=40)
    data = [f"data.root={root}", "data.image_size=32", "data.channels=3", "data.val_size=8", "data.test_size=8",
            "data.batch_size=8", "data.data_dir=" + str(tmp_path / "cache")]  # fmt: skip
    small = ["trainer=cpu", "trainer.max_epochs=1", "callbacks=minimal", "trainer.enable_progress_bar=false",
             "trainer.enable_model_summary=false", "trainer.num_sanity_val_steps=0"]  # fmt: skip
    run_dir = tmp_path / "run"
    run_inprocess(train_main, ["data=image_folder", *data, "model=conv_ae", *small, f"hydra.run.dir={run_dir}"],
                  monkeypatch, fake_data_dir)  # fmt: skip
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    ood = [f"ood.root={make_image_folder(tmp_path / 'other', n=12, seed=5)}", "ood.image_size=32", "ood.channels=3",
           "ood.test_size=0.5"]  # fmt: skip
    cfg = compose_cfg(
        "eval",
        [f"ckpt_path={ckpt}", "trainer=cpu", "suite.sections.classical_codecs.enabled=true",  # a conv AE's: asked
         "suite.codec_images=8",
         "suite.sections.fid.num_samples=8", "suite.sections.fid.classifier_steps=20", "suite.sections.fid.min_classifier_acc=0", "data@ood=image_folder", *ood],
        tmp_path / "eval",
        fake_data_dir,
    )  # fmt: skip
    metrics, _ = evaluate(cfg)
    assert metrics["test/compression/raw_bytes_per_image"] == 3072
    for key in ("test/features/linear_probe_acc", "test/anomaly/ood_auroc", "test/generation/fid",
                "test/compression/jpeg_q50_psnr", "test/compression/webp_q50_bits_per_pixel", "test/ssim"):  # fmt: skip
        assert key in metrics, key
    codes = tmp_path / "codes.npz"
    assert compress([str(ckpt), "--out", str(codes)]) == 0
    assert decompress([str(ckpt), str(codes), "--out-dir", str(tmp_path / "png"), "--limit", "2"]) == 0
    with Image.open(tmp_path / "png" / "00000.png") as img:
        assert img.size == (32, 32) and img.mode == "RGB"
    resume(str(run_dir), ["trainer.max_epochs=2"])
    # two epochs completed (the "epoch" field depends on whether the second epoch's validation improved: then
    # last.ckpt is written at its validation, else again at the end of training)
    assert (
        torch.load(ckpt, weights_only=True)["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"]
        == 2
    )
    sweep = tmp_path / "sweep"
    run_inprocess(train_main, ["-m", "data=image_folder", *data, "model=conv_ae", *small, f"hydra.sweep.dir={sweep}",
                               "seed=1,2"], monkeypatch, fake_data_dir)  # fmt: skip
    assert all((sweep / j / "metrics.json").is_file() for j in ("0", "1"))


def test_a_cache_of_other_files_is_never_used(tmp_path):
    """A cache file whose fingerprint is another file list's (a stale or foreign file under the expected name) is
    decoded afresh, never read back."""
    import aelab.data.folder as folder

    root = make_image_folder(tmp_path / "imgs")
    old = folder_dm(root).split_tensors("train")[0]
    (stale,) = (tmp_path / "data" / "aelab-cache").glob("image_folder-*.npz")
    target = root / "class_0" / "img_000.png"
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(target)  # same count, new content and mtime
    files, _, _ = folder.scan_folder(root)
    fp = folder.folder_fingerprint(files, 3, (32, 32))
    stale.rename(stale.parent / f"image_folder-{fp[:20]}.npz")  # the old images under the new name
    pool, _ = folder_dm(root).load_pool()
    fresh = torch.from_numpy(np.stack([folder.load_image(f, 3, (32, 32))[0] for f in files]))
    assert torch.equal(pool, fresh) and not torch.equal(folder_dm(root).split_tensors("train")[0], old)
    cached = folder.read_cache(stale.parent / f"image_folder-{fp[:20]}.npz", fp, len(files))
    assert cached is not None and np.array_equal(
        cached["images"], fresh.numpy()
    )  # rewritten with the new images


EVAL_SMALL = ["trainer=cpu", "suite.batch_size=64", "suite.sections.classical_codecs=null", "suite.sections.compression.jpeg_qualities=[50]",
              "suite.sections.likelihood.k=10", "suite.sections.likelihood.chunk=10",
              "suite.sections.likelihood.num_images=32", "suite.sections.denoising.pca_components=[2,4]",
              "suite.sections.fid.num_samples=64", "suite.sections.fid.classifier_steps=20", "suite.sections.fid.min_classifier_acc=0"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "data", [["data=digits"], ["data=photo_patches", "data.stride=64"]], ids=["digits", "photos"]
)
def test_bundled_data_trains_and_evaluates_every_model(tmp_path, fake_data_dir, monkeypatch, capsys, data):
    """The five models train on each bundled set and aelab-eval runs every section that applies to it. The default
    out-of-distribution set (Fashion-MNIST, 28×28 grey) does not fit, so that comparison is skipped with a line
    naming the override that chooses one; a set chosen on the command line that does not fit stops the run."""
    import json

    from aelab.eval import main as eval_main
    from aelab.train import main as train_main
    from helpers import run_inprocess

    small = ["trainer=cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
             "callbacks=minimal", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
             "trainer.num_sanity_val_steps=0", "data.batch_size=16"]  # fmt: skip
    labelled = data[0] == "data=digits"
    for model in ("ae", "dae", "vae", "conv_ae", "conv_vae"):
        run_dir, eval_dir = tmp_path / model, tmp_path / f"{model}-eval"
        run_inprocess(
            train_main,
            [*data, f"model={model}", *small, f"hydra.run.dir={run_dir}"],
            monkeypatch,
            fake_data_dir,
        )
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        run_inprocess(
            eval_main,
            [f"ckpt_path={ckpt}", *EVAL_SMALL, f"hydra.run.dir={eval_dir}"],
            monkeypatch,
            fake_data_dir,
        )
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        assert metrics["test/compression/raw_bytes_per_image"] == (1 * 8 * 8 if labelled else 3 * 32 * 32)
        assert "test/anomaly/ood_auroc" not in metrics and "test/compression/png_bytes_per_image" in metrics
        assert ("test/generation/fid" in metrics) == labelled and (
            "test/features/linear_probe_acc" in metrics
        ) == labelled
        assert ("test/likelihood/nll_iwae" in metrics) == model.endswith("vae")
        log_text = "".join(p.read_text() for p in eval_dir.glob("*.log"))
        assert (
            "default out-of-distribution set (FashionMNISTDataModule) skipped: its images are [1, 28, 28]"
            in log_text
        )
    with pytest.raises(SystemExit):
        run_inprocess(eval_main, [f"ckpt_path={ckpt}", *EVAL_SMALL, "data@ood=mnist", "ood.val_size=100",
                                  "ood.download=false", f"hydra.run.dir={tmp_path / 'mismatch'}"], monkeypatch, fake_data_dir)  # fmt: skip
    assert "the out-of-distribution set MNIST has images [1, 28, 28]" in capsys.readouterr().err


def _disc_folder(root, channels: int, n: int = 300, size: int = 16, seed: int = 0):
    """``n`` PNGs of a soft disc of random centre, radius (and colour, RGB) on a dark background: few factors, a
    curved image manifold (what a linear code of the same size fits worse)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cy, cx = rng.uniform(3, size - 3, 2)
        r = rng.uniform(1.5, 4.5)
        alpha = np.clip(r + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1)[..., None]
        colour = rng.uniform(120, 255, 3) if channels == 3 else np.full(3, 230.0)
        img = (20 + alpha * (colour - 20)).round().astype(np.uint8)
        pil = Image.fromarray(img, mode="RGB")
        (pil.convert("L") if channels == 1 else pil).save(root / f"img_{i:03d}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "rgb"])
@pytest.mark.parametrize("model", ["ae", "conv_ae"])
def test_on_a_folder_of_a_few_hundred_images_every_autoencoder_beats_pca_of_its_code_size(
    tmp_path, fake_data_dir, channels, model
):
    """The default MLP and conv AE (an image folder: the PCA start) trained with their default settings on a generated
    grey or RGB folder of 300 images reach a test MSE at most that of PCA with as many components as the code (fitted
    here, on the same training split, with scikit-learn)."""
    from sklearn.decomposition import PCA

    from aelab.data import ImageFolderDataModule
    from aelab.train import train
    from conftest import compose_cfg
    from helpers import read_metrics

    root = _disc_folder(tmp_path / "discs", channels)
    code = 4 if channels == 1 else 6
    overrides = [f"model={model}", "data=image_folder", f"data.root={root}", "data.image_size=16",
                 f"data.channels={channels}", "data.val_size=30", "data.test_size=30", "data.batch_size=30",
                 f"model.latent_dim={code}", "trainer=cpu", "trainer.num_sanity_val_steps=0",
                 "trainer.enable_model_summary=false", "callbacks=minimal", "logger=csv"]  # fmt: skip
    train(compose_cfg("train", overrides, tmp_path / "run", fake_data_dir))
    dm = ImageFolderDataModule(
        str(root), image_size=16, channels=channels, val_size=30, test_size=30, data_dir=str(fake_data_dir)
    )
    x_train = dm.split_tensors("train")[0].flatten(1).double().numpy() / 255
    x_test = dm.split_tensors("test")[0].flatten(1).double().numpy() / 255
    pca = PCA(code).fit(x_train)
    pca_mse = float(((pca.inverse_transform(pca.transform(x_test)) - x_test) ** 2).mean())
    mse = read_metrics(tmp_path / "run")["test/mse"]
    assert mse <= pca_mse, (
        f"{model} on {channels}-channel discs: test MSE {mse:.5f} vs PCA-{code} {pca_mse:.5f}"
    )
