"""An encoder's weight file: found, hashed, checked and loaded, never downloaded.

The file is a state dict of the torchaudio model (as the bundle's own ``.pth`` is): either
``model.encoder.weights=<file>`` or the torch hub cache path of the bundle
(:meth:`~ser_lightning.encoders.registry.EncoderSpec.cache_path`). It is loaded with
``torch.load(weights_only=True)`` (tensors only, no code from the file runs). Every problem
is one :class:`~ser_lightning.errors.EncoderWeightsError` naming the file, where it comes
from, its size and the download command.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ser_lightning.encoders.registry import EncoderSpec, download_command, human_bytes
from ser_lightning.errors import EncoderWeightsError

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, memoised per ``(path, size, mtime)`` in this process and
    across processes in :func:`hash_record` (a base-size file, about 380 MB, takes about 1 s
    to hash: every ``predict.py`` call would pay it). A file changed in place gets a new
    size or modification time, so a new hash."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        stored = _stored_hashes().get(str(path))
        if stored and stored[1:] == [st.st_size, st.st_mtime_ns]:
            _HASHES[key] = stored[0]
            return stored[0]
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
        _store_hash(str(path), [h.hexdigest(), st.st_size, st.st_mtime_ns])
    return _HASHES[key]


def hash_record() -> Path:
    """``$XDG_CACHE_HOME/ser-lightning/file-hashes.json`` (default ``~/.cache/...``): path ->
    ``[SHA-256, size, mtime_ns]`` of the weight files hashed on this machine."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ser-lightning" / "file-hashes.json"


def _stored_hashes() -> dict:
    try:
        return json.loads(hash_record().read_text())
    except (OSError, ValueError):
        return {}


def _store_hash(path: str, entry: list) -> None:
    """Add ``entry`` to :func:`hash_record` (atomically; a read-only home only loses the speed-up)."""
    record = hash_record()
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        table = {**_stored_hashes(), path: entry}
        tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, record)
    except OSError:
        pass


def _where(spec: EncoderSpec) -> str:
    return (f"{spec.name} ({spec.bundle} of torchaudio.pipelines) comes from {spec.url}, about "
            f"{human_bytes(spec.approx_bytes())}; fetch it with: {download_command(spec.name)}, or copy the file "
            f"to {spec.cache_path()} or pass model.encoder.weights=<file>")


def resolve_weights(spec: EncoderSpec, weights: str | Path | None = None, fallback_to_cache: bool = False) -> Path:
    """The weight file to load: ``weights`` when given, else the bundle's cache path.

    Args:
        fallback_to_cache: when ``weights`` does not exist, try the cache path (a
            checkpoint moved to another machine records a path that may not exist there;
            the file's hash is checked after).

    Raises:
        EncoderWeightsError: the file does not exist (the message says how to get it).
    """
    path = Path(weights).expanduser() if weights else spec.cache_path()
    if not path.is_file() and weights and fallback_to_cache and spec.cache_path().is_file():
        path = spec.cache_path()
    if not path.is_file():
        tried = f" (nor {spec.cache_path()})" if weights and fallback_to_cache else ""
        raise EncoderWeightsError(f"encoder weight file {path} not found{tried}. {_where(spec)}. Nothing is downloaded "
                                  f"during training or prediction.")
    return path.resolve()


def load_weights(model: torch.nn.Module, spec: EncoderSpec, path: Path, sha256: str | None = None) -> str:
    """Load the state dict in ``path`` into ``model`` (the architecture of ``spec``).

    Args:
        model: a ``torchaudio.models.Wav2Vec2Model`` built from ``spec``.
        spec: the registry entry (named in messages).
        path: the weight file (see :func:`resolve_weights`).
        sha256: when given, the file must have this SHA-256 (the file a checkpoint was
            trained with).

    Returns:
        The file's SHA-256 (hex).

    Raises:
        EncoderWeightsError: an empty, corrupt or non-state-dict file; one of another
            architecture (missing, unexpected or wrongly shaped tensors); a hash other
            than ``sha256``.
    """
    size = path.stat().st_size
    if size == 0:
        raise EncoderWeightsError(f"encoder weight file {path} is empty (0 bytes; an interrupted copy?). {_where(spec)}")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256:
        raise EncoderWeightsError(
            f"encoder weight file {path} (SHA-256 {digest[:16]}...) is not the file this model was trained with "
            f"(SHA-256 {sha256[:16]}...): its predictions would be wrong. Put the training run's file there, or "
            f"retrain. {_where(spec)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EncoderWeightsError(f"encoder weight file {path} ({human_bytes(size)}) is corrupt or not a PyTorch state "
                                  f"dict ({detail}). Delete it and fetch it again. {_where(spec)}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderWeightsError(f"encoder weight file {path} holds no state dict of tensors. {_where(spec)}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()[1:4]]
        raise EncoderWeightsError(
            f"encoder weight file {path} does not fit the {spec.name} architecture ({spec.num_layers} layers, "
            f"{spec.embed_dim} dimensions): {' '.join(lines)[:400]}. Is it another encoder's file? Set "
            f"model.encoder.name (and model.encoder.config for a custom size) to match it.") from exc
    return digest
