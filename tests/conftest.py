from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import make_acdc, make_decathlon

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets at ../shared/data; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (see ../shared/data/README.md); skipping")
    return SHARED_DATA


@pytest.fixture
def decathlon(tmp_path) -> Path:
    """A small Decathlon task folder (see tests.builders.make_decathlon)."""
    return make_decathlon(tmp_path / "Task99_Toy")


@pytest.fixture
def acdc(tmp_path) -> Path:
    """A small ACDC folder (see tests.builders.make_acdc)."""
    return make_acdc(tmp_path / "ACDC")


@pytest.fixture(scope="session", autouse=True)
def one_pass_epochs():
    """Training runs in tests make one pass per epoch over their tiny sets: the library's default repeats a
    small set to 2048 items an epoch (sizeseg.training.config.EPOCH_ITEMS), hundreds of steps per test.
    Session scope, so that module-scoped fixtures, which are set up before function-scoped ones, see it too."""
    from sizeseg.training import config

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "DEFAULT_EPOCH_ITEMS", None)
        yield
