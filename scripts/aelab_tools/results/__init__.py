"""``make results`` (``scripts/results.py``): one room per job — :mod:`.runner` trains and evaluates the parts,
:mod:`.analysis` derives the report's figures of merit, :mod:`.figure_set` draws its figures, :mod:`.render`
writes the Markdown from the JSON alone, :mod:`.cli` is the command."""

from aelab_tools.results.analysis import codec_study, generation_table, headline_rows, verdict
from aelab_tools.results.cli import main
from aelab_tools.results.render import render
from aelab_tools.results.runner import Runner, best_epoch, load_headlines, load_parts, trained_epochs

__all__ = [
    "Runner",
    "best_epoch",
    "codec_study",
    "generation_table",
    "headline_rows",
    "load_headlines",
    "load_parts",
    "main",
    "render",
    "trained_epochs",
    "verdict",
]
