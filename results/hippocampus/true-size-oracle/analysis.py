"""What knowing the true test sizes buys a pre-trained network at test time, and how far a per-image
threshold could go.

    python analysis.py PREPARED_DIR CHECKPOINT [CHECKPOINT ...]
"""
import sys, json
import numpy as np, torch
from sizeseg.data.prepared import load_prepared
from sizeseg.training import load_model
from sizeseg.training.pipeline import predict_logits
from sizeseg.metrics import iou_score, predicted_size
from sizeseg.ops.size_match import size_matched_mask

data = load_prepared(sys.argv[1])
d = data.split("test")
tgt = torch.from_numpy(np.asarray(d.masks) > 0)
s = torch.from_numpy(np.asarray(d.sizes, np.float32))
print(json.dumps({"test size histogram": {float(k): int(c) for k, c in zip(*np.unique(np.asarray(d.sizes), return_counts=True))}}))
for ck in sys.argv[2:]:
    lg = predict_logits(load_model(ck), d.images)[:, 0]
    base = iou_score(lg > 0, tgt)
    matched = iou_score(size_matched_mask(lg, s), tgt)
    # best single threshold per image, chosen with the true mask (an upper bound for any threshold rule)
    grid = torch.linspace(-6, 6, 49)
    per_t = torch.stack([iou_score(lg > t, tgt) for t in grid])  # (T, N)
    best = per_t.max(0).values
    ps = predicted_size(lg[:, None])
    area_err = ((lg > 0).float().sum((1, 2)) - tgt.float().sum((1, 2))).numpy()
    size_err = (ps - s).numpy()
    ok = np.isfinite(size_err)
    corr = float(np.corrcoef(size_err[ok], area_err[ok])[0, 1])
    # IoU after matching the size exactly vs whether the size was wrong at all
    wrong = (ps != s)
    print(json.dumps({"ckpt": ck, "IoU_thr0": float(base.mean()), "IoU_size_matched": float(matched.mean()),
                      "IoU_best_threshold_per_image": float(best.mean()), "corr(size_err, area_err)": corr,
                      "frac_size_wrong": float(wrong.float().mean()),
                      "IoU_thr0_on_wrong": float(base[wrong].mean()), "IoU_matched_on_wrong": float(matched[wrong].mean())}), flush=True)
