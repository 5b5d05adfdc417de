"""What predict.py runs: classify files with a checkpoint (or an ensemble), print a
table, write the predictions, the timeline and the plots. Imports only the inference
path (no Lightning, no W&B).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from ser_lightning.cli.common import adapt_setting, checkpoint_paths, enrol_speaker, model_description, released_setup_hint
from ser_lightning.errors import ConfigError, SERUserError
from ser_lightning.inference.writers import _plot_paths, print_table, write_predictions, write_timeline


def predictor_from_config(cfg: DictConfig):
    """The predictor (:func:`~ser_lightning.inference.loading.load_predictor`: a CNN
    checkpoint, an SVM's ``svm.pt`` or a list of them) of ``predict.py``'s options
    (``ckpt_path``, ``device``, windows, ``silence_dbfs``, ``min_seconds``, ``speaker_stats``,
    ``scoring``, calibration, ``classes``), before any enrolment (:func:`enrol_from_config`).
    ``serve.py`` builds its predictor here too, so both score alike.

    Raises:
        SERUserError: a bad option (``adapt=``, ``enrol=`` with another ``speaker_stats``)
            or checkpoint.
    """
    from ser_lightning.inference.loading import load_predictor

    adapt_setting(cfg)
    speaker_stats = _speaker_stats(cfg)
    if cfg.get("enrol") and speaker_stats != "enrol":
        raise ConfigError(f"enrol= is given but speaker_stats={speaker_stats}: use speaker_stats=enrol (or auto)")
    try:
        predictor = load_predictor(
            checkpoint_paths(cfg.get("ckpt_path")), device=cfg.get("device"), hop_seconds=cfg.get("hop_seconds"),
            window_seconds=cfg.get("window_seconds"), silence_dbfs=cfg.get("silence_dbfs"), min_seconds=cfg.get("min_seconds"),
            speaker_stats=speaker_stats, scoring=str(cfg.get("scoring") or "windows"),
            calibration=str(cfg.get("calibration") or "checkpoint"), temperature=cfg.get("temperature"),
            classes=list(cfg.classes) if cfg.get("classes") else None)
    except SERUserError as exc:
        raise released_setup_hint(exc, cfg.get("ckpt_path")) from None
    predictor.description = model_description(cfg.get("ckpt_path"))  # named in predict.py's output and serve.py's page
    return predictor


def _speaker_stats(cfg: DictConfig) -> str:
    speaker_stats = str(cfg.get("speaker_stats") or "auto")
    if speaker_stats == "auto":
        speaker_stats = "enrol" if cfg.get("enrol") else "training"
    return speaker_stats


def enrol_from_config(predictor, cfg: DictConfig):
    """``enrol=`` (and ``adapt=bn``) of ``predict.py`` applied to ``predictor``; returns the
    predictor to score with (see :func:`~ser_lightning.cli.common.enrol_speaker`).

    Raises:
        ConfigError: ``speaker_stats=enrol`` for a speaker-normalised model without ``enrol=``.
        InputNotFoundError: ``enrol=`` matches nothing.
    """
    if _speaker_stats(cfg) == "enrol" and predictor.speaker_normalized and not cfg.get("enrol"):
        raise ConfigError("speaker_stats=enrol needs enrol=<files, folder or glob of the speaker's recordings>")
    adapt = adapt_setting(cfg)
    if cfg.get("enrol") and (predictor.speaker_normalized or adapt == "bn"):
        description = getattr(predictor, "description", None)
        predictor = enrol_speaker(predictor, cfg.enrol, adapt)
        predictor.description = description
    return predictor


def run_predict(cfg: DictConfig) -> int:
    """Predict every input; print a table; write ``cfg.output``, ``cfg.timeline`` and
    the ``cfg.plot_dir`` PNGs. Returns the exit code: 0 when all inputs were predicted
    (silence, and ``uncertain`` below ``cfg.min_confidence``, count as predictions), 1
    when some could not be, 2 on a usage error (bad checkpoint, no input, bad option)."""
    from ser_lightning.inference.abstention import abstention_summary, apply_min_confidence, check_min_confidence
    from ser_lightning.inference.inputs import expand_inputs

    try:
        min_confidence = check_min_confidence(cfg.get("min_confidence"))
        for key in ("output", "timeline"):
            if cfg.get(key) and Path(str(cfg[key])).suffix.lower() not in (".csv", ".json"):
                raise ConfigError(f"{key}={cfg[key]}: use a .csv or .json file name")
        predictor = predictor_from_config(cfg)
        files = expand_inputs(cfg.input)
        predictor = enrol_from_config(predictor, cfg)
        if cfg.get("enrol") and (predictor.speaker_normalized or predictor.adaptation is not None):
            shared = {Path(f).resolve() for f in expand_inputs(cfg.enrol)} & {Path(f).resolve() for f in files}
            if shared:  # their predictions saw their own audio (statistics / adaptation): not a fair test of them
                print(f"warning: {len(shared)} input(s) are also enrolment recordings (e.g. {sorted(shared)[0]}); their "
                      f"predictions used their own audio", file=sys.stderr)
    except SERUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    try:
        if cfg.get("segmenter", "windows") == "vad":  # one timeline row per speech segment (ser_lightning.inference.live)
            from ser_lightning.data.vad import build_vad
            from ser_lightning.inference.live import predict_segments

            predictions = predict_segments(predictor, files, build_vad(cfg.get("vad", "silero"), **dict(cfg.get("vad_settings") or {})))
        else:
            predictions = predictor.predict(files, batch_size=cfg.batch_size, progress=bool(cfg.get("progress", True)))
    except SERUserError as exc:  # SpeakerGroupingError (folders named after emotions), a VAD that cannot run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predictions = apply_min_confidence(predictions, min_confidence)
    about = getattr(predictor, "description", None) or {}
    if about.get("name"):
        print(f"model: {about['name']}" + (f" (licence {about['licence']})" if about.get("licence") else ""))
    print_table(predictions)
    if min_confidence is not None:
        print(abstention_summary(predictions, min_confidence))
    if cfg.output:
        write_predictions(predictions, predictor.class_names, cfg.output)
        print(f"wrote {len(predictions)} rows to {cfg.output}")
    if cfg.get("timeline"):
        n = write_timeline(predictions, predictor.class_names, cfg.timeline)
        print(f"wrote {n} timeline rows to {cfg.timeline}")
    if cfg.get("plot_dir"):
        from ser_lightning.plots import plot_timeline

        for i, png in _plot_paths(predictions, Path(str(cfg.plot_dir))).items():
            png.parent.mkdir(parents=True, exist_ok=True)
            plot_timeline(predictions[i], predictor.class_names, png)
            print(f"wrote {png}")
    failed = sum(p.error is not None for p in predictions)
    if failed:
        print(f"{failed} of {len(predictions)} inputs could not be predicted", file=sys.stderr)
    return 1 if failed else 0


