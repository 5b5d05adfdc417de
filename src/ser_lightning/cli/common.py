"""What every command runner shares: the checkpoint list of ``ckpt_path=``, running a
runner as a Hydra app on the checkout's ``conf/`` from any directory (the ``ser-*``
commands), and the rule that a :class:`~ser_lightning.errors.SERUserError` (found directly or as the cause
of a failed Hydra instantiation) ends a command with one message and exit code 2, while
any other exception keeps its traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

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
    (``ckpt_path=[a.ckpt,b.ckpt]``, an ensemble) as a plain list of strings; left out
    (``null``) or ``released``: the released general model shipped with the package
    (:mod:`ser_lightning.released`; its name and licence are printed to stderr).

    Raises:
        CheckpointError: the released model is asked for but not in this installation.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_list(ckpt_path) or isinstance(ckpt_path, (list, tuple)):
        return [str(p) for p in ckpt_path]
    if is_released(ckpt_path):
        from ser_lightning.released import print_notice, released_checkpoint

        path = released_checkpoint()
        print_notice()
        return str(path)
    return str(ckpt_path)


def is_released(ckpt_path) -> bool:
    """Whether ``ckpt_path`` asks for the released model (left out, or ``released``)."""
    return ckpt_path is None or str(ckpt_path) in ("", "released")


def model_description(ckpt_path) -> dict:
    """What a user is told about the model: ``{"name", "licence", "card"}`` (the released
    model's record; a checkpoint's file name, licence and card unknown)."""
    from omegaconf import OmegaConf

    if is_released(ckpt_path):
        from ser_lightning.released import record

        r = record()
        return {"name": r["name"], "licence": r["licence"], "card": "docs/MODEL_CARD.md", "classes": r["classes"]}
    paths = list(ckpt_path) if OmegaConf.is_list(ckpt_path) or isinstance(ckpt_path, (list, tuple)) else [ckpt_path]
    return {"name": " + ".join(str(p) for p in paths), "licence": None, "card": None}


def released_setup_hint(exc: Exception, ckpt_path) -> Exception:
    """``exc`` as the released model's one set-up message when its encoder is missing, else unchanged."""
    from ser_lightning.errors import EncoderWeightsError

    if is_released(ckpt_path) and isinstance(exc, EncoderWeightsError) and "not found" in str(exc):
        from ser_lightning.released import encoder_setup_message

        return EncoderWeightsError(encoder_setup_message())
    return exc


#: The checkout holding conf/ for an editable install (src/ser_lightning/cli/console.py -> the project).
CHECKOUT = Path(__file__).resolve().parents[3]


def adapt_setting(cfg) -> str:
    """``adapt=`` of ``predict.py`` and ``stream.py``, checked before any model is loaded.

    Raises:
        ConfigError: an unknown value, or ``adapt=bn`` without ``enrol=`` (the BatchNorm
            statistics are re-estimated on the enrolment recordings only).
    """
    from ser_lightning.errors import ConfigError
    from ser_lightning.inference.adaptation import check_adapt

    adapt = check_adapt(str(cfg.get("adapt") or "none"))
    if adapt == "bn" and not cfg.get("enrol"):
        raise ConfigError("adapt=bn re-estimates the model's BatchNorm statistics on recordings of the speaker: give "
                          "enrol=<files, folder or glob> (never the files to be predicted)")
    return adapt


def enrol_speaker(predictor, spec, adapt: str = "none"):
    """``enrol=<files, folder or glob>`` of ``predict.py`` and ``stream.py``: for a
    speaker-normalised model, the speaker's statistics from those recordings
    (:meth:`~ser_lightning.inference.predictor.Predictor.enrol`); with ``adapt="bn"``, the
    model's BatchNorm statistics re-estimated on them too
    (:meth:`~ser_lightning.inference.predictor.Predictor.adapted`, after the statistics,
    which normalise the adaptation's windows). Recordings that cannot be read are named
    on stderr and left out.

    Returns:
        The predictor to score with: ``predictor`` (enrolled in place), or its adapted copy.

    Raises:
        InputNotFoundError: nothing matches ``spec``.
        ValueError: none of the recordings could be read (ConfigError).
    """
    from ser_lightning.inference.inputs import expand_inputs

    files = expand_inputs(spec)
    if predictor.speaker_normalized:
        for problem in predictor.enrol(files):
            print(f"warning: enrolment recording left out: {problem}", file=sys.stderr)
        print(f"speaker statistics from {len(files)} enrolment recording(s)", file=sys.stderr)
    if adapt == "bn":
        predictor = predictor.adapted(files)
        for problem in predictor.adaptation["left_out"]:
            print(f"warning: enrolment recording left out of adapt=bn: {problem}", file=sys.stderr)
        print(f"adapt=bn: BatchNorm statistics re-estimated on {predictor.adaptation['windows']} window(s) of "
              f"{predictor.adaptation['inputs']} enrolment recording(s)", file=sys.stderr)
    return predictor


def config_dir() -> Path:
    """``$SER_CONFIG_DIR``, else the checkout's ``conf/``.

    Raises:
        SystemExit: neither exists (a non-editable install ships no configs): the fix is
            printed and the exit code is 2, as for any user error.
    """
    candidates = [Path(os.environ["SER_CONFIG_DIR"])] if os.environ.get("SER_CONFIG_DIR") else []
    candidates.append(CHECKOUT / "conf")
    for path in candidates:
        if (path / "train.yaml").is_file():
            return path.resolve()
    print(f"error: no ser-lightning configs at {', '.join(map(str, candidates))}: install the checkout in editable mode "
          f"(pip install -e .) or set SER_CONFIG_DIR=<checkout>/conf", file=sys.stderr)
    raise SystemExit(2)


def hydra_app(config_name: str, runner: Callable):
    """Run ``runner(cfg)`` as a Hydra app on ``config_name``; returns what it returns."""
    import hydra

    conf = config_dir()
    os.environ.setdefault("PROJECT_ROOT", str(conf.parent))
    result = {}

    @hydra.main(version_base="1.3", config_path=str(conf), config_name=config_name)
    def main(cfg) -> object:
        result["value"] = runner(cfg)
        return result["value"]

    main()
    return result.get("value")


def exit_with(code: int | None) -> None:
    """End the process with ``code`` unless it is 0 or ``None``."""
    if code:
        raise SystemExit(code)
