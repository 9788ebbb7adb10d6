import torch, numpy as np
from sizeseg.data.prepared import load_prepared
from sizeseg.training import load_model
from sizeseg.training.loss_terms import BCETerm, SizeTerm
torch.manual_seed(0)
data = load_prepared("/work/runs/hippo"); tr = data.split("train")
import glob
ck = sorted(glob.glob("vol_m20_s0/pretrain/checkpoints/*.ckpt")); print(ck)
model = load_model([c for c in ck if "best" in c][0]).train()
idx = np.random.default_rng(0).choice(len(tr), 32, replace=False)
x = torch.as_tensor(tr.images[idx]).float(); y = torch.as_tensor(tr.masks[idx] > 0).float()
if y.ndim == 3: y = y[:, None]
batch = {"mask": y, "has_mask": torch.ones(32, dtype=bool), "size": torch.as_tensor(np.asarray(tr.sizes)[idx]).float()}
for name, term in [("bce", BCETerm()), ("size", SizeTerm())]:
    norms = []
    for rep in range(5):
        model.zero_grad(); out = model(x); loss = term(out, batch); loss.backward()
        g = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        norms.append(g.norm().item())
    print(name, "loss", round(loss.item(), 4), "grad norm", np.round(norms, 4))
