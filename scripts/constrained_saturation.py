"""Where a size penalty can still act: saturated pixels of trained constrained-experiment networks.

Usage::

    python scripts/constrained_saturation.py --data ../shared/data/ACDC --prepared runs/authors \\
        runs/authors/runs/size_two_bounds runs/authors/runs/size_two_bounds-seed1 ...

The size penalties of Table 1 act on a pixel through the derivative of its softmax probability. For two
classes at temperature T the probability is p = sigmoid(z / T) and its derivative is dp/dz = p (1 - p) / T, so a
pixel with p (1 - p) / T below ``--threshold`` (1e-3 by default: 1/250 of an undecided pixel's 0.25 at T = 1)
barely moves whatever the penalty says. This script loads each run's best network (its
``result.json`` gives T, the field of view, the resolution and the split), predicts every validation slice, and
prints the share of all validation pixels that are

- ``fg``: predicted foreground (p > 1/2), beside ``true_fg``, the share inside the LV;
- ``saturated``: p (1 - p) / T < threshold;
- ``saturated_fg_outside``: predicted foreground, saturated, and outside the LV: the false positives the penalty
  can no longer pull back.

``--prepared`` is the experiment's output folder, where its prepared slices are cached (they are prepared there
when absent). Every validation slice of the run's split is scored, including slices without the LV.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def saturation_shares(logits: torch.Tensor, masks: torch.Tensor, temperature: float, threshold: float = 1e-3) -> dict:
    """Shares of the pixels of ``logits`` (N, H, W), against the boolean ``masks`` (N, H, W), as the docstring of
    this script defines them.

    >>> z = torch.tensor([[[0.0, 5.0], [-5.0, 5.0]]])
    >>> m = torch.tensor([[[True, True], [False, False]]])
    >>> {k: round(v, 2) for k, v in saturation_shares(z, m, temperature=1.0).items()}
    {'fg': 0.5, 'true_fg': 0.5, 'saturated': 0.0, 'saturated_fg_outside': 0.0}
    >>> {k: round(v, 2) for k, v in saturation_shares(z, m, temperature=0.1).items()}
    {'fg': 0.5, 'true_fg': 0.5, 'saturated': 0.75, 'saturated_fg_outside': 0.25}
    """
    p = torch.sigmoid(logits / temperature)
    saturated = p * (1 - p) / temperature < threshold
    foreground = p > 0.5
    masks = masks.bool()
    return {"fg": foreground.float().mean().item(), "true_fg": masks.float().mean().item(),
            "saturated": saturated.float().mean().item(),
            "saturated_fg_outside": (saturated & foreground & ~masks).float().mean().item()}


def main(argv: list[str] | None = None) -> int:
    from sizeseg.experiments.constrained.evaluation import predict_validation
    from sizeseg.experiments.constrained.labels import load_acdc
    from sizeseg.experiments.constrained.profiles import PROFILE_SETTINGS
    from sizeseg.training import best_checkpoint, load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the ACDC folder")
    parser.add_argument("--prepared", required=True, help="the experiment's --out folder (its prepared slices)")
    parser.add_argument("--threshold", type=float, default=1e-3, help="saturated: p(1-p)/T below this (default 1e-3)")
    parser.add_argument("runs", nargs="+", help="run folders (runs/<method>[-seed<k>] of an experiment)")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (Path(run) / "result.json").is_file():
            parser.error(f"{run}: expected a finished run folder with a result.json")
    torch.set_num_threads(1)
    print("run,temperature,fg,true_fg,saturated,saturated_fg_outside")
    validation = {}  # runs of one experiment share their slices: load each preparation once
    for run in map(Path, args.runs):
        settings = json.loads((run / "result.json").read_text())
        key = (settings["field"], settings["resolution"], settings.get("split", "patients"))
        if key not in validation:
            profile = replace(PROFILE_SETTINGS["cpu"], field=key[0], resolution=key[1], split=key[2])
            validation[key] = load_acdc(args.data, Path(args.prepared), profile).split("val")
        val = validation[key]
        logits = predict_validation(load_model(best_checkpoint(run)).eval(), val)[:, 0]
        masks = torch.as_tensor(np.asarray(val.masks)).reshape(logits.shape)
        shares = saturation_shares(logits, masks, settings.get("temperature", 1.0), args.threshold)
        print(",".join([run.name, str(settings.get("temperature", 1.0))] + [f"{v:.4f}" for v in shares.values()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
