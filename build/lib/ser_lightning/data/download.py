"""Download, verify and lay out the corpora the readers in :mod:`ser_lightning.data.corpora` read.

The sources, sizes, checksums and expected file counts are pinned in
``corpora_manifest.yaml`` (shipped with this package). Fetching, retries, hashing and
progress bars are pooch's (https://www.fatiando.org/pooch); this module adds what a
corpus needs on top:

- resumable downloads: bytes go to ``<file>.part`` and an interrupted download continues
  with an HTTP ``Range`` request (:class:`ResumingDownloader`, a pooch downloader);
- nothing half-done: archives are extracted into ``<root>/.<folder>.partial``, counted,
  named and read by the corpus reader, and only then renamed to ``<root>/<folder>``;
  per-file corpora are assembled under ``<root>/.downloads/<corpus>/tree`` the same way;
- safe extraction (:func:`ser_lightning.data.archive.safe_extract`);
- a record ``<folder>/.ser_download.json`` with the SHA-256 and size of every installed
  file, so a second call is a quick no-op and ``verify`` can list missing or changed files;
- licences: non-commercial or research-only corpora need an explicit acceptance.

Every failure is raised as :class:`DownloadError` with one sentence that says what went
wrong and what to do; the command line turns it into exit code 1.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import gzip
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pooch
import yaml

from ser_lightning.data.archive import remove_tree, safe_extract
from ser_lightning.errors import DownloadError, UnsafeArchiveError

#: Name of the installation record inside each corpus folder.
RECORD_NAME = ".ser_download.json"
#: Folder (under the data root) holding downloads in progress.
STAGING_DIR = ".downloads"
#: Environment variable with a mirror root: file P of corpus C is at $SER_DATA_MIRROR/C/P.
MIRROR_ENV = "SER_DATA_MIRROR"
_MANIFEST_FILE = "corpora_manifest.yaml"

Printer = Callable[[str], None]


class LicenceNotAccepted(DownloadError):
    """The corpus has non-commercial or research-only terms and they were not accepted."""


# --- the manifest -----------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    Attributes:
        path: relative POSIX path below the download folder (``AudioWAV/1001_DFA_ANG_XX.wav``).
        url: where to get it.
        hash: pooch hash string (``md5:...``, ``sha256:...``) or ``None`` when none is published.
        size: size in bytes, ``None`` when unknown.
        archive: extract it (safely) instead of keeping it.
        max_extracted_bytes: bound on its unpacked size (zip-bomb guard), bytes.
        subdir: the folder of the archive that holds the corpus (a GitHub archive of a
            commit wraps the repository in ``<repo>-<commit>/``; TurEV-DB's audio is its
            ``Sound Source/``); only it is kept. ``None``: the whole archive.
    """

    path: str
    url: str
    hash: str | None
    size: int | None
    archive: bool = False
    max_extracted_bytes: int | None = None
    subdir: str | None = None


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus of the manifest (see the comments at the top of ``corpora_manifest.yaml``)."""

    name: str
    title: str
    source: str
    method: str
    folder: str
    reader_root: str
    expected_files: int
    name_pattern: str
    checksums: str
    licence: str
    licence_url: str
    accept_licence: bool
    implicit: bool
    citation: str
    size_bytes: int | None = None
    approx_bytes: int | None = None
    base_url: str | None = None
    archives: tuple[dict, ...] = ()
    file_list: str | None = None
    extra_files: tuple[dict, ...] = ()
    dataverse: dict | None = None
    manual: dict | None = None
    manifest_dir: Path = field(default=Path("."), compare=False)

    @property
    def reader_subdir(self) -> Path:
        """``reader_root`` relative to the corpus folder (``AudioWAV`` for CREMA-D)."""
        return Path(PurePosixPath(self.reader_root).relative_to(self.folder))

    @property
    def download_bytes(self) -> int | None:
        """Bytes to download (pinned, or the manifest's estimate), ``None`` when unknown."""
        return self.size_bytes or self.approx_bytes


def manifest_path() -> Path:
    """Path of the manifest shipped with the package."""
    return Path(str(resources.files("ser_lightning.data").joinpath(_MANIFEST_FILE)))


def load_manifest(path: str | Path | None = None) -> dict[str, CorpusSpec]:
    """Read the corpus manifest (default: the one shipped with the package).

    Raises:
        DownloadError: the file is missing or an entry lacks a required key.
    """
    path = Path(path) if path is not None else manifest_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DownloadError(f"cannot read the corpus manifest {path}: {err}") from err
    specs = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        try:
            specs[name] = CorpusSpec(
                name=name,
                archives=tuple(entry.pop("archives", ()) or ()),
                extra_files=tuple(entry.pop("extra_files", ()) or ()),
                manifest_dir=path.parent,
                **entry,
            )
        except TypeError as err:
            raise DownloadError(f"corpus manifest {path}, entry '{name}': {err}") from err
    return specs


def resolve_data_root(root: str | Path | None = None) -> Path:
    """The data root, as ``paths.data_dir`` resolves it: ``root``, else $SER_DATA_DIR, else <project>/data."""
    if root:
        return Path(root).expanduser().resolve()
    if os.environ.get("SER_DATA_DIR"):
        return Path(os.environ["SER_DATA_DIR"]).expanduser().resolve()
    return (Path(os.environ.get("PROJECT_ROOT", ".")) / "data").resolve()


def _mirror_base(spec: CorpusSpec, mirror: str | None) -> str | None:
    """Base URL that replaces the official one: ``mirror`` as given, else $SER_DATA_MIRROR/<corpus>/."""
    if mirror:
        return mirror.rstrip("/") + "/"
    env = os.environ.get(MIRROR_ENV)
    if env:
        return f"{env.rstrip('/')}/{spec.name}/"
    return None


def _checked_relpath(path: str, where: str) -> str:
    """A relative POSIX path without ``..``; :class:`DownloadError` otherwise (paths come from servers)."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise DownloadError(f"{where}: refusing the unsafe file path '{path}'")
    return pure.as_posix()


def pinned_file_list(spec: CorpusSpec) -> list[tuple[str, int, str]]:
    """``(path, size, sha256)`` of every file of a ``files`` corpus (from its compressed CSV)."""
    if not spec.file_list:
        return []
    data = gzip.decompress((spec.manifest_dir / spec.file_list).read_bytes()).decode()
    return [(r["path"], int(r["size"]), r["sha256"]) for r in csv.DictReader(io.StringIO(data))]


def remote_files(spec: CorpusSpec, staging: Path, mirror: str | None = None, retries: int = 2) -> list[RemoteFile]:
    """Every file to download for ``spec``; a Dataverse corpus reads its file list from the API.

    Raises:
        DownloadError: ``manual`` corpus, or the Dataverse file list cannot be fetched or read.
    """
    base = _mirror_base(spec, mirror)
    if spec.method == "archive":
        out = []
        for a in spec.archives:
            url = (base or spec.base_url) + a["name"] + ("" if base else a.get("url_suffix", ""))
            out.append(RemoteFile(a["name"], url, a.get("hash"), a.get("size"), True, a.get("max_extracted_bytes"),
                                  a.get("subdir")))
        return out
    if spec.method == "files":
        root = base or spec.base_url
        out = [RemoteFile(p, root + p, f"sha256:{h}", s) for p, s, h in pinned_file_list(spec)]
        for extra in spec.extra_files:
            url = (base + extra["path"]) if base else extra["url"]
            out.append(RemoteFile(extra["path"], url, f"sha256:{extra['sha256']}", extra["size"]))
        return out
    if spec.method == "dataverse":
        return _dataverse_files(spec, staging, base, retries)
    raise DownloadError(f"{spec.name}: method '{spec.method}' downloads nothing (manual corpora need archive=...)")


def _dataverse_files(spec: CorpusSpec, staging: Path, base: str | None, retries: int) -> list[RemoteFile]:
    """File list of a Dataverse dataset version, with the MD5 Dataverse publishes for each file.

    Official: ``<server>/api/datasets/:persistentId/versions/<v>/files?persistentId=<doi>``
    and ``<server>/api/access/datafile/<id>``. A mirror serves the same JSON as
    ``<mirror>/files.json`` and each file at ``<mirror>/<path>``.
    """
    dv = spec.dataverse or {}
    if base:
        listing_url = base + "files.json"
    else:
        listing_url = (
            f"{dv['server'].rstrip('/')}/api/datasets/:persistentId/versions/{dv['version']}/files"
            f"?persistentId={dv['doi']}"
        )
    listing = staging / "dataverse_files.json"
    remove_tree(listing)
    _fetch_all([RemoteFile(listing.name, listing_url, None, None)], staging, retries=retries, workers=1, progress=False,
               what=f"{spec.name} file list")
    try:
        entries = json.loads(listing.read_text())["data"]
    except (ValueError, KeyError, TypeError) as err:
        raise DownloadError(f"{spec.name}: the Dataverse file list from {listing_url} is not the expected JSON ({err})") from err
    algos = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}
    out = []
    for e in entries:
        df = e.get("dataFile", {})
        name = df.get("filename") or e.get("label")
        folder = e.get("directoryLabel") or ""
        path = _checked_relpath(f"{folder}/{name}" if folder else str(name), f"{spec.name} file list")
        checksum = df.get("checksum") or ({"type": "MD5", "value": df["md5"]} if df.get("md5") else None)
        known = f"{algos[checksum['type']]}:{checksum['value']}" if checksum and checksum.get("type") in algos else None
        url = base + path if base else f"{dv['server'].rstrip('/')}/api/access/datafile/{df['id']}"
        is_archive = path.lower().endswith((".zip", ".tar.gz", ".tgz", ".tar"))
        size = df.get("filesize")
        out.append(RemoteFile(path, url, known, size, is_archive, 10 * size if (is_archive and size) else None))
    remove_tree(listing)
    if not out:
        raise DownloadError(f"{spec.name}: the Dataverse file list from {listing_url} is empty")
    return out


# --- downloading ------------------------------------------------------------------
class ResumingDownloader:
    """A pooch downloader that writes to ``<target>.part`` and resumes it with HTTP ``Range``.

    pooch hands each attempt a fresh temporary file and deletes it on failure, so a
    broken transfer would start from zero; this downloader keeps the bytes in a stable
    ``.part`` file, asks the server for the rest (``Range: bytes=<done>-``), appends on
    ``206 Partial Content`` and starts over when the server answers ``200`` (no range
    support). The finished ``.part`` becomes pooch's temporary file, which pooch then
    checks against the known hash and renames.

    Args:
        part: the ``.part`` path.
        progressbar: show a tqdm bar of bytes on stderr.
        timeout: seconds to wait for the server (connect and each read).
    """

    def __init__(self, part: Path, progressbar: bool = False, timeout: float = 60.0, chunk_size: int = 1 << 16):
        self.part, self.progressbar, self.timeout, self.chunk_size = Path(part), progressbar, timeout, chunk_size

    def __call__(self, url: str, output_file: str, pooch_obj: Any, check_only: bool = False) -> bool | None:
        import requests

        if check_only:
            return requests.head(url, timeout=self.timeout, allow_redirects=True).status_code == 200
        done = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={done}-"} if done else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if done and response.status_code == 416:  # .part is already whole (or stale): start again
                self.part.unlink()
                return self(url, output_file, pooch_obj)
            response.raise_for_status()
            resumed = done > 0 and response.status_code == 206
            if not resumed:
                done = 0
            total = int(response.headers.get("content-length", 0)) + done
            bar = None
            if self.progressbar:
                from tqdm import tqdm

                bar = tqdm(total=total or None, initial=done, unit="B", unit_scale=True, desc=self.part.name[:-5],
                           file=sys.stderr, leave=False)
            try:
                with self.part.open("ab" if resumed else "wb") as fh:
                    for chunk in response.iter_content(chunk_size=self.chunk_size):
                        fh.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        os.replace(self.part, output_file)
        return None


def _explain(err: BaseException, what: str, part: Path | None = None) -> str:
    """One clear sentence for a failed download of ``what``."""
    import requests

    keep = f" The {part.stat().st_size:,} bytes received are kept in {part}; run the same command again to resume." if (
        part is not None and part.exists()) else ""
    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        code, url = err.response.status_code, err.response.url
        hint = ("the file is not (or no longer) at this address: check the manifest or the mirror"
                if code in (404, 410) else "the server failed; try again later" if code >= 500 else "the server refused the request")
        return f"{what}: HTTP {code} {err.response.reason} from {url}: {hint}."
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return f"{what}: the connection broke during the download.{keep}"
    if isinstance(err, requests.exceptions.Timeout):
        return f"{what}: the server did not answer in time (slow or no network).{keep}"
    if isinstance(err, requests.exceptions.ConnectionError):
        host = urlsplit(err.request.url).netloc if getattr(err, "request", None) is not None else "the server"
        return f"{what}: cannot connect to {host} (no network, DNS failure or server down).{keep}"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return f"{what}: the disk is full. Free some space and run the same command again.{keep}"
    if isinstance(err, ValueError) and "hash" in str(err).lower():
        return (f"{what}: wrong checksum, the file is not the pinned one and was deleted ({err}). "
                "Run again; if it persists, the source or mirror serves a different file.")
    return f"{what}: {type(err).__name__}: {err}{keep}"


def _fetch_all(files: list[RemoteFile], folder: Path, *, retries: int, workers: int, progress: bool, what: str) -> None:
    """Download ``files`` into ``folder`` with pooch (hash-checked, retried, resumable).

    Files already present with the right hash are kept. Raises :class:`DownloadError`
    at the first failure (the other transfers are cancelled).
    """
    import requests

    pooch.get_logger().setLevel("WARNING")
    store = pooch.create(
        path=folder,
        base_url="",
        registry={f.path: f.hash for f in files},
        urls={f.path: f.url for f in files},
        retry_if_failed=retries,
        allow_updates=True,
    )

    def one(f: RemoteFile) -> None:
        part = folder / (f.path + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        label = f"{what}: {f.path}"
        try:
            store.fetch(f.path, downloader=ResumingDownloader(part, progressbar=progress and len(files) == 1))
        except (requests.exceptions.RequestException, ValueError, OSError) as err:
            raise DownloadError(_explain(err, label, part)) from err

    if workers <= 1 or len(files) == 1:
        bar = _file_bar(len(files), progress and len(files) > 1, what)
        for f in files:
            one(f)
            bar.update(1)
        bar.close()
        return
    bar = _file_bar(len(files), progress, what)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(one, f) for f in files}
        for fut in futures:
            fut.add_done_callback(lambda _f: bar.update(1))
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in done:
            if fut.exception() is not None:
                raise fut.exception()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def fetch_file(url: str, folder: Path, name: str, *, sha256: str | None = None, retries: int = 2, progress: bool = True,
               what: str | None = None) -> Path:
    """Download one file to ``folder/name`` through the corpora's download code (pooch,
    resumable with HTTP ``Range`` from ``folder/name.part``, retried); a file already
    there (with the right hash, when ``sha256`` is given) is kept.

    Used for single files outside a corpus, e.g. a pretrained encoder's weights
    (``python -m ser_lightning.cli.download encoder=<name>``).

    Returns:
        ``folder/name``.

    Raises:
        DownloadError: one sentence saying what failed (network, HTTP status, checksum,
            disk) and, for a broken transfer, that running again resumes it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remote = RemoteFile(path=name, url=url, hash=f"sha256:{sha256}" if sha256 else None, size=None)
    _fetch_all([remote], folder, retries=retries, workers=1, progress=progress, what=what or name)
    return folder / name


def _file_bar(total: int, enabled: bool, what: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc=what, disable=not enabled, file=sys.stderr)


# --- licences ---------------------------------------------------------------------
def licence_text(spec: CorpusSpec) -> str:
    """The licence and citation block printed before a download and after an installation."""
    return (f"{spec.title}\n  source:   {spec.source}\n  licence:  {spec.licence} ({spec.licence_url})\n"
            f"  citation: {spec.citation}")


def require_licence(spec: CorpusSpec, accept: bool, interactive: bool, implicit: bool, out: Printer) -> None:
    """Accept the corpus's terms, or raise :class:`LicenceNotAccepted`.

    Open corpora (``accept_licence: false``) pass. Others need ``accept`` or an
    interactive "yes". ``implicit`` (a fetch started by ``make train``) passes only for
    corpora the manifest marks ``implicit: true`` (the default corpus, TESS) and is
    refused for every other non-open corpus.
    """
    if not spec.accept_licence:
        return
    if implicit and not accept:
        if spec.implicit:
            out(f"{spec.name}: fetched for `make train` (the default corpus); its terms above allow this for "
                "non-commercial research. Cite it as shown.")
            return
        raise LicenceNotAccepted(f"{spec.name} has non-commercial or research-only terms and is never fetched implicitly; "
                                 f"run: python -m ser_lightning.cli.download {spec.name} accept_licence=true")
    if accept:
        return
    if interactive:
        answer = input(f"Do you accept the terms of {spec.name} ({spec.licence})? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
    raise LicenceNotAccepted(f"{spec.name}: its licence ({spec.licence}) was not accepted; read it at {spec.licence_url} "
                             f"and rerun with accept_licence=true")


# --- verification -----------------------------------------------------------------
@dataclass
class VerifyReport:
    """Outcome of checking an installed corpus folder.

    Attributes:
        folder: the corpus folder checked.
        audio_files: audio files found under the reader root.
        expected_files: the manifest's count.
        missing, changed, extra: relative paths (missing: recorded but absent; changed:
            size or SHA-256 differs from the record or the pinned list; extra: audio files
            neither recorded nor pinned).
        bad_names: audio files whose names do not match the corpus's naming pattern.
        recorded: whether an installation record was found (else only counts, names and
            pinned hashes were checked).
    """

    folder: Path
    audio_files: int
    expected_files: int
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)
    recorded: bool = False

    @property
    def ok(self) -> bool:
        """No problem found."""
        return (self.audio_files == self.expected_files and not self.missing and not self.changed
                and not self.extra and not self.bad_names)

    def lines(self) -> list[str]:
        """Human-readable findings, one per line (at most 20 paths per kind)."""
        out = [f"{self.folder}: {self.audio_files} audio files (expected {self.expected_files})"]
        for label, items in (("missing", self.missing), ("changed", self.changed), ("unexpected", self.extra),
                             ("badly named", self.bad_names)):
            if items:
                shown = ", ".join(items[:20]) + (f", ... ({len(items) - 20} more)" if len(items) > 20 else "")
                out.append(f"  {len(items)} {label}: {shown}")
        return out


def _audio_files(folder: Path) -> list[Path]:
    """The audio files below ``folder`` (any format the corpus readers take), sorted."""
    from ser_lightning.data.corpora import list_audio_files

    return list_audio_files(folder)


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != RECORD_NAME)


def _sha256(path: Path) -> str:
    return pooch.file_hash(str(path), alg="sha256")


def read_record(folder: Path) -> dict | None:
    """The installation record of a corpus folder, or ``None``."""
    try:
        return json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None


def check_layout(spec: CorpusSpec, folder: Path) -> tuple[int, list[str]]:
    """Audio file count under the reader root, and the names not matching ``name_pattern``."""
    audio = _audio_files(folder / spec.reader_subdir) if (folder / spec.reader_subdir).is_dir() else []
    pattern = re.compile(spec.name_pattern)
    return len(audio), [p.relative_to(folder).as_posix() for p in audio if not pattern.match(p.name)]


def verify_corpus(spec: CorpusSpec, root: Path, rehash: bool = True) -> VerifyReport:
    """Check an installed corpus folder against its record (or, without one, the manifest).

    With a record: every recorded file must exist with its size and (``rehash``)
    SHA-256. Without: the pinned per-file hashes of a ``files`` corpus are compared.
    Always: audio count and names under the reader root.

    Raises:
        DownloadError: the corpus folder does not exist.
    """
    folder = root / spec.folder
    if not folder.is_dir():
        raise DownloadError(f"{spec.name}: {folder} does not exist; download it with: python -m ser_lightning.cli.download {spec.name}")
    count, bad = check_layout(spec, folder)
    report = VerifyReport(folder, count, spec.expected_files, bad_names=bad)
    record = read_record(folder)
    if record is not None:
        report.recorded = True
        expected = {p: (v["size"], v["sha256"]) for p, v in record["files"].items()}
    else:
        expected = {p: (s, h) for p, s, h in pinned_file_list(spec)}
    for rel, (size, digest) in sorted(expected.items()):
        path = folder / rel
        if not path.is_file():
            report.missing.append(rel)
        elif path.stat().st_size != size or (rehash and _sha256(path) != digest):
            report.changed.append(rel)
    if expected:
        known = set(expected)
        report.extra = [p.relative_to(folder).as_posix() for p in _audio_files(folder) if p.relative_to(folder).as_posix() not in known]
    return report


def corpus_status(spec: CorpusSpec, root: Path) -> str:
    """One word or phrase for ``--list``: absent, installed and verified, or present without a record."""
    folder = root / spec.folder
    if not folder.is_dir():
        return "absent"
    if read_record(folder) is None:
        return "present (not installed by this command; verify=true checks it)"
    report = verify_corpus(spec, root, rehash=False)
    return "installed, verified" if report.ok else "installed, CHANGED (run verify=true)"


# --- installation -----------------------------------------------------------------
@dataclass
class InstallResult:
    """What :func:`install_corpus` did.

    Attributes:
        folder: the corpus folder.
        action: ``installed`` | ``already-installed`` | ``verified`` | ``present-unrecorded``.
        report: the verification report (``verify=true`` or a no-op check), else ``None``.
    """

    folder: Path
    action: str
    report: VerifyReport | None = None


def _check_disk(root: Path, needed: int, spec: CorpusSpec) -> None:
    free = shutil.disk_usage(root).free
    if needed > free:
        raise DownloadError(f"{spec.name}: not enough free disk space under {root}: about {needed / 1e6:,.0f} MB needed, "
                            f"{free / 1e6:,.0f} MB free. Free some space (or use root=...) and run again.")


def _write_record(spec: CorpusSpec, folder: Path, sources: list[RemoteFile], archives: dict[str, str]) -> None:
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in _all_files(folder)}
    record = {
        "corpus": spec.name,
        "installed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checksums": spec.checksums,
        "sources": [{"path": s.path, "url": s.url, "hash": s.hash, "size": s.size, "sha256": archives.get(s.path)}
                    for s in sources if s.archive or len(sources) < 50],
        "files": files,
    }
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=1, sort_keys=True))


def _validate_tree(spec: CorpusSpec, tree: Path) -> None:
    """Count, names and the corpus reader on a finished (not yet renamed) tree."""
    from ser_lightning.data.corpora import read_corpus
    from ser_lightning.errors import CorpusNotFoundError, UnknownLabelError

    count, bad = check_layout(spec, tree)
    if bad:
        raise DownloadError(f"{spec.name}: {len(bad)} audio file names do not follow the corpus's naming "
                            f"({spec.name_pattern}), e.g. {bad[:3]}; the download is not the expected corpus")
    if count != spec.expected_files:
        raise DownloadError(f"{spec.name}: {count} audio files under {spec.reader_subdir} after extraction, "
                            f"{spec.expected_files} expected; the download is incomplete or not the pinned release")
    try:
        read_corpus(spec.name, tree / spec.reader_subdir)
    except (CorpusNotFoundError, UnknownLabelError) as err:
        raise DownloadError(f"{spec.name}: the corpus reader cannot read the extracted files: {err}") from err


def install_corpus(
    name: str,
    root: str | Path | None = None,
    *,
    accept_licence: bool = False,
    interactive: bool | None = None,
    implicit: bool = False,
    verify: bool = False,
    mirror: str | None = None,
    archive: str | Path | None = None,
    retries: int = 2,
    workers: int = 8,
    progress: bool = True,
    manifest: str | Path | None = None,
    out: Printer = print,
) -> InstallResult:
    """Download, verify and install corpus ``name`` under the data root.

    Args:
        name: a corpus of the manifest (``ravdess``, ``tess``, ``crema_d``, ``emodb``, ``savee``,
            ``ased``, ``nemo``, ``turev``, ``urdu``, ``emovo``).
        root: data root (default: :func:`resolve_data_root`).
        accept_licence: accept non-commercial or research-only terms.
        interactive: ask for the licence on the terminal (default: when stdin is a TTY).
        implicit: called by ``make train``; only ``implicit: true`` corpora are accepted.
        verify: re-check an existing folder (sizes, SHA-256, counts, names) instead of
            installing; a missing folder is an error.
        mirror: base URL replacing the official one (default: $SER_DATA_MIRROR/<corpus>/).
        archive: for ``manual`` corpora, the archive the user downloaded.
        retries: extra attempts per file after a network error or a wrong checksum.
        workers: parallel transfers for per-file corpora.
        progress: show progress bars on stderr.
        manifest: another manifest file (tests).
        out: where messages go.

    Returns:
        What was done (:class:`InstallResult`).

    Raises:
        DownloadError: unknown corpus, refused licence, network/HTTP/checksum/disk
            error, unsafe or wrong archive; nothing is left in the corpus folder.
        LicenceNotAccepted: the terms were not accepted.
    """
    specs = load_manifest(manifest)
    if name not in specs:
        raise DownloadError(f"unknown corpus '{name}'; known: {', '.join(sorted(specs))} (python -m ser_lightning.cli.download --list)")
    spec = specs[name]
    root = resolve_data_root(root)
    folder = root / spec.folder

    if verify:
        report = verify_corpus(spec, root)
        return InstallResult(folder, "verified", report)
    if folder.exists():
        if read_record(folder) is None:
            out(f"{name}: {folder} already exists but was not installed by this command; leaving it as it is "
                f"(verify=true checks it against the manifest; move it away to download a fresh copy).")
            return InstallResult(folder, "present-unrecorded")
        report = verify_corpus(spec, root, rehash=False)
        if report.ok:
            out(f"{name}: already installed in {folder} ({report.audio_files} audio files, sizes match the record); "
                "nothing to do (verify=true re-checks the SHA-256 of every file).")
            return InstallResult(folder, "already-installed", report)
        raise DownloadError(f"{name}: {folder} differs from its installation record ({'; '.join(report.lines()[1:])}); "
                            f"run verify=true for the list, or delete the folder and download again")

    out(licence_text(spec))
    if interactive is None:
        interactive = sys.stdin.isatty()
    require_licence(spec, accept_licence, interactive, implicit, out)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / STAGING_DIR / spec.name
    staging.mkdir(parents=True, exist_ok=True)
    partial = root / f".{spec.folder}.partial"
    scratch = root / f".{spec.folder}.unpack"  # whole archives whose subdir alone is kept
    remove_tree(partial)
    remove_tree(scratch)
    try:
        if spec.method == "manual":
            files = [_manual_archive(spec, root, staging, archive)]
        else:
            files = remote_files(spec, staging, mirror, retries)
            fetched = sum((staging / f.path).stat().st_size for f in files if (staging / f.path).exists())
            size = sum(f.size or 0 for f in files) or (spec.download_bytes or 0)
            unpack = 3 * size if spec.method == "archive" else 0  # WAV deflates to about 1/3
            _check_disk(root, max(size - fetched, 0) + unpack, spec)
            source = "mirror " + _mirror_base(spec, mirror) if _mirror_base(spec, mirror) else "the official source"
            out(f"{name}: downloading {len(files)} file(s), {size / 1e6:,.0f} MB, from {source} into {staging}")
            _fetch_all(files, staging, retries=retries, workers=workers, progress=progress, what=name)
        archive_hashes = {}
        if spec.method in ("archive", "manual"):
            for f in files:
                src = Path(f.url) if spec.method == "manual" else staging / f.path
                archive_hashes[f.path] = _sha256(src)
                bound = f.max_extracted_bytes or 10 * src.stat().st_size
                if f.subdir:
                    _extract_subdir(spec, src, scratch, f.subdir, partial, bound)
                else:
                    safe_extract(src, partial, bound)
            tree = partial
        else:
            tree = staging
            for f in files:
                if f.archive:
                    safe_extract(staging / f.path, tree, f.max_extracted_bytes or 10 * (staging / f.path).stat().st_size)
                    (staging / f.path).unlink()
        _validate_tree(spec, tree)
        _write_record(spec, tree, files, archive_hashes)
        os.replace(tree, folder)
    except (UnsafeArchiveError, ValueError, DownloadError) as err:
        remove_tree(partial)
        remove_tree(scratch)
        if spec.method == "archive":
            # an archive without a pinned hash that fails here is not the corpus: fetch it anew next time
            for f in files if "files" in locals() else []:
                if f.hash is None:
                    remove_tree(staging / f.path)
        if isinstance(err, DownloadError):
            raise
        raise DownloadError(f"{name}: {err}") from err
    except OSError as err:
        remove_tree(partial)
        remove_tree(scratch)
        raise DownloadError(_explain(err, f"{name}: installation")) from err
    except BaseException:
        remove_tree(partial)
        remove_tree(scratch)
        raise
    remove_tree(staging)
    _remove_if_empty(root / STAGING_DIR)
    out(f"{name}: installed in {folder} ({spec.expected_files} audio files verified; checksums: {spec.checksums}).")
    out(f"{name}: train on it with: python train.py data={name}   Please cite: {spec.citation}")
    return InstallResult(folder, "installed")


def _extract_subdir(spec: CorpusSpec, archive: Path, scratch: Path, subdir: str, dest: Path, bound: int) -> None:
    """Extract ``archive`` (safely) into ``scratch`` and move the contents of its folder
    ``subdir`` into ``dest``; the rest of the archive is deleted.

    Raises:
        DownloadError: the archive has no folder ``subdir`` (not the pinned release).
    """
    remove_tree(scratch)
    safe_extract(archive, scratch, bound)
    inner = scratch / _checked_relpath(subdir, f"{spec.name} manifest")
    if not inner.is_dir():
        found = sorted(p.name for p in scratch.iterdir())[:5]
        raise DownloadError(f"{spec.name}: the archive {archive.name} has no folder '{subdir}' (its top level: {found}); "
                            "it is not the pinned release")
    dest.mkdir(parents=True, exist_ok=True)
    for child in sorted(inner.iterdir()):
        os.replace(child, dest / child.name)
    remove_tree(scratch)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _manual_archive(spec: CorpusSpec, root: Path, staging: Path, archive: str | Path | None) -> RemoteFile:
    """The archive of a registration-only corpus: ``archive=...``, else a known name in the staging folder."""
    manual = spec.manual or {}
    candidates = [Path(archive).expanduser()] if archive else [staging / n for n in manual.get("archive_names", [])]
    for path in candidates:
        if path.is_file():
            return RemoteFile(path.name, str(path.resolve()), None, path.stat().st_size, True, None)
    where = f"{candidates[0]} does not exist. " if archive else f"no archive found in {staging}. "
    raise DownloadError(f"{spec.name}: {where}{' '.join(manual.get('instructions', '').split())}")


def list_corpora(root: str | Path | None = None, manifest: str | Path | None = None) -> list[dict[str, str]]:
    """One row per corpus for ``--list``: name, method, size, licence, status, source."""
    root = resolve_data_root(root)
    rows = []
    for spec in load_manifest(manifest).values():
        size = f"{spec.size_bytes / 1e6:,.0f} MB" if spec.size_bytes else (
            f"~{spec.approx_bytes / 1e6:,.0f} MB" if spec.approx_bytes else "unknown")
        rows.append({
            "corpus": spec.name,
            "method": spec.method,
            "size": size,
            "files": str(spec.expected_files),
            "licence": re.split(r"[(;,]", spec.licence)[0].strip() + (" [accept]" if spec.accept_licence else ""),
            "status": corpus_status(spec, root),
            "source": spec.source,
        })
    return rows
