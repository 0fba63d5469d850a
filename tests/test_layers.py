"""The package's rooms: imports run downhill (the import-linter contract in pyproject.toml), no import cycle
between aelab's modules (imports inside functions included), and no module that nothing imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

grimp = pytest.importorskip("grimp")


def test_the_layering_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("aelab", include_external_packages=False)
    modules = sorted(graph.modules)
    cycles = [
        (a, b)
        for a in modules
        for b in graph.find_modules_directly_imported_by(a)
        if a < b and graph.direct_import_exists(importer=b, imported=a)
    ]
    assert not cycles, cycles
    long = [
        (a, b)
        for a in modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
        and not a.startswith(b + ".")
        and not b.startswith(a + ".")
    ]
    assert not long, long[:10]


def test_every_module_is_imported_or_an_entry_point():
    graph = grimp.build_graph("aelab", include_external_packages=False)
    text = (REPO / "pyproject.toml").read_text()
    plugins = "".join(p.read_text() for p in (REPO / "src" / "hydra_plugins").rglob("*.py"))
    entry = {
        m for m in graph.modules if f'"{m}:' in text or f"from {m} import" in plugins
    }  # scripts, plugins
    files = {m: Path(__import__(m, fromlist=["_"]).__file__) for m in graph.modules}
    packages = {m for m, f in files.items() if f.name == "__init__.py"}
    runnable = {m for m, f in files.items() if "__main__" in f.read_text()}  # python -m / scripts/ wrappers
    orphans = sorted(
        m
        for m in set(graph.modules) - packages - entry - runnable
        if not graph.find_modules_that_directly_import(m)
    )
    assert not orphans, orphans


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "src").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
