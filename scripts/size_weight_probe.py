"""Why the size term's weight changes size-only fine-tuning under Adam: eps, or run-to-run spread?

Usage:
    python scripts/size_weight_probe.py DATA OUT [--m 10] [--seed 0] [--weights 1e-3,2.6e-3,1,2.6]
        [--finetune-seeds 0] [--profile cpu] [--model NAME]

DATA is the Task04_Hippocampus folder (or a folder prepared from it). The script pre-trains the network
of one (m, seed) cell of ``sizeseg experiment pretraining`` with that experiment's settings (so its test
IoU is the recorded one), then fine-tunes it on the sizes alone with the library's size loss (the
``size (defaults)`` stage) at each per-pixel weight and each fine-tuning seed, and prints test IoU and E
with the network's shares of weights that no step moved (no gradient) and where Adam's eps outweighs
the gradient's running scale.

Adam's update m / (sqrt(v) + eps) does not change when the loss is multiplied by a constant, except
through eps (1e-8). A squared size error weighted 1e-3 per pixel has gradients near eps on some weights,
so there eps damps the step; at weight 1 it does not. Hence the reading:
- weights 1 and 2.6 agree, and 1e-3 differs from them in the same direction as 2.6e-3 does, only
  further: eps explains the weight's effect, which is then an effective learning rate;
- the fine-tuning seeds at one weight differ as much as the weights do: the weight's effect is spread
  between runs, not a mechanism.
Runs are cached in OUT (a finished run is not trained again). Used in results/hippocampus/size-weight-adam/.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

#: torch.optim.Adam's default eps
ADAM_EPS = 1e-8


def eps_shares(last_checkpoint: Path, beta2: float = 0.999) -> tuple[float, float]:
    """Shares of the network's weights that no step gave a gradient (v = 0: Adam never moves them), and whose
    bias-corrected sqrt(v) at the end of training is positive but below eps (there eps damps the step)."""
    state = torch.load(last_checkpoint, map_location="cpu", weights_only=True)["optimizer_states"][0]["state"]
    idle = damped = total = 0
    for item in state.values():
        scale = (item["exp_avg_sq"] / (1.0 - beta2 ** float(item["step"]))).sqrt()
        idle += int((scale == 0).sum())
        damped += int(((scale > 0) & (scale < ADAM_EPS)).sum())
        total += scale.numel()
    return idle / max(total, 1), damped / max(total, 1)


def number_list(text: str, kind=float) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"expected comma-separated numbers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="the Task04_Hippocampus folder, or a folder prepared from it")
    parser.add_argument("out", help="output folder (runs are cached here)")
    parser.add_argument("--m", type=int, default=10, help="masked pre-training images (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="the cell's seed (default 0)")
    parser.add_argument("--weights", default="1e-3,2.6e-3,1,2.6", help="per-pixel size weights")
    parser.add_argument("--finetune-seeds", default="", help="fine-tuning seeds (default: the cell's seed)")
    parser.add_argument("--profile", default="cpu", help="the experiment's profile (default cpu)")
    parser.add_argument("--model", default="", help="another network than the profile's (a quick check)")
    args = parser.parse_args(argv)

    from sizeseg.experiments.hippocampus.profiles import FINETUNE_STAGES, PROFILES
    from sizeseg.experiments.hippocampus.runs import (_train_once, finetune_config, load_hippocampus, pretrain_config,
                                                      read_epochs, stage_settings)
    from sizeseg.training import evaluate_model, load_model

    try:
        weights = number_list(args.weights)
        seeds = number_list(args.finetune_seeds, int) if args.finetune_seeds else [args.seed]
        if args.profile not in PROFILES:
            raise ValueError(f"expected one of {', '.join(PROFILES)}, got {args.profile!r}")
    except ValueError as error:
        print(f"size_weight_probe: error: {error}", file=sys.stderr)
        return 2
    profile = PROFILES[args.profile] if not args.model else replace(PROFILES[args.profile], model=args.model)
    out = Path(args.out)
    try:
        data = load_hippocampus(args.data, out)
    except (OSError, ValueError) as error:  # a missing or unreadable DATA: one line, nothing trained
        print(f"size_weight_probe: error: {error}", file=sys.stderr)
        return 2
    test = data.split("test")
    n_train = int((data.splits == "train").sum())
    pre = _train_once("pretrain", data, out / "pretrain", pretrain_config(profile, args.m, n_train, args.seed))
    start = evaluate_model(load_model(pre.best), test)
    print(f"m {args.m}, seed {args.seed}: pre-trained test IoU {start['IoU']:.4f}, E {start['E']:.3f}")
    print("| size weight (per pixel) | fine-tuning seed | test IoU | gain | test E | epochs | no gradient (v = 0) | "
          "0 < sqrt(v) < eps |")
    print("|---|---|---|---|---|---|---|---|")
    settings = stage_settings(FINETUNE_STAGES["size (defaults)"][2])
    for weight in weights:
        for seed in seeds:
            cfg = replace(finetune_config(profile, args.m, args.seed),
                          **{**settings, "size_units": "pixels", "size_weight": weight, "seed": seed})
            run = _train_once("finetune", data, out / f"w{weight:g}-s{seed}", cfg, init=pre.best)
            score = evaluate_model(load_model(run.best), test)
            epochs = len(read_epochs(run.metrics_csv))
            idle, damped = eps_shares(run.last)
            print(f"| {weight:g} | {seed} | {score['IoU']:.4f} | {score['IoU'] - start['IoU']:+.4f} | "
                  f"{score['E']:.3f} | {epochs} | {idle:.1%} | {damped:.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
