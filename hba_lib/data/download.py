"""Resumable HTTP(S) downloads with a progress bar and size / checksum verification.

A download goes to ``<dest>.part``; an interrupted one resumes with an HTTP ``Range`` request
(or restarts when the server ignores ranges). Only a verified file is renamed to ``dest``; a
checksum mismatch deletes the partial file and raises ``ChecksumError`` naming the file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed; the message names the URL and the file."""


class ChecksumError(DownloadError):
    """A downloaded file whose size or checksum is not the expected one."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of an official data set release: where it lives and what it must hash to."""

    name: str
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


# Official addresses. MD5s of the HMDB-51 archives as published with torchvision's HMDB51 and
# DeepMind's kinetics-i3d tooling; the UCF site publishes no checksum, so none is checked.
UCF101_FILES = (
    RemoteFile("UCF101.rar", "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"),
    RemoteFile(
        "UCF101TrainTestSplits-RecognitionTask.zip",
        "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
    ),
)
HMDB51_FILES = (
    RemoteFile(
        "hmdb51_org.rar",
        "https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
        md5="517d6f1f19f215c45cdd4d25356be1fb",
    ),
    RemoteFile(
        "test_train_splits.rar",
        "https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",
        md5="15e67781e70dcfbdce2d7dbb9b3344b5",
    ),
)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_file(
    path: str | os.PathLike,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
) -> None:
    """Raise ``ChecksumError`` naming ``path`` unless its size and digests are the expected ones."""
    path = Path(path)
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise ChecksumError(f"{path}: size {actual} bytes, expected {size}")
    for algo, want in (("md5", md5), ("sha256", sha256)):
        if want is not None:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                raise ChecksumError(f"{path}: {algo} {got}, expected {want}")


def _total_from_headers(resp, offset: int) -> int | None:
    cr = resp.headers.get("Content-Range")
    if cr and (m := re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", cr)):
        return int(m[3]) if m[3] != "*" else None
    cl = resp.headers.get("Content-Length")
    return offset + int(cl) if cl is not None else None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``; verify; return ``dest``.

    An existing ``dest`` that verifies is kept without any request. Network errors are retried
    ``retries`` times, each retry resuming where the previous one stopped.
    """
    dest = Path(dest)
    if dest.exists():
        verify_file(dest, size=size, md5=md5, sha256=sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, size=size, timeout=timeout, progress=progress)
            break
        except (OSError, http.client.HTTPException) as e:
            if isinstance(e, urllib.error.HTTPError) and e.code < 500 and e.code != 429:
                raise DownloadError(f"{url} -> {dest}: HTTP {e.code} {e.reason}") from e
            last_error = e
            if attempt < retries:
                time.sleep(min(2**attempt, 10))
    else:
        raise DownloadError(f"{url} -> {dest}: failed after {retries + 1} tries: {last_error}")
    try:
        verify_file(part, size=size, md5=md5, sha256=sha256)
    except ChecksumError as e:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{url} -> {dest}: {e} (partial file deleted)") from None
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, size: int | None, timeout: float, progress: bool) -> None:
    """Fetch ``url`` into ``part``, continuing from its current length when possible."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset == size:
        return
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    req = urllib.request.Request(url, headers={"User-Agent": "hba-data/0.1"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left past our offset: the partial is complete
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        cr = resp.headers.get("Content-Range") or ""
        if offset and status == 206 and not re.match(rf"bytes\s+{offset}-", cr):
            part.unlink()  # another range than asked for: retry from scratch
            raise ConnectionError(f"{url}: asked for bytes {offset}-, got {cr!r}")
        if offset and status != 206:
            offset = 0  # the server ignored the range and sends the whole file: start over
        total = _total_from_headers(resp, offset) or size
        mode = "ab" if offset else "wb"
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            shutil.copyfileobj(_Counting(resp, bar), f, CHUNK)
    got = part.stat().st_size
    if total is not None and got < total:
        raise ConnectionError(f"{url}: connection closed at {got} of {total} bytes")


class _Counting:
    """A file-like wrapper that advances a progress bar as it is read."""

    def __init__(self, raw, bar) -> None:
        self.raw, self.bar = raw, bar

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.bar.update(len(data))
        return data


def download_all(files: tuple[RemoteFile, ...], folder: str | os.PathLike, **kw) -> list[Path]:
    """Download every ``RemoteFile`` into ``folder`` (resuming, verifying); return the paths."""
    folder = Path(folder)
    return [
        download(f.url, folder / f.name, size=f.size, md5=f.md5, sha256=f.sha256, **kw)
        for f in files
    ]
