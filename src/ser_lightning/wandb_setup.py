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
