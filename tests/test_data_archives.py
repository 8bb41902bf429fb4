"""Safe extraction: path traversal refused (zip, tar, rar), resume, HMDB rar-of-rars end to end.

RAR archives are fabricated here with a minimal RAR 4 writer (uncompressed members), which
``rarfile`` reads without any external tool, so these tests run everywhere.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from hba_lib.data.archives import (
    ArchiveError,
    UnsafeArchiveError,
    extract,
    list_members,
    safe_member_name,
)
from hba_lib.data.real_datasets import HMDB51, UCF101, build_cache, extract_data, make_fake_layout


def _rar4_block(htype: int, flags: int, body: bytes) -> bytes:
    head = struct.pack("<BHH", htype, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def write_stored_rar(path: Path, files: dict[str, bytes]) -> Path:
    """A RAR 4 archive of uncompressed members (marker, main header, file headers, end)."""
    out = bytearray(b"Rar!\x1a\x07\x00") + _rar4_block(0x73, 0, b"\x00" * 6)
    dos_time = ((2020 - 1980) << 25) | (1 << 21) | (1 << 16)
    for name, data in files.items():
        nb = name.encode()
        body = (
            struct.pack(
                "<IIBIIBBHI",
                len(data),
                len(data),
                3,
                zlib.crc32(data),
                dos_time,
                20,
                0x30,
                len(nb),
                0o100644,
            )
            + nb
        )
        out += _rar4_block(0x74, 0x8000, body) + data
    out += _rar4_block(0x7B, 0x4000, b"")
    path.write_bytes(bytes(out))
    return path


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


MAKERS = {"zip": (_zip, "a.zip"), "tar": (_tar, "a.tar.gz"), "rar": (write_stored_rar, "a.rar")}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_good_archive_extracts_and_resumes(tmp_path, kind):
    make, fname = MAKERS[kind]
    files = {"top/x.txt": b"hello", "top/sub/y.bin": bytes(range(256)) * 40}
    arc = make(tmp_path / fname, files)
    out = extract(arc, tmp_path / "out", progress=False)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    mtime = (tmp_path / "out/top/sub/y.bin").stat().st_mtime_ns
    extract(arc, tmp_path / "out", progress=False)  # second run: files already there are kept
    assert (tmp_path / "out/top/sub/y.bin").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize(
    "evil",
    [
        "../escape.txt",
        "ok/../../escape.txt",
        "/abs/escape.txt",
        "C:/win/escape.txt",
        "..\\escape.txt",
    ],
)
def test_escaping_member_refuses_whole_archive(tmp_path, kind, evil):
    if kind == "tar" and "\\" in evil:
        pytest.skip("tar keeps backslashes as plain characters")
    make, fname = MAKERS[kind]
    arc = make(tmp_path / fname, {"fine.txt": b"ok", evil: b"pwned"})
    target = tmp_path / "deep" / "target"
    with pytest.raises(UnsafeArchiveError, match=r"refusing member"):
        extract(arc, target, progress=False)
    assert not (target / "fine.txt").exists()  # nothing written, not even the safe member
    assert not list(tmp_path.rglob("escape.txt"))


def test_tar_links_refused(tmp_path):
    arc = tmp_path / "l.tar"
    with tarfile.open(arc, "w") as t:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(arc, tmp_path / "out", progress=False)


def test_zip_symlink_refused(tmp_path):
    arc = tmp_path / "l.zip"
    with zipfile.ZipFile(arc, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16  # a symlink, as Info-ZIP records it
        z.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(arc, tmp_path / "out", progress=False)


def test_member_name_rules():
    assert safe_member_name("a", "./x//y/./z.avi") == "x/y/z.avi"
    assert safe_member_name("a", "x\\y.avi") == "x/y.avi"
    for bad in ("", "..", "/x", "a/../../b", "D:\\x"):
        with pytest.raises(UnsafeArchiveError):
            safe_member_name("a", bad)


def test_unreadable_archives_name_the_file(tmp_path):
    for name in ("bad.zip", "bad.rar", "bad.tar"):
        (tmp_path / name).write_bytes(b"this is not an archive at all" * 10)
        with pytest.raises(ArchiveError, match=name):
            extract(tmp_path / name, tmp_path / "out", progress=False)
    with pytest.raises(ArchiveError, match="unknown archive type"):
        list_members(tmp_path / "x.7z")


def _pack_official_hmdb(src: Path, downloads: Path) -> None:
    """HMDB-51 as distributed: hmdb51_org.rar holding <class>.rar, each holding <class>/*.avi."""
    downloads.mkdir(parents=True)
    inner_dir = src / "inner"
    inner_dir.mkdir()
    inner = {}
    for cls_dir in sorted((src / "hmdb51_org").iterdir()):
        files = {f"{cls_dir.name}/{f.name}": f.read_bytes() for f in sorted(cls_dir.iterdir())}
        inner[f"{cls_dir.name}.rar"] = write_stored_rar(
            inner_dir / f"{cls_dir.name}.rar", files
        ).read_bytes()
    write_stored_rar(downloads / "hmdb51_org.rar", inner)
    splits = {
        f"testTrainMulti_7030_splits/{f.name}": f.read_bytes()
        for f in sorted((src / "testTrainMulti_7030_splits").iterdir())
    }
    write_stored_rar(downloads / "test_train_splits.rar", splits)


def test_hmdb51_rar_of_rars_to_dataset(tmp_path):
    src = tmp_path / "src"
    fake = make_fake_layout("hmdb51", src, hw=(32, 40))
    root = tmp_path / "root"
    _pack_official_hmdb(src, root / "downloads")
    extract_data("hmdb51", root, progress=False)
    assert sorted(p.name for p in (root / "hmdb51_org").iterdir()) == fake.classes
    assert not list((root / "hmdb51_rars").glob("*.rar"))  # inner rars removed after use
    report = build_cache("hmdb51", root, "test", 1, size=24, workers=1, progress=False)
    assert report.n_cached == len(fake.test) and not report.excluded
    ds = HMDB51("test", root=root, size=24)
    assert ds.classes == fake.classes and ds.labels.tolist() == [v.label for v in fake.test]
    x, y = ds[0]
    assert x.shape == (3, 16, 24, 24) and y == fake.test[0].label


def test_ucf101_official_archives_to_dataset(tmp_path):
    src = tmp_path / "src"
    fake = make_fake_layout("ucf101", src, hw=(32, 40))
    dl = tmp_path / "root" / "downloads"
    dl.mkdir(parents=True)
    write_stored_rar(
        dl / "UCF101.rar",
        {
            f"UCF-101/{p.relative_to(src / 'UCF-101').as_posix()}": p.read_bytes()
            for p in (src / "UCF-101").rglob("*.avi")
        },
    )
    _zip(
        dl / "UCF101TrainTestSplits-RecognitionTask.zip",
        {
            f"ucfTrainTestlist/{p.name}": p.read_bytes()
            for p in (src / "ucfTrainTestlist").iterdir()
        },
    )
    extract_data("ucf101", tmp_path / "root", progress=False)
    build_cache("ucf101", tmp_path / "root", "test", 1, size=24, workers=1, progress=False)
    ds = UCF101("test", root=tmp_path / "root", size=24)
    assert len(ds) == len(fake.test) and ds.names == [v.relpath for v in fake.test]
    assert np.asarray(ds.videos).shape == (len(fake.test), 16, 24, 24, 3)


def test_missing_downloads_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="UCF101"):
        extract_data("ucf101", tmp_path, progress=False)
