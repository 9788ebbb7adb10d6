import sys, json, time
from pathlib import Path
import numpy as np, torch
from sizeseg.data.prepared import load_prepared
from sizeseg.training import TrainConfig, train, load_model
from sizeseg.training.pipeline import predict_logits
from sizeseg.metrics import predicted_size, iou_score

data_dir, out, m, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
modes = sys.argv[5].split(",") if len(sys.argv) > 5 else ["finetune"]
data = load_prepared(data_dir)
val, test = data.split("val"), data.split("test")

def stats(ckpt, split):
    model = load_model(ckpt)
    lg = predict_logits(model, split.images)
    ps = predicted_size(lg).numpy(); s = np.asarray(split.sizes)
    pred = lg[:, 0] > 0; tgt = torch.from_numpy(np.asarray(split.masks) > 0)
    iou = iou_score(pred, tgt).numpy()
    area_p = pred.float().sum((1, 2)).numpy(); area_t = tgt.float().sum((1, 2)).numpy()
    return dict(IoU=float(iou.mean()), E=float(np.mean((ps - s) ** 2)), size_bias=float(np.mean(ps - s)),
                area_ratio=float(area_p.sum() / area_t.sum()))

t0 = time.time()
pre_cfg = TrainConfig(model="unet-small", lr=1e-3, batch_size=32, max_epochs=1500, patience=8, m=m, seed=seed, val_every=max(1, 50 // max(1, (m + 31) // 32)), flips=True)
pre = train("pretrain", data, out / "pretrain", pre_cfg, progress_bar=False)
res = {"pretrain": {"val": stats(pre.best, val), "test": stats(pre.best, test), "sec": time.time() - t0}}
print("pretrain", res["pretrain"], flush=True)
for mode in modes:
    t0 = time.time()
    cfg = TrainConfig(model="unet-small", lr=1e-4, batch_size=32, max_epochs=16, patience=0, m=m, seed=seed, limit_train_batches=29, flips=False)
    r = train(mode, data, out / mode, cfg, init=pre.best, progress_bar=False)
    # evaluate every saved epoch checkpoint? only best+last available
    res[mode] = {"best_val": stats(r.best, val), "best_test": stats(r.best, test), "last_test": stats(r.last, test), "sec": time.time() - t0}
    print(mode, res[mode], flush=True)
(out / "summary.json").write_text(json.dumps(res, indent=1))
