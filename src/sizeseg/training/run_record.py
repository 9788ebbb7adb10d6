"""``run.json``: the settings a training run was started with, so that a resume cannot change them.

Re-running a training command into a folder with a ``last.ckpt`` resumes that run. The run's
settings are recorded when it starts; a resume with other settings (another learning rate, a
different network, another mode or ``--init``) would mix two runs in one set of weights and
logs, so it is refused with a message naming each differing key. Settings that only say how far
or where to train (``max_epochs``, ``patience``, loader workers, devices) may change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Hashable, Mapping

RUN_FILE = "run.json"
#: keys a resumed run may change: how long and on what hardware, not what is learned
FREE_ON_RESUME = frozenset({"max_epochs", "patience", "num_workers", "accelerator", "devices", "strategy"})


def run_settings(mode: str, cfg, init: str | Path | None) -> dict[str, Any]:
    """What ``run.json`` records: the mode, the ``--init`` checkpoint (resolved path) and every setting."""
    return {"mode": mode, "init": None if init is None else str(Path(init).resolve()), **cfg.to_dict()}


def setting_differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any], defaults: Mapping[str, Any],
                        meant: Mapping[str, Mapping[Any, Any]] | None = None) -> str:
    """``"key=recorded, not wanted"`` for each key of ``wanted`` whose value ``recorded`` differs in; "" if none.

    A key ``recorded`` lacks counts as its value in ``defaults``. ``meant`` maps a key to recorded
    values that stood for another when they were written (an empty ``monitor`` for the default
    metric of that day); they are compared, and named, as what they meant.

    >>> setting_differences({"lr": 0.001, "seed": 0}, {"lr": 0.01, "seed": 0}, {})
    'lr=0.001, not 0.01'
    >>> setting_differences({"monitor": ""}, {"monitor": "val/IoU"}, {}, {"monitor": {"": "val/E"}})
    "monitor='val/E', not 'val/IoU'"
    """
    def was(key: str) -> Any:
        value = recorded.get(key, defaults.get(key))
        table = (meant or {}).get(key)
        return table.get(value, value) if table is not None and isinstance(value, Hashable) else value

    return ", ".join(f"{key}={was(key)!r}, not {value!r}" for key, value in wanted.items() if was(key) != value)


def check_resume(out_dir: str | Path, settings: Mapping[str, Any], defaults: Mapping[str, Any], hint: str,
                 meant: Mapping[str, Mapping[Any, Any]] | None = None) -> None:
    """Raise a ValueError when ``out_dir``'s recorded run differs from ``settings`` in a key that matters.

    Without ``run.json`` (a run recorded before it existed) the hyper-parameters in
    ``last.ckpt`` (learning rate, schedule, network) are compared instead. ``meant`` maps a key to
    recorded values that stood for another when they were written (an empty ``monitor`` for the
    default metric of that day), so they are compared as what they meant.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> _ = write_run_settings(out, {"mode": "pretrain", "lr": 0.001, "max_epochs": 5})
        >>> check_resume(out, {"mode": "pretrain", "lr": 0.001, "max_epochs": 9}, {}, "use another --out")
        >>> check_resume(out, {"mode": "pretrain", "lr": 0.01, "max_epochs": 9}, {}, "use another --out")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...: the run in this folder was started with other settings (lr=0.001, not 0.01); use another --out
    """
    out_dir = Path(out_dir)
    record = out_dir / RUN_FILE
    wanted = {k: v for k, v in settings.items() if k not in FREE_ON_RESUME}
    if record.is_file():
        try:
            recorded = json.loads(record.read_text())
        except ValueError:
            raise ValueError(f"{record}: not valid JSON; {hint}") from None
        if not isinstance(recorded, dict):
            raise ValueError(f"{record}: expected a JSON object of settings; {hint}")
    else:
        recorded = _checkpoint_settings(out_dir)
        wanted = {k: v for k, v in wanted.items() if k in recorded}
    differ = setting_differences(recorded, wanted, defaults, meant)
    if differ:
        raise ValueError(f"{out_dir}: the run in this folder was started with other settings ({differ}); {hint}")


def write_run_settings(out_dir: str | Path, settings: Mapping[str, Any]) -> Path:
    """Record ``settings`` as ``out_dir/run.json`` (atomically)."""
    from sizeseg.io_utils import atomic_write_text

    return atomic_write_text(Path(out_dir) / RUN_FILE, json.dumps(dict(settings), indent=1, sort_keys=True) + "\n")


def _checkpoint_settings(out_dir: Path) -> dict[str, Any]:
    from sizeseg.training.checkpoints import read_checkpoint
    from sizeseg.training.trainer import RESUME_HINT, last_checkpoint

    ckpt = last_checkpoint(out_dir)
    if ckpt is None:
        return {}
    hparams = read_checkpoint(ckpt, hint=RESUME_HINT).get("hyper_parameters") or {}
    spec = hparams.get("model_spec") or {}
    settings = {key: hparams[key] for key in ("lr", "lr_step", "lr_gamma") if key in hparams}
    if "name" in spec:
        settings["model"] = spec["name"]
    return settings
