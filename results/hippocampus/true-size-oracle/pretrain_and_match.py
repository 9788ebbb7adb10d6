import sys, json, time
from pathlib import Path
import numpy as np, torch
from sizeseg.data.prepared import load_prepared
from sizeseg.training import train, load_model
from sizeseg.training.pipeline import predict_logits
from sizeseg.experiments.hippocampus import PROFILES, _pretrain_config
from sizeseg.metrics import iou_score, predicted_size
from sizeseg.ops.size_match import size_matched_mask

data = load_prepared("/work/runs/hippo")
out = Path("/work/runs/oracle")
n_train = int((data.splits == "train").sum())
for m, seed in [(int(a.split(":")[0]), int(a.split(":")[1])) for a in sys.argv[1:]]:
    run = out / f"m{m}-s{seed}"
    ck = run / "pretrain"
    res = train("pretrain", data, ck, _pretrain_config(PROFILES["cpu"], m, n_train, seed), progress_bar=False)
    model = load_model(res.best)
    for split in ("train", "test"):
        d = data.split(split)
        lg = predict_logits(model, d.images)[:, 0]
        tgt = torch.from_numpy(np.asarray(d.masks) > 0)
        s = torch.from_numpy(np.asarray(d.sizes, np.float32))
        base = iou_score(lg > 0, tgt)
        t0 = time.time(); mm = size_matched_mask(lg, s); dt = time.time() - t0
        matched = iou_score(mm, tgt)
        print(json.dumps({"m": m, "seed": seed, "split": split, "IoU_thr0": float(base.mean()), "IoU_size_matched": float(matched.mean()),
              "frac_improved": float((matched > base).float().mean()), "frac_worse": float((matched < base).float().mean()), "sec": dt}), flush=True)
