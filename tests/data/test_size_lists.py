"""Size CSVs with several classes and several objects: formats, attachment to prepared data, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sizeseg.data.errors import DataError
from sizeseg.data.size_lists import attach_size_table, check_size_table, read_size_table, size_lists
from sizeseg.data.synthetic_objects import synthetic_objects_data
from sizeseg.ops.components import object_sizes

nan = float("nan")


def _csv(tmp_path, text, name="sizes.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(table):
    return np.nan_to_num(table.sizes, nan=-1).tolist()


def test_the_four_formats(tmp_path):
    one = read_size_table(_csv(tmp_path, "image,size\na,4\nb,\n"))
    assert one.classes == ["object"] and _rows(one) == [[[4.0]], [[-1.0]]]
    per_class = read_size_table(_csv(tmp_path, "image,LV,RV,MYO\na,10,8;2,4\nb,,-,3\n"))
    assert per_class.classes == ["LV", "RV", "MYO"]
    assert _rows(per_class) == [[[10, -1], [8, 2], [4, -1]], [[-1, -1], [0, -1], [3, -1]]]
    chosen = read_size_table(_csv(tmp_path, "image,LV,RV,MYO\na,10,8,4\n"), classes=["MYO", "LV"])
    assert chosen.classes == ["MYO", "LV"] and _rows(chosen) == [[[4.0], [10.0]]]
    lists = read_size_table(_csv(tmp_path, "image,sizes\na,2;6;4\nb,\n"))
    assert _rows(lists) == [[[6, 4, 2]], [[0, -1, -1]]]  # sorted; an empty list: annotated, no object
    rows = read_size_table(_csv(tmp_path, "image,object_size\na,2\nb,5\na,6\n"))
    assert rows.names == ["a", "b"] and rows.rows == [2, 3] and _rows(rows) == [[[6, 2]], [[5, -1]]]


@pytest.mark.parametrize("text, classes, message", [
    ("image,sizes\na,4;2\nb,4;-2\n", None, "row 3, column 'sizes': size -2 of 'b' is negative"),
    ("image,sizes\na,4;nan\n", None, "row 2, column 'sizes': size 'nan' of 'a' is not a finite number"),
    ("image,LV,RV\na,4,inf\n", None, "row 2, column 'RV': size 'inf' of 'a' is not a finite number"),
    ("image,LV,RV\na,4,x\n", None, "row 2, column 'RV': size 'x' of 'a' is not a number"),
    ("image,LV,RV\na,4,2\n", ["LV", "RV", "MYO"], "row 1: class column 'MYO' missing"),
    ("image,size\na,4;2\n", None, "row 2, column 'size': 2 sizes '4;2', expected one"),
    ("image,LV,RV\na,4\n", None, "row 2: expected 3 columns"),
    ("image,LV\na,4\na,5\n", None, "row 3, column 'image': image 'a' is named twice (first in row 2)"),
])
def test_bad_rows_name_file_row_and_column(tmp_path, text, classes, message):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_size_table(path, classes)
    assert str(err.value).startswith(f"{path}, ") and message in str(err.value)


def test_lists_of_the_wrong_length_and_too_many_objects(tmp_path):
    path = _csv(tmp_path, "image,LV,RV\na,4,2\nb,4;3,2\n")
    table = read_size_table(path)
    check_size_table(table, (32, 32))  # any length
    with pytest.raises(DataError, match=r"row 3, column 'LV': 2 size\(s\) for 'b', expected 1"):
        check_size_table(table, (32, 32), length=1)
    crowded = _csv(tmp_path, "image,sizes\na," + ";".join(["2"] * 65) + "\n", "crowded.csv")
    check_size_table(read_size_table(crowded), (16, 16), connectivity=4)  # a checkerboard holds 128
    with pytest.raises(DataError, match=r"crowded.csv, row 2, column 'sizes': 65 objects for 'a', more than the 64"):
        check_size_table(read_size_table(crowded), (16, 16))  # 8-connected: one per 2 x 2 block
    with pytest.raises(DataError, match=r"size 40 of 'a'; an image of shape \(16, 16\) holds objects of size <= 17"):
        check_size_table(read_size_table(_csv(tmp_path, "image,size\na,40\n", "big.csv")), (16, 16))


def test_attach_matches_ids_sources_and_stems(tmp_path):
    data = synthetic_objects_data(6, shape=(32, 32), seed=0, objects=(1, 3))
    path = _csv(tmp_path, f"image,sizes\n{data.ids[1]},6;2\n{data.ids[4]},\n")
    attached = attach_size_table(data, read_size_table(path))
    lists = size_lists(attached)
    assert lists.shape == (6, 1, 2) and lists[1, 0].tolist() == [6.0, 2.0] and lists[4, 0, 0] == 0
    assert np.isnan(lists[0]).all() and attached.sizes[1] == 6 and np.isnan(attached.sizes[0])
    with pytest.raises(DataError, match=r"row 2, column 'image': 'nope' names no item"):
        attach_size_table(data, read_size_table(_csv(tmp_path, "image,size\nnope,4\n", "x.csv")))


def test_synthetic_object_lists_are_the_masks_components():
    data = synthetic_objects_data(8, shape=(32, 32), seed=3, objects=(2, 4))
    for mask, listed in zip(data.masks, size_lists(data)[:, 0]):
        sizes = np.sort(np.asarray(object_sizes(mask)[1]))[::-1]
        assert np.array_equal(sizes, listed[~np.isnan(listed)])
