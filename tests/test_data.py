"""MNISTDataModule on synthetic IDX files: splits, ranges, both loading paths, sharding, errors."""

from __future__ import annotations

import urllib.error
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DistributedSampler

from aelab.data import FashionMNISTDataModule, MNISTDataModule, ResidentLoader
from aelab.data.mnist import RAW_FILES
from conftest import make_fake_mnist


def dm_for(root, **kw) -> MNISTDataModule:
    kw = {"val_size": 100, "batch_size": 32, "download": False, **kw}
    dm = MNISTDataModule(data_dir=str(root), **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def fake_trainer(rank: int, world: int) -> SimpleNamespace:
    return SimpleNamespace(
        global_rank=rank, world_size=world, strategy=SimpleNamespace(root_device=torch.device("cpu"))
    )


def test_splits_are_disjoint_and_test_is_official(fake_data_dir):
    dm = dm_for(fake_data_dir)
    (xt, _), (xv, _), (xs, _) = (dm.split_tensors(s) for s in ("train", "val", "test"))
    assert (len(xt), len(xv), len(xs)) == (500, 100, 200)
    # train and val partition the official training images; test is the official test file
    flat = lambda x: {bytes(r.numpy()) for r in x.flatten(1)}  # noqa: E731
    assert not flat(xt) & flat(xv)
    import torchvision

    assert torch.equal(xs, torchvision.datasets.MNIST(str(fake_data_dir), train=False).data.unsqueeze(1))


def test_split_is_seeded(fake_data_dir):
    a, b = dm_for(fake_data_dir), dm_for(fake_data_dir)
    assert torch.equal(a.split_tensors("val")[0], b.split_tensors("val")[0])
    c = dm_for(fake_data_dir, split_seed=7)
    assert not torch.equal(a.split_tensors("val")[0], c.split_tensors("val")[0])


@pytest.mark.parametrize("resident", [True, False])
def test_batches_are_float_images_in_unit_range(fake_data_dir, resident):
    dm = dm_for(fake_data_dir, resident=resident)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    assert y.dtype == torch.long and y.shape == (32,)


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [b for b in loader]


def test_resident_and_dataloader_paths_yield_the_same_batches(fake_data_dir):
    res = dm_for(fake_data_dir, resident=True).train_dataloader()
    dl = dm_for(fake_data_dir, resident=False).train_dataloader()
    assert isinstance(res, ResidentLoader) and len(res) == len(dl)
    for epoch in (0, 1):
        for (xa, ya), (xb, yb) in zip(_epoch(res, epoch), _epoch(dl, epoch), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # reshuffled per epoch, same set of images each epoch
    e0, e1 = torch.cat([y for _, y in _epoch(res, 0)]), torch.cat([y for _, y in _epoch(res, 1)])
    assert not torch.equal(e0, e1)
    assert torch.equal(e0.sort().values, e1.sort().values)


@pytest.mark.parametrize("resident", [True, False])
def test_two_ranks_shard_like_distributed_sampler(fake_data_dir, resident):
    shards = []
    for rank in (0, 1):
        dm = MNISTDataModule(
            data_dir=str(fake_data_dir), val_size=100, batch_size=32, download=False, resident=resident
        )
        dm.trainer = fake_trainer(rank, 2)
        dm.setup("fit")
        loader = dm.train_dataloader()
        xs = torch.cat([x for x, _ in _epoch(loader, 3)])
        assert len(xs) == len(DistributedSampler(range(500), num_replicas=2, rank=rank))
        assert next(iter(loader))[0].shape[0] == 16  # global batch 32 over 2 ranks
        shards.append({bytes(r.numpy()) for r in xs.flatten(1)})
    assert not shards[0] & shards[1]  # 500 images, 250 per rank, no overlap
    assert len(shards[0] | shards[1]) == len(dm.split_tensors("train")[0])


def test_batch_size_must_divide_by_world_size(fake_data_dir):
    dm = MNISTDataModule(data_dir=str(fake_data_dir), batch_size=33, download=False)
    dm.trainer = fake_trainer(0, 2)
    with pytest.raises(ValueError, match="multiple of 2"):
        dm.setup("fit")


def test_train_classes_filter_train_and_val_only(fake_data_dir):
    dm = dm_for(fake_data_dir, train_classes=[3])
    assert set(dm.split_tensors("train")[1].tolist()) == {3}
    assert set(dm.split_tensors("val")[1].tolist()) == {3}
    assert set(dm.split_tensors("test")[1].tolist()) == set(range(10))


def test_missing_files_give_an_actionable_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.MNIST.download", offline)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True)
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str((tmp_path / "MNIST" / "raw").resolve()) in msg
    assert all(name in msg for name in RAW_FILES)
    assert "make data" in msg and "download failed" in msg


def test_gzipped_files_are_unpacked(tmp_path):
    make_fake_mnist(tmp_path, compress=True)
    dm = dm_for(tmp_path)
    assert len(dm.split_tensors("test")[0]) == 200


def test_truncated_file_names_the_fix(tmp_path):
    make_fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RuntimeError) as err:
        dm_for(tmp_path)
    msg = str(err.value)  # the message itself, not pytest's tmp folder name
    assert msg.startswith(str(path)) and "the file is truncated" in msg and "make data" in msg


def test_fashion_mnist_reads_its_own_folder(fake_data_dir):
    dm = FashionMNISTDataModule(data_dir=str(fake_data_dir), val_size=100, download=False)
    dm.prepare_data()
    dm.setup()
    assert dm.raw_dir.name == "raw" and dm.raw_dir.parent.name == "FashionMNIST"
    assert len(dm.split_tensors("test")[0]) == 200
