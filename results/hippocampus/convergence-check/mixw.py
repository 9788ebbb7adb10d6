import sys, json, time
from pathlib import Path
import numpy as np, torch
from sizeseg.data.prepared import load_prepared
from sizeseg.training import TrainConfig, train, load_model
from sizeseg.training.pipeline import evaluate_model
data = load_prepared("/work/runs/hippo"); test = data.split("test")
pre = Path("vol_m20_s0/pretrain/checkpoints/best.ckpt")
for w in [float(a) for a in sys.argv[1].split(",")]:
    cfg = TrainConfig(model="unet-small", lr=1e-4, batch_size=32, max_epochs=16, patience=0, m=20, seed=0, limit_train_batches=29, flips=False, bce_weight=w)
    r = train("mixed", data, Path(f"vol_m20_s0/mixed_w{w:g}"), cfg, init=pre, progress_bar=False)
    b = evaluate_model(load_model(r.best), test); l = evaluate_model(load_model(r.last), test)
    print("w", w, "best test IoU", round(b["IoU"], 4), "E", round(b["E"], 3), "last IoU", round(l["IoU"], 4), "E", round(l["E"], 3), flush=True)
