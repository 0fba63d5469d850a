"""aelab's one LightningModule: it trains, validates and tests any model of :mod:`aelab.models` or
:mod:`aelab.codecs` (a plain ``nn.Module`` whose ``forward`` returns a :class:`~aelab.models.ModelOutput`).

The model knows its objective; this module knows the loop: the optimizer and scheduler from config, the torchmetrics
of every split, the seeded randomness of validation and test, and the entropy coder's tables in every checkpoint.
Compiling, channels-last weights and the divergence check are callbacks (:mod:`aelab.callbacks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric

from aelab.errors import ConfigError, DivergenceError, divergence_message
from aelab.models.capabilities import Compressor
from aelab.models.outputs import ModelOutput
from aelab.utils.reconstruction import ReconstructionMSE

EVAL_STAGES = ("val", "test")


def data_metrics(datamodule) -> dict[str, Metric]:
    """The validation/test metrics a datamodule declares (the data contract's ``eval_metrics()``: ``mse`` and
    ``psnr`` of images, ``mse`` of table rows, held-out users' Recall@k and NDCG@k), each a torchmetrics ``Metric``
    updated with ``(x_hat, batch)``; a datamodule that declares none (a user's own ``LightningDataModule``, or
    none at all) gets the squared error of the reconstruction against ``batch[0]``."""
    declared = datamodule.eval_metrics() if hasattr(datamodule, "eval_metrics") else None
    return dict(declared) if declared is not None else {"mse": ReconstructionMSE()}


class AutoencoderModule(pl.LightningModule):
    """Trains ``net``, any aelab model: ``net(x, generator=..., step=...) → ModelOutput``.

    Args:
        net: the model (``model:`` in the config).
        optimizer: a partial optimizer taking ``params`` (``optimizer:`` in the config, ``_partial_: true``).
        scheduler: an optional partial LR scheduler taking ``optimizer`` (``scheduler:``); stepped per epoch,
            monitoring ``val/loss`` when it is a ReduceLROnPlateau, per step when ``scheduler_interval="step"``.
        scheduler_interval: ``epoch`` or ``step``.
        eval_seed: base seed of every validation/test random draw (DAE noise, binarization, posterior samples), so
            those numbers repeat across epochs, runs and ``aelab-eval`` (:meth:`eval_generator`).

    Logged (torchmetrics, reduced across DDP ranks and reset by ``self.log``): ``train/loss`` and each
    ``train/<term>`` (means since the last logging step); ``val|test/loss``, each ``val|test/<term>``, the model's
    whole-split metrics (``vq/perplexity``, ...) and the metrics the data declares for its reconstructions
    (:func:`data_metrics`: ``val|test/mse`` and, of images, ``val|test/psnr``; ``mse`` alone until :meth:`setup`
    reads the data's). The module never looks at what kind of values a model outputs: the data says what to score.

    Raises:
        ConfigError: without an optimizer.
        DivergenceError: when the validation or test loss is NaN or infinite.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        eval_seed: int = 1234,
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler_interval={scheduler_interval!r} must be epoch or step")
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.eval_seed = int(eval_seed)
        self.metrics = nn.ModuleDict({stage: nn.ModuleDict(self._split_metrics()) for stage in EVAL_STAGES})
        self._data_metrics: list[str] = []  # the names of the data's metrics among self.metrics[stage]
        self._use_data_metrics(data_metrics(None))  # until setup() reads the data's own
        self._train_sums: dict[str, Tensor] = {}
        self._train_steps = 0

    def _split_metrics(self) -> dict[str, Metric]:
        return {"loss": MeanMetric(), **getattr(self.net, "split_metrics", dict)()}

    def _use_data_metrics(self, declared: dict[str, Metric]) -> None:
        """Score the reconstructions of every evaluation split with ``declared`` (a clone per split) instead of the
        data metrics held so far."""
        for stage in EVAL_STAGES:
            metrics = self.metrics[stage]
            for name in self._data_metrics:
                del metrics[name]
            for name, metric in declared.items():
                metrics[name] = metric.clone().to(self.device)
        self._data_metrics = sorted(declared)

    @torch.no_grad()
    def metric_names(self, shape=None, datamodule=None) -> list[str]:
        """The names the validation and test splits log: ``loss``, the data's declared metrics (those of
        ``datamodule``; ``None``: of the data this module was set up with, ``mse`` before any), the model's
        whole-split metrics (its ``split_metrics()``) and the terms of its objective (its declared ``term_names()``).

        A model that declares no ``term_names()`` is run once, in eval mode, on two random examples of ``shape`` to
        see its terms (``shape=None``: its terms are left out); nothing else needs a forward pass.
        """
        data_names = self._data_metrics if datamodule is None else sorted(data_metrics(datamodule))
        names = (set(self.metrics["val"]) - set(self._data_metrics)) | {"loss", *data_names}
        if hasattr(self.net, "term_names"):
            names |= set(self.net.term_names())
        elif shape is not None:
            was = self.net.training
            out = self.net.eval()(torch.rand(2, *shape), generator=torch.Generator().manual_seed(0))
            self.net.train(was)
            names |= set(out.terms) | set(out.stats)
        return sorted(names)

    def forward(self, x: Tensor, **kwargs) -> ModelOutput:
        return self.net(x, **kwargs)

    # ------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        """The data's own validation/test metrics (:func:`data_metrics`: the squared error and PSNR of images,
        held-out users' NDCG@k) score the reconstructions from here on."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        declared = data_metrics(datamodule)
        if sorted(declared) != self._data_metrics:
            self._use_data_metrics(declared)

    def on_fit_start(self) -> None:
        """The model's own start (its declared ``fit_start(datamodule)``: the PCA start, a closed-form fit) on rank 0,
        whose tensors (``fit_start_tensors()``) every rank then receives; a run that continues from a checkpoint
        keeps its weights."""
        if not hasattr(self.net, "fit_start") or self.trainer.ckpt_path:
            return
        if self.global_rank == 0:
            message = self.net.fit_start(self.trainer.datamodule)
            if message:
                self.print(message)
        if self.trainer.world_size > 1:
            for tensor in self.net.fit_start_tensors() if hasattr(self.net, "fit_start_tensors") else []:
                torch.distributed.broadcast(tensor.data, src=0)

    def on_train_epoch_start(self) -> None:
        """A model's declared ``train_epoch_start(epoch)`` (RecVAE's alternating encoder and decoder epochs)."""
        if hasattr(self.net, "train_epoch_start"):
            self.net.train_epoch_start(self.current_epoch)

    def _net_kwargs(self, batch) -> dict[str, Any]:
        """What a model takes from a batch besides its examples (its declared ``batch_kwargs(batch)``: CDAE's user
        indices); ``{}`` for most."""
        return self.net.batch_kwargs(batch) if hasattr(self.net, "batch_kwargs") else {}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        out = self.net(batch[0], step=self.global_step, **self._net_kwargs(batch))
        self._accumulate(out.loss, out.terms)
        # a model fitted in closed form (EASE) has nothing to step: Lightning then skips the backward pass
        return out.loss if out.loss.requires_grad else None

    def _accumulate(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        """Keep running sums of the loss and terms on the device; ``self.log`` them only on the steps Lightning
        writes to the loggers (``trainer.log_every_n_steps``): each ``self.log`` costs Lightning's bookkeeping,
        more than a small model's step."""
        sums = self._train_sums
        sums["loss"] = loss.detach() if "loss" not in sums else sums["loss"] + loss.detach()
        for name, value in terms.items():
            sums[name] = value if name not in sums else sums[name] + value
        self._train_steps += 1
        if self._trainer is None:
            return
        if (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) and not self.trainer.fast_dev_run:
            return
        for name, total in sums.items():
            self.log(
                f"train/{name}",
                total / self._train_steps,
                on_step=True,
                on_epoch=False,
                prog_bar=name == "loss",
            )
        sums.clear()
        self._train_steps = 0

    # ------------------------------------------------------------------ validation and test
    def eval_generator(self, stage: str, batch_idx: int, device: torch.device) -> torch.Generator:
        """A generator seeded by ``eval_seed``, the stage, the DDP rank and the batch index: it feeds every random
        draw of a validation/test batch, so those numbers repeat exactly across epochs, runs and ``aelab-eval``."""
        offset = {"val": 0, "test": 1_000_000}.get(stage, 2_000_000)
        seed = self.eval_seed + offset + 10_000 * self.global_rank + batch_idx
        return torch.Generator(device=device).manual_seed(seed)

    def _eval_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> None:
        x = batch[0]
        out = self.net(
            x, generator=self.eval_generator(stage, batch_idx, x.device), **self._net_kwargs(batch)
        )
        m = self.metrics[stage]
        n = x.shape[0]
        m["loss"].update(out.loss, weight=n)
        for name, value in out.terms.items():
            self._metric(stage, name).update(value, weight=n)
        for name, value in out.stats.items():
            m[name].update(value)
        if (
            self._data_metrics
        ):  # the data's protocol scores the reconstruction (token models: none, terms only)
            x_hat = out.x_hat.contiguous()  # channels-last conv outputs: torchmetrics flattens by view
            for name in self._data_metrics:
                m[name].update(x_hat, batch)

    def _metric(self, stage: str, name: str) -> Metric:
        """The split metric of a term (its example-weighted mean), created when first seen."""
        m = self.metrics[stage]
        if name not in m:
            m[name] = MeanMetric().to(self.device)
        return m[name]

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def _log_eval_metrics(self, stage: str) -> None:
        # compute() all-reduces across DDP ranks; every rank then logs the same global value
        metrics = self.metrics[stage]
        if (
            self.trainer.world_size > 1
        ):  # a rank that saw no batch of a term still takes part in its reduction
            names: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(names, sorted(metrics))
            for name in sorted(set().union(*names) - set(metrics)):
                self._metric(stage, name)
        values = {name: metrics[name].compute() for name in sorted(metrics)}  # one order on every rank
        for metric in metrics.values():
            metric.reset()
        if "loss" in values and not torch.isfinite(values["loss"]):
            what = f"the {stage} loss is {values['loss'].item()}"
            if stage == "val" and not self.trainer.sanity_checking:
                raise DivergenceError(divergence_message(what, self.global_step, self.current_epoch))
            raise DivergenceError(
                f"{what}: the weights hold NaN/inf or the data is broken; nothing was written as a result"
            )
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss")

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    # ------------------------------------------------------------------ checkpoints and optimizers
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A codec's entropy coder tables are frozen from the weights being saved (``update()``), so every
        checkpoint codes with its own weights."""
        if isinstance(self.net, Compressor):
            self.net.update(force=True)
            state = checkpoint["state_dict"]
            for key, value in self.net.state_dict().items():
                if f"net.{key}" in state:
                    state[f"net.{key}"] = value

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ConfigError("the LightningModule needs an optimizer: choose one with optimizer=adam")
        if not any(p.requires_grad for p in self.net.parameters()):
            return None  # fitted in closed form (EASE): Lightning runs the epochs with no optimizer
        groups = (
            self.net.param_groups()
            if hasattr(self.net, "param_groups")
            else [{"params": self.net.parameters()}]
        )
        optimizer = self.optimizer_factory(params=groups)
        scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        # a model's group at a fraction of the learning rate (the PCA start)
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] = group["lr"] * scale
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        keywords = getattr(self.scheduler_factory, "keywords", {})
        if "total_steps" in keywords and keywords["total_steps"] is None:  # one-cycle: the run's length
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        # one-cycle sets every group's rate: each gets its scaled share of max_lr
        if "max_lr" in keywords and any(scale != 1.0 for scale in scales):
            kwargs["max_lr"] = [float(keywords["max_lr"]) * scale for scale in scales]

        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval, "frequency": 1}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}
