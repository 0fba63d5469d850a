"""The evaluation suite run by ``aelab-eval``: every measurement that applies to a model and its data.

All figures are computed on the test split; baselines are fitted on the training split. Keys are
``test/<section>/<name>``, plus ``test/bce`` and ``test/ssim`` beside the test loop's ``test/mse`` and
``test/psnr``. The sections are functions of :mod:`aelab.evaluation.sections` (or anywhere importable), chosen
in ``conf/eval.yaml: suite.sections`` by ``_target_``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from aelab.errors import ConfigError
from aelab.evaluation.context import EvalContext

log = logging.getLogger("aelab")


def data_kind(datamodule) -> str:
    """The sample kind of ``datamodule`` (:func:`aelab.data.contract.sample_kind`); a datamodule that predates the
    attribute and has no image shape (``image_shape = None``) is a ``table``."""
    from aelab.data.contract import sample_kind

    legacy = datamodule is not None and not hasattr(datamodule, "sample_kind")
    if legacy and getattr(datamodule, "image_shape", True) is None:
        return "table"
    return sample_kind(datamodule)


def section_kinds(fn) -> tuple[str, ...] | None:
    """The sample kinds a section function declares (:func:`~aelab.evaluation.context.requires`), ``None`` for any;
    ``images=True`` is ``("image",)``."""
    kinds = getattr(fn, "kinds", None)
    if kinds is None and getattr(fn, "images", False):
        return ("image",)
    return None if kinds is None else tuple(kinds)


def skip_reason(name: str, section, model, datamodule=None) -> str | None:
    """Why section ``name`` does not run for ``model`` on ``datamodule``, or ``None`` when it runs: ``enabled: true``
    always runs, ``false`` never, ``auto`` (the default) when the model can do what the section measures (the
    protocols of :mod:`aelab.models.capabilities` the section function declares with
    :func:`~aelab.evaluation.context.requires`) and the data are of a kind the section declares (``kinds``;
    ``images=True`` is ``kinds=("image",)``; the data contract's ``sample_kind``), and, for a section about images,
    the data have an image shape.

    Raises:
        ConfigError: for an ``enabled`` that is not ``auto``, ``true`` or ``false``.
    """
    if section is None:
        return f"suite.sections.{name} is null"
    enabled = section.get("enabled", True)
    if enabled == "auto":
        from hydra.utils import get_method

        fn = get_method(section["_target_"])
        kinds = section_kinds(fn)
        kind = data_kind(datamodule)
        if kinds is not None and kind not in kinds:
            return f"it is for {' or '.join(kinds)} data; {_data_name(datamodule)} holds {kind} samples"
        if kind == "image" and kinds is not None and getattr(datamodule, "image_shape", True) is None:
            return f"it is for images; {_data_name(datamodule)} has no image shape"
        missing = [p.__name__ for p in getattr(fn, "requires", ()) if not isinstance(model, p)]
        if missing:
            return f"{type(model).__name__} is not {' and '.join(missing)} (aelab.models.capabilities)"
        return None
    if not isinstance(enabled, bool):
        raise ConfigError(f"suite.sections.{name}.enabled={enabled!r} must be auto, true or false")
    return None if enabled else f"suite.sections.{name}.enabled is false"


def _data_name(datamodule) -> str:
    return str(getattr(datamodule, "name", None) or type(datamodule).__name__)


def applies(name: str, section, model, datamodule=None) -> bool:
    """Whether section ``name`` runs for ``model`` on ``datamodule`` (:func:`skip_reason` gives none): ``enabled:
    true`` always, ``false`` never, ``auto`` (the default) when the model can do what the section measures and the
    data are of a kind it is for."""
    return skip_reason(name, section, model, datamodule) is None


def write_skipped(output_dir: str | Path, skipped: dict[str, str]) -> Path:
    """``<output_dir>/suite_skipped.json``: ``{section: why it did not run or returned nothing}``."""
    path = Path(output_dir) / "suite_skipped.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(skipped, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def run_suite(
    model,
    datamodule,
    cfg: DictConfig,
    output_dir: str | Path,
    device: torch.device,
    loggers: list | None = None,
    step: int = 0,
    precision: str = "32-true",
) -> dict[str, float]:
    """Run the sections of ``cfg.sections`` (``conf/suite/<preset>.yaml``) that apply to ``model`` (:func:`applies`)
    in order on one shared :class:`~aelab.evaluation.context.EvalContext`; returns ``{key: value}``.

    Each entry is a partial function (``_target_``, ``_partial_: true``, its parameters). Sections send their
    images to ``loggers`` (TensorBoard, MLflow, W&B) too. A progress bar shows the section, its position, the
    elapsed time and an estimate of the rest; each section's wall time is ``test/timing/<section>_s`` (seconds),
    the whole suite's ``test/timing/suite_s``, and ``test/suite/full`` says whether the full preset ran (1) or the
    quick one (0). Why each other section did not run (:func:`skip_reason`: null, switched off, a model that cannot
    do it, data of another kind) or ran and measured nothing (its :meth:`EvalContext.skip`) is logged and written
    to ``<output_dir>/suite_skipped.json`` (``{section: reason}``).
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    sections = cfg.get("sections") or {}
    reasons = {name: skip_reason(name, section, model, datamodule) for name, section in sections.items()}
    chosen = [name for name, why in reasons.items() if why is None]
    skipped = {name: why for name, why in reasons.items() if why is not None}
    left_out = {name: why for name, why in skipped.items() if sections[name] is not None}
    if left_out:
        log.info(
            "evaluation sections that do not apply to %s: %s (switch one on with suite.sections.<name>.enabled=true)",
            type(model).__name__, "; ".join(f"{name} ({why})" for name, why in left_out.items()),
        )  # fmt: skip
    ctx = EvalContext(model, datamodule, output_dir, device, int(cfg.batch_size), loggers, step, precision)
    out: dict[str, float] = {"test/suite/full": float(cfg.get("name") == "full")}
    if ctx.encode_images_per_s is not None:
        out["test/timing/encode_images_per_s"] = ctx.encode_images_per_s
    bar = tqdm(chosen, desc="evaluation", unit="section", leave=True, dynamic_ncols=True)
    for name in bar:
        bar.set_postfix_str(name)
        params = OmegaConf.to_container(
            sections[name], resolve=True
        )  # resolved where ${paths...} can be reached
        params.pop("enabled", None)
        log.info("evaluation section %s", name)
        t0 = time.perf_counter()
        said = dict(ctx.skipped)
        got = instantiate(params, _convert_="all")(ctx)
        if got:  # a section that does not apply (returns nothing) has no time either
            out |= got
            out[f"test/timing/{name}_s"] = time.perf_counter() - t0
        news = [why for key, why in ctx.skipped.items() if said.get(key) != why]
        if not got and news:  # it ran and said why it had nothing to measure (EvalContext.skip)
            skipped[name] = "; ".join(news)
    bar.close()
    write_skipped(output_dir, skipped)
    out["test/timing/suite_s"] = time.perf_counter() - t_start
    log.info(
        "evaluation suite (%s) finished in %.1f s: %s", cfg.get("name", "custom"), out["test/timing/suite_s"],
        ", ".join(f"{n} {out[f'test/timing/{n}_s']:.1f} s" for n in chosen if f"test/timing/{n}_s" in out),
    )  # fmt: skip
    return out
