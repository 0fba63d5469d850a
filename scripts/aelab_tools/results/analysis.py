"""What the report derives from the parts' metrics: the codec study, the generation table, verdicts, headline rows."""

from __future__ import annotations

import operator
from typing import Any

from aelab.codecs.classical import display_name
from aelab_tools import schema
from aelab_tools.ratedistortion import bd_rate, common_range, overlap, rate_at
from aelab_tools.results.runner import references


# ---------------------------------------------------------------------------------------------- derived figures
def codec_family(name: str) -> str:
    """A codec part's model family from its name: ``mnist/hyperprior_l0.01`` → ``hyperprior``."""
    return name.split("/", 1)[1].rsplit("_l", 1)[0]


def _classical_baselines(m: dict[str, float], rate: str, photos: bool) -> dict[str, list]:
    baselines = {}
    for name in schema.classical_codecs():
        pts = schema.classical_curve(m, name, rate, photos)
        if pts:
            baselines[name] = pts
    if not photos:  # JPEG without its header: the entropy-coded payload alone
        baselines["jpeg_payload"] = schema.jpeg_payload_curve(m)
    return baselines


def codec_study(parts: dict[str, dict]) -> dict[str, Any]:
    """Each learned codec's λ sweep per data set beside the classical codecs, on the same images.

    Per model family (``codec``: the factorized prior, ``hyperprior``): its rate–distortion points — one file per
    image, headers counted (``test/codec/bytes_per_image``; a part measured before per-image files existed has
    only its one-stream rate and is marked ``per_image: false``, kept out of the targets) — and the one-stream
    points, BD-rates against each classical codec, the rate at 25 dB. The entry's top level is the family the
    targets are judged on (the best per-image BD-rate against WebP): ``bd_rate``, ``bytes_at_25db``, ``images``
    (the one image count every codec was measured on), ``targets``."""
    out: dict[str, Any] = {}
    goals = references()["codec_targets"]
    for data in sorted(
        {n.split("/")[0] for n, p in parts.items() if p.get("group") == "codec" and "metrics" in p}
    ):
        runs = {
            n: p
            for n, p in parts.items()
            if n.startswith(data + "/") and p.get("group") == "codec" and "metrics" in p
        }
        photos = data == "photo_patches"
        rate = "bits_per_pixel" if photos else "bytes_per_image"
        any_m = next(iter(runs.values()))["metrics"]
        baselines = _classical_baselines(any_m, rate, photos)
        models: dict[str, Any] = {}
        for family in sorted({codec_family(n) for n in runs}):
            members = {n: p for n, p in runs.items() if codec_family(n) == family}
            metrics = [p["metrics"] for p in members.values()]
            key = lambda field, photos=photos: schema.codec_key(field, photos)  # noqa: E731
            per_image = all(key(f"stream_{rate}") in m for m in metrics)
            curve = sorted((m[key(rate)], m[key("psnr")]) for m in metrics)
            stream = sorted((m.get(key(f"stream_{rate}"), m[key(rate)]), m[key("psnr")]) for m in metrics)
            images = {m.get("test/codec/num_images") for m in metrics} | {
                m.get("test/compression/codecs_num_images") for m in metrics
            }
            models[family] = {
                "per_image": per_image,
                "codec": curve,
                "stream": stream,
                "lambdas": {n: float(n.split("_l")[-1]) for n in members},
                "epochs": {n: p.get("epochs") for n, p in members.items()},
                "bd_rate": {name: bd_rate(pts, curve) for name, pts in baselines.items()},
                "overlap": {name: overlap(pts, curve) for name, pts in baselines.items()},
                "stream_bd_rate": {name: bd_rate(pts, stream) for name, pts in baselines.items()},
                "bytes_at_25db": None if photos else rate_at(curve, 25.0),
                "images": next(iter(images)) if len(images) == 1 else None,
                "speed": {
                    n: {
                        k: p["metrics"][schema.codec_key(f"{k}_images_per_s", photos)]
                        for k in ("encode", "decode")
                    }
                    for n, p in members.items()
                },  # fmt: skip
            }
        judged = [f for f, e in models.items() if e["per_image"]] or list(models)
        best = min(
            judged,
            key=lambda f: (models[f]["bd_rate"].get("webp") is None, models[f]["bd_rate"].get("webp") or 0),
        )
        top = models[best]
        entry = {
            "rate": rate,
            "model": best,
            "models": models,
            "per_image": top["per_image"],
            "codec": top["codec"],
            "lambdas": top["lambdas"],
            "speed": top["speed"],
            "images": top["images"],
            "baselines": baselines,
            "bd_rate": top["bd_rate"],
            "common_range": common_range(top["codec"], *baselines.values()) if baselines else None,
        }
        bd = top["bd_rate"]
        if photos:
            entry["targets"] = [
                {"what": "BD-rate vs JPEG (held-out photos, whole)", "value": bd.get("jpeg"), "op": "<=",
                 "goal": goals["photos_bd_vs_jpeg"]},
                {"what": "BD-rate vs WebP (held-out photos, whole)", "value": bd.get("webp"), "op": "<=",
                 "goal": goals["photos_bd_vs_webp"]},
            ]  # fmt: skip
        else:
            entry["bytes_at_25db"] = top["bytes_at_25db"]
            entry["targets"] = [
                {"what": "BD-rate vs WebP (per-image files)", "value": bd.get("webp"), "op": "<=", "goal": goals["mnist_bd_vs_webp"]},
                {"what": "BD-rate vs AVIF (per-image files)", "value": bd.get("avif"), "op": "<=", "goal": goals["mnist_bd_vs_avif"]},
                {"what": "BD-rate vs JPEG XL (per-image files)", "value": bd.get("jxl"), "op": "<=", "goal": goals["mnist_bd_vs_jxl"]},
                {"what": "bytes/image at 25 dB (per-image files, headers counted)", "value": entry["bytes_at_25db"],
                 "op": "<=", "goal": goals["mnist_bytes_at_25db"]},
            ]  # fmt: skip
        out[data] = entry
    return out


#: the classical codecs' names in the report (from aelab.codecs' one table)
CLASSICAL_NAMES = {name: display_name(name) for name in ("jpeg", "webp", "avif", "jxl", "jpeg_payload")}


def generation_table(parts: dict[str, dict]) -> dict[str, Any]:
    """Fréchet distance per MNIST model and sampler, with the floor; the best of all and which."""
    rows, floor = {}, None
    for name, p in parts.items():
        m = p.get("metrics") or {}
        if not name.startswith("mnist/") or p.get("group") == "codec":
            continue
        fids = schema.fids(m)
        if fids:
            rows[name.split("/", 1)[1]] = fids
            floor = m.get("test/generation/fid_train_vs_test", floor)
    best = min(((v, model, s) for model, f in rows.items() for s, v in f.items()), default=None)
    return {
        "rows": rows,
        "floor": floor,
        "best": None if best is None else {"value": best[0], "model": best[1], "sampler": best[2]},
    }


_OPS = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, ">": operator.gt}


def verdict(value: float | None, op: str, goal: float) -> bool | None:
    """Whether ``value op goal`` holds (``None`` when there is no value).

    Raises:
        ValueError: for an operator other than ``<``, ``<=``, ``>=``, ``>``.
    """
    if op not in _OPS:
        raise ValueError(f"unknown target operator {op!r}; use one of {sorted(_OPS)}")
    return None if value is None else bool(_OPS[op](value, goal))


def headline_rows(parts: dict[str, dict], headlines: dict[str, list]) -> list[dict[str, Any]]:
    """The headline table's rows: value, anchor and verdict of every entry whose part was evaluated."""
    rows = []
    for part, entries in headlines.items():
        m = (parts.get(part) or {}).get("metrics")
        if m is None:
            continue
        for e in entries:
            v = m.get(e["metric"])
            if v is not None and "over" in e:
                d = m.get(e["over"])
                v = v / d if d else None
            values = {k: m.get(key) for k, key in (e.get("values") or {}).items()}
            anchor = (
                e["anchor"].format(**values)
                if all(isinstance(x, int | float) for x in values.values())
                else e["anchor"]
            )
            t = e.get("target")
            goal = None
            if t is not None:
                goal = t["value"]
                if goal == "vs":
                    goal = ((parts.get(e["vs"]["part"]) or {}).get("metrics") or {}).get(e["vs"]["metric"])
                    anchor += f" {goal:.4g}" if goal is not None else " (not run)"
            rows.append({
                "part": part, "label": e["label"], "value": v, "ratio": "over" in e, "anchor": anchor,
                "op": None if t is None else t["op"], "goal": goal,
                "met": None if t is None or goal is None else verdict(v, t["op"], goal),
            })  # fmt: skip
    return rows


def _lambda_command(members: dict[str, dict]) -> str | None:
    """One λ sweep's training command: the first member's, its ``model.lmbda=`` naming every λ of the sweep."""
    import re

    cmds = [p.get("train_cmd") for p in members.values() if p.get("train_cmd")]
    if not cmds:
        return None
    lambdas = ", ".join(f"{float(n.split('_l')[-1]):g}" for n in members)
    return re.sub(r"model\.lmbda=\S+", f"model.lmbda=<each of {lambdas}>", cmds[0])


def reproducibility_table(
    parts: dict[str, dict], codec: dict[str, Any], generation: dict[str, Any]
) -> list[dict[str, Any]]:
    """The reproducibility table (``scripts/aelab_tools/results/references.yaml: reproducibility``): per row the measured value
    beside the paper's, the target's verdict, and the run behind it (epochs, training wall time, command, and the
    report it was kept from). A row whose part was not run has ``value: None``."""
    rows = []
    for ref in references()["reproducibility"]:
        value, runs, part = None, {}, ref.get("part")
        if ref.get("source") == "generation":
            best = generation.get("best")
            if best:
                value, part = best["value"], f"mnist/{best['model']}"
                runs = {part: parts.get(part) or {}}
        elif ref.get("source") == "codec":
            fam = ((codec.get(ref["data"]) or {}).get("models") or {}).get(ref["family"])
            if fam and fam.get("per_image"):
                value = fam["bd_rate"].get("webp")
                runs = {n: parts.get(n) or {} for n in fam["lambdas"]}
        else:
            p = parts.get(part) or {}
            value = (p.get("metrics") or {}).get(ref["metric"])
            runs = {part: p} if p else {}
        epochs = sorted({r.get("epochs") for r in runs.values() if r.get("epochs") is not None})
        planned = sorted(
            {r["max_epochs"] for r in runs.values() if r.get("max_epochs") not in (None, r.get("epochs"))}
        )
        kept = sorted({r["kept_from"].get("date") for r in runs.values() if r.get("kept_from")})
        rows.append({
            **{k: ref.get(k) for k in ("model", "paper", "paper_value", "unit", "fmt", "op", "target", "paper_budget")},
            "part": part if ref.get("source") != "codec" else f"{ref['data']}/{ref['family']}_l*",
            "value": value,
            "met": None if value is None else verdict(value, ref["op"], ref["target"]),
            "epochs": epochs,
            "planned_epochs": planned,
            "t_train": sum(r.get("t_train") or 0.0 for r in runs.values()) if runs else None,
            "command": _lambda_command(runs) if ref.get("source") == "codec" else next(
                (r.get("train_cmd") for r in runs.values() if r.get("train_cmd")), None),
            "kept_from": kept,
        })  # fmt: skip
    return rows
