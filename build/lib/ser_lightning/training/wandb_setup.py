"""Weights & Biases without an account: offline when no API key is configured."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or in ``~/.netrc`` (``wandb login``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def ensure_wandb_mode() -> str:
    """Choose the W&B mode before a run starts and return it.

    An explicit ``WANDB_MODE`` is respected. Otherwise, with no credentials, the mode
    becomes ``offline`` (so a run never stops at a login prompt or a network error).
    """
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if not has_wandb_credentials():
        os.environ["WANDB_MODE"] = "offline"
        return "offline"
    return "online"


def report_offline_run(save_dir: str | Path) -> None:
    """Log where an offline run was written and the command that uploads it."""
    runs = sorted(Path(save_dir).glob("wandb/offline-run-*"))
    if runs:
        log.info("W&B ran offline; the run is in %s. Upload it later with: wandb sync %s", runs[-1], runs[-1])


# --- reading an offline run ---------------------------------------------------------
# A ``.wandb`` file is a LevelDB-style log (the format W&B documents for its
# transaction log): a 7-byte header (":W&B", magic 0xBEE1, version), then 32 KiB blocks of
# chunks, each with a 7-byte header (crc32 uint32, length uint16, type uint8: 1 full,
# 2 first, 3 middle, 4 last); chunks join into protobuf ``Record`` messages.
_BLOCK, _CHUNK_HEADER = 32768, 7


def iter_offline_records(path: str | Path):
    """Yield the ``wandb_internal_pb2.Record`` messages of a ``.wandb`` file.

    Raises:
        ValueError: the file is not a W&B transaction log.
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = 7, b""
    while pos + _CHUNK_HEADER <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK_HEADER:  # block trailer padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _CHUNK_HEADER])
        pos += _CHUNK_HEADER
        if kind == 0 and length == 0:
            pos += room - _CHUNK_HEADER
            continue
        chunk, pos = data[pos:pos + length], pos + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def wait_for_offline_run(run_dir: str | Path, timeout: float = 60.0) -> bool:
    """Wait until W&B's service has written an offline run's ``.wandb`` file to the end.

    ``wandb.finish()`` can return while the separate ``wandb-core`` process is still
    flushing the transaction log (seen under heavy CPU load), so a reader right after
    it may find only the header. The file is complete once its ``exit`` record is there.

    Returns:
        ``True`` when the exit record was found within ``timeout`` seconds, else ``False``
        (logged as a warning; the run may still complete later).
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        run_files = list(Path(run_dir).glob("*.wandb"))
        try:
            if run_files and any(r.WhichOneof("record_type") == "exit" for r in iter_offline_records(run_files[0])):
                return True
        except Exception:  # noqa: BLE001 - a file caught mid-write does not parse yet
            pass
        if time.monotonic() > deadline:
            log.warning("W&B offline run %s is not complete after %.0f s", run_dir, timeout)
            return False
        time.sleep(0.2)


def read_offline_run(run_dir: str | Path) -> dict:
    """Config, summary and history of an offline run folder (``wandb/offline-run-*``).

    Returns:
        ``{"config": {key: value}, "summary": {key: value}, "history": [{key: value}, ...]}``
        with values decoded from JSON.
    """
    import json

    run_file = next(Path(run_dir).glob("*.wandb"))
    out: dict = {"config": {}, "summary": {}, "history": [], "artifacts": []}

    def key_of(item) -> str:
        return item.key or "/".join(item.nested_key)

    for record in iter_offline_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            out["config"].update({key_of(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            out["summary"].update({key_of(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "history":
            row = {key_of(i): json.loads(i.value_json) for i in record.history.item}
            out["history"].append(row)
            out["summary"].update({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "artifact":
            a = record.artifact
            out["artifacts"].append({"name": a.name, "type": a.type, "client_id": a.client_id, "aliases": list(a.aliases),
                                     "files": {e.path: e.local_path for e in a.manifest.contents}})
    return out


def read_offline_table(run_dir: str | Path, key: str, run: dict | None = None) -> dict:
    """The last logged version of W&B table ``key`` (e.g. ``val/examples``) of an
    offline run folder.

    W&B stores a table as a run artifact: the run folder's ``files/media/table/`` copy
    shows media cells only as ``"Audio"`` / ``"Image"``, while the full table and its
    media files wait in W&B's artifact staging folder until ``wandb sync`` uploads them.
    This reads the full table through the artifact's manifest in the run file.

    Returns:
        ``{"columns": [...], "data": [[...], ...], "files": {artifact path: local
        file}}``; a media cell is a dict (``_type`` ``audio-file`` / ``image-file``)
        whose ``path`` is a key of ``files``.

    Raises:
        KeyError: the run logged no table under ``key``.
    """
    import json

    run = run or read_offline_run(run_dir)
    uri = run["summary"].get(f"{key}/artifact_path")
    if uri is None:
        raise KeyError(f"no table '{key}' in offline run {run_dir}")
    client_id, _, table_path = uri.removeprefix("wandb-client-artifact://").partition("/")
    artifact = next((a for a in run["artifacts"] if a["client_id"] == client_id), None)
    if artifact is None or table_path not in artifact["files"]:  # fall back to the run folder's copy
        table = json.loads((Path(run_dir) / "files" / run["summary"][f"{key}/path"]).read_text())
        return {**table, "files": {}}
    table = json.loads(Path(artifact["files"][table_path]).read_text())
    return {"columns": table["columns"], "data": table["data"], "files": artifact["files"]}
