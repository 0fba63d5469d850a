"""Images, figures, histograms, embeddings and text to every logger, each in that logger's own way.

Lightning's loggers share ``log_metrics`` and ``log_hyperparams``; everything else is logger-specific.
:class:`Media` sends each item to each logger of a run:

| item | TensorBoard | MLflow | Weights & Biases | CSV |
| --- | --- | --- | --- | --- |
| image | ``add_image`` | ``log_image`` (PNG artifact ``<tag>/step_<step>.png``) | ``log_image`` | — |
| figure | ``add_figure`` | ``log_figure`` (PNG artifact) | ``wandb.Image`` | — |
| histogram | ``add_histogram`` | — | ``wandb.Histogram`` | — |
| embedding | ``add_embedding`` (projector) | TSV artifact ``<tag>/step_<step>.tsv`` | ``wandb.Table`` | — |
| text | ``add_text`` | ``log_text`` (artifact) | ``wandb.Html`` | — |

A kind of item a logger cannot show is said once per run (a warning naming the logger and the item), never
dropped silently.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.logger import DummyLogger
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

log = logging.getLogger("aelab")

#: (logger kind, item) pairs already said to be unshowable in this process: said once, for every run
_SAID: set[tuple[str, str]] = set()


def _hwc_uint8(image: Tensor) -> np.ndarray:
    """A ``(C, H, W)`` image in [0, 1] as uint8 ``(H, W, C)`` (``(H, W)`` for grey)."""
    arr = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    arr = arr.transpose(1, 2, 0)
    return arr[..., 0] if arr.shape[2] == 1 else arr


def _kind(logger: Logger) -> str:
    for cls, name in ((TensorBoardLogger, "tensorboard"), (MLFlowLogger, "mlflow"), (WandbLogger, "wandb"), (CSVLogger, "csv")):  # fmt: skip
        if isinstance(logger, cls):
            return name
    return type(logger).__name__


class Media:
    """Send media to ``loggers`` (a run's Lightning loggers), each the way it can show them.

    Args:
        loggers: the loggers (``trainer.loggers``, or the evaluation's).
    """

    def __init__(self, loggers: list[Logger]) -> None:
        # Lightning's stand-in while fast_dev_run is on shows nothing and says nothing
        self.loggers = [lg for lg in loggers if not isinstance(lg, DummyLogger)]

    @staticmethod
    def _own(logger: Logger, item: str, *args) -> bool:
        """A logger of a user's package shows an item its own way by defining ``log_aelab_<item>`` (``image``,
        ``figure``, ``histogram``, ``embedding``, ``text``) with the arguments of the method here: no edit inside
        aelab. Returns whether it did."""
        hook = getattr(logger, f"log_aelab_{item}", None)
        if hook is None:
            return False
        hook(*args)
        return True

    def _cannot(self, logger: Logger, item: str) -> None:
        key = (_kind(logger), item)
        if key not in _SAID:
            _SAID.add(key)
            rank_zero_warn(
                f"the {_kind(logger)} logger cannot show {item}s: they go to the other loggers only "
                "(TensorBoard shows every kind; add it with logger=many)"
            )

    def _mlflow(self, logger: MLFlowLogger):
        return logger.experiment, logger.run_id

    # ------------------------------------------------------------------ items
    def image(self, tag: str, image: Tensor, step: int) -> None:
        """An image ``(C, H, W)`` in [0, 1] (a grid from :mod:`aelab.visuals`)."""
        for lg in self.loggers:
            if self._own(lg, "image", tag, image, step):
                continue
            kind = _kind(lg)
            if kind == "tensorboard":
                lg.experiment.add_image(tag, image.float().clamp(0, 1).cpu(), step)
            elif kind == "mlflow":
                client, run_id = self._mlflow(lg)
                client.log_image(run_id, _hwc_uint8(image), artifact_file=f"{tag}/step_{step:07d}.png")
            elif kind == "wandb":
                lg.log_image(key=tag, images=[_hwc_uint8(image)], step=step)
            else:
                self._cannot(lg, "image")

    def figure(self, tag: str, fig, step: int) -> None:
        """A matplotlib figure (closed afterwards)."""
        import matplotlib.pyplot as plt

        for lg in self.loggers:
            if self._own(lg, "figure", tag, fig, step):
                continue
            kind = _kind(lg)
            if kind == "tensorboard":
                lg.experiment.add_figure(tag, fig, step, close=False)
            elif kind == "mlflow":
                client, run_id = self._mlflow(lg)
                client.log_figure(run_id, fig, artifact_file=f"{tag}/step_{step:07d}.png")
            elif kind == "wandb":
                import wandb

                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=100)
                buf.seek(0)
                from PIL import Image

                lg.experiment.log({tag: wandb.Image(Image.open(buf)), "trainer/global_step": step})
            else:
                self._cannot(lg, "figure")
        plt.close(fig)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        """A histogram of ``values`` (any shape)."""
        for lg in self.loggers:
            if self._own(lg, "histogram", tag, values, step):
                continue
            kind = _kind(lg)
            if kind == "tensorboard":
                lg.experiment.add_histogram(tag, values.detach().float().cpu(), step)
            elif kind == "wandb":
                import wandb

                hist = wandb.Histogram(values.detach().float().cpu().numpy().ravel())
                lg.experiment.log({tag: hist, "trainer/global_step": step})
            else:
                self._cannot(lg, "histogram")

    def embedding(
        self, tag: str, codes: Tensor, labels: list | None, thumbnails: Tensor | None, step: int
    ) -> None:
        """Codes ``(N, D)`` with their labels (and thumbnails ``(N, C, H, W)`` for TensorBoard's projector)."""
        codes = codes.detach().float().cpu()
        for lg in self.loggers:
            if self._own(lg, "embedding", tag, codes, labels, thumbnails, step):
                continue
            kind = _kind(lg)
            if kind == "tensorboard":
                lg.experiment.add_embedding(
                    codes, metadata=labels, label_img=None if thumbnails is None else thumbnails.cpu(),
                    global_step=step, tag=tag,
                )  # fmt: skip
            elif kind == "mlflow":
                client, run_id = self._mlflow(lg)
                head = "label\t" + "\t".join(f"z{i}" for i in range(codes.shape[1]))
                body = "\n".join(
                    f"{'' if labels is None else labels[i]}\t" + "\t".join(f"{v:.6g}" for v in row)
                    for i, row in enumerate(codes.tolist())
                )
                client.log_text(run_id, head + "\n" + body + "\n", artifact_file=f"{tag}/step_{step:07d}.tsv")
            elif kind == "wandb":
                import wandb

                columns = ["label", *(f"z{i}" for i in range(codes.shape[1]))]
                data = [[None if labels is None else labels[i], *row] for i, row in enumerate(codes.tolist())]
                lg.experiment.log({tag: wandb.Table(columns=columns, data=data), "trainer/global_step": step})
            else:
                self._cannot(lg, "embedding")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """A text (the resolved config)."""
        for lg in self.loggers:
            if self._own(lg, "text", tag, text, step):
                continue
            kind = _kind(lg)
            if kind == "tensorboard":
                lg.experiment.add_text(tag, "    " + text.replace("\n", "\n    "), step)
            elif kind == "mlflow":
                client, run_id = self._mlflow(lg)
                client.log_text(run_id, text, artifact_file=f"{tag}.yaml")
            elif kind == "wandb":
                import html

                import wandb

                lg.experiment.log(
                    {tag: wandb.Html(f"<pre>{html.escape(text)}</pre>"), "trainer/global_step": step}
                )
            else:
                self._cannot(lg, "text")
