"""The released general model: a small head on a frozen Whisper base encoder, shipped in the
package, so that ``predict.py``, ``stream.py``, ``serve.py`` and ``eval.py`` work without a
checkpoint of one's own (``ckpt_path`` left out).

The package holds the head only (``<name>.ckpt``, a few hundred kB) and ``release.json``
(its name, classes, licence, training data, encoder and the SHA-256 of the encoder weights
it was trained on; written by ``python scripts/release.py build``). The encoder's weights
come from Whisper's own distribution: ``python -m ser_lightning.cli.download
encoder=whisper_base``. Model card: docs/MODEL_CARD.md.

The model's licence is not the code's: it learnt from corpora under CC BY-NC-SA 4.0 and
research-only terms, so it is CC BY-NC-SA 4.0, for non-commercial research use (the
model card gives the reasoning per corpus). :func:`notice` says so; the entry points print
it when the model is used.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

from ser_lightning.errors import CheckpointError

#: Where the released files live (package data).
RELEASE_DIR = Path(__file__).resolve().parent
#: The release's description, written with the checkpoint.
RECORD = RELEASE_DIR / "release.json"


@cache
def record() -> dict:
    """``release.json``: ``name``, ``file``, ``classes``, ``licence``, ``encoder`` (name, SHA-256
    of its weights), ``training`` (corpora, files, seed, command), ``reference`` (predictions
    on fixed shared clips, for rebuild checks).

    Raises:
        CheckpointError: the package holds no released model (a checkout where it was never built).
    """
    if not RECORD.is_file():
        raise CheckpointError(f"no released model in this installation ({RECORD} is missing): pass ckpt_path=<your "
                              f"checkpoint>, or build it with: python scripts/release.py build")
    return json.loads(RECORD.read_text())


def released_checkpoint() -> Path:
    """The released head's checkpoint file.

    Raises:
        CheckpointError: not in this installation.
    """
    path = RELEASE_DIR / record()["file"]
    if not path.is_file():
        raise CheckpointError(f"the released model's file {path} is missing from this installation; reinstall the package")
    return path


def notice() -> str:
    """One line naming the model, its licence and where its card is."""
    r = record()
    return (f"model: {r['name']} (released general model; classes: {', '.join(r['classes'])}). Model licence {r['licence']} "
            f"(non-commercial research use; it learnt from {', '.join(r['training']['corpora'])}); "
            f"the code is MIT. Card: docs/MODEL_CARD.md")


_printed = False


def print_notice() -> None:
    """Print :func:`notice` to stderr, once per process."""
    global _printed
    if not _printed:
        print(notice(), file=sys.stderr, flush=True)
        _printed = True


def encoder_setup_message() -> str:
    """The one set-up command the released model needs, for a machine without the encoder."""
    r = record()
    enc = r["encoder"]["name"]
    return (f"the released model {r['name']} runs on OpenAI's {enc} encoder (MIT licence, about 290 MB), which is not "
            f"installed here. Set it up once with: python -m ser_lightning.cli.download encoder={enc}   "
            f"(or: make encoder ENCODER={enc}; without the Hugging Face hub see docs/ENCODERS.md)")


__all__ = ["RELEASE_DIR", "encoder_setup_message", "notice", "print_notice", "record", "released_checkpoint"]
