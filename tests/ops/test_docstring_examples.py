"""The runnable examples in the docstrings (core ops, size losses, experiment helpers) run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["sizeseg.ops.distance", "sizeseg.ops.flip", "sizeseg.losses.size_loss",
           "sizeseg.losses.exact", "sizeseg.losses.size_criteria", "sizeseg.ops.size_match",
           "sizeseg.experiments.options", "sizeseg.experiments.report",
           "sizeseg.experiments.cache", "sizeseg.experiments.constrained.profiles",
           "sizeseg.experiments.constrained.methods", "sizeseg.metrics.overlap"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
