"""Fine-tune from a pre-trained checkpoint with the cpu profile's settings.

    python finetune_variants.py [--frozen-bn] CHECKPOINT OUT M SEED VARIANT [VARIANT ...]

VARIANT = size_weight:size_matched_weight[:mode]; --frozen-bn keeps every batch-norm layer in eval mode.
"""
import dataclasses
import json
import sys
from pathlib import Path

from torch import nn

import sizeseg.training.pipeline as pipeline
from sizeseg.data.prepared import load_prepared
from sizeseg.experiments.hippocampus import PROFILES, _epochs, _finetune_config, _scores
from sizeseg.training import train

args = sys.argv[1:]
if args and args[0] == "--frozen-bn":
    args = args[1:]
    load = pipeline.load_model

    def load_frozen(checkpoint):
        model = load(checkpoint)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train = lambda mode=True, module=module: nn.Module.train(module, False)
                nn.Module.train(module, False)
        return model

    pipeline.load_model = load_frozen

data = load_prepared("/work/runs/hippo")
ckpt, out, m, seed = Path(args[0]), Path(args[1]), int(args[2]), int(args[3])
for variant in args[4:]:
    parts = variant.split(":")
    cfg = dataclasses.replace(_finetune_config(PROFILES["cpu"], m, seed), size_weight=float(parts[0]),
                              size_matched_weight=float(parts[1]))
    res = train(parts[2] if len(parts) > 2 else "finetune", data, out / variant.replace(":", "_"), cfg, init=ckpt,
                progress_bar=False)
    print(json.dumps({"variant": variant, "m": m, "seed": seed, **_scores(res.best, data.split("test")),
                      "last": _scores(res.last, data.split("test")), "epochs": len(_epochs(res.metrics_csv))}), flush=True)
