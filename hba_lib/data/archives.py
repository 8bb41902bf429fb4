"""Safe extraction of zip / tar / rar archives, HMDB-51's rar-of-rars included.

Every member name is checked before anything is written: absolute paths, drive letters,
``..`` components, links and device files are refused (``UnsafeArchiveError`` naming the
archive and the member) and nothing of that archive is extracted. Files already extracted with
the right size are skipped, so an interrupted extraction resumes.

RAR: headers are read by ``rarfile`` (pure Python); uncompressed members are copied directly,
compressed ones need an extractor on PATH that ``rarfile`` drives: ``unrar``, ``unar``,
``bsdtar`` (Debian ``libarchive-tools``) or ``7z``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

RAR_TOOLS_HINT = (
    "install a RAR extractor, e.g. `apt-get install unar` (or libarchive-tools for bsdtar, "
    "or unrar)"
)


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside the target folder (or is a link/device)."""


class ArchiveError(RuntimeError):
    """An archive that cannot be read or extracted; the message names it."""


@dataclass(frozen=True)
class Member:
    """One regular file or folder of an archive, with its checked relative name."""

    name: str
    size: int
    is_dir: bool
    raw: object


def safe_member_name(archive: str | os.PathLike, name: str) -> str:
    """The member's relative POSIX path, or ``UnsafeArchiveError`` if it could escape."""
    norm = name.replace("\\", "/")
    if not norm or norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or "\x00" in norm:
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: absolute path")
    parts = [p for p in PurePosixPath(norm).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: '..' escapes the target")
    if not parts:
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: empty name")
    return "/".join(parts)


def _target_path(target: Path, rel: str, archive: Path, name: str) -> Path:
    dest = (target / rel).resolve()
    root = target.resolve()
    if dest != root and root not in dest.parents:
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: resolves outside {target}")
    return dest


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".rar"):
        return "rar"
    if re.search(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$", name):
        return "tar"
    raise ArchiveError(f"{path}: unknown archive type (expected .zip, .rar or .tar[.gz|.bz2|.xz])")


@contextmanager
def _open_members(path: Path) -> Iterator[tuple[list[Member], object]]:
    """Open an archive and list its members, refusing unsafe ones before anything is written."""
    kind = _archive_kind(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive not found: {path}")
    members: list[Member] = []
    if kind == "zip":
        try:
            handle = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise ArchiveError(f"{path}: not a readable zip archive ({e})") from None
        with handle:
            for info in handle.infolist():
                rel = safe_member_name(path, info.filename)
                ftype = stat.S_IFMT(info.external_attr >> 16)  # 0 when no Unix type recorded
                if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(
                        f"{path}: refusing member {info.filename!r}: a link or special file"
                    )
                members.append(Member(rel, info.file_size, info.is_dir(), info))
            yield members, handle
    elif kind == "tar":
        try:
            handle = tarfile.open(path)
        except tarfile.TarError as e:
            raise ArchiveError(f"{path}: not a readable tar archive ({e})") from None
        with handle:
            for info in handle.getmembers():
                rel = safe_member_name(path, info.name)
                if not (info.isfile() or info.isdir()):
                    raise UnsafeArchiveError(
                        f"{path}: refusing member {info.name!r}: links and devices not allowed"
                    )
                members.append(Member(rel, info.size, info.isdir(), info))
            yield members, handle
    else:
        import rarfile

        try:
            handle = rarfile.RarFile(path)
        except (rarfile.Error, OSError) as e:
            raise ArchiveError(f"{path}: not a readable rar archive ({e})") from None
        with handle:
            for info in handle.infolist():
                rel = safe_member_name(path, info.filename)
                if info.is_symlink() or info.file_redir:
                    raise UnsafeArchiveError(f"{path}: refusing member {info.filename!r}: a link")
                members.append(Member(rel, info.file_size, info.is_dir(), info))
            yield members, handle


def list_members(archive: str | os.PathLike) -> list[str]:
    """Checked relative names of an archive's members (raises on any unsafe one)."""
    with _open_members(Path(archive)) as (members, _):
        return [m.name for m in members]


def extract(
    archive: str | os.PathLike, target: str | os.PathLike, *, progress: bool = True
) -> list[Path]:
    """Extract every member of ``archive`` under ``target``; return the files' paths.

    All member names are checked first; one unsafe name refuses the whole archive. Files that
    already exist with the member's size are kept (resume).
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with _open_members(archive) as (members, handle):
        plan = [(m, _target_path(target, m.name, archive, m.name)) for m in members]
        out: list[Path] = []
        for m, dest in tqdm(
            plan, desc=f"extract {archive.name}", unit="file", disable=not progress
        ):
            if m.is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            out.append(dest)
            if dest.is_file() and dest.stat().st_size == m.size:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            try:
                with _member_stream(archive, handle, m) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if tmp.stat().st_size != m.size:
                tmp.unlink()
                raise ArchiveError(f"{archive}: member {m.name} extracted to a wrong size")
            os.replace(tmp, dest)
    return out


@contextmanager
def _member_stream(archive: Path, handle, m: Member):
    if isinstance(handle, zipfile.ZipFile):
        with handle.open(m.raw) as f:
            yield f
    elif isinstance(handle, tarfile.TarFile):
        f = handle.extractfile(m.raw)
        if f is None:
            raise ArchiveError(f"{archive}: cannot read member {m.name}")
        with f:
            yield f
    else:
        import rarfile

        try:
            f = handle.open(m.raw)
        except rarfile.RarCannotExec as e:
            raise ArchiveError(
                f"{archive}: member {m.name} is compressed and no RAR extractor was found "
                f"({e}); {RAR_TOOLS_HINT}"
            ) from None
        except rarfile.Error as e:
            raise ArchiveError(f"{archive}: cannot read member {m.name} ({e})") from None
        with f:
            yield f


def extract_nested_rars(
    folder: str | os.PathLike,
    target: str | os.PathLike,
    *,
    remove: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Extract every ``*.rar`` directly in ``folder`` into ``target`` (HMDB-51's inner rars)."""
    folder = Path(folder)
    inner = sorted(folder.glob("*.rar"))
    if not inner:
        raise ArchiveError(f"{folder}: no inner .rar archives found")
    out: list[Path] = []
    for rar in tqdm(inner, desc="inner archives", unit="rar", disable=not progress):
        names = [n for n in list_members(rar) if n]
        flat = all("/" not in n for n in names)  # class.rar holding bare files: add the folder
        out += extract(rar, Path(target) / rar.stem if flat else target, progress=False)
        if remove:
            rar.unlink()
    return out
