"""Full-supervision probe at 64x64 (run from the repository root, after the cpu profile prepared runs/constrained_v2/prepared_r64):
python results/constrained/diagnosis/full_supervision_probe.py MODEL LR BATCH STEPS AUGMENT(0|1) [ENET_WIDTHS]
How many images does plain BCE need before any validation pixel crosses 1/2?"""
import sys, time, numpy as np, torch, torch.nn.functional as F
from sizeseg.models import build_model
from sizeseg.data.datasets import affine_2d
torch.manual_seed(0); np.random.seed(0); torch.set_num_threads(1)
d = np.load('runs/constrained_v2/prepared_r64/data.npz', allow_pickle=True)
tr = d['splits'] == 'train'; va = d['splits'] == 'val'
Xtr = torch.from_numpy(d['images'][tr]); Ytr = torch.from_numpy(d['masks'][tr]).float()[:, None]
Xva = torch.from_numpy(d['images'][va]); Yva = d['masks'][va] > 0
model_name, lr, bs, steps, aug = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == '1'
spec = dict(name=model_name, in_channels=1, out_channels=1, spatial_dims=2)
if model_name == 'enet': spec.update(widths=tuple(int(w) for w in sys.argv[6].split(',')) if len(sys.argv) > 6 else (8, 32, 64), stage_repeats=2)
net = build_model(**spec); opt = torch.optim.Adam(net.parameters(), lr=lr)
def val():
    net.eval()
    with torch.no_grad(): p = torch.cat([net(Xva[i:i+64]) for i in range(0, len(Xva), 64)])[:, 0].numpy() > 0
    net.train(); inter = (p & Yva).sum((1, 2)); tot = p.sum((1, 2)) + Yva.sum((1, 2))
    dsc = np.where(tot == 0, 1.0, 2 * inter / np.maximum(tot, 1)); lv = Yva.any((1, 2))
    return dsc.mean(), dsc[lv].mean()
t0 = time.time(); g = torch.Generator().manual_seed(0)
for s in range(1, steps + 1):
    idx = torch.randint(0, len(Xtr), (bs,), generator=g)
    x, y = Xtr[idx], Ytr[idx]
    if aug:
        xs, ys = [], []
        for i in range(bs):
            a = float(torch.empty(1).uniform_(-0.349, 0.349)); sc = float(torch.empty(1).uniform_(0.9, 1.1))
            xi, yi = x[i], y[i]
            if torch.rand(1) < 0.5: xi, yi = xi.flip(-1), yi.flip(-1)
            xi, yi, _ = affine_2d(xi, yi, torch.zeros_like(yi), a, sc); xs.append(xi); ys.append(yi)
        x, y = torch.stack(xs), torch.stack(ys).float()
    loss = F.binary_cross_entropy_with_logits(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    if s % (steps // 6) == 0:
        a, b = val(); print(f'{sys.argv[1:]} step {s} imgs {s*bs} loss {loss.item():.4f} dsc {a:.3f} dsc_lv {b:.3f} t {time.time()-t0:.0f}s', flush=True)
def dsc_of(p, Y):
    inter = (p & Y).sum((1, 2)); tot = p.sum((1, 2)) + Y.sum((1, 2)); lv = Y.any((1, 2))
    return np.where(tot == 0, 1.0, 2 * inter / np.maximum(tot, 1))[lv].mean()
Ytr_b = Ytr[:, 0].numpy() > 0
with torch.no_grad():
    net.eval(); pe = torch.cat([net(Xtr[i:i+64]) for i in range(0, 512, 64)])[:, 0]
    net.train(); pt = torch.cat([net(Xtr[i:i+8]) for i in range(0, 512, 8)])[:, 0]
print('train imgs eval-mode dsc_lv', dsc_of(pe.numpy() > 0, Ytr_b[:512]), 'train-mode', dsc_of(pt.numpy() > 0, Ytr_b[:512]))
print('logit stats eval', pe.mean().item(), pe.max().item(), 'train', pt.mean().item(), pt.max().item())
