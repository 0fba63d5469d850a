"""Generation: Fréchet distances per sampler, samples and interpolations."""

from __future__ import annotations

import logging

import torch
import torchmetrics
from torchvision.utils import save_image

from aelab import visuals
from aelab.evaluation import fid as frechet
from aelab.evaluation.cache import cached_figures
from aelab.evaluation.context import EvalContext, requires
from aelab.media import Media
from aelab.models.capabilities import Autoencoding, Generative, Quantized
from aelab.samplers import generate, make_sampler

log = logging.getLogger("aelab")


def default_sampler(model, samplers=("autoregressive",)) -> str:
    """The sampler a model's ``test/generation/fid`` uses: its prior when it has one; for a vector-quantized model
    its PixelCNN prior (``autoregressive``) when the suite runs it, else the codebook's categorical; else a
    Gaussian fitted to the training codes."""
    if isinstance(model, Generative):
        return "prior"
    if isinstance(model, Quantized):
        return "autoregressive" if "autoregressive" in samplers else "categorical"
    return "gaussian"


@requires(Autoencoding, images=True)
def fid(
    ctx: EvalContext,
    num_samples: int = 10000,
    classifier_steps: int = 3000,
    min_classifier_acc: float = 0.98,
    seed: int = 0,
    samplers=("prior", "gaussian", "gmm", "categorical", "autoregressive"),
    gmm_components: int = 10,
    grid_samples: int = 64,
    gmm_max_dims: int | None = 64,
    autoregressive_epochs: int = 10,
    autoregressive_max_codes: int | None = None,
) -> dict[str, float]:
    """Fréchet distance of generated images to the test images on the features of a classifier trained on the data
        (:mod:`aelab.evaluation.fid`), one per sampler that applies to the model (``test/generation/fid_<sampler>``;
        ``test/generation/fid`` is the model's default sampler's), with the train-vs-test distance as the floor and the
        classifier's accuracy (a set whose classifier stays under ``min_classifier_acc`` gets no distance, only that
        accuracy and the reason). Each sampler's first ``grid_samples`` images go to ``samples_<sampler>.png`` and to
        the loggers (``samples/<sampler>``). ``test/generation/num_samples`` is the number of images compared, and
    ``test/generation/gmm_dims`` the dimensions the mixture was fitted in (a PCA of wider codes to ``gmm_max_dims``,
    full covariances there). ``test/generation/feature_classifier_shipped`` is 1 when the classifier came with the
    package (the bundled sets' default splits: no training), 0 when it was trained here (a folder, a user's data,
    another split; then cached). Labelled data only."""

    if not ctx.labelled:
        return ctx.skip("fid", f"{ctx.datamodule.name} has no labels to train the feature classifier on")
    net, acc, source = frechet.classifier(
        (ctx.train_u8, ctx.train_y),
        (ctx.test_u8, ctx.test_y),
        ctx.datamodule.cache_dir,
        ctx.device,
        steps=int(classifier_steps),
        seed=int(seed),
        num_classes=ctx.datamodule.num_classes,
    )
    if acc < float(min_classifier_acc):
        ctx.skip("fid", f"its feature classifier reaches {acc:.1%} test accuracy on {ctx.datamodule.name}, under "
                        f"{min_classifier_acc:.0%}: a Fréchet distance on its features would measure little")  # fmt: skip
        return {"test/generation/fid_classifier_test_acc": acc}
    n = min(int(num_samples), len(ctx.test_u8))
    real = ctx.test_u8[:n]
    floor_idx = torch.randperm(len(ctx.train_u8), generator=torch.Generator().manual_seed(int(seed)))[:n]
    floor = ctx.train_u8[floor_idx]
    # the floor depends on the data and the classifier alone: cached with the data
    out = {
        **cached_figures(
            ctx.datamodule.cache_dir,
            "frechet_floor",
            ("fid_train_vs_test", torchmetrics.__version__, real, floor, *net.state_dict().values()),
            lambda: {
                "test/generation/fid_train_vs_test": frechet.frechet_distance(
                    net, real, floor, ctx.batch_size, ctx.device
                )
            },
        ),  # fmt: skip
        "test/generation/fid_classifier_test_acc": acc,
        # 1: the package's weights for this split; 0: trained here (a folder, a user's data, another split) or cached
        "test/generation/feature_classifier_shipped": float(source == "shipped"),
        "test/generation/num_samples": float(n),
    }
    media = Media(ctx.loggers)
    default = default_sampler(ctx.model, samplers)
    for spec in samplers:
        params = {"gmm": {"n_components": int(gmm_components), "max_dims": gmm_max_dims},
                  "autoregressive": {"epochs": int(autoregressive_epochs), "max_codes": autoregressive_max_codes}}.get(spec, {}) if isinstance(spec, str) else {}  # fmt: skip
        sampler = make_sampler(spec, seed=int(seed), **params)
        name = sampler.name
        if not sampler.applies(ctx.model):
            continue
        sampler.fit(ctx.model, ctx.codes_train)
        if hasattr(sampler, "save"):  # a fitted prior of its own (the autoregressive one) keeps its file
            ctx.output_dir.mkdir(parents=True, exist_ok=True)
            sampler.save(ctx.output_dir / f"sampler_{name}.pt")
        if name == "gmm":
            out["test/generation/gmm_dims"] = float(sampler.fit_dims)
        fake = generate(ctx.model, sampler, n, seed=int(seed), batch_size=ctx.batch_size, device=ctx.device)
        value = frechet.frechet_distance(net, real, fake, ctx.batch_size, ctx.device)
        out[f"test/generation/fid_{name}"] = value
        if name == default:
            out["test/generation/fid"] = value
        picture = visuals.grid(fake[: int(grid_samples)])
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        save_image(picture, ctx.output_dir / f"samples_{name}.png")
        media.image(f"samples/{name}", picture, ctx.step)
    return out


@requires(Generative, images=True)
def generation(
    ctx: EvalContext, num_samples: int = 64, interpolation_steps: int = 10, seed: int = 0
) -> dict[str, float]:
    """``samples.png`` (prior samples) and ``interpolation.png`` (two test images and the path between their
    codes) beside ``metrics.json`` and in the loggers; generative models only. No figures."""
    model, x_test = ctx.model, ctx.x_test
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    media = Media(ctx.loggers)
    samples = visuals.grid(visuals.prior_samples(model, int(num_samples), int(seed), ctx.device))
    path = visuals.rows(
        visuals.interpolation(
            model, x_test[0].to(ctx.device), x_test[1].to(ctx.device), int(interpolation_steps)
        )
    )
    for name, picture in (("samples", samples), ("interpolation", path)):
        save_image(picture, ctx.output_dir / f"{name}.png")
        media.image(name, picture, ctx.step)
    log.info("samples.png and interpolation.png written to %s", ctx.output_dir)
    return {}
