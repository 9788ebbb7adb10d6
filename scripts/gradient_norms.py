"""Gradient norms of the BCE and the size-loss terms on one training batch, from one checkpoint.

Usage:
    python scripts/gradient_norms.py PREPARED CHECKPOINT [--batch 32] [--repeats 5] [--seed 0]
        [--size-weight W] [--units image|pixels] [--noise-scale TAU]

Prints each term's loss and the norm of its gradient over all network weights, ``--repeats``
times (the size loss is sampled, so its norm varies), and the share of weights whose nonzero weighted
gradient is below Adam's eps (1e-8): where most are, Adam's step is about lr * g / eps, so the
term's weight acts as a learning-rate factor even when the term trains alone. The size term
defaults to the library's settings (sizeseg.training.TrainConfig). Used in
results/hippocampus/convergence-check/ to compare the two terms of mixed training.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sizeseg.data.prepared import load_prepared
from sizeseg.training import BCETerm, SizeTerm, TrainConfig, load_model

#: torch.optim.Adam's default eps
ADAM_EPS = 1e-8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prepared", help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("checkpoint", help="a .ckpt written by sizeseg pretrain / finetune")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    library = TrainConfig()
    parser.add_argument("--size-weight", type=float, default=library.size_weight)
    parser.add_argument("--units", choices=("image", "pixels"), default=library.size_units)
    parser.add_argument("--noise-scale", type=float, default=library.noise_scale)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    train = load_prepared(args.prepared).split("train")
    model = load_model(args.checkpoint).train()
    index = np.random.default_rng(args.seed).choice(len(train), min(args.batch, len(train)), replace=False)
    images = torch.as_tensor(train.images[index]).float()
    masks = torch.as_tensor(train.masks[index] > 0).float()[:, None]
    batch = {"mask": masks, "has_mask": torch.ones(len(index), dtype=torch.bool),
             "size": torch.as_tensor(np.asarray(train.sizes)[index]).float()}
    size = SizeTerm(weight=args.size_weight, units=args.units, noise_scale=args.noise_scale, seed=args.seed)
    for name, term in (("bce", BCETerm()), ("size", size)):
        norms, below = [], []
        for _ in range(args.repeats):
            model.zero_grad()
            loss = term(model(images), batch)
            loss.backward()
            grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]) * term.weight
            norms.append(float(grad.norm()))
            moving = grad[grad != 0]  # exact zeros (e.g. behind dead ReLUs) leave Adam's step as it was
            below.append(float((moving.abs() < ADAM_EPS).float().mean()))
        print(name, "loss", round(float(loss.detach()), 4), "weight", term.weight, "weighted grad norm",
              np.round(norms, 6), "share of nonzero ones below Adam's eps", np.round(below, 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
