# Fine-tuning learning-rate check from the samples experiment's pre-trained network (m = 85, cpu profile).
import json, sys
from pathlib import Path
from sizeseg.data.prepared import load_prepared
from sizeseg.training import TrainConfig, train, evaluate_model, load_model
data = load_prepared("/work/runs/hippo")
init = Path("/work/runs/hippo_cpu/runs/samples/pretrain/checkpoints/best.ckpt")
out = Path("/work/runs/lrcheck")
for mode, lr, w in [("finetune", 1e-4, 1.0), ("mixed", 1e-4, 1.0)]:
    cfg = TrainConfig(model="unet-small", lr=lr, batch_size=32, max_epochs=3, patience=0, m=85, seed=0,
                      limit_train_batches=10, size_weight=w)
    r = train(mode, data, out / f"{mode}-lr{lr}-w{w}", cfg, init=init, progress_bar=False)
    print(mode, lr, w, open(r.metrics_csv).read(), flush=True)
