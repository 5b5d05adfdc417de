"""What a server accepts: bind address and API key, request and audio limits, the
queue, timeouts, where uploads are kept (:class:`ServeSettings`, :func:`upload_root`),
and the error a rejected request carries (:class:`RequestRejected`)."""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ser_lightning.errors import ConfigError

#: Header carrying the API key (``X-API-Key: <key>``); a WebSocket client without headers
#: (a browser) sends ``{"type": "start", "key": ...}`` as its first message instead.
KEY_HEADER = "X-API-Key"


class RequestRejected(Exception):
    """A request the server refuses: ``status`` (an HTTP code: 401, 413, 415, 422, 503,
    504) and a ``message`` for the client. Never carries a traceback."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = int(status), message


@dataclass
class ServeSettings:
    """Limits and access of one server.

    Attributes:
        host: address to bind; loopback (``127.0.0.1``, ``::1``, ``localhost``) by default.
        port: TCP port (0: any free port).
        api_key: the key every ``/predict`` and ``/stream`` client must send; ``None``:
            none asked (allowed on loopback, or anywhere with ``insecure``).
        insecure: bind a non-loopback ``host`` without a key (anyone reaching it may use it).
        max_upload_mb: largest request body in MiB (413 beyond it).
        max_audio_seconds: longest upload, seconds of audio (413 beyond it).
        max_files: files per ``POST /predict`` request (413 beyond it).
        timeout_seconds: a request waiting (queued plus scoring) longer than this gets 504.
        max_queue: requests waiting for the model at once; one more gets 503.
        max_batch_files: files scored in one :meth:`Predictor.predict` call, across
            waiting requests (1: one request at a time, no batching).
        batch_wait_ms: how long the worker waits for more requests before scoring a
            batch that is not full (0: it takes what is waiting, no added latency); only
            while requests come together (the previous batch held several), so a lone
            client never waits.
        max_streams: WebSocket streams open at once (one more is closed with code 1013).
        max_stream_seconds: longest stream, seconds of audio (closed with code 1009 beyond).
        max_chunk_bytes: largest WebSocket message (closed with code 1009 beyond).
        idle_seconds: a stream with no message for this long is closed (code 1001).
        upload_dir: where the private upload folders are made: ``None`` / ``"auto"``
            (``/dev/shm`` when it is a RAM-backed folder with room, else the system's
            temporary folder; :func:`upload_root`), or a folder.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    insecure: bool = False
    max_upload_mb: float = 20.0
    max_audio_seconds: float = 600.0
    max_files: int = 16
    timeout_seconds: float = 60.0
    max_queue: int = 64
    max_batch_files: int = 32
    batch_wait_ms: float = 0.0
    max_streams: int = 8
    max_stream_seconds: float = 3600.0
    max_chunk_bytes: int = 1 << 20
    idle_seconds: float = 60.0
    upload_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_audio_seconds", "timeout_seconds", "max_stream_seconds", "idle_seconds"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name}={getattr(self, name)}: use a positive number")
        for name in ("max_files", "max_queue", "max_batch_files", "max_streams", "max_chunk_bytes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: use a whole number >= 1")
        if float(self.batch_wait_ms) < 0:
            raise ConfigError(f"batch_wait_ms={self.batch_wait_ms}: use 0 or a positive number of milliseconds")
        if not 0 <= int(self.port) < 65536:
            raise ConfigError(f"port={self.port}: use 0..65535")
        if self.api_key is not None and not str(self.api_key).strip():
            self.api_key = None
        check_access(self.host, self.api_key, self.insecure)
        upload_root(self.upload_dir)  # a bad folder fails at start-up

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def is_loopback(host: str) -> bool:
    """``host`` reaches only this machine (``localhost``, ``127.x.x.x``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(host: str, api_key: str | None, insecure: bool) -> None:
    """The access rule: loopback needs nothing; any other address needs an API key or
    an explicit ``insecure=true``.

    Raises:
        ConfigError: a non-loopback ``host`` with neither.
    """
    if not is_loopback(host) and not api_key and not insecure:
        raise ConfigError(f"host={host} is reachable from other machines: set an API key (api_key=<key> or the "
                          f"SER_API_KEY environment variable; clients send it in the {KEY_HEADER} header) or accept "
                          f"an open server with insecure=true")


def key_matches(expected: str | None, given: str | None) -> bool:
    """``given`` is the key (constant-time comparison); always true when none is set."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(str(given).encode(), str(expected).encode())


#: A RAM-backed folder (Linux tmpfs) that :func:`upload_root` prefers, and the free space it
#: must have to be chosen (bytes): a container's small ``/dev/shm`` (Docker's default is
#: 64 MiB) is passed over for the disk.
SHM = Path("/dev/shm")
SHM_MIN_FREE = 1 << 30


def upload_root(setting: str | None = None) -> Path | None:
    """Where the private upload folders are created.

    Args:
        setting: a folder (used as it is), or ``None`` / ``"auto"``: :data:`SHM` when it
            is a writable folder with at least :data:`SHM_MIN_FREE` bytes free, else
            ``None`` (the system's temporary folder, ``tempfile.gettempdir()``).

    Raises:
        ConfigError: a given folder that does not exist or is not writable.
    """
    if setting not in (None, "", "auto"):
        root = Path(str(setting)).expanduser()
        if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
            raise ConfigError(f"upload_dir={setting}: not a writable folder")
        return root
    try:
        if SHM.is_dir() and os.access(SHM, os.W_OK | os.X_OK):
            stat = os.statvfs(SHM)
            if stat.f_bavail * stat.f_frsize >= SHM_MIN_FREE:
                return SHM
    except OSError:
        pass
    return None
