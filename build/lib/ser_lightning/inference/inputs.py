"""What the user names as input (a file, a folder, a glob) -> audio file paths, and the
check that folders used as speaker groups are not emotion folders."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ser_lightning.data.corpora import audio_extensions
from ser_lightning.errors import InputNotFoundError, SpeakerGroupingError


def expand_inputs(spec: str | Path | Iterable[str | Path]) -> list[Path]:
    """A file, a folder (searched recursively for audio files) or a glob -> file paths;
    a list of them (``input=[a.wav,calls/]``) -> their files in order, each file once.

    Raises:
        InputNotFoundError: nothing matches (a ``FileNotFoundError``); for a list, an
            element that matches nothing, naming it.
    """
    if not isinstance(spec, (str, Path)):
        if not isinstance(spec, Iterable):
            raise InputNotFoundError(f"input={spec!r} is not a file, folder, glob or list of them")
        items = list(spec)
        if not items:
            raise InputNotFoundError("input=[] names no file")
        return list(dict.fromkeys(f for item in items for f in expand_inputs(str(item))))
    path = Path(spec).expanduser()
    if path.is_dir():
        exts = audio_extensions()
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    elif any(ch in str(spec) for ch in "*?["):
        anchor = Path(path.anchor) if path.is_absolute() else Path(".")
        files = sorted(p for p in anchor.glob(str(path.relative_to(anchor)) if path.is_absolute() else str(spec)) if p.is_file())
    else:
        files = [path]  # a missing file becomes an error entry, not an exception
    if not files:
        raise InputNotFoundError(f"no audio files match input={spec}")
    return files


def check_speaker_folders(folders) -> None:
    """Refuse folders named after an emotion as speaker groups (``speaker_stats=folder``).

    Grouping TESS's ``OAF_angry/``, ``OAF_sad/`` ... by folder would give each emotion
    its own statistics, removing what the model must see; the predictions would look
    fine and be wrong.

    Raises:
        SpeakerGroupingError: a folder name contains an emotion word (``angry``,
            ``pleasant_surprise``, ``Fear`` ...), naming the folder.
    """
    from ser_lightning.data.corpora import LABEL_ALIASES
    from ser_lightning.labels import EMOTIONS

    words = set(EMOTIONS) | set(LABEL_ALIASES)
    for folder in sorted({Path(f) for f in folders}):
        parts = set(re.split(r"[^a-z]+", folder.name.lower())) | {folder.name.lower()}
        hits = sorted(parts & words)
        if hits:
            raise SpeakerGroupingError(
                f"speaker_stats=folder groups files by folder, but folder '{folder}' is named after an emotion "
                f"({', '.join(hits)}): each emotion would be normalised by its own statistics. Give the speaker's "
                f"recordings with enrol=<files or folder>, or use speaker_stats=training")
