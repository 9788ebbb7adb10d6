"""The timing and figure steps of ``scripts/gpu-check.sh``.

``steps``: one training step (forward, backward, Adam) of the ``unet`` network (MONAI FlexibleUNet,
ResNet-18 encoder) on three batches, with BCE on masks, with SizeLoss on sizes (the fine-tuning
step; n = 1 and 8 samples; value checks on and off), and with both (the mixed step); plus SizeLoss's
forward and backward on the logits alone. Medians of ``--repeats`` timed steps after warm-up
(fewer where one would take over 4 s; ``steps.json`` records how many), synchronised on CUDA. Writes ``steps.json`` and ``steps.png`` into ``--out``.

``figures``: ``bench-core.png`` from the JSON of ``sizeseg bench core --json``: our time and the
anchor's per row, on a log axis.

Usage (from the repository root)::

    python scripts/gpu_check.py steps --out OUT [--device cuda] [--repeats 20]
    python scripts/gpu_check.py steps --out OUT --dry-run      # CPU, unet-plain, small batches, 1 repeat
    python scripts/gpu_check.py figures --bench OUT/bench-core.json --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: (name, batch shape) timed on a GPU; the dry run uses ``DRY_CASES``.
CASES = [("slices", (32, 1, 48, 32)), ("images", (16, 1, 256, 256)), ("volumes", (2, 1, 64, 64, 64))]
DRY_CASES = [("slices", (4, 1, 48, 32)), ("images", (2, 1, 32, 32)), ("volumes", (2, 1, 16, 16, 16))]


def _batch(shape: tuple[int, ...], device: str):
    """Images with one bright ball each, its mask and its size (border="background")."""
    import torch

    from sizeseg.ops import object_size

    gen = torch.Generator().manual_seed(0)
    spatial = shape[2:]
    grid = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in spatial], indexing="ij")
    radius = torch.linspace(0.15, 0.35, shape[0]).reshape((-1, 1) + (1,) * len(spatial)) * min(spatial)
    masks = (sum(g ** 2 for g in grid)[None, None] <= radius ** 2).float()
    images = masks + 0.5 * torch.randn(shape, generator=gen)
    sizes = object_size(masks[:, 0].bool(), spatial_dims=len(spatial))
    return images.to(device), masks.to(device), sizes.to(device)


def _timed(fn, repeats: int, sync, warmup: int, budget_s: float) -> tuple[float, int]:
    """Median seconds of ``fn`` and the repeats used: at most ``repeats``, fewer when the first
    call shows they would take more than ``budget_s`` (so one slow variant cannot use up the run)."""
    import time

    from sizeseg.benchmarks.timing import time_call

    sync = sync or (lambda: None)
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        fn()
    n = max(1, min(repeats, int(budget_s / max(first, 1e-9))))
    return time_call(fn, n, sync, warmup=0), n


def time_steps(cases, device: str, repeats: int, warmup: int, budget_s: float = 4.0,
               model: str = "unet") -> list[dict]:
    """Median seconds per step of each variant on each case (see the module docstring); ``model``
    names the network (:func:`sizeseg.models.build_model`)."""
    import torch

    from sizeseg.losses import SizeLoss
    from sizeseg.models import build_model

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    rows = []
    for name, shape in cases:
        images, masks, sizes = _batch(shape, device)
        torch.manual_seed(0)
        net = build_model(model, spatial_dims=len(shape) - 2).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        bce = torch.nn.BCEWithLogitsLoss()
        size_losses = {n: SizeLoss(n_samples=n, criterion="relative", seed=0) for n in (1, 8)}
        unchecked = SizeLoss(n_samples=1, criterion="relative", seed=0, validate_args=False)

        def step(loss_of):
            def run():
                opt.zero_grad(set_to_none=True)
                loss_of(net(images)).backward()
                opt.step()
            return run

        logits0 = (4 * masks - 2).contiguous()

        def loss_alone():
            logits = logits0.clone().requires_grad_()
            size_losses[1](logits, sizes).backward()

        variants = {
            "BCE step": step(lambda out: bce(out, masks)),
            "SizeLoss step (n=1)": step(lambda out: size_losses[1](out, sizes)),
            "SizeLoss step (n=1, validate_args=False)": step(lambda out: unchecked(out, sizes)),
            "SizeLoss step (n=8)": step(lambda out: size_losses[8](out, sizes)),
            "BCE + SizeLoss step (n=1)": step(lambda out: bce(out, masks) + size_losses[1](out, sizes)),
            "SizeLoss alone fwd+bwd (n=1)": loss_alone,
        }
        base = None
        for variant, fn in variants.items():
            seconds, used = _timed(fn, repeats, sync, warmup, budget_s)
            base = base or seconds
            rows.append({"case": name, "shape": list(shape), "variant": variant, "ms": seconds * 1e3,
                         "vs_bce_step": seconds / base, "repeats": used})
            print(f"{name:20s} {str(tuple(shape)):22s} {variant:42s} {seconds * 1e3:9.2f} ms  "
                  f"x{seconds / base:.2f} of the BCE step ({used} repeats)", flush=True)
        del net, opt
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def environment(device: str) -> dict:
    import platform

    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        env |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
    return env


def steps_figure(rows: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases):
        ms = [next(r["ms"] for r in rows if r["case"] == case and r["variant"] == v) for v in variants]
        ax.barh(range(len(variants)), ms, color=["0.5"] + ["C0"] * (len(variants) - 1))
        for i, value in enumerate(ms):
            ax.text(value, i, f" {value:.3g} ms", va="center", fontsize=7)
        ax.set_yticks(range(len(variants)), variants if ax is axes[0][0] else [""] * len(variants), fontsize=8)
        shape = next(r["shape"] for r in rows if r["case"] == case)
        ax.set_title(f"{case} {tuple(shape)}", fontsize=9)
        ax.set_xlabel("ms per step (median)")
        ax.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bench_figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if not str(r["anchor"]).startswith("MB") and r["ours_s"] == r["ours_s"]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [r["ours_s"] * 1e3 for r in rows], height=0.4, label="ours")
    ax.barh([i + 0.2 for i in y], [r["anchor_s"] * 1e3 for r in rows], height=0.4, color="0.6", label="anchor")
    ax.set_yticks(list(y), [f"{r['case'][:48]}\nvs {r['anchor'][:48]}" for r in rows], fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("ms (median)")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    env = result.get("environment", {})
    ax.set_title(f"sizeseg bench core on {env.get('gpu') or env.get('device', '?')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    steps = sub.add_parser("steps", help="time U-Net training steps with and without SizeLoss")
    steps.add_argument("--out", required=True, help="folder for steps.json and steps.png")
    steps.add_argument("--device", default="cuda", help="torch device (default cuda)")
    steps.add_argument("--repeats", type=int, default=20, help="timed steps per variant; medians (default 20)")
    steps.add_argument("--dry-run", action="store_true",
                       help="CPU, the light unet-plain, small batches, one repeat: checks the script")
    figures = sub.add_parser("figures", help="bench-core.png from the JSON of sizeseg bench core")
    figures.add_argument("--bench", required=True, help="JSON written by sizeseg bench core --json")
    figures.add_argument("--out", required=True, help="folder for bench-core.png")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.command == "figures":
        bench_figure(json.loads(Path(args.bench).read_text()), out / "bench-core.png")
        print(f"wrote {out / 'bench-core.png'}")
        return 0
    import torch

    # the dry run checks the script, not the numbers: the light unet-plain keeps it short on a shared CPU
    device, repeats, cases, model = (("cpu", 1, DRY_CASES, "unet-plain") if args.dry_run
                                     else (args.device, args.repeats, CASES, "unet"))
    if repeats < 1:
        parser.error(f"--repeats: expected an int >= 1, got {repeats}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here (--dry-run checks the script on a CPU)")
    env = environment(device) | {"repeats": repeats, "dry_run": args.dry_run, "model": model}
    label = env.get("gpu", device) + (" (dry run: small CPU batches, 1 repeat)" if args.dry_run else "")
    rows = []
    for case in cases:  # written after each case, so a run stopped at its time limit keeps what it measured
        rows += time_steps([case], device, repeats, warmup=1 if args.dry_run else 3, model=model)
        (out / "steps.json").write_text(json.dumps({"rows": rows, "environment": env}, indent=2) + "\n")
        steps_figure(rows, f"{model} training step, with and without SizeLoss: {label}", out / "steps.png")
    print(f"wrote {out / 'steps.json'} and {out / 'steps.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
