"""Gradient norms of the BCE and the size-loss terms on one training batch, from one checkpoint.

Usage:
    python scripts/gradient_norms.py PREPARED CHECKPOINT [--batch 32] [--repeats 5] [--seed 0]

Prints each term's loss and the norm of its gradient over all network weights, ``--repeats``
times (the size loss is sampled, so its norm varies). Used in
results/hippocampus/convergence-check/ to compare the two terms of mixed training.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sizeseg.data.prepared import load_prepared
from sizeseg.training import BCETerm, SizeTerm, load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prepared", help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("checkpoint", help="a .ckpt written by sizeseg pretrain / finetune")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    train = load_prepared(args.prepared).split("train")
    model = load_model(args.checkpoint).train()
    index = np.random.default_rng(args.seed).choice(len(train), min(args.batch, len(train)), replace=False)
    images = torch.as_tensor(train.images[index]).float()
    masks = torch.as_tensor(train.masks[index] > 0).float()[:, None]
    batch = {"mask": masks, "has_mask": torch.ones(len(index), dtype=torch.bool),
             "size": torch.as_tensor(np.asarray(train.sizes)[index]).float()}
    for name, term in (("bce", BCETerm()), ("size", SizeTerm())):
        norms = []
        for _ in range(args.repeats):
            model.zero_grad()
            loss = term(model(images), batch)
            loss.backward()
            norms.append(float(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).norm()))
        print(name, "loss", round(float(loss.detach()), 4), "grad norm", np.round(norms, 4))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
