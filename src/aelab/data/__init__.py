"""LightningDataModules behind one data contract (:class:`ImageData`): MNIST, Fashion-MNIST, any folder of images,
scikit-learn's 8×8 digits and patches of bundled photographs, and tables (any CSV or Parquet file; the bundled
breast cancer and wine sets), interaction logs (users' item vectors; MovieLens) time series (windows; bundled ECG and sensor series) and text (token sequences; bundled movie-review snippets), with a device-resident fast path."""

from aelab.data.base import ImageDataModule, TensorDataModule
from aelab.data.bundled import DigitsDataModule, PhotoCropsDataModule, PhotoPatchesDataModule
from aelab.data.contract import SAMPLE_KINDS, Data, ImageData
from aelab.data.folder import ImageFolderDataModule
from aelab.data.interactions import InteractionDataModule, MovieLensDataModule
from aelab.data.mnist import FashionMNISTDataModule, MNISTDataModule
from aelab.data.resident import ResidentLoader, to_unit
from aelab.data.series_sets import (
    GutenTAGECGDataModule,
    InternalBleedingDataModule,
    MITDBDataModule,
    UCROneClassDataModule,
    YahooDataModule,
)
from aelab.data.tabular import BreastCancerDataModule, TableTransform, TabularDataModule, WineDataModule
from aelab.data.text import RottenTomatoesDataModule, TextDataModule
from aelab.data.timeseries import TimeSeriesDataModule

__all__ = [
    "RottenTomatoesDataModule",
    "TextDataModule",
    "GutenTAGECGDataModule",
    "InternalBleedingDataModule",
    "MITDBDataModule",
    "TimeSeriesDataModule",
    "UCROneClassDataModule",
    "YahooDataModule",
    "SAMPLE_KINDS",
    "Data",
    "InteractionDataModule",
    "MovieLensDataModule",
    "BreastCancerDataModule",
    "TableTransform",
    "TabularDataModule",
    "WineDataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageData",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "PhotoCropsDataModule",
    "PhotoPatchesDataModule",
    "ResidentLoader",
    "TensorDataModule",
    "to_unit",
]
