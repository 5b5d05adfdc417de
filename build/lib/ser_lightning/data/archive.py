"""Safe extraction of downloaded corpus archives (ZIP and tar).

``zipfile.extractall`` and ``tarfile.extractall`` trust member names: a crafted archive
can write outside the target (``../x``, ``/etc/x``), plant symbolic links, or expand a
few kilobytes into gigabytes (a "zip bomb"). Every member is checked here before any
byte is written, and the bytes actually written are counted against the same bound
(the sizes in an archive's header can lie). Each refusal names the offending member.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ser_lightning.errors import UnsafeArchiveError

#: Largest accepted ratio of a member's unpacked to packed size. Audio (WAV, FLAC)
#: deflates to 40-90 % of its size; text files about 10-20 %; a zip bomb far beyond 1 %.
MAX_MEMBER_RATIO = 200
_CHUNK = 1 << 20


def _safe_relative(name: str, archive: Path) -> PurePosixPath:
    """The member's path as a relative POSIX path, or :class:`UnsafeArchiveError`."""
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member '{name}' has an absolute path; refusing to extract the archive")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive.name}: member '{name}' has a '..' component; refusing to extract the archive")
    return PurePosixPath(*[p for p in path.parts if p not in ("", ".")])


def _copy_bounded(src, dst: Path, limit: int, member: str, archive: Path) -> int:
    """Copy a member stream to ``dst`` writing at most ``limit`` bytes; returns bytes written."""
    written = 0
    with dst.open("wb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                return written
            written += len(chunk)
            if written > limit:
                raise UnsafeArchiveError(
                    f"{archive.name}: member '{member}' unpacks past its declared size or the archive's "
                    f"size bound ({limit:,} bytes left); refusing it as a possible zip bomb"
                )
            out.write(chunk)


def safe_extract(archive: str | Path, dest: str | Path, max_total_bytes: int) -> list[Path]:
    """Extract a ZIP or tar archive into ``dest``, refusing unsafe members.

    Checks, before anything is written: no absolute path, no ``..`` component, no
    symbolic or hard link (nor device, FIFO), no member whose declared size would take
    the total past ``max_total_bytes``, no ZIP member packed more than
    :data:`MAX_MEMBER_RATIO` times. While writing, the bytes written are counted
    against the declared sizes, so a lying header is caught too.

    Args:
        archive: ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``.
        dest: target folder (created); on error it may hold part of the archive, so
            callers extract into a temporary folder and delete it on failure.
        max_total_bytes: bound on the sum of unpacked sizes (bytes).

    Returns:
        The extracted regular files (absolute paths).

    Raises:
        UnsafeArchiveError: an unsafe member (its name is in the message).
        ValueError: the file is neither a ZIP nor a tar archive, or is corrupt.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, dest, max_total_bytes)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, dest, max_total_bytes)
    raise ValueError(f"{archive} is neither a ZIP nor a tar archive (corrupt or incomplete download?)")


def _extract_zip(archive: Path, dest: Path, max_total: int) -> list[Path]:
    out = []
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        total = 0
        plan = []
        for info in members:
            rel = _safe_relative(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive.name}: member '{info.filename}' is a symbolic link; refusing to extract the archive")
            # zip writers often store permission bits only (no file type): those are regular files
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(f"{archive.name}: member '{info.filename}' is not a regular file or folder")
            if info.is_dir():
                plan.append((info, rel, True))
                continue
            total += info.file_size
            if total > max_total:
                raise UnsafeArchiveError(
                    f"{archive.name}: member '{info.filename}' takes the unpacked size past the bound of "
                    f"{max_total:,} bytes; refusing it as a possible zip bomb"
                )
            if info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1) and info.file_size > _CHUNK:
                raise UnsafeArchiveError(
                    f"{archive.name}: member '{info.filename}' is packed {info.file_size / max(info.compress_size, 1):.0f} "
                    f"times (bound {MAX_MEMBER_RATIO}); refusing it as a possible zip bomb"
                )
            plan.append((info, rel, False))
        try:
            for info, rel, is_dir in plan:
                target = dest.joinpath(*rel.parts) if rel.parts else dest
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    _copy_bounded(src, target, info.file_size, info.filename, archive)
                out.append(target)
        except zipfile.BadZipFile as err:
            raise ValueError(f"{archive.name} is corrupt: {err}") from err
    return out


def _extract_tar(archive: Path, dest: Path, max_total: int) -> list[Path]:
    out = []
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            total = 0
            for m in members:
                _safe_relative(m.name, archive)
                if m.issym() or m.islnk():
                    raise UnsafeArchiveError(f"{archive.name}: member '{m.name}' is a link; refusing to extract the archive")
                if not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(f"{archive.name}: member '{m.name}' is not a regular file or folder")
                total += m.size
                if total > max_total:
                    raise UnsafeArchiveError(
                        f"{archive.name}: member '{m.name}' takes the unpacked size past the bound of "
                        f"{max_total:,} bytes; refusing it as a possible zip bomb"
                    )
            for m in members:
                rel = _safe_relative(m.name, archive)
                target = dest.joinpath(*rel.parts) if rel.parts else dest
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                with src:
                    _copy_bounded(src, target, m.size, m.name, archive)
                out.append(target)
    except tarfile.TarError as err:
        raise ValueError(f"{archive.name} is corrupt: {err}") from err
    return out


def remove_tree(path: Path) -> None:
    """Delete a folder or file if it exists (used to drop a failed extraction)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
