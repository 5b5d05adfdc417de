"""What every command runner shares: the checkpoint list of ``ckpt_path=`` and the
rule that a :class:`~ser_lightning.errors.SERUserError` (found directly or as the cause
of a failed Hydra instantiation) ends a command with one message and exit code 2, while
any other exception keeps its traceback."""

from __future__ import annotations

import logging

from ser_lightning.errors import SERUserError

log = logging.getLogger("ser_lightning")


def user_error(exc: BaseException) -> SERUserError | None:
    """The user error behind ``exc``: ``exc`` itself when it is a :class:`SERUserError`,
    or the ``SERUserError`` that made ``hydra.utils.instantiate`` fail (Hydra wraps an
    exception raised in a ``_target_``'s constructor in an ``InstantiationException``,
    keeping it as ``__cause__``); else ``None`` (a bug: show the traceback)."""
    if isinstance(exc, SERUserError):
        return exc
    if type(exc).__name__ == "InstantiationException" and isinstance(exc.__cause__, SERUserError):
        return exc.__cause__
    return None


def checkpoint_paths(ckpt_path) -> str | list[str]:
    """``ckpt_path`` from the command line: one path, or a list of them
    (``ckpt_path=[a.ckpt,b.ckpt]``, an ensemble) as a plain list of strings."""
    from omegaconf import OmegaConf

    if OmegaConf.is_list(ckpt_path) or isinstance(ckpt_path, (list, tuple)):
        return [str(p) for p in ckpt_path]
    return str(ckpt_path)

