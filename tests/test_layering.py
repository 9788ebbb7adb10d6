"""The package's layers: only ``experiments`` and the CLI's ``commands`` may import ``sizeseg.experiments``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sizeseg"
MAY_IMPORT_EXPERIMENTS = ("experiments", "commands")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: resolve against the importing package
                package = path.relative_to(SRC.parent).with_suffix("").parts[:-node.level]
                names.add(".".join(package + (node.module,)))
            else:
                names.add(node.module)
    return names


def test_only_experiments_and_commands_import_experiments():
    files = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in MAY_IMPORT_EXPERIMENTS]
    assert len(files) > 30
    offenders = {str(p.relative_to(SRC)): sorted(m for m in _imported_modules(p) if m.startswith("sizeseg.experiments"))
                 for p in files}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_scan_resolves_absolute_and_relative_imports():
    assert "sizeseg.training.run_record" in _imported_modules(SRC / "experiments" / "cache.py")
    assert "sizeseg.losses.size_criteria" in _imported_modules(SRC / "losses" / "size_loss.py")  # from .size_criteria
