"""Every error of ser-lightning that a user can cause and fix."""

from __future__ import annotations


class CheckpointError(ValueError):
    """The file is not a ser-lightning checkpoint, or is corrupted."""


class SpeakerGroupingError(ValueError):
    """``speaker_stats=folder`` on folders that are not speakers (their names are emotions)."""


class EnsembleError(ValueError):
    """The runs cannot form an ensemble: a run directory lacks its config or best
    checkpoint, or the members disagree on the classes or on the utterances of a part."""


class UnmappableLabelError(ValueError):
    """``unknown_labels=error`` and the target data has labels the model does not know."""


class ConfigError(ValueError):
    """One or more config values are invalid; the message lists every problem, each
    with its key (``model.optimizer.lr``) and the allowed values."""


class VADUnavailableError(ValueError):
    """The chosen VAD backend's package is not installed (the message says which)."""


class CorpusNotFoundError(FileNotFoundError):
    """The corpus root does not exist or holds no audio files of the expected layout."""


class UnknownLabelError(ValueError):
    """A file name or manifest row carries an emotion code the reader does not know."""


class AudioDecodeError(ValueError):
    """A file or array cannot be used as audio; the message says which and why."""


class DataQualityError(RuntimeError):
    """More files than allowed could not be decoded or were too short."""


class SplitMismatchError(ValueError):
    """A recorded split cannot be used as asked: its files are missing, its rows are not
    the ones its fingerprint (or the checkpoint's) describes, or the data settings
    differ. The message names what differs."""


class UnsafeArchiveError(ValueError):
    """An archive member is unsafe to extract (path, link type or size); the message names it."""


class DownloadError(RuntimeError):
    """A corpus could not be downloaded, verified or installed; the message says why and what to do."""


class ExportError(RuntimeError):
    """The export failed, or the exported model disagrees with the PyTorch model."""


class SourceError(RuntimeError):
    """The audio source cannot be opened or stopped delivering (the message says why)."""
