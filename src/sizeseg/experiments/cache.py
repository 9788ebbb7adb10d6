"""Reuse of finished runs: a cached run counts only when it was trained with the settings asked for now."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from sizeseg.training.run_record import setting_differences


def check_reusable(record: str | Path, recorded: Mapping[str, Any], wanted: Mapping[str, Any],
                   defaults: Mapping[str, Any], meant: Mapping[str, Mapping[Any, Any]] | None = None) -> None:
    """Raise a ValueError naming ``record`` and every setting in ``wanted`` that ``recorded`` differs in.

    A key the record predates counts as its value in ``defaults``, so runs written before a
    setting existed stay reusable when the default is asked for; a recorded value that stood for
    another when it was written counts as that one (``meant``, as in ``setting_differences``).

    >>> check_reusable("runs/a/result.json", {"seed": 0}, {"seed": 0, "field": 256}, {"field": 256})
    >>> check_reusable("runs/a/result.json", {"seed": 0}, {"seed": 1}, {})
    Traceback (most recent call last):
    ...
    ValueError: runs/a/result.json: this finished run was trained with other settings (seed=0, not 1); use another --out
    """
    differ = setting_differences(recorded, wanted, defaults, meant)
    if differ:
        raise ValueError(f"{record}: this finished run was trained with other settings ({differ}); use another --out")
