"""Reading checkpoints without running anything from them.

A ``.ckpt`` file is a pickle inside a zip archive, and a pickle may name any Python callable to
rebuild its objects: ``torch.load(weights_only=False)`` on a file from someone else runs whatever
it names. Every checkpoint sizeseg reads goes through :func:`read_checkpoint`, which unpickles
with ``weights_only=True`` (tensors, dicts, lists, numbers, strings only) and turns every way a
file can fail (empty, truncated, random bytes, a pickle asking for other objects) into one
ValueError naming the file. A sizeseg checkpoint needs nothing outside that allow-list: its
hyper-parameters are numbers, strings and the ``model_spec`` dict.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch


def read_checkpoint(path: str | Path, hint: str = "") -> dict[str, Any]:
    """The contents of the checkpoint at ``path``, unpickled with ``weights_only=True``.

    Args:
        path: a ``.ckpt`` file (``torch.save`` / Lightning format).
        hint: appended to every error message (e.g. what the user can do instead).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``path: ...`` in one line when the file is empty, truncated or corrupt, is no
            ``torch.save`` file, or asks for objects other than tensors and plain data (whose
            code is then never run).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "w.ckpt")
        >>> torch.save({"state_dict": {"model.w": torch.ones(2)}}, path)
        >>> read_checkpoint(path)["state_dict"]["model.w"]
        tensor([1., 1.])
        >>> _ = open(path, "wb").write(b"not a checkpoint")
        >>> read_checkpoint(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...w.ckpt: not a checkpoint (no torch.save data in it)
    """
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found{suffix}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not a checkpoint{suffix}")
    try:
        with warnings.catch_warnings():
            # a plain pickle (not a torch.save file) also warns about its protocol before failing
            warnings.filterwarnings("ignore", "Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError,
            TypeError, AttributeError, UnicodeDecodeError) as err:
        refused = re.search(r"GLOBAL ([\w.]+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if refused:
            raise ValueError(f"{path}: refused to load: it asks for the Python object {refused.group(1)}, which a "
                             f"checkpoint never holds; nothing from it was run{suffix}") from None
        with open(path, "rb") as fh:
            zipped = fh.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        if not zipped:
            raise ValueError(f"{path}: not a checkpoint (no torch.save data in it){suffix}") from None
        first = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: corrupt or truncated checkpoint ({first}){suffix}") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise ValueError(f"{path}: not a Lightning checkpoint (no state_dict in it){suffix}")
    return state
