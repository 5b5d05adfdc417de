"""One taxonomy for every error a user can cause and fix (config, data, audio,
checkpoint, input): each derives from :class:`SERUserError`.

The command runners (:mod:`ser_lightning.cli`) print a :class:`SERUserError` as one
message and exit with code 2; every other exception is a bug and keeps its traceback.
Each class also keeps the built-in base it had before the taxonomy (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so ``except ValueError`` in calling code still
catches it. A shared leaf: it imports nothing, every folder may import it.
"""

from __future__ import annotations


class SERUserError(Exception):
    """Base of the errors a user can fix; the message says what is wrong and how to fix it."""


# --- configuration and options ----------------------------------------------------------


class ConfigError(SERUserError, ValueError):
    """A config value or command-line option is invalid (unknown name, out of range,
    contradicting another option); the message names the key (``model.optimizer.lr``,
    ``speaker_stats=``) and the allowed values. One ConfigError from
    :func:`~ser_lightning.training.config_validation.validate_config` lists every problem."""


class InputNotFoundError(SERUserError, FileNotFoundError):
    """``input=`` (a file, a folder or a glob) matches no audio file."""


# --- data --------------------------------------------------------------------------------


class CorpusNotFoundError(SERUserError, FileNotFoundError):
    """The corpus root does not exist or holds no audio files of the expected layout."""


class UnknownLabelError(SERUserError, ValueError):
    """A file name or manifest row carries an emotion code the reader does not know."""


class DataQualityError(SERUserError, RuntimeError):
    """Too many files of a corpus cannot be decoded or are too short (``data.max_bad_fraction``)."""


class SplitMismatchError(SERUserError, ValueError):
    """The split recorded with a run cannot be rebuilt from the data and settings given now
    (files missing or changed); the message lists the differences."""


class SpeakerGroupingError(SERUserError, ValueError):
    """``speaker_stats=folder`` on folders that are not speakers (their names are emotions)."""


class UnmappableLabelError(SERUserError, ValueError):
    """``unknown_labels=error`` and the target data has labels the model does not know."""


class DownloadError(SERUserError, RuntimeError):
    """A corpus cannot be downloaded, verified or laid out (network, checksum, licence, disk)."""


class UnsafeArchiveError(SERUserError, ValueError):
    """An archive member would be written outside the target folder, or is a link or device."""


# --- audio -------------------------------------------------------------------------------


class AudioDecodeError(SERUserError, ValueError):
    """A file or array cannot be used as audio; the message says which and why."""


class VADUnavailableError(SERUserError, ValueError):
    """The chosen VAD backend's package is not installed (the message says which)."""


class SourceError(SERUserError, RuntimeError):
    """The live audio source cannot be opened or stopped delivering (the message says why)."""


# --- models ------------------------------------------------------------------------------


class CheckpointError(SERUserError, ValueError):
    """The file is not a ser-lightning checkpoint, or is corrupted."""


class EncoderWeightsError(SERUserError, FileNotFoundError):
    """A pretrained speech encoder's weight file is missing, unreadable, of another
    architecture, or not the file a checkpoint was trained with (the message names the
    file, where it comes from, its size and the command that fetches it)."""


class EnsembleError(SERUserError, ValueError):
    """The runs cannot form an ensemble: a run directory lacks its config or best
    checkpoint, or the members disagree on the classes or on the utterances of a part."""


class ExportError(RuntimeError):
    """The export failed, or the exported model disagrees with PyTorch. Not a user error:
    export.py reports it with exit code 1."""
