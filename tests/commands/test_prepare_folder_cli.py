"""``sizeseg prepare folder`` as a user meets it: the defaults it states, what it reports per split,
its notes (working shape, size rescale factor) and warnings (too few validation masks)."""

from __future__ import annotations

import pytest

from sizeseg.cli import main
from sizeseg.data.prepared import load_prepared
from tests.builders import make_photo_folder


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv + ["--help"])
    return " ".join(capsys.readouterr().out.split())


def test_prepare_folder_help_states_the_defaults_and_the_shape_order(capsys):
    text = _help(["prepare", "folder"], capsys)
    for part in ("rows first: H W", "(default: resize)", "--max-side", "(default: 256)", "--fractions", "--no-test",
                 "--val-list", "default 0.7 0.1 0.2"):
        assert part in text, part
    # a default is stated once, and "None" (an option left out) is never printed as one
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "under --fit resize) (default" not in text  # --shape states its own default


def test_defaults_formatter_adds_a_default_only_where_it_says_something():
    import argparse

    from sizeseg.commands.help_format import DefaultsFormatter

    parser = argparse.ArgumentParser(formatter_class=DefaultsFormatter)
    parser.add_argument("--a", type=int, default=3, help="alpha")
    parser.add_argument("--b", help="beta (default: computed)")
    parser.add_argument("--c", help="gamma")
    parser.add_argument("--d", action="store_true", help="delta")
    text = " ".join(parser.format_help().split())
    assert "alpha (default: 3)" in text
    assert "beta (default: computed)" in text and "computed) (default" not in text
    assert "gamma" in text and "(default: None)" not in text and "(default: False)" not in text


def test_prepare_folder_reports_splits_notes_and_warnings(tmp_path, capsys):
    folder = make_photo_folder(tmp_path / "mine")
    out = tmp_path / "prep"
    argv = ["prepare", "folder", "--images", str(folder / "images"), "--masks", str(folder / "masks"),
            "--sizes", str(folder / "sizes.csv"), "--out", str(out)]
    assert main(argv + ["--max-side", "40"]) == 0
    printed = capsys.readouterr().out
    data = load_prepared(out)
    assert data.spatial_shape == (30, 40)
    assert "note: working shape 30x40 (rows x columns)" in printed and "capped at 40 (--max-side)" in printed
    assert "CSV sizes rescaled to the working shape by x0.5" in printed
    for name in ("train", "val", "test"):
        keep = data.splits == name
        masked = int(data.has_mask[keep].sum())
        assert f"  {name}: {int(keep.sum())} images, {masked} with masks, {int(keep.sum()) - masked} with sizes only" in printed
    assert "warning: validation holds 1 masked image(s), fewer than 5" in printed
    assert "and fine-tuning selects by validation E instead" in printed  # what choose_monitor then does
    # a validation list and no test split
    (folder / "val.txt").write_text("\n".join(f"IMD{i:03d}.png" for i in range(5)) + "\n")
    assert main(argv + ["--no-test", "--val-list", str(folder / "val.txt")]) == 0
    printed = capsys.readouterr().out
    assert "test:" not in printed and "  val: 5 images, 5 with masks" in printed and "warning" not in printed
    assert main(argv + ["--no-test", "--fractions", "0.7", "0.1", "0.2"]) == 2
    assert "--fractions: expected 2 numbers >= 0 summing to 1 (TRAIN VAL, with --no-test), got 0.7 0.1 0.2" in capsys.readouterr().err
    assert main(argv + ["--fractions", "0.7", "0.3", "0.2"]) == 2
    assert "--fractions: expected 3 numbers >= 0 summing to 1" in capsys.readouterr().err
    assert main(argv + ["--max-side", "-1"]) == 2
    assert "--max-side" in capsys.readouterr().err
