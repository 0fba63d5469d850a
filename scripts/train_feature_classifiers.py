#!/usr/bin/env python
"""Train the Fréchet feature classifiers of the bundled labelled sets' default splits and ship them in the package
(``src/aelab/evaluation/weights/``), so that a default ``aelab-eval`` trains none (issue 38: a cold evaluation
within two minutes). Each file is named by its training split's fingerprint (:func:`aelab.evaluation.fid.
classifier_file`), so a changed split never loads it; ``classifiers.json`` beside them records each one's data,
test accuracy, steps, seed, command and date. Idempotent: a classifier already shipped is kept.

    python scripts/train_feature_classifiers.py [--data mnist fashion_mnist digits] [--data-dir data]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

SETS = ("mnist", "fashion_mnist", "digits")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument(
        "--data-dir", default="data", help="the data root (`make data` unpacks MNIST and Fashion-MNIST)"
    )
    p.add_argument(
        "--steps", type=int, default=3000, help="training steps (suite.sections.fid.classifier_steps)"
    )
    args = p.parse_args(argv)

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from aelab import CONF_DIR
    from aelab.evaluation import fid
    from aelab.utils.config import register_resolvers
    from aelab.utils.device import device_name

    register_resolvers()
    index_path = fid.SHIPPED_DIR / "classifiers.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    fid.SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    for name in args.data:
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            cfg = compose(
                "train", overrides=[f"data={name}", f"paths.data_dir={Path(args.data_dir).resolve()}"]
            )
        dm = instantiate(cfg.data)
        train, test = dm.split_tensors("train"), dm.split_tensors("test")
        file = fid.classifier_file(*train, num_classes=dm.num_classes, steps=args.steps, seed=0)
        # trained into the shipped folder itself (its cache); a classifier shipped already is loaded, not retrained
        _, acc, source = fid.classifier(train, test, fid.SHIPPED_DIR, steps=args.steps, seed=0,
                                        num_classes=dm.num_classes)  # fmt: skip
        if source == "trained" or file not in index:
            index[file] = {"data": name, "test_acc": acc, "steps": args.steps, "seed": 0,
                           "train_examples": len(train[0]), "test_examples": len(test[0]),
                           "fingerprint": fid.split_fingerprint(*train), "date": dt.date.today().isoformat(),
                           "device": device_name(), "command": "python scripts/train_feature_classifiers.py"}  # fmt: skip
        print(f"{name}: {file} ({source}), test accuracy {acc:.4f}")
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
