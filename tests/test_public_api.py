"""The public namespaces: every name in each ``__all__`` imports, the losses namespace works as the
README says, and the exact oracles are testing tools, not top-level API."""

from __future__ import annotations

import importlib

import pytest

NAMESPACES = ["sizeseg", "sizeseg.losses", "sizeseg.losses.testing", "sizeseg.metrics", "sizeseg.checks",
              "sizeseg.ops", "sizeseg.data"]


@pytest.mark.parametrize("module_name", NAMESPACES)
def test_every_name_in_all_imports(module_name):
    module = importlib.import_module(module_name)
    names = module.__all__
    assert names and len(names) == len(set(names)), f"{module_name}.__all__ is empty or repeats a name"
    for name in names:
        assert getattr(module, name) is not None, f"{module_name}.{name}"
    exec(f"from {module_name} import {', '.join(n for n in names if n != '__version__')}", {})


def test_losses_namespace_holds_the_losses_a_user_drops_in():
    from sizeseg.losses import (KLSizeLoss, LogBarrierSizeLoss, PartialCrossEntropy, ProposalLoss,  # noqa: F401
                                SizeLoss, SizePenalty)
    from sizeseg.metrics import Dice, IoU, MeanOverImages, predicted_size  # noqa: F401
    import sizeseg
    import sizeseg.losses

    assert sizeseg.SizePenalty is sizeseg.losses.SizePenalty
    assert set(sizeseg.__all__) - {"__version__", "NO_BACKGROUND", "distance_transform", "flip_sizes",
                                   "object_size"} <= set(sizeseg.losses.__all__)


def test_exact_oracles_are_testing_tools():
    import sizeseg
    import sizeseg.losses
    from sizeseg.losses.testing import ExactSizeLoss, exact_size_loss

    for namespace in (sizeseg, sizeseg.losses):
        assert not {"ExactSizeLoss", "exact_size_loss", "ExactObjectSizeLoss"} & set(namespace.__all__)
        assert "ExactSizeLoss" not in dir(namespace)
    assert sizeseg.exact_size_loss is exact_size_loss and sizeseg.ExactSizeLoss is ExactSizeLoss  # older code
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sizeseg.nope  # noqa: B018


def test_several_objects_and_classes_have_public_names():
    import sizeseg
    import sizeseg.data
    import sizeseg.metrics
    import sizeseg.training
    from sizeseg.data.size_lists import read_size_table
    from sizeseg.losses.size_criteria import SymmetricRelativeError
    from sizeseg.metrics.object_size_error import score_batch
    from sizeseg.training.loss_terms import ObjectSizeTerm

    assert {"SizeTable", "read_size_table", "check_size_table", "attach_size_table", "n_classes"} <= set(
        sizeseg.data.__all__)
    assert {"object_size_error", "score_batch"} <= set(sizeseg.metrics.__all__)
    assert "ObjectSizeTerm" in sizeseg.training.__all__ and sizeseg.training.ObjectSizeTerm is ObjectSizeTerm
    assert sizeseg.data.read_size_table is read_size_table and sizeseg.metrics.score_batch is score_batch
    assert {"ObjectSizeLoss", "object_size_loss", "SymmetricRelativeError"} <= set(sizeseg.__all__)
    assert sizeseg.SymmetricRelativeError is SymmetricRelativeError
