"""Uploads of ``POST /predict``: a multipart body, or a raw audio body, streamed into a
private temporary folder (mode 0700, removed when the request ends, whatever happens),
with its limits checked while it arrives and each file's header checked before any
scoring.

A multipart body is parsed with ``python-multipart``'s streaming parser (the parser
Starlette itself uses); a raw body (``Content-Type: audio/*`` or
``application/octet-stream``) is one file written as it arrives. Either way a body larger
than the limit is refused after ``max_bytes`` bytes, chunked or not, and no part of it is
ever written outside the private folder.

Where the folders live (:func:`~ser_lightning.serving.limits.upload_root`): a RAM-backed
file system (``/dev/shm``, tmpfs) when there is one with room, else the system's temporary
folder. Measured on the project's 2-core machine (docs/PERFORMANCE.md, serve.py section):
creating the folder, writing a 3-s WAV and removing both took 3.65 ms of wall time on the
ext4 ``/tmp`` (the event loop waits on it) and 0.29 ms on ``/dev/shm``
(``python -m bench.serve_load --folders``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ser_lightning.serving.limits import RequestRejected

#: Largest text (non-file) field, bytes.
MAX_FIELD_BYTES = 4096


@dataclass
class Upload:
    """One uploaded file: ``name`` as the client sent it (for the answer only, never used
    as a path) and ``path`` in the private folder."""

    name: str
    path: Path
    size: int = 0


class UploadFolder:
    """A private temporary folder (``tempfile.mkdtemp``: mode 0700) under ``root``
    (``None``: the system's temporary folder), removed on exit, with or without an
    exception; use as ``with UploadFolder(root) as folder``.

    Raises:
        RequestRejected: 503 when the folder cannot be made (no space left, ``root`` gone).
    """

    def __init__(self, root: Path | None = None) -> None:
        try:
            self.path = Path(tempfile.mkdtemp(prefix="ser-serve-", dir=root))
        except OSError as exc:
            raise RequestRejected(503, f"the upload could not be stored ({exc.strerror or type(exc).__name__}): "
                                       f"try again later") from None

    def __enter__(self) -> "UploadFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _safe_suffix(name: str) -> str:
    """The file name's extension when it is a plain one (``.wav``, ``.flac``), else ``""``."""
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


async def receive_files(content_type: str | None, body: AsyncIterator[bytes], folder: Path, max_bytes: int,
                        max_files: int) -> tuple[list[Upload], dict[str, str]]:
    """Stream a ``multipart/form-data`` body into ``folder``.

    Every part with a file name is a file (written as ``upload-<i><ext>``); other parts
    are text fields (at most :data:`MAX_FIELD_BYTES` each).

    Returns:
        ``(files, fields)``.

    Raises:
        RequestRejected: 415 (not ``multipart/form-data``), 413 (more than ``max_bytes``
            bytes or ``max_files`` files), 422 (a malformed body, or no file in it), 503
            (a part could not be written: no space left).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise RequestRejected(415, "send the audio as multipart/form-data (curl -F file=@clip.wav ...) or as the raw "
                                   "body with Content-Type audio/* or application/octet-stream (curl --data-binary "
                                   "@clip.wav -H 'Content-Type: audio/wav' '.../predict?filename=clip.wav')")
    files: list[Upload] = []
    fields: dict[str, str] = {}
    state: dict = {"headers": {}, "field": b"", "value": b"", "fh": None, "text": None, "name": None, "error": None}

    def on_part_begin() -> None:
        state["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        if filename is not None:
            if len(files) >= max_files:
                state["error"] = RequestRejected(413, f"more than {max_files} files in one request: send them in several requests")
                return
            upload = Upload(filename.decode("utf-8", "replace") or f"file{len(files)}", folder / "x")
            upload.path = folder / f"upload-{len(files)}{_safe_suffix(upload.name)}"
            files.append(upload)
            state["fh"] = upload.path.open("wb")
        else:
            state["name"], state["text"] = name, bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["fh"] is not None:
            state["fh"].write(data[start:end])
            files[-1].size += end - start
        elif state["text"] is not None:
            state["text"] += data[start:end]
            if len(state["text"]) > MAX_FIELD_BYTES:
                state["error"] = RequestRejected(413, f"form field {state['name']!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if state["fh"] is not None:
            state["fh"].close()
            state["fh"] = None
        elif state["text"] is not None:
            fields[state["name"]] = state["text"].decode("utf-8", "replace")
            state["text"] = None

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise RequestRejected(413, f"the request is larger than the limit of {max_bytes / 2**20:g} MiB")
            try:
                parser.write(chunk)
            except OSError as exc:  # writing a part into the folder failed
                raise RequestRejected(503, f"the upload could not be stored ({exc.strerror or type(exc).__name__}): "
                                           f"try again later") from None
            except Exception as exc:  # noqa: BLE001 - python-multipart's errors: a malformed body
                raise RequestRejected(422, f"malformed multipart body ({type(exc).__name__})") from None
            if state["error"] is not None:
                raise state["error"]
        try:
            parser.finalize()
        except Exception:  # noqa: BLE001
            raise RequestRejected(422, "malformed multipart body (truncated)") from None
    finally:
        if state["fh"] is not None:
            state["fh"].close()
    if not files:
        raise RequestRejected(422, "no file in the request: send one or more parts with a file name (curl -F file=@clip.wav)")
    return files, fields


#: Content types taken as one raw audio file in the body (besides multipart/form-data).
RAW_TYPES = ("audio/", "application/octet-stream")


def is_raw_audio(content_type: str | None) -> bool:
    """The body is one raw audio file (``audio/*`` or ``application/octet-stream``)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind.startswith(RAW_TYPES[0]) or kind == RAW_TYPES[1]


async def receive_raw(body: AsyncIterator[bytes], folder: Path, name: str, max_bytes: int) -> Upload:
    """Stream a raw body (the bytes of one audio file) into ``folder``, as
    ``upload-0<ext>`` (the extension of ``name`` when it is a plain one).

    Args:
        body: the request body's chunks.
        name: the file name the client gave (``?filename=``), for the answer only.
        max_bytes: the request size limit.

    Raises:
        RequestRejected: 413 (more than ``max_bytes`` bytes), 503 (the upload could not
            be written: no space left).
    """
    upload = Upload(name, folder / f"upload-0{_safe_suffix(name)}")
    try:
        with upload.path.open("wb") as fh:
            async for chunk in body:
                upload.size += len(chunk)
                if upload.size > max_bytes:
                    raise RequestRejected(413, f"the request is larger than the limit of {max_bytes / 2**20:g} MiB")
                fh.write(chunk)
    except OSError as exc:
        raise RequestRejected(503, f"the upload could not be stored ({exc.strerror or type(exc).__name__}): try again later") from None
    return upload


def check_audio(upload: Upload, max_seconds: float) -> float:
    """Read ``upload``'s header (no samples decoded): its duration in seconds.

    Raises:
        RequestRejected: 415 (not a format libsndfile reads), 422 (audio that cannot be
            used: empty, a broken header, no samples), 413 (longer than ``max_seconds``).
    """
    from ser_lightning.data.streaming import audio_info
    from ser_lightning.errors import AudioDecodeError

    try:
        info = audio_info(upload.path)
    except AudioDecodeError as exc:
        message = str(exc).replace(str(upload.path), upload.name)
        status = 415 if "not an audio file" in message else 422
        raise RequestRejected(status, message) from None
    if info.frames <= 0:
        raise RequestRejected(422, f"{upload.name}: no audio samples (zero-length audio)")
    if info.seconds > max_seconds:
        raise RequestRejected(413, f"{upload.name}: {info.seconds:.1f} s of audio, longer than the limit of {max_seconds:g} s")
    return info.seconds
