"""3D end to end through the CLI: prepare a folder of NIfTI volumes, pretrain, finetune on sizes,
evaluate and predict; each predicted NIfTI keeps its source volume's affine (spacing, orientation).

Sizes of volumes are 3D Chebyshev sizes (twice the largest 3D chessboard distance to the
background, outside the volume counting as background), from masks and from the CSV alike.
"""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np

from sizeseg.cli import main
from tests.builders import make_volume_folder, reference_size

SHAPE = (8, 8, 8)
TRAIN = ["--model", "unet-plain", "--epochs", "1", "--batch-size", "2", "--patience", "0", "--progress", "none"]


def test_nifti_folder_prepare_train_evaluate_predict_keeps_affines(tmp_path, capsys):
    folder = make_volume_folder(tmp_path / "user", n=8, masked=6)
    prep, pre, fine = tmp_path / "prep", tmp_path / "pre", tmp_path / "fine"
    assert main(["prepare", "folder", "--images", str(folder / "images"), "--masks", str(folder / "masks"),
                 "--sizes", str(folder / "sizes.csv"), "--out", str(prep), "--shape", *map(str, SHAPE),
                 "--fit", "pad", "--fractions", "0.5", "0.25", "0.25"]) == 0
    assert main(["pretrain", "--data", str(prep), "--out", str(pre), *TRAIN]) == 0
    assert main(["finetune", "--data", str(prep), "--out", str(fine), "--init", str(pre / "checkpoints" / "best.ckpt"),
                 *TRAIN[2:]]) == 0
    best = str(fine / "checkpoints" / "best.ckpt")
    assert main(["evaluate", "--checkpoint", best, "--data", str(prep), "--split", "test", "--out",
                 str(tmp_path / "ev")]) == 0
    scores = json.loads((tmp_path / "ev" / "scores.json").read_text())
    assert scores["n"] > 0 and scores["n_sizes"] == scores["n"]
    assert main(["predict", "--checkpoint", best, "--data", str(prep), "--out", str(tmp_path / "src"),
                 "--format", "nifti", "--original-size"]) == 0
    assert main(["predict", "--checkpoint", best, "--data", str(prep), "--out", str(tmp_path / "grid"),
                 "--format", "nifti"]) == 0
    capsys.readouterr()

    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "grid" / "sizes.csv"))}
    for k in range(8):
        source = nib.load(folder / "images" / f"vol{k}.nii.gz")
        # at the source's size: the source's grid, header spacing included
        written = nib.load(tmp_path / "src" / "masks" / f"vol{k}.nii.gz")
        assert written.shape == source.shape
        np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
        np.testing.assert_allclose(written.header.get_zooms(), source.header.get_zooms(), rtol=1e-6)
        assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1}
        # at the prepared size: the same spacing and orientation; voxel 0 lies where the source voxel
        # that the centre crop/pad put there lies
        on_grid = nib.load(tmp_path / "grid" / "masks" / f"vol{k}.nii.gz")
        assert on_grid.shape == SHAPE
        np.testing.assert_allclose(on_grid.affine[:3, :3], source.affine[:3, :3], atol=1e-5)
        np.testing.assert_allclose(on_grid.header.get_zooms(), source.header.get_zooms(), rtol=1e-6)
        start = [(n - s) // 2 if n >= s else -((s - n) // 2) for n, s in zip(source.shape, SHAPE)]
        np.testing.assert_allclose(nib.affines.apply_affine(on_grid.affine, [0, 0, 0]),
                                   nib.affines.apply_affine(source.affine, start), atol=1e-4)
        # predicted_size on (B, 1, D, H, W) logits: the 3D Chebyshev size of the written mask
        row = rows[f"masks/vol{k}.nii.gz"]
        assert float(row["predicted_size"]) == reference_size(np.asarray(on_grid.dataobj))
        # the annotated size of a masked volume is the 3D Chebyshev size of its fitted mask
        if k < 6:
            mask = np.asarray(nib.load(folder / "masks" / f"vol{k}.nii.gz").dataobj)
            fitted = mask[tuple(slice(max(b, 0), max(b, 0) + s) for b, s in zip(start, SHAPE))]
            assert float(row["annotated_size"]) == reference_size(fitted)
    assert not list(tmp_path.rglob("*.part*"))  # written atomically, nothing half-written left
