"""What the report derives from the parts' metrics: the codec study, the generation table, verdicts, headline rows."""

from __future__ import annotations

import operator
from typing import Any

from aelab.codecs import display_name
from aelab.evaluation.ratedistortion import bd_rate, common_range, rate_at
from aelab.tools.results.runner import references


# ---------------------------------------------------------------------------------------------- derived figures
def codec_study(parts: dict[str, dict]) -> dict[str, Any]:
    """The learned codec's λ sweep per data set beside the classical codecs: rate–distortion points, BD-rates
    (``test/codec`` rates are the real files'), the rate at 25 dB, and the targets met or not."""
    out: dict[str, Any] = {}
    for data in sorted(
        {n.split("/")[0] for n, p in parts.items() if p.get("group") == "codec" and "metrics" in p}
    ):
        runs = {
            n: p
            for n, p in parts.items()
            if n.startswith(data + "/") and p.get("group") == "codec" and "metrics" in p
        }
        photos = data == "photo_patches"
        prefix, rate = ("photos/", "bits_per_pixel") if photos else ("", "bytes_per_image")
        codec = sorted(
            (p["metrics"][f"test/codec/{prefix}{rate}"], p["metrics"][f"test/codec/{prefix}psnr"])
            for p in runs.values()
        )
        any_m = next(iter(runs.values()))["metrics"]
        baselines = {}
        for name in ("jpeg", "webp", "avif", "jxl"):
            pts = sorted(
                (v, any_m[k[: -len(rate)] + "psnr"])
                for k, v in any_m.items()
                if k.startswith(f"test/compression/{prefix}{name}_q")
                and k.endswith("_" + rate)
                and k.count("/") == (3 if photos else 2)
                and k[: -len(rate)] + "psnr"
                in any_m  # a point without its PSNR (an old report's) is left out
            )
            if pts:
                baselines[name] = pts
        if not photos:  # JPEG without its header: the entropy-coded payload alone
            baselines["jpeg_payload"] = sorted(
                (v, any_m[k.replace("_payload_bytes_per_image", "_psnr")])
                for k, v in any_m.items()
                if k.startswith("test/compression/jpeg_q") and k.endswith("_payload_bytes_per_image")
            )
        bd = {name: bd_rate(pts, codec) for name, pts in baselines.items()}
        entry = {
            "rate": rate,
            "codec": codec,
            "lambdas": {n: float(n.split("_l")[-1]) for n in runs},
            "baselines": baselines,
            "bd_rate": bd,
            "common_range": common_range(codec, *baselines.values()) if baselines else None,
            "speed": {
                n: {
                    k: runs[n]["metrics"][f"test/codec/{prefix}{k}_images_per_s"]
                    for k in ("encode", "decode")
                }
                for n in runs
            },
        }
        if photos:
            entry["target"] = {"what": "BD-rate vs JPEG (held-out photos)", "value": bd.get("jpeg"), "op": "<=",
                               "goal": references()["codec_targets"]["photos_bd_vs_jpeg"]}  # fmt: skip
        else:
            classical = {
                k: v for k, v in bd.items() if k in ("jpeg", "webp", "avif", "jxl") and v is not None
            }
            best = (
                max(classical, key=classical.get) if classical else None
            )  # the best classical: the smallest saving
            entry["best_classical"] = best
            entry["bytes_at_25db"] = rate_at(codec, 25.0)
            entry["target"] = {"what": f"BD-rate vs the best classical codec ({CLASSICAL_NAMES.get(best, best)})",
                               "value": classical.get(best), "op": "<=", "goal": references()["codec_targets"]["mnist_bd_vs_best"]}  # fmt: skip
            entry["target_25db"] = {"what": "bytes/image at 25 dB (headers counted)", "value": entry["bytes_at_25db"],
                                    "op": "<=", "goal": references()["codec_targets"]["mnist_bytes_at_25db"]}  # fmt: skip
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
        fids = {k.rsplit("fid_", 1)[1]: v for k, v in m.items() if k.startswith("test/generation/fid_") and
                k.rsplit("fid_", 1)[1] in ("prior", "gaussian", "gmm", "categorical", "autoregressive")}  # fmt: skip
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
