"""``docs/RESULTS.md`` rendered from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

from aelab_tools.results.analysis import CLASSICAL_NAMES, verdict
from aelab_tools.results.runner import references


# ---------------------------------------------------------------------------------------------- the report
def _num(v: float | None, fmt: str = ".4g") -> str:
    return "n/a" if v is None else format(v, fmt)


#: the MSE ratio to PCA of the same code size the autoencoders (MLP and conv) of a data set must reach
PCA_RATIO_TARGETS = {"digits": 0.9, "fashion_mnist": 0.9, "photo_patches": {"conv_ae": 0.9, "ae": 1.0}}
PCA_RATIO_MODELS = ("ae", "conv_ae")


def baseline_table(parts: dict[str, Any]) -> list[str]:
    """Per data set, each model's test MSE beside PCA's of the same code size (fitted on the training images, in
    the same evaluation) and the ratio; where a data set has a target, whether it is met."""
    rows = []
    for name, p in parts.items():
        m = p.get("metrics") or {}
        if p.get("group") == "codec" or "test/mse" not in m or not m.get("test/compression/pca_mse"):
            continue
        data, model = name.split("/", 1)
        pca = m["test/compression/pca_mse"]
        exact = pca < 1e-6  # as many components as pixels: PCA is lossless, no baseline
        ratio = None if exact else m["test/mse"] / pca
        goal = PCA_RATIO_TARGETS.get(data) if model in PCA_RATIO_MODELS else None
        goal = goal.get(model) if isinstance(goal, dict) else goal
        met = "" if goal is None or ratio is None else ("yes" if ratio <= goal else "**no**")
        when = p["kept_from"].get("date") if p.get("kept_from") else "this run"
        shown = "— (PCA of that size is lossless)" if exact else f"{ratio:.3f}×"
        start = {"pca": "PCA", "random": "random"}.get(p.get("init"), "—")
        rows.append(f"| {data} | {model} | {start} | {m['test/mse']:.5f} | {pca:.5f} | {shown} | "
                    f"{'' if goal is None else f'≤ {goal}×'} | {met} | {when} |")  # fmt: skip
    if not rows:
        return []
    return ["## Each model beside its baseline, per data set", "",
            "Test MSE (pixels in [0, 1]) against PCA with as many components as the model's code (`test/compression/pca_mse`, "
            "fitted on the training images in the same evaluation); the ratio is model / PCA (below 1: the model wins). "
            "*Start*: `PCA` for a model that started at that PCA (`model.init=pca`, the default on photographs and "
            "folders), `random` for the usual initialization, — where the run did not record it.", "",
            "| data | model | start | test MSE | PCA MSE (same code size) | ratio | target | met | from |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *rows, ""]  # fmt: skip


ANOMALY_BASELINES = ("iforest", "lof", "ocsvm", "pca", "pyod_ae")
ANOMALY_NAMES = {"iforest": "IsolationForest", "lof": "LOF (novelty)", "ocsvm": "OC-SVM", "pca": "PCA",
                 "pyod_ae": "PyOD AutoEncoder"}  # fmt: skip


def is_table_part(part: dict[str, Any]) -> bool:
    """A part trained on a table (its metrics hold the table baselines' AUROCs): the anomaly table shows it, the
    image tables do not (whole series, with ROCKAD beside them, have their own table)."""
    m = part.get("metrics") or {}
    return "test/anomaly/auroc" in m and "test/anomaly/iforest_auroc" in m and not is_series_part(part)


def is_series_part(part: dict[str, Any]) -> bool:
    """A part trained on series: per point (VUS-PR beside aeon's detectors) or whole series (ROCKAD beside)."""
    m = part.get("metrics") or {}
    return "test/anomaly/vus_pr" in m or "test/anomaly/rockad_auroc" in m


def is_text_part(part: dict[str, Any]) -> bool:
    """A part trained on text (its metrics hold the text section's figures)."""
    return "test/text/nll_per_token" in (part.get("metrics") or {})


TEXT_FIGURES = (("nll_per_token", "NLL/token (nats)", ".4f"), ("ppl", "perplexity", ".2f"), ("kl", "KL (nats)", ".2f"),
                ("active_units", "active units", ".1f"), ("mutual_info", "I(x; z) (nats)", ".2f"),
                ("token_accuracy", "token accuracy (greedy)", ".3f"), ("exact_match", "exact match", ".3f"))  # fmt: skip


def text_table(parts: dict[str, Any]) -> list[str]:
    """Per text data set, each sentence model's test figures (mean ± std over its seeds), the probes of the codes
    beside TF-IDF + logistic regression, and the targets' verdicts: the sentence VAE's KL ≥ 3 nats with its NLL per
    token within 2% of the language model's, the text AE's greedy token accuracy ≥ 0.80, the best probe at or above
    TF-IDF's."""
    by_data: dict[str, list[tuple[str, dict, dict, int]]] = {}
    for name, p in parts.items():
        if is_text_part(p):
            data, model = name.split("/", 1)
            by_data.setdefault(data, []).append((model, p["metrics"], p.get("metrics_std") or {},
                                                 len(p.get("seeds") or [0])))  # fmt: skip
    if not by_data:
        return []

    def cell(m, sd, key, fmt):
        if key not in m:
            return "—"
        return f"{m[key]:{fmt}} ± {sd[key]:{fmt}}" if key in sd else f"{m[key]:{fmt}}"

    lines = ["## Text: sentence models", "",
             "Test split; NLL per token of each sequence's tokens and [EOS] given [BOS] (the VAE's: the importance-"
             "weighted bound with `test/text/k` draws, Burda et al. 2016; the text AE's: given its own code); the "
             "probes are logistic regressions on the codes (the VAE's posterior mean) and on TF-IDF of words and word "
             "pairs, fitted on the same training documents of the probe classes. Mean ± standard deviation over the "
             "seeds (each seed redraws the split, the tokenizer's training split and the initialization).", ""]  # fmt: skip
    for data, rows in by_data.items():
        head = " | ".join(label for _, label, _ in TEXT_FIGURES)
        lines += [f"### {data}", "", f"| model | seeds | {head} | probe acc | TF-IDF probe acc |",
                  "| --- | --- | " + " | ".join("---" for _ in TEXT_FIGURES) + " | --- | --- |"]  # fmt: skip
        for model, m, sd, seeds in rows:
            cells = " | ".join(cell(m, sd, f"test/text/{k}", fmt) for k, _, fmt in TEXT_FIGURES)
            lines.append(f"| {model} | {seeds} | {cells} | {cell(m, sd, 'test/features/linear_probe_acc', '.3f')} | "
                         f"{cell(m, sd, 'test/features/tfidf_probe_acc', '.3f')} |")  # fmt: skip
        got = {model: m for model, m, _, _ in rows}
        verdicts = []
        if "sentence_vae" in got and "lstm_lm" in got:
            vae, lm = got["sentence_vae"], got["lstm_lm"]
            gap = vae["test/text/nll_per_token"] / lm["test/text/nll_per_token"] - 1
            ok = vae.get("test/text/kl", 0) >= 3 and gap <= 0.02
            verdicts.append(f"sentence_vae: KL {vae.get('test/text/kl', float('nan')):.2f} nats (≥ 3) with NLL per token "
                            f"{100 * gap:+.2f}% of lstm_lm's (≤ +2%): {'met' if ok else '**missed**'}")  # fmt: skip
        if "text_ae" in got and "test/text/token_accuracy" in got["text_ae"]:
            acc = got["text_ae"]["test/text/token_accuracy"]
            verdicts.append(
                f"text_ae: greedy token accuracy {acc:.3f} (≥ 0.80): {'met' if acc >= 0.8 else '**missed**'}"
            )
        probes = {model: m["test/features/linear_probe_acc"] for model, m in got.items()
                  if "test/features/linear_probe_acc" in m}  # fmt: skip
        if probes:
            best = max(probes, key=probes.get)
            tfidf = got[best]["test/features/tfidf_probe_acc"]
            verdicts.append(f"best code probe `{best}` {probes[best]:.3f} at or above TF-IDF {tfidf:.3f}: "
                            f"{'met' if probes[best] >= tfidf else '**missed**'}")  # fmt: skip
        lines += ["", *[f"- {v}" for v in verdicts], ""]
    return lines


#: aeon's detectors in the per-point table, and the baselines of whole series
SERIES_DETECTORS = ("pca", "kmeansad", "iforest", "lof", "stomp", "dwt_mlead", "random")
SERIES_NAMES = {"pca": "PCA (windows)", "kmeansad": "KMeansAD", "iforest": "IsolationForest", "lof": "LOF",
                "stomp": "STOMP", "dwt_mlead": "DWT-MLEAD", "random": "random score", "rockad": "ROCKAD",
                "ocsvm": "OC-SVM"}  # fmt: skip
COLLECTION_BASELINES = ("rockad", "iforest", "lof", "ocsvm")


def series_tables(parts: dict[str, Any]) -> list[str]:
    """Per-point VUS-PR of every aelab model on each bundled series (mean ± std over its seeds) beside aeon's
    detectors on the same series, and the mean over the series; whole-series AUROC on the UCR collections beside
    ROCKAD, IsolationForest, LOF and OC-SVM; the targets' verdicts (the best aelab model at or above every
    detector's mean VUS-PR, and at or above ROCKAD's mean AUROC)."""
    lines: list[str] = []

    def cell(m, sd, key, fmt=".3f"):
        if key not in m:
            return "n/a"
        return f"{m[key]:{fmt}} ± {sd[key]:{fmt}}" if key in sd else f"{m[key]:{fmt}}"

    def grid(kind_key: str, split_at: int, baselines, figure: str, title: str, protocol: str, target: str):
        by_model: dict[str, dict[str, tuple[dict, dict, int]]] = {}
        datasets: list[str] = []
        for name, p in parts.items():
            m = p.get("metrics") or {}
            if kind_key not in m:
                continue
            head, model = name.rsplit("/", 1)
            data = head.split("/", split_at)[-1] if split_at else head
            datasets += [data] if data not in datasets else []
            by_model.setdefault(model, {})[data] = (m, p.get("metrics_std") or {}, len(p.get("seeds") or [0]))
        if not by_model:
            return []
        out = [f"### {title}", "", protocol, "",
               "| model | seeds | " + " | ".join(datasets) + f" | mean {figure} |",
               "| --- | --- | " + " | ".join("---" for _ in datasets) + " | --- |"]  # fmt: skip
        means: dict[str, float] = {}
        for model, cells in by_model.items():
            row = [cell(cells[d][0], cells[d][1] if cells[d][2] > 1 else {}, f"test/anomaly/{figure}")
                   if d in cells else "n/a" for d in datasets]  # fmt: skip
            values = [cells[d][0][f"test/anomaly/{figure}"] for d in datasets if d in cells]
            counts = [cells[d][2] for d in datasets if d in cells]
            seeds = str(counts[0]) if len(set(counts)) == 1 else ", ".join(map(str, counts))
            if len(values) == len(datasets):
                means[model] = sum(values) / len(values)
            mean = f"**{means[model]:.3f}**" if model in means else "n/a"
            out.append(f"| {model} | {seeds} | " + " | ".join(row) + f" | {mean} |")
        base: dict[str, float] = {}
        for b in baselines:
            vals = []
            for d in datasets:
                m0 = next(
                    (
                        c[d][0]
                        for c in by_model.values()
                        if d in c and f"test/anomaly/{b}_{figure}" in c[d][0]
                    ),
                    None,
                )
                vals.append(None if m0 is None else m0[f"test/anomaly/{b}_{figure}"])
            cells = ["n/a" if v is None else f"{v:.3f}" for v in vals]
            if all(v is not None for v in vals):
                base[b] = sum(vals) / len(vals)
            mean = f"{base[b]:.3f}" if b in base else "n/a"
            out.append(f"| *{SERIES_NAMES.get(b, b)}* | — | " + " | ".join(cells) + f" | {mean} |")
        if means:
            best = max(means, key=means.get)
            judged = {b: v for b, v in base.items() if b in target}
            above = [SERIES_NAMES.get(b, b) for b, v in judged.items() if v > means[best]]
            verdict = f"**missed**: below {', '.join(above)}" if above else "met" if judged else "not judged"
            out += ["", f"Best aelab model: `{best}`, mean {figure} {means[best]:.3f} — target (≥ "
                    + ", ".join(SERIES_NAMES.get(b, b) for b in target) + f"): {verdict}.", ""]  # fmt: skip
        return out

    per_point = grid(
        "test/anomaly/vus_pr",
        0,
        SERIES_DETECTORS,
        "vus_pr",
        "Per point: VUS-PR on the bundled series",
        "The TSB-AD protocol (Liu & Paparrizos, NeurIPS 2024): each model trains on the series' normal training part "
        "and scores every point (the mean of its per-point scores over the windows that cover it); VUS-PR is aeon's "
        "(Paparrizos et al., PVLDB 2022) over buffers up to the data's window. aeon's detectors run with the same "
        "window on the same series (PCA, KMeansAD, IsolationForest and LOF fitted on the training part; STOMP and "
        "DWT-MLEAD on the series alone), seed 0; the random score is the floor. Mean ± standard deviation over the "
        "model's seeds (the seeds column lists them per series where they differ; no ± for one seed).",
        tuple(b for b in SERIES_DETECTORS if b != "random"),
    )
    whole = grid(
        "test/anomaly/rockad_auroc",
        1,
        COLLECTION_BASELINES,
        "auroc",
        "Whole series: AUROC on UCR collections",
        "One class normal (the first in sorted order): the model trains on that class's training series and scores "
        "every test series, the other classes' being the anomalies. ROCKAD (aeon), IsolationForest, LOF and OC-SVM "
        "(scikit-learn, on the raw scaled series) are fitted on the same training series.",
        ("rockad",),
    )
    if per_point or whole:
        lines += ["## Anomaly detection in time series", "", *per_point, *whole]
    return lines


def anomaly_table(parts: dict[str, Any]) -> list[str]:
    """Per table data set, each model's test AUROC (mean ± std over its seeds) beside every baseline's on the same
    splits, and whether the best model reaches every baseline."""
    by_data: dict[str, list[tuple[str, dict, dict, int]]] = {}
    for name, p in parts.items():
        m = p.get("metrics") or {}
        if is_table_part(p):
            data, model = name.split("/", 1)
            by_data.setdefault(data, []).append(
                (model, m, p.get("metrics_std") or {}, len(p.get("seeds") or [0]))
            )
    if not by_data:
        return []

    def cell(m, sd, key):
        if key not in m:
            return "n/a"
        return f"{m[key]:.3f} ± {sd[key]:.3f}" if key in sd else f"{m[key]:.3f}"

    lines = ["## Anomaly detection on tables", "",
             "One-class protocol (train and validation on normal records only; test: held-out normal records and every "
             "anomaly), ODDS' down-sampling of the anomalous class, the scaling fitted on the training split. Test AUROC, "
             "mean ± standard deviation over the seeds (each seed redraws the split and the initialization); the "
             "baselines are fitted on the same training records of each seed, with their libraries' defaults (PCA: the "
             "model's code size).", ""]  # fmt: skip
    for data, rows in by_data.items():
        lines += [f"### {data}", "",
                  "| model | seeds | AUROC | AP | " + " | ".join(f"{ANOMALY_NAMES[b]} AUROC" for b in ANOMALY_BASELINES) + " |",
                  "| --- | --- | --- | --- | " + " | ".join("---" for _ in ANOMALY_BASELINES) + " |"]  # fmt: skip
        for model, m, sd, seeds in rows:
            lines.append(f"| {model} | {seeds} | {cell(m, sd, 'test/anomaly/auroc')} | {cell(m, sd, 'test/anomaly/average_precision')} | "
                         + " | ".join(cell(m, sd, f"test/anomaly/{b}_auroc") for b in ANOMALY_BASELINES) + " |")  # fmt: skip
        best_model, best = max(((mod, m["test/anomaly/auroc"]) for mod, m, _, _ in rows), key=lambda t: t[1])
        m0 = next(m for mod, m, _, _ in rows if mod == best_model)
        beaten = [ANOMALY_NAMES[b] for b in ANOMALY_BASELINES if m0.get(f"test/anomaly/{b}_auroc", -1) > best]
        absent = [ANOMALY_NAMES[b] for b in ANOMALY_BASELINES if f"test/anomaly/{b}_auroc" not in m0]
        verdict_line = (f"**missed**: below {', '.join(beaten)}" if beaten
                        else f"not judged: {', '.join(absent)} not measured" if absent
                        else "met: it reaches every baseline")  # fmt: skip
        lines += [
            "",
            f"Best aelab model: `{best_model}`, AUROC {best:.3f} — target (≥ every baseline's mean AUROC) {verdict_line}.",
            "",
        ]
    return lines


RECOMMEND_BASELINES = ("popularity", "itemknn", "ease")
RECOMMEND_NAMES = {"popularity": "Popularity", "itemknn": "ItemKNN (cosine)", "ease": "EASE"}
RECOMMEND_FIGURES = ("recall@20", "recall@50", "ndcg@100", "coverage@20")
#: the orders the recommendation target asks for: each model ≥ the next one's mean NDCG@100
RECOMMEND_ORDER = (("mult_vae", "mult_dae"), ("mult_dae", "itemknn"))


def is_recommend_part(part: dict[str, Any]) -> bool:
    """A part trained on interactions (its metrics hold the recommendation section's figures and baselines)."""
    m = part.get("metrics") or {}
    return "test/recommend/ndcg@100" in m and "test/recommend/ease_ndcg@100" in m


def recommendation_table(parts: dict[str, Any]) -> list[str]:
    """Per interaction data set, each model's test Recall@20/50, NDCG@100 and coverage@20 (mean ± std over its seeds)
    with the baselines (popularity, ItemKNN, EASE) of the same test users below them, and the targets' verdicts: the
    best autoencoder at or above EASE on NDCG@100 and Recall@20, Mult-VAE ≥ Mult-DAE ≥ ItemKNN, every model above
    popularity."""
    by_data: dict[str, list[tuple[str, dict, dict, int, float | None]]] = {}
    for name, p in parts.items():
        if is_recommend_part(p):
            data, model = name.split("/", 1)
            by_data.setdefault(data, []).append(
                (
                    model,
                    p["metrics"],
                    p.get("metrics_std") or {},
                    len(p.get("seeds") or [0]),
                    p.get("t_train"),
                )
            )
    if not by_data:
        return []

    def cell(m, sd, key):
        if key not in m:
            return "n/a"
        return f"{m[key]:.4f} ± {sd[key]:.4f}" if key in sd else f"{m[key]:.4f}"

    lines = ["## Recommendation: held-out users", "",
             "Strong generalization (Liang et al., WWW 2018, §4.2): disjoint training, validation and test users; each "
             "held-out user folded in with a random 80% of their items and scored on the other 20%. Recall@k is over "
             "min(k, held-out items), NDCG@100 with binary relevance; coverage@20 is the share of the catalogue in some "
             "test user's top 20. Mean ± standard deviation over the seeds (each seed redraws the user split, the "
             "fold-in draw and the initialization); the baselines are fitted on the same training users of each seed, "
             "ItemKNN's neighbours and EASE's λ chosen on its validation users.", ""]  # fmt: skip
    for data, rows in by_data.items():
        header = " | ".join(f"{f}" for f in RECOMMEND_FIGURES)
        lines += [f"### {data}", "", f"| model | seeds | {header} | train (all seeds) |",
                  "| --- | --- | " + " | ".join("---" for _ in RECOMMEND_FIGURES) + " | --- |"]  # fmt: skip
        for model, m, sd, seeds, t in rows:
            cells = " | ".join(cell(m, sd, f"test/recommend/{f}") for f in RECOMMEND_FIGURES)
            lines.append(f"| {model} | {seeds} | {cells} | {_duration(t)} |")
        _, m0, sd0, seeds0, _ = rows[0]
        for b in RECOMMEND_BASELINES:
            cells = " | ".join(cell(m0, sd0, f"test/recommend/{b}_{f}") for f in RECOMMEND_FIGURES)
            lines.append(f"| *{RECOMMEND_NAMES[b]}* | {seeds0} | {cells} | — |")
        ndcg = {model: m["test/recommend/ndcg@100"] for model, m, *_ in rows}
        recall = {model: m["test/recommend/recall@20"] for model, m, *_ in rows}
        autoencoders = [model for model in ndcg if model != "ease"]
        verdicts = []
        if autoencoders:
            best = max(autoencoders, key=lambda k: ndcg[k])
            e_ndcg, e_recall = m0["test/recommend/ease_ndcg@100"], m0["test/recommend/ease_recall@20"]
            ok = ndcg[best] >= e_ndcg and recall[best] >= e_recall
            verdicts.append(f"best autoencoder `{best}` (NDCG@100 {ndcg[best]:.4f}, Recall@20 {recall[best]:.4f}) at or "
                            f"above EASE ({e_ndcg:.4f}, {e_recall:.4f}): {'met' if ok else '**missed**'}")  # fmt: skip
        values = {**ndcg, "itemknn": m0["test/recommend/itemknn_ndcg@100"]}
        for hi, lo in RECOMMEND_ORDER:
            if hi in values and lo in values:
                ok = values[hi] >= values[lo]
                verdicts.append(f"{hi} ≥ {lo} on NDCG@100 ({values[hi]:.4f} vs {values[lo]:.4f}): "
                                f"{'met' if ok else '**missed**'}")  # fmt: skip
        pop = m0["test/recommend/popularity_ndcg@100"]
        under = [model for model in ndcg if ndcg[model] <= pop]
        verdicts.append(f"every model above popularity (NDCG@100 {pop:.4f}): "
                        + ("met" if not under else f"**missed** by {', '.join(under)}"))  # fmt: skip
        lines += ["", *[f"- {v}" for v in verdicts], ""]
    return lines


def _speed(per_s: float | None) -> str:
    """Images/s: whole numbers from 10 up, two significant digits below (a whole photo takes seconds)."""
    if per_s is None:
        return "—"
    return f"{per_s:.0f}" if per_s >= 10 else f"{per_s:.2g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def reproducibility_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The reproducibility table: each model beside its paper's number, with the run that measured it."""
    if not rows:
        return []
    lines = ["## Reproducibility: each model beside its paper", "",
             "Each row's number is its part's `metrics.json` (below, *Every figure*); the epochs, the training wall time "
             "on this report's device and the command are the run's own. Where a target is missed, the last column "
             "sets the run's length beside the paper's.", "",
             "| model | paper | paper's number | aelab | target | met | epochs | train time | command | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        fmt = r.get("fmt") or ".4g"
        ok = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        epochs = ", ".join(str(e) for e in r["epochs"]) or "—"
        # cut short (early stopping, or continued with a smaller trainer.max_epochs)
        if r.get("planned_epochs"):
            epochs += f" of {', '.join(str(e) for e in r['planned_epochs'])} planned"
        note = []
        if r["value"] is None:
            note.append("its run has no such figure" if r["epochs"] else "not run in this report")
        elif r["met"] is False:
            note.append(
                f"missed at {epochs} epochs"
                + (f"; the paper trained {r['paper_budget']}" if r.get("paper_budget") else "")
            )
        if r["kept_from"]:
            note.append(f"from the report of {', '.join(r['kept_from'])}")
        cmd = f"`{r['command']}`" if r.get("command") else "—"
        value = "n/a" if r["value"] is None else f"{r['value']:{fmt}} {r['unit']}"
        op = {"<=": "≤", ">=": "≥"}.get(r["op"], r["op"])
        lines.append(f"| {r['model']} | {r['paper']} | {'—' if r['paper_value'] is None else format(r['paper_value'], fmt)} | {value} | "
                     f"{op} {format(r['target'], fmt)} | {ok} | {epochs} | {_duration(r['t_train'])} | {cmd} | {'; '.join(note)} |")  # fmt: skip
    return [*lines, ""]


def render(results: dict[str, Any]) -> str:
    """The Markdown report of a results JSON (nothing else is read; figures are linked at ``figures_link``)."""
    figures_link = results.get("figures_link", "figures")
    parts = results["parts"]
    lines = [
        "# Results",
        "",
        f"Rendered by `python scripts/results.py --render docs/results.json --out docs/RESULTS.md` from the JSON that "
        f"`make results` (`scripts/results.py`) wrote on {results['date']}; device: {results['device']}; "
        f"torch {results['versions']['torch']}, pytorch-lightning {results['versions']['lightning']}, Python "
        f"{results['versions']['python']}. Every number below is read from that JSON: the `metrics.json` of the runs "
        "listed under *Runs*, with their commands and wall times.",
        "",
    ]
    for note in results.get("notes", []):
        lines += [f"> {note}", ""]
    rows = results["headline"]
    met = [r for r in rows if r["met"] is True]
    missed = [r for r in rows if r["met"] is False]
    lines += ["## What was met and what was not", ""]
    for r in missed:
        lines.append(
            f"- **Missed:** {r['label']}: {_num(r['value'])} against the target {r['op']} {_num(r['goal'])}."
        )
    for data, c in results.get("codec", {}).items():
        for t in c.get("targets", []):
            ok = verdict(t["value"], t["op"], t["goal"])
            word = "Met" if ok else ("**Missed**" if ok is False else "Not measured")
            unit = "%" if "BD" in t["what"] else ""
            if t["value"] is None and "BD" in t["what"] and c.get("codec"):
                lines.append(
                    f"- **Missed** ({data}, {c['model']}): {t['what']}: none — the learned codec's curve and the "
                    f"anchor's share no PSNR range (or have under 4 points), target {t['op']} {t['goal']}{unit}."
                )
                continue
            lines.append(
                f"- {word} ({data}, {c['model']}): {t['what']} = {_num(t['value'], '.3g')}{unit}, target {t['op']} {t['goal']}{unit}."
            )
    g = results.get("generation", {})
    if g.get("best"):
        b = g["best"]
        ok = b["value"] <= 10
        lines.append(f"- {'Met' if ok else '**Missed**'}: the best Fréchet distance of any model and sampler is "
                     f"{b['value']:.3g} ({b['model']}, {b['sampler']}), target ≤ 10; the floor (training vs test images) is {_num(g['floor'], '.3g')}.")  # fmt: skip
    lines.append(f"- Met: {len(met)} of the {len(met) + len(missed)} headline targets below.")
    lines += ["", *reproducibility_lines(results.get("reproducibility", []))]
    lines += [
        "## Headline",
        "",
        "| part | figure | value | anchor | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        value = "n/a" if r["value"] is None else (f"{r['value']:.4g}×" if r["ratio"] else f"{r['value']:.4g}")
        target = "" if r["op"] is None else f"{r['op']} {_num(r['goal'])}"
        ok = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['part']} | {r['label']} | {value} | {r['anchor']} | {target} | {ok} |")
    oc, one_class = results.get("one_class"), references()["one_class"]
    if oc:
        mean = oc["mean"]["auroc"]
        lines.append(f"| mnist/one_class | one-class mean AUROC ({len(oc['classes'])} digits) | {100 * mean:.1f} | {one_class['anchor']} | "
                     f">= {100 * one_class['target']:.0f} | {'yes' if mean >= one_class['target'] else '**no**'} |")  # fmt: skip
    lines += [
        "",
        *baseline_table(parts),
        *anomaly_table(parts),
        *recommendation_table(parts),
        *series_tables(parts),
        *text_table(parts),
        "## Runs: epochs, wall times, commands",
        "",
        "| part | epochs (best) | train | eval |",
        "| --- | --- | --- | --- |",
    ]
    for n, p in parts.items():
        if "t_train" not in p:
            continue
        best = "" if p.get("best_epoch") is None else f" ({p['best_epoch']})"
        if p.get("max_epochs") not in (None, p.get("epochs")):
            best += f" of {p['max_epochs']} planned"
        resumed = " (finishing attempt of a resumed run)" if p.get("resumed") else ""
        if p.get("kept_from"):
            resumed += f" (from the report of {p['kept_from'].get('date')})"
        ev = f"{p['t_eval']:.0f} s" if "t_eval" in p else "—"
        lines.append(f"| {n} | {p['epochs']}{best} | {p['t_train']:.0f} s{resumed} | {ev} |")
    lines.append("")
    for n, p in parts.items():
        if "train_cmd" in p:
            lines.append(f"- {n}: `{p['train_cmd']}`" + (f"; `{p['eval_cmd']}`" if "eval_cmd" in p else ""))
    if oc:
        lines.append(f"- mnist/one_class ({oc['t']:.0f} s): `{oc['cmd']}`")
    if g.get("rows"):
        samplers = ["prior", "gaussian", "gmm", "categorical", "autoregressive"]
        lines += ["", "## Generation: Fréchet distance by model and sampler (MNIST test set)", "",
                  f"On the 128-d features of aelab's MNIST classifier (Heusel et al. 2017, eq. 6); 10,000 generated images "
                  f"against the test images. Floor (training vs test images): {_num(g['floor'], '.3g')}. Lower is better.",
                  "", "| model | " + " | ".join(samplers) + " |", "| --- |" + " --- |" * len(samplers)]  # fmt: skip
        for model, f in g["rows"].items():
            lines.append(
                f"| {model} | "
                + " | ".join(_num(f.get(s), ".1f") if s in f else "—" for s in samplers)
                + " |"
            )
    nll = {n.split("/")[1]: p["metrics"]["test/likelihood/nll_iwae"] for n, p in parts.items()
           if n.startswith("mnist/") and "test/likelihood/nll_iwae" in p.get("metrics", {})}  # fmt: skip
    if nll:
        lines += [
            "",
            "## Test NLL (nats, binarized MNIST, IWAE bound)",
            "",
            "| model | NLL | −ELBO | k | images | time (s) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for model, v in nll.items():
            m = parts[f"mnist/{model}"]["metrics"]
            took = _num(m.get("test/timing/likelihood_s"), ".0f")
            lines.append(
                f"| aelab {model} | {v:.2f} | {m['test/likelihood/nelbo']:.2f} | {m['test/likelihood/k']:.0f} | {m['test/likelihood/num_images']:.0f} | {took} |"
            )
        lines += [f"| {label} | {value} | | | | |" for label, value in references()["nll_anchors"]]
    for data, c in results.get("codec", {}).items():
        unit = "bits/pixel" if c["rate"] == "bits_per_pixel" else "bytes/image"
        images = c.get("images")
        where = (
            "the three held-out photographs, whole"
            if data == "photo_patches"
            else (f"every codec on the same {images:,.0f} test images" if images else "the test images")
        )
        lines += ["", f"## The learned codecs on {data}", "",
                  f"Real files ({unit}) against PSNR; {where}. **Per image**: one file per image, headers counted (what a "
                  "user who compresses one image gets; the classical codecs are measured so); **stream**: the whole set in "
                  "one file. BD-rate (Bjøntegaard 2001) against each classical codec over their common PSNR range: "
                  f"negative = fewer bits at equal PSNR. The targets are judged on `{c['model']}`.", ""]  # fmt: skip
        for family, f in c.get("models", {}).items():
            how = "" if f["per_image"] else " (measured before per-image files: the stream rate only)"
            lines += [f"### `{family}`{how}", "",
                      f"| λ | epochs | per image ({unit}) | stream ({unit}) | PSNR (dB) | encode images/s | decode images/s |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
            pre = "photos/" if data == "photo_patches" else ""
            for n, lam in sorted(f["lambdas"].items(), key=lambda kv: kv[1]):
                m = parts[n]["metrics"]
                key = f"test/codec/{pre}"
                stream = m.get(key + "stream_" + c["rate"])
                lines.append(f"| {lam:g} | {_num(f['epochs'].get(n), '.0f')} | {m[key + c['rate']]:.4g} | "
                             f"{_num(stream, '.4g')} | {m[key + 'psnr']:.2f} | "
                             f"{_speed(f['speed'][n]['encode'])} | {_speed(f['speed'][n]['decode'])} |")  # fmt: skip
            overlaps = f.get("overlap") or {}
            lines += [
                "",
                "| against | BD-rate, per image | BD-rate, stream | PSNR overlap |",
                "| --- | --- | --- | --- |",
            ]
            lines += [f"| {CLASSICAL_NAMES.get(k, k)} | {_num(v, '.1f')}% | {_num(f['stream_bd_rate'].get(k), '.1f')}% | "
                      f"{_num(None if overlaps.get(k) is None else 100 * overlaps[k], '.0f')}% |"
                      for k, v in f["bd_rate"].items()]  # fmt: skip
            narrow = [CLASSICAL_NAMES.get(k, k) for k, o in overlaps.items() if o is not None and o < 0.75]
            if narrow:
                lines += ["", f"PSNR overlap: the share of the shorter curve's PSNR range both curves cover. Under 75% "
                          f"({', '.join(narrow)}) the BD-rate rests on a narrow overlap and extrapolates the fit; read "
                          "it with the figure."]  # fmt: skip
            if f.get("bytes_at_25db") is not None:
                lines += [
                    "",
                    f"At 25 dB: {f['bytes_at_25db']:.2f} bytes per image (interpolated between its λ points).",
                ]
            lines.append("")
    others = [
        n
        for n, p in parts.items()
        if "metrics" in p
        and not n.startswith("mnist/")
        and p.get("group") != "codec"
        and not is_table_part(p)
        and not is_recommend_part(p)
        and not is_series_part(p)
        and not is_text_part(p)
    ]
    if others:
        lines += ["", "## Other image data: 8×8 digits, Fashion-MNIST, photo patches", "",
                  "| part | test MSE | PSNR (dB) | mean image MSE | PCA (same size) MSE | JPEG q50 B/image, PSNR | WebP q50 B/image, PSNR | 8-bit code B/image, PSNR |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for n in others:
            m = parts[n]["metrics"]

            def pair(prefix, m=m):
                b, p = (
                    m.get(f"test/compression/{prefix}_bytes_per_image"),
                    m.get(f"test/compression/{prefix}_psnr"),
                )
                return "—" if b is None else f"{b:.1f}, {p:.2f}"

            lines.append(f"| {n} | {m['test/mse']:.5f} | {_num(m.get('test/psnr'), '.2f')} | {_num(m.get('test/baseline/mean_image_mse'), '.5f')} | "
                         f"{_num(m.get('test/compression/pca_mse'), '.5f')} | {pair('jpeg_q50')} | {pair('webp_q50')} | {pair('ae_uint8')} |")  # fmt: skip
    figures = results.get("figures", {})
    if figures:
        lines += ["", "## Figures", ""]
        for name, text in figures.items():
            lines += [f"![{name}]({figures_link}/{name})", "", f"*{text}*", ""]
    if oc:
        lines += ["## One-class AUROC per digit", "", "| digit | AUROC (%) |", "| --- | --- |"]
        lines += [f"| {c} | {100 * r['auroc']:.1f} |" for c, r in oc["classes"].items()]
        lines.append("")
    lines += ["## Every figure", ""]
    for n, p in parts.items():
        m = p.get("metrics") or p.get("train_metrics") or {}
        lines += [
            f"<details><summary>{n} ({len(m)} figures)</summary>",
            "",
            "| key | value |",
            "| --- | --- |",
        ]
        lines += [f"| `{k}` | {v:.6g} |" for k, v in sorted(m.items()) if isinstance(v, int | float)]
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"
