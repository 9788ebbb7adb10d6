"""Fine-tune from a pre-trained checkpoint with the cpu profile's settings; variant = size_weight:size_matched_weight[:mode]."""
import sys, json
from pathlib import Path
import dataclasses
from sizeseg.data.prepared import load_prepared
from sizeseg.experiments.hippocampus import PROFILES, _finetune_config, _scores, _epochs
from sizeseg.training import train
import sizeseg.training.pipeline as P
from torch import nn
_orig = P.load_model
def _frozen(ck):
    model = _orig(ck)
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.train = (lambda mode=True, mod=mod: nn.Module.train(mod, False))
            nn.Module.train(mod, False)
    return model
P.load_model = _frozen

data = load_prepared("/work/runs/hippo")
ckpt, out, m, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for variant in sys.argv[5:]:
    parts = variant.split(":")
    sw, mw = float(parts[0]), float(parts[1]); mode = parts[2] if len(parts) > 2 else "finetune"
    cfg = dataclasses.replace(_finetune_config(PROFILES["cpu"], m, seed), size_weight=sw, size_matched_weight=mw)
    res = train(mode, data, out / variant.replace(":", "_"), cfg, init=ckpt, progress_bar=False)
    print(json.dumps({"variant": variant, "m": m, "seed": seed, **_scores(res.best, data.split("test")),
                      "last": _scores(res.last, data.split("test")), "epochs": len(_epochs(res.metrics_csv))}), flush=True)
