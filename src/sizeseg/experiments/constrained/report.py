"""``table1.csv``, ``table2.csv``, ``report.md`` and ``dsc_curves.png``: our numbers with the paper's beside them."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from sizeseg.experiments.constrained.profiles import Profile
from sizeseg.experiments.report import write_csv
from sizeseg.io_utils import atomic_path, atomic_write_text

#: Table 1's scores; with several seeds a row holds their mean and ``<score>_sd`` the sample sd.
SCORES = ("dsc_3d", "dsc_slice_lv", "dsc_pooled", "dsc_pooled_soft", "dsc_slice", "last_epoch_score")
#: The report's column heads of :data:`SCORES`.
SCORE_HEADS = {"dsc_3d": "3D DSC per volume (ours)", "dsc_slice_lv": "DSC per slice with LV",
               "dsc_pooled": "pooled DSC, hard (authors' metric, thresholded)",
               "dsc_pooled_soft": "pooled DSC, soft T=0.1 (authors' code)", "dsc_slice": "DSC per slice, all",
               "last_epoch_score": "last epoch (monitored score)"}


def _fmt(v, digits: int = 4) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def ordering_holds(rows: list[dict], key: str = "dsc_slice") -> dict[str, bool]:
    """The paper's ordering: partial CE < proposals (loose) < one bound <= two bounds < full supervision.

    One bound and two bounds may tie: where the network never falls below the lower bound, the
    two-bound penalty is the one-bound penalty. Rows started from another method's network
    (``--init``) are not the paper's rows and are left out.
    """
    v = {r["method"]: r[key] for r in rows if not r.get("init")}
    chain = ["partial_ce", "proposals_loose", "size_upper_tight", "size_two_bounds", "full"]
    present = [k for k in chain if k in v]
    checks = {}
    for a, b in zip(present, present[1:]):
        tie_allowed = (a, b) == ("size_upper_tight", "size_two_bounds")
        checks[f"{a} {'<=' if tie_allowed else '<'} {b}"] = bool(v[a] <= v[b] if tie_allowed else v[a] < v[b])
    if "proposals_loose" in v and "size_upper_loose" in v:
        checks["proposals_loose < size_upper_loose"] = bool(v["proposals_loose"] < v["size_upper_loose"])
    for a, b in (("partial_ce", "proposals_loose_pce"), ("proposals_loose_pce", "size_upper_tight")):
        if a in v and b in v:
            checks[f"{a} < {b}"] = bool(v[a] < v[b])
    return checks


def write_report(out: Path, profile: Profile, table1: list[dict], table2: list[dict], command: str, info: dict,
                 per_seed: Sequence[dict] = ()) -> None:
    """``table1.csv``, ``table2.csv``, ``report.md`` and ``dsc_curves.png`` under ``out``.

    With rows of several seeds in ``per_seed``, Table 1 shows mean ± sd and ``table1_seeds.csv``
    lists every seed's row.
    """
    if profile.weak != "erosion":  # the paper's rows used its eroded masks; other weak labels are not comparable
        table1 = [{**r, "paper_dsc": None} for r in table1]
        per_seed = [{**r, "paper_dsc": None} for r in per_seed]
    seeds = sorted({r["seed"] for r in per_seed})
    several = len(seeds) > 1
    table1 = [{**r, "protocol": r.get("protocol", profile.protocol)} for r in table1]
    per_seed = [{**r, "protocol": r.get("protocol", profile.protocol)} for r in per_seed]
    columns = ["method", "protocol", "label", "seeds"] + [c for k in SCORES for c in (k, f"{k}_sd")] + [
        "best_epoch", "epochs", "train_seconds", "paper_dsc"]
    rows = [{**{f"{k}_sd": math.nan for k in SCORES}, **r, "seeds": len(r.get("seeds") or [r.get("seed", 0)])}
            for r in table1]
    write_csv(out / "table1.csv", rows, columns, float_format=".4f")
    if several:
        write_csv(out / "table1_seeds.csv", per_seed, ["method", "protocol", "seed", "label"] + list(SCORES) + [
            "best_epoch", "epochs", "train_seconds", "paper_dsc"], float_format=".4f")
    if table2:
        write_csv(out / "table2.csv", table2, ["method", "label", "ms_per_image", "ratio_to_ce", "paper_ms"], float_format=".4f")

    def cell(r: dict, key: str) -> str:
        return f"{_fmt(r[key])} ± {_fmt(r[f'{key}_sd'], 3)}" if f"{key}_sd" in r else _fmt(r[key])

    what = f"mean ± sd over seeds {', '.join(map(str, seeds))}; " if several else ""
    shown = [k for k in SCORES if k != "dsc_slice"]
    lines = [f"# Constrained-CNN losses on ACDC (LV cavity) — profile `{profile.name}`, protocol `{profile.protocol}`",
             "", f"Command: `{command}`", "",
             "Profile: " + ", ".join(f"{k}={v}" for k, v in asdict(profile).items()), "",
             "Data: " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
             f"## Table 1 — validation DSC ({what}best epoch by `{profile.monitor}`"
             + ("; the best network's logits averaged over each slice's 8 flips and 90-degree turns" if profile.tta
                else "") + ")", "",
             "| Method | " + " | ".join(f"ours: {SCORE_HEADS[k]}" for k in shown)
             + " | paper (256², ENet; its metric: pooled soft DSC) |",
             "|---|" + "---|" * (len(shown) + 1)]
    for r in table1:
        lines.append(f"| {r['label']} | " + " | ".join(cell(r, k) for k in shown) + f" | {_fmt(r['paper_dsc'])} |")
    full = next((r for r in table1 if r["method"] == "full"), None)
    if full is not None:
        lines += ["", "Weak / full supervision (the paper's two bounds / full: 0.8415 / 0.9284 = 0.91): " + "; ".join(
            f"{r['method']}: {r['dsc_3d'] / full['dsc_3d']:.2f} (3D), {r['dsc_pooled_soft'] / full['dsc_pooled_soft']:.2f}"
            " (pooled soft)" for r in table1 if r["method"] in ("size_two_bounds", "size_upper_tight", "log_barrier")
            and full["dsc_3d"] > 0 and full["dsc_pooled_soft"] > 0)]
    lines.append("")
    orderings = [(key, what, ordering_holds(table1, key)) for key, what in (("dsc_3d", "3D DSC per volume"),
                                                                            ("dsc_pooled_soft", "pooled soft DSC"))]
    for key, what, checks in orderings:
        if not checks:
            continue
        if several:
            by_seed = [ordering_holds([r for r in per_seed if r["seed"] == s], key) for s in seeds]
            counts = {k: sum(c.get(k, False) for c in by_seed) for k in checks}
            lines.append(f"Ordering of the paper ({what}, means): " + "; ".join(
                f"{k}: {'yes' if ok else 'NO'} (in {counts[k]} of {len(seeds)} seeds)" for k, ok in checks.items()))
        else:
            lines.append(f"Ordering of the paper ({what}): " + "; ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in checks.items()))
    lines += ["", "(The per-slice DSC over all slices counts a slice without LV and an empty prediction as 1, so a network "
              "that predicts nothing scores the share of such slices; it is in table1.csv only.)", ""]
    if table2:
        lines += ["## Table 2 — training time per image", "",
                  "| Method | ours: ms/image (CPU) | ours: ratio to CE only | paper: ms/image (GTX 1080 Ti) | paper: ratio |",
                  "|---|---|---|---|---|"]
        for r in table2:
            ratio = None if r["paper_ms"] is None else r["paper_ms"] / 10.0
            lines.append(f"| {r['label']} | {_fmt(r['ms_per_image'], 1)} | {_fmt(r['ratio_to_ce'], 2)} | "
                         f"{_fmt(r['paper_ms'], 0)} | {_fmt(ratio, 2)} |")
        lines.append("")
    lines += ["Paper numbers are the paper's (Kervadec et al., MIDL 2018, Tables 1–2), shown beside ours for reference.", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    plot_curves(out / "dsc_curves.png", table1, SCORE_HEADS.get(profile.monitor, profile.monitor))


def plot_curves(path: Path, table1: list[dict], score: str = "3D DSC per volume") -> None:
    """Fig. 3: the validation ``score`` per epoch of every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, r in enumerate(table1):
        curve = r.get("curve") or []
        # ten colours, then dashed: eleven rows must stay distinguishable
        ax.plot(range(1, len(curve) + 1), curve, label=r["label"], marker="." if len(curve) < 30 else None,
                color=plt.cm.tab10(i % 10), linestyle=("-", "--", ":")[i // 10 % 3])
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {score}")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
