"""Export ACDC slices as a user's folder: PNG images, PNG masks for some, a CSV of sizes for the rest.

One slice that shows the left-ventricle cavity per ACDC frame (both frames of the first ``--patients``
patients; the slice drawn at random among those that show the LV), the central ``--field`` native pixels
upsampled ``--upsample`` times (bilinear; masks nearest), saved as 8-bit grey PNGs: a folder as a clinic
would hold it, with objects of about 4-120 px. ``--masked`` images, drawn at random, get a mask PNG of the
same stem in ``masks/``; every other image gets only its object size in ``sizes.csv`` (``image,size``),
measured with :func:`sizeseg.object_size` on its exported mask (the original image, as a user would
measure it). Nothing in the folder says which images are for testing: that is ``sizeseg prepare``'s job.

    python scripts/acdc_user_folder.py --data ../shared/data/ACDC --out runs/user-folder/data
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ACDC", help="the ACDC folder")
    parser.add_argument("--out", required=True, help="folder to write images/, masks/ and sizes.csv into")
    parser.add_argument("--patients", type=int, default=100, help="patients (two frames, one slice each)")
    parser.add_argument("--masked", type=int, default=70, help="images that get a mask")
    parser.add_argument("--field", type=int, default=160, help="central native field (pixels)")
    parser.add_argument("--upsample", type=int, default=2, help="upsampling factor of the exported PNGs")
    parser.add_argument("--seed", type=int, default=0, help="slice and mask choice")
    args = parser.parse_args(argv)

    from PIL import Image

    from sizeseg import object_size
    from sizeseg.data.acdc import LV_LABEL, load_volume, read_acdc
    from sizeseg.data.geometry import center_crop_or_pad

    rng = np.random.default_rng(args.seed)
    volumes = [v for v in read_acdc(args.data) if int(v.subject[-3:]) <= args.patients]
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    side = args.field * args.upsample
    names, sizes = [], []
    for volume in volumes:
        image, gt, _ = load_volume(volume)
        lv = [k for k in range(gt.shape[2]) if (gt[..., k] == LV_LABEL).any()]
        k = int(rng.choice(lv))
        img = center_crop_or_pad(image[..., k], (args.field, args.field))
        mask = center_crop_or_pad((gt[..., k] == LV_LABEL).astype(np.uint8), (args.field, args.field))
        if not mask.any():
            continue
        grey = np.clip(img / max(float(image.max()), 1e-6) * 255, 0, 255).astype(np.uint8)
        name = f"{volume.key}.png"
        Image.fromarray(grey).resize((side, side), Image.BILINEAR).save(out / "images" / name)
        big = np.asarray(Image.fromarray(mask * 255).resize((side, side), Image.NEAREST)) > 0
        names.append(name)
        sizes.append(float(object_size(big[None])[0]))
        Image.fromarray(big.astype(np.uint8) * 255).save(out / "masks" / name)
    masked = set(rng.choice(len(names), size=min(args.masked, len(names)), replace=False).tolist())
    with (out / "sizes.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "size"])
        for i, (name, size) in enumerate(zip(names, sizes)):
            if i in masked:
                continue
            (out / "masks" / name).unlink()
            writer.writerow([name, f"{size:g}"])
    print(f"{len(names)} images of {side}x{side} in {out}/images: {len(masked)} with masks, "
          f"{len(names) - len(masked)} with sizes only (sizes {min(sizes):g}-{max(sizes):g} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
