"""LightningDataModules: MNIST and Fashion-MNIST, with a device-resident fast path."""

from aelab.data.mnist import FashionMNISTDataModule, MNISTDataModule
from aelab.data.resident import ResidentLoader, ShardSampler, to_unit

__all__ = ["FashionMNISTDataModule", "MNISTDataModule", "ResidentLoader", "ShardSampler", "to_unit"]
