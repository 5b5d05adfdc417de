"""What serve.py runs: a checkpoint (or an ensemble) behind an HTTP / WebSocket server
(:mod:`ser_lightning.serving`), built with ``predict.py``'s options so that the server
scores a file as ``predict.py`` does, and streams as ``stream.py`` does. Imports only the
inference path and the serving app (no Lightning, no W&B)."""

from __future__ import annotations

import os
import sys

from omegaconf import DictConfig

from ser_lightning.errors import ConfigError, SERUserError

#: predict.py options that have no meaning for a server (its input arrives by HTTP).
NOT_FOR_SERVING = ("input", "output", "timeline", "plot_dir")


def settings_from_config(cfg: DictConfig):
    """:class:`~ser_lightning.serving.limits.ServeSettings` of ``conf/serve.yaml``
    (``api_key`` falls back to ``$SER_API_KEY``).

    Raises:
        ConfigError: a bad limit, or a non-loopback ``host`` without a key or ``insecure=true``.
    """
    from ser_lightning.serving.limits import ServeSettings

    limits = dict(cfg.get("limits") or {})
    key = cfg.get("api_key") or os.environ.get("SER_API_KEY") or None
    try:
        return ServeSettings(host=str(cfg.host), port=int(cfg.port), api_key=key, insecure=bool(cfg.get("insecure")),
                             upload_dir=cfg.get("upload_dir"), **limits)
    except TypeError as exc:  # an unknown key under limits:
        raise ConfigError(f"limits: {exc}") from None


def run_serve(cfg: DictConfig) -> int:
    """Run ``serve.py`` until interrupted; returns the exit code: 0 (stopped), 2 (a usage
    error: bad option, checkpoint or address)."""
    from ser_lightning.cli.predict import enrol_from_config, predictor_from_config
    from ser_lightning.inference.abstention import check_min_confidence

    try:
        given = [k for k in NOT_FOR_SERVING if cfg.get(k)]
        if given:
            raise ConfigError(f"{', '.join(given)}= are predict.py options: a server receives its audio by POST /predict "
                              f"and WebSocket /stream")
        settings = settings_from_config(cfg)
        min_confidence = check_min_confidence(cfg.get("min_confidence"))
        predictor = enrol_from_config(predictor_from_config(cfg), cfg)
        if cfg.get("num_threads"):
            import torch

            torch.set_num_threads(int(cfg.num_threads))
        from ser_lightning.serving.app import Scorer

        scorer = Scorer(predictor, segmenter=str(cfg.get("segmenter") or "windows"), vad=cfg.get("vad"),
                        vad_settings=dict(cfg.get("vad_settings") or {}), batch_size=int(cfg.batch_size),
                        min_confidence=min_confidence)
    except SERUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ser_lightning.serving.server import serve

    try:
        serve(scorer, settings, log_level=str(cfg.get("log_level") or "info"))
    except OSError as exc:  # the address is in use or not of this machine
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
