"""What every command runner shares: the checkpoint list of ``ckpt_path=`` and the
errors reported to the user as one message."""

from __future__ import annotations

import logging

from ser_lightning.errors import CorpusNotFoundError, DataQualityError, UnknownLabelError

log = logging.getLogger("ser_lightning")


def checkpoint_paths(ckpt_path) -> str | list[str]:
    """``ckpt_path`` from the command line: one path, or a list of them
    (``ckpt_path=[a.ckpt,b.ckpt]``, an ensemble) as a plain list of strings."""
    from omegaconf import OmegaConf

    if OmegaConf.is_list(ckpt_path) or isinstance(ckpt_path, (list, tuple)):
        return [str(p) for p in ckpt_path]
    return str(ckpt_path)


#: Errors caused by the user's data or configuration, reported without a traceback.
USER_ERRORS = (CorpusNotFoundError, UnknownLabelError, DataQualityError, ValueError, FileNotFoundError)
