"""``aelab-encode``: a sentence model's code of each document of a file, for search, clustering or a classifier.

::

    aelab-encode logs/train/runs/<id>/checkpoints/last.ckpt --input docs.txt --out codes.parquet

``--input`` is a text file (one document per non-empty line) or a CSV/Parquet file with ``--text-column``. Each
document is tokenized with the checkpoint's own tokenizer (saved in it as plain data), truncated to the run's
``data.max_length``, and encoded (the VAE's posterior mean). ``--out`` (Parquet, or CSV by its suffix) gets one row
per document: ``index``, ``text`` and ``z_0 … z_{D-1}``. Tokens the tokenizer does not know are counted and reported;
truncated documents too. An empty file or column, bytes that are not ``--encoding``, or a checkpoint without a
tokenizer or a code is refused in one line, and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from aelab.checkpoint import load_model
from aelab.cli import checkpoint_parser, returns_code
from aelab.data.text import encode_texts, read_documents, tokenizer_from_state
from aelab.errors import ConfigError
from aelab.trust import trusted_prefixes


def _token_state(ckpt: dict) -> dict:
    for value in ckpt.values():
        if (
            isinstance(value, dict)
            and value.get("kind") == "tokens"
            and isinstance(value.get("tokenizer"), str)
        ):
            return value
    raise ConfigError("the checkpoint holds no tokenizer: aelab-encode encodes with models trained on data=text or "
                      "data=rotten_tomatoes")  # fmt: skip


@returns_code("aelab-encode")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="aelab-encode", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[checkpoint_parser()],
    )  # fmt: skip
    p.add_argument("ckpt", help="checkpoint written by aelab-train on text (model=text_ae, sentence_vae)")
    p.add_argument(
        "--input", required=True, help="the documents: a text file (one per line), or a CSV/Parquet file"
    )
    p.add_argument(
        "--out", required=True, help="the codes: Parquet (or CSV by its suffix), one row per document"
    )
    p.add_argument("--text-column", default=None, help="the documents' column of a CSV/Parquet file")
    p.add_argument("--encoding", default="utf-8", help="the input file's text encoding")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    model, _, ckpt = load_model(args.ckpt, device, trusted_prefixes(args.trust))
    if not hasattr(model, "encode"):
        raise ConfigError(
            f"{args.ckpt}: {type(model).__name__} has no code: encode with a text_ae or sentence_vae"
        )
    state = _token_state(ckpt)
    tokenizer = tokenizer_from_state(state)
    texts, _ = read_documents(Path(args.input), args.text_column, None, args.encoding)
    ids, truncated, unknown = encode_texts(tokenizer, texts, int(state["max_length"]))
    with torch.no_grad():
        codes = torch.cat([model.encode(b.to(device)).float().cpu() for b in ids.split(args.batch_size)])
    import pandas as pd

    frame = pd.DataFrame(codes.numpy(), columns=[f"z_{i}" for i in range(codes.shape[1])])
    frame.insert(0, "text", texts)
    frame.insert(0, "index", range(len(texts)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    if out.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    print(f"{len(texts)} documents encoded → {out} ({codes.shape[1]} numbers each); {unknown} unknown tokens, "
          f"{truncated} documents truncated to {state['max_length']} tokens")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
