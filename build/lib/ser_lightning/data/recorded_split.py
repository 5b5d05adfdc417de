"""A run's split as it was recorded: fingerprints, the data settings, reading it back.

A trained model is only comparable to the figure it reported on the files it was tested
on, so anything that needs a run's split reads the run's ``splits/{train,val,test}.csv``
back (:func:`read_recorded_split`) instead of deriving it again from a config, where a
different ``seed``, ``split``, ``reader_args`` or one newly unreadable file silently
gives another "test" set. Two fingerprints let a checkpoint check what it is given:

- :func:`split_fingerprint`: a hash of the sorted ``(part, label, path)`` rows, with each
  path relative to the corpus root, so it does not depend on where the data lies.
- :func:`data_fingerprint`: the data settings that define what a model was trained on,
  as plain values, with a hash; :func:`describe_mismatch` names each differing setting.

``SERDataModule.write_artifacts`` writes ``splits/split.json`` beside the CSVs (the root
the paths are relative to, the fingerprint, the protocol, the data settings); runs made
before it have only the CSVs, with absolute paths, and are read too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from ser_lightning.data.corpora import Utterance, load_manifest_rows
from ser_lightning.data.splits import Split
from ser_lightning.errors import SplitMismatchError

PARTS = ("train", "val", "test")
#: Name of the description written beside the split CSVs.
SPLIT_META = "split.json"
#: Version of ``split.json``'s layout.
SPLIT_META_VERSION = 1
#: Hex digits kept of the SHA-256 fingerprints (64 bits: collisions are not a concern
#: for comparing a handful of runs, and the message stays readable).
FINGERPRINT_CHARS = 16

#: Data settings that decide which files a model was trained, validated and tested on,
#: and how they were cut (``conf/data``). ``root`` (where the data lies) is not one of
#: them; the files themselves are covered by :func:`split_fingerprint`.
DATA_SETTING_KEYS = (
    "corpus", "split", "seed", "fold", "num_folds", "val_fraction", "test_fraction", "gender",
    "test_speakers", "train_speakers", "reader_args", "extra_labels", "sample_rate", "clip_seconds",
    "min_seconds", "subset_fraction", "test_corpus", "val_speakers",
)


def corpus_base(root: str | Path) -> Path:
    """The folder split paths are made relative to: ``root`` itself (a corpus folder, or
    the data root for ``data=combined``), or the folder of a manifest CSV
    (``data=manifest``, whose ``root`` is the CSV file)."""
    root = Path(root).expanduser()
    return root.parent if root.suffix.lower() == ".csv" or root.is_file() else root


def relative_path(path: str | Path, base: str | Path) -> str:
    """``path`` relative to ``base`` in POSIX form (``ALL/DC_a01.flac``), so that it is the
    same wherever the data lies; a path outside ``base`` (a manifest row pointing
    elsewhere) stays absolute."""
    path, base = Path(os.path.normpath(path)), Path(os.path.normpath(base))
    for p, b in ((path, base), (path.resolve(), base.resolve())):
        try:
            return p.relative_to(b).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def split_rows(split: Split, root: str | Path) -> list[tuple[str, str, str]]:
    """The sorted ``(part, label, relative path)`` rows of ``split`` (see :func:`relative_path`)."""
    base = corpus_base(root)
    return sorted((part, r.label, relative_path(r.path, base)) for part in PARTS for r in getattr(split, part))


def split_fingerprint(split: Split, root: str | Path) -> str:
    """SHA-256 (first :data:`FINGERPRINT_CHARS` hex digits) of the sorted
    ``part, label, path`` rows of ``split``, paths relative to :func:`corpus_base` of
    ``root``.

    Independent of the rows' order and of where the data lies (the same corpus copied
    elsewhere gives the same fingerprint); changed by any added, removed or moved file
    and any changed label.
    """
    h = hashlib.sha256()
    for part, label, path in split_rows(split, root):
        h.update(f"{part}\t{label}\t{path}\n".encode())
    return h.hexdigest()[:FINGERPRINT_CHARS]


def _plain(value: Any) -> Any:
    """OmegaConf containers, tuples and NumPy scalars -> JSON-ready plain values, dict
    keys sorted (so equal settings serialise equally)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(value, Mapping):
        return {str(k): _plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy / torch scalar
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    return value


#: ``SERDataModule``'s defaults of the data settings, for settings a config leaves out.
#: Written out here so that reading a recorded split (eval.py) needs no Lightning import;
#: tests/test_recorded_split.py checks they equal the DataModule's signature.
DATA_SETTING_DEFAULTS: dict[str, Any] = {
    "split": "auto", "seed": 0, "fold": 0, "num_folds": 5, "val_fraction": 0.15, "test_fraction": 0.15, "gender": None,
    "test_speakers": None, "train_speakers": None, "reader_args": None, "extra_labels": (), "sample_rate": 16000,
    "clip_seconds": 3.0, "min_seconds": 0.1, "subset_fraction": 1.0, "test_corpus": None, "val_speakers": None,
}


def normalize_data_settings(data_cfg: Mapping) -> dict[str, Any]:
    """The :data:`DATA_SETTING_KEYS` of a ``conf/data`` mapping (or of a recorded
    ``settings`` dict) as plain values: missing keys take ``SERDataModule``'s defaults;
    fractions and durations are floats, fold counts and seeds ints; speaker and label
    lists are sorted (their order does not change a split); ``sampler="none"`` style
    spellings are left as they are."""
    if "settings" in data_cfg and "hash" in data_cfg:  # already a data_fingerprint()
        data_cfg = data_cfg["settings"]
    out = {**DATA_SETTING_DEFAULTS, **{k: data_cfg[k] for k in DATA_SETTING_KEYS if k in data_cfg}}
    out = {k: _plain(out.get(k)) for k in DATA_SETTING_KEYS}
    for k in ("val_fraction", "test_fraction", "clip_seconds", "min_seconds", "subset_fraction"):
        if isinstance(out[k], (int, float)) and not isinstance(out[k], bool):
            out[k] = float(out[k])
    for k in ("seed", "fold", "num_folds", "sample_rate"):
        if isinstance(out[k], float) and out[k].is_integer():
            out[k] = int(out[k])
    for k in ("test_speakers", "train_speakers", "val_speakers", "extra_labels"):
        if isinstance(out[k], list):
            out[k] = sorted(str(v) for v in out[k]) or ([] if k == "extra_labels" else None)
    out["reader_args"] = out["reader_args"] or {}
    return out


def data_fingerprint(data_cfg: Mapping) -> dict[str, Any]:
    """What a model was trained on, for its checkpoint: ``{"settings": {...}, "hash": str}``.

    Args:
        data_cfg: a resolved ``conf/data`` (a dict or an OmegaConf node), or the
            keyword arguments of ``SERDataModule``.

    Returns:
        ``settings``: :func:`normalize_data_settings` of ``data_cfg``; ``hash``: SHA-256
        (first :data:`FINGERPRINT_CHARS` hex digits) of their sorted JSON.
    """
    settings = normalize_data_settings(data_cfg)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return {"settings": settings, "hash": hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]}


def describe_mismatch(recorded: Mapping, current: Mapping) -> list[str]:
    """One line per data setting that differs, e.g. ``"data.seed: trained with 0, now 1"``.

    Args:
        recorded, current: :func:`data_fingerprint` results or ``conf/data`` mappings
            (both are normalised first, so a left-out setting equals its default).

    Returns:
        An empty list when the settings agree.
    """
    a, b = normalize_data_settings(recorded), normalize_data_settings(current)
    return [f"data.{k}: trained with {a[k]!r}, now {b[k]!r}" for k in DATA_SETTING_KEYS if a[k] != b[k]]


def split_metadata(split: Split, root: str | Path, data_cfg: Mapping | None = None) -> dict[str, Any]:
    """What ``splits/split.json`` holds: the layout version, the folder the split's paths
    are relative to (absolute), the fingerprint, the protocol, the part sizes and (when
    given) :func:`data_fingerprint` of the data settings."""
    meta = {
        "version": SPLIT_META_VERSION,
        "root": str(corpus_base(root).absolute()),
        "fingerprint": split_fingerprint(split, root),
        "protocol": split.protocol,
        "sizes": {part: len(getattr(split, part)) for part in PARTS},
    }
    if data_cfg is not None:
        meta["data"] = data_fingerprint(data_cfg)
    return meta


def write_split_metadata(split: Split, root: str | Path, splits_dir: str | Path, data_cfg: Mapping | None = None) -> dict[str, Any]:
    """Write :func:`split_metadata` to ``<splits_dir>/split.json``; returns it."""
    meta = split_metadata(split, root, data_cfg)
    Path(splits_dir).mkdir(parents=True, exist_ok=True)
    (Path(splits_dir) / SPLIT_META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _remap(rows: list[Utterance], old_base: Path, new_base: Path) -> list[Utterance]:
    out = []
    for r in rows:
        rel = relative_path(r.path, old_base)
        path = r.path if Path(rel).is_absolute() else str(new_base / rel)
        out.append(Utterance(path, r.label, r.speaker, r.corpus, r.gender, r.text))
    return out


def _infer_base(paths: list[str], new_base: Path) -> Path:
    """For a run without ``split.json`` (absolute paths only): the deepest ancestor of the
    recorded paths whose place ``new_base`` takes, i.e. under which the first, middle and
    last recorded files exist when moved to ``new_base``.

    Raises:
        SplitMismatchError: no ancestor fits.
    """
    common = Path(os.path.commonpath(paths)) if len(paths) > 1 else Path(paths[0]).parent
    probes = [paths[0], paths[len(paths) // 2], paths[-1]]
    for ancestor in (common, *common.parents):
        if all((new_base / Path(p).relative_to(ancestor)).is_file() for p in probes):
            return ancestor
    raise SplitMismatchError(
        f"the recorded split's files (e.g. {paths[0]}) are not found under data root {new_base}: "
        f"none of their folders ({common} or above) maps onto it")


def read_recorded_split(run_dir: str | Path, data_root: str | Path | None = None, fingerprint: str | None = None) -> Split:
    """The split a run recorded in ``<run_dir>/splits/{train,val,test}.csv``.

    Args:
        run_dir: the training run's directory (holding ``splits/``).
        data_root: where the data lies now, as ``data.root`` gives it (a corpus folder,
            the data root for ``data=combined``, a manifest CSV); the recorded paths are
            moved there. ``None``: the paths as recorded.
        fingerprint: the split fingerprint the caller expects (a checkpoint's
            ``split_fingerprint``); ``None``: the one in ``split.json``, when there is one.

    Returns:
        The :class:`Split` with the recorded rows (all columns of :class:`Utterance`),
        paths under ``data_root`` when given; ``protocol`` from ``split.json``
        (``"recorded"`` for older runs).

    Raises:
        SplitMismatchError: missing split files; recorded files that do not exist (under
            ``data_root``); rows whose fingerprint differs from ``fingerprint`` or from
            the one recorded in ``split.json`` (the message gives both and the part
            sizes); or an older run whose files cannot be found under ``data_root``.
    """
    splits_dir = Path(run_dir) / "splits"
    missing = [p for p in PARTS if not (splits_dir / f"{p}.csv").is_file()]
    if missing:
        raise SplitMismatchError(f"{splits_dir}: no recorded split ({', '.join(f'{p}.csv' for p in missing)} missing); "
                                 f"was {run_dir} written by train.py?")
    parts = {p: load_manifest_rows(splits_dir / f"{p}.csv") for p in PARTS}
    meta_file = splits_dir / SPLIT_META
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    recorded_base = Path(meta["root"]) if meta.get("root") else None
    new_base = corpus_base(data_root) if data_root is not None else None
    if new_base is not None:
        if recorded_base is None:  # older run: absolute paths, no recorded root
            paths = [r.path for p in PARTS for r in parts[p]]
            recorded_base = _infer_base(paths, new_base) if paths else new_base
        if recorded_base != new_base:
            parts = {p: _remap(rows, recorded_base, new_base) for p, rows in parts.items()}
    split = Split(parts["train"], parts["val"], parts["test"], protocol=meta.get("protocol", "recorded"))

    absent = [r.path for p in PARTS for r in parts[p] if not Path(r.path).is_file()]
    if absent:
        where = f" under {new_base}" if new_base is not None else ""
        raise SplitMismatchError(f"{len(absent)} of {sum(map(len, parts.values()))} files of the recorded split in {splits_dir} "
                                 f"do not exist{where}: {', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''}")
    expected = fingerprint or meta.get("fingerprint")
    base = new_base or recorded_base
    if expected is not None:
        if base is None:
            raise SplitMismatchError(f"{splits_dir}: cannot check the split fingerprint of a run without {SPLIT_META}: give data_root")
        got = split_fingerprint(split, base)
        if got != expected:
            sizes = ", ".join(f"{p} {len(parts[p])}" for p in PARTS)
            if meta.get("sizes"):
                sizes = f"now {sizes}; recorded {', '.join(f'{p} {n}' for p, n in meta['sizes'].items())}"
            why = ("it is not the split this checkpoint was trained on (another run's directory, or a split rewritten since)"
                   if fingerprint else f"its CSVs were changed after the run wrote them (fingerprint in {meta_file})")
            raise SplitMismatchError(f"the split in {splits_dir} ({sizes}) has fingerprint {got}, not {expected}: {why}")
    return split


def compare_splits(recorded: Split, current: Split, root: str | Path, current_root: str | Path | None = None, limit: int = 5) -> list[str]:
    """Name what differs between two splits of one corpus: files only in one of them,
    files in another part, files with another label (paths relative to each root).

    Args:
        recorded, current: the splits.
        root: the corpus root of ``recorded`` (see :func:`corpus_base`).
        current_root: that of ``current`` (default ``root``).
        limit: files named per kind of difference.

    Returns:
        One line per kind of difference (empty when the rows agree).
    """
    def index(split: Split, r: str | Path) -> dict[str, tuple[str, str]]:
        return {path: (part, label) for part, label, path in split_rows(split, r)}

    a, b = index(recorded, root), index(current, current_root if current_root is not None else root)

    def line(what: str, items: list[str]) -> list[str]:
        if not items:
            return []
        items = sorted(items)
        return [f"{len(items)} {what}: {', '.join(items[:limit])}{' ...' if len(items) > limit else ''}"]

    common = set(a) & set(b)
    return (line("files only in the recorded split", [p for p in a if p not in b])
            + line("files not in the recorded split", [p for p in b if p not in a])
            + line("files in another part", [f"{p} ({a[p][0]} -> {b[p][0]})" for p in common if a[p][0] != b[p][0]])
            + line("files with another label", [f"{p} ({a[p][1]} -> {b[p][1]})" for p in common if a[p][1] != b[p][1]]))


def find_run_dir(ckpt_path: str | Path) -> Path:
    """The run directory of a checkpoint: the nearest folder above ``ckpt_path`` holding
    ``splits/`` (``<run>/checkpoints/best.ckpt`` -> ``<run>``).

    Raises:
        SplitMismatchError: no folder above the checkpoint holds a recorded split.
    """
    for folder in Path(ckpt_path).absolute().parents:
        if (folder / "splits").is_dir():
            return folder
    raise SplitMismatchError(f"no recorded split (a splits/ folder) above checkpoint {ckpt_path}: "
                             f"was it moved out of its run directory?")
