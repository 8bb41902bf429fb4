"""Official split files: counts, quirks (CRLF, trailing spaces, HandStand case), bad lines."""

from __future__ import annotations

from collections import Counter

import pytest

from hba_lib.data.splits import (
    read_hmdb51_classes,
    read_hmdb51_split,
    read_ucf101_classes,
    read_ucf101_split,
)
from hba_lib.paths import REAL_DATA

UCF = REAL_DATA / "ucfTrainTestlist"
HMDB = REAL_DATA / "testTrainMulti_7030_splits"
needs_real = pytest.mark.skipif(
    not UCF.is_dir() or not HMDB.is_dir(), reason=f"real split files absent at {REAL_DATA}"
)
UCF_COUNTS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}


@needs_real
@pytest.mark.parametrize("fold", [1, 2, 3])
def test_ucf101_real_splits(fold):
    sp = read_ucf101_split(UCF, fold)
    assert len(sp.classes) == 101 and sp.classes[0] == "ApplyEyeMakeup" and sp.classes[-1] == "YoYo"
    assert (len(sp.train), len(sp.test)) == UCF_COUNTS[fold]
    assert not {v.relpath for v in sp.train} & {v.relpath for v in sp.test}
    assert len({v.relpath for v in sp.train + sp.test}) == 13320  # every UCF-101 video, once
    assert set(Counter(v.label for v in sp.test)) == set(range(101))
    for v in sp.train + sp.test:  # the label is always the folder's class
        assert sp.classes[v.label] == v.relpath.split("/")[0]


@needs_real
def test_ucf101_handstand_quirk_labels_by_folder():
    sp = read_ucf101_split(UCF, 1)
    hs = [v for v in sp.test if v.relpath.startswith("HandstandPushups/")]
    assert hs and all("/v_HandStandPushups_" in v.relpath for v in hs)
    assert {sp.classes[v.label] for v in hs} == {"HandstandPushups"}
    assert sp.classes.index("HandstandPushups") == 36  # line "37 HandstandPushups"


@needs_real
@pytest.mark.parametrize("fold", [1, 2, 3])
def test_hmdb51_real_splits(fold):
    sp = read_hmdb51_split(HMDB, fold)
    assert len(sp.classes) == 51
    assert (len(sp.train), len(sp.test)) == (3570, 1530)
    assert not {v.relpath for v in sp.train} & {v.relpath for v in sp.test}
    assert set(Counter(v.label for v in sp.train).values()) == {70}
    assert set(Counter(v.label for v in sp.test).values()) == {30}
    assert all(v.relpath.endswith(".avi") and " " not in v.relpath for v in sp.train)


@needs_real
def test_hmdb51_class_order_is_3d_resnets_sorted_order():
    # 3D-ResNets-PyTorch (the authors' pipeline) labels HMDB-51 by sorted(set(class names)).
    classes = read_hmdb51_classes(HMDB)
    assert classes == sorted(classes)
    assert classes.index("climb") + 1 == classes.index("climb_stairs")
    assert classes.index("kick") + 1 == classes.index("kick_ball")
    tsn = REAL_DATA / "hmdb51_extra" / "class_list.txt"
    if tsn.is_file():  # TSN's unofficial list: same 51 names, another order (kick_ball, kick)
        listed = [ln.strip() for ln in tsn.read_text().splitlines() if ln.strip()]
        assert sorted(listed) == classes and listed != classes


def _ucf_dir(tmp_path, train_lines, test_lines):
    d = tmp_path / "ucfTrainTestlist"
    d.mkdir()
    (d / "classInd.txt").write_bytes(b"1 Archery\r\n2 HandstandPushups\r\n\r\n")
    (d / "trainlist01.txt").write_bytes("".join(f"{x}\r\n" for x in train_lines).encode())
    (d / "testlist01.txt").write_bytes("".join(f"{x}\r\n" for x in test_lines).encode())
    return d


def test_ucf101_crlf_and_blank_lines(tmp_path):
    d = _ucf_dir(
        tmp_path,
        ["Archery/v_Archery_g08_c01.avi 1", "HandstandPushups/v_HandStandPushups_g08_c01.avi 2  "],
        ["HandstandPushups/v_HandStandPushups_g01_c01.avi", ""],
    )
    assert read_ucf101_classes(d) == ["Archery", "HandstandPushups"]
    sp = read_ucf101_split(d, 1)
    assert [(v.relpath, v.label) for v in sp.test] == [
        ("HandstandPushups/v_HandStandPushups_g01_c01.avi", 1)
    ]
    assert [v.label for v in sp.train] == [0, 1]


@pytest.mark.parametrize(
    ("train", "test", "match"),
    [
        (["Archery/v_Archery_g08_c01.avi 2"], [], r"trainlist01.txt:1: label '2' disagrees"),
        (["Bowling/v_Bowling_g08_c01.avi 1"], [], r"trainlist01.txt:1: folder 'Bowling'"),
        (["Archery/v_Archery_g08_c01.avi"], [], r"trainlist01.txt:1: malformed"),
        ([], ["Archery/a.avi", "Archery/a.avi"], r"testlist01.txt:2: Archery/a.avi listed twice"),
        (["Archery/a.avi 1"], ["Archery/a.avi"], r"both train and test"),
    ],
)
def test_ucf101_bad_lines_name_file_and_line(tmp_path, train, test, match):
    d = _ucf_dir(tmp_path, train, test)
    with pytest.raises(ValueError, match=match):
        read_ucf101_split(d, 1)


def test_missing_files_and_bad_fold(tmp_path):
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        read_ucf101_split(tmp_path, 1)
    with pytest.raises(ValueError, match="fold must be one of"):
        read_ucf101_split(tmp_path, 4)
    with pytest.raises(FileNotFoundError):
        read_hmdb51_split(tmp_path / "nope", 1)


def test_hmdb51_trailing_space_and_bad_id(tmp_path):
    d = tmp_path / "splits"
    d.mkdir()
    for c in ("wave", "clap"):
        for k in (1, 2, 3):
            (d / f"{c}_test_split{k}.txt").write_text(f"a_{c}.avi 1 \nb_{c}.avi 2 \nc_{c}.avi 0 \n")
    sp = read_hmdb51_split(d, 2)
    assert sp.classes == ["clap", "wave"]
    assert [(v.relpath, v.label) for v in sp.train] == [
        ("clap/a_clap.avi", 0),
        ("wave/a_wave.avi", 1),
    ]
    assert [v.relpath for v in sp.test] == ["clap/b_clap.avi", "wave/b_wave.avi"]
    (d / "wave_test_split3.txt").write_text("a_wave.avi 1 \nb_wave.avi 7 \n")
    with pytest.raises(ValueError, match=r"wave_test_split3.txt:2"):
        read_hmdb51_split(d, 3)
