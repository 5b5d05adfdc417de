"""One loader for every kind of saved model: ``load_predictor(path or [paths], ...)``.

A neural checkpoint (``train.py`` with a CNN) gives a
:class:`~ser_lightning.inference.predictor.Predictor`; an SVM on openSMILE functionals
(``train.py model=svm``: ``checkpoints/svm.pt``) or an MLP / linear head on them
(``train.py model=mlp``: ``checkpoints/best.ckpt``) a
:class:`~ser_lightning.inference.functionals.FunctionalsPredictor`. A list of neural
checkpoints is their window-level probability average (as before); a list that mixes
kinds (an SVM and a CNN, or CNNs on waveform features and on openSMILE descriptors,
``features=egemaps|compare``, whose windows are not the same input) is their file-level late fusion, :class:`~ser_lightning.inference.functionals.FileAverage`
(each member with its own stored calibration temperature). ``eval.py``, ``predict.py``,
the scoring after training and ensembles load through here.
"""

from __future__ import annotations

from pathlib import Path

from ser_lightning.errors import CheckpointError
from ser_lightning.inference.functionals import FileAverage, FunctionalsPredictor, is_functionals_checkpoint
from ser_lightning.inference.predictor import Predictor


def load_predictor(path: str | Path | list[str | Path], device=None, calibration: str = "checkpoint",
                   temperature: float | None = None, **kwargs):
    """The predictor of a checkpoint or of a list of them (an ensemble).

    Args:
        path, device, calibration, temperature, **kwargs: as
            :meth:`~ser_lightning.inference.predictor.Predictor.from_checkpoint`; for a mixed
            list, ``calibration`` applies to the fused output (its members keep their own
            temperatures: an SVM's decision values are no probabilities without one) and
            ``temperature`` sets the fused output's.

    Raises:
        CheckpointError: see the loaders; an empty list.
    """
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    if not paths:
        raise CheckpointError("no checkpoint given (an empty list)")
    kinds = [is_functionals_checkpoint(p) for p in paths]
    feature_kinds = {_feature_kind(p) for p in paths} if not any(kinds) and len(paths) > 1 else set()
    if not any(kinds) and (len(feature_kinds) <= 1 or not any(lld for _, lld in feature_kinds)):
        return Predictor.from_checkpoint(path, device=device, calibration=calibration, temperature=temperature, **kwargs)
    if len(paths) == 1:
        return FunctionalsPredictor.from_checkpoint(paths[0], device=device, calibration=calibration, temperature=temperature, **kwargs)
    members = [FunctionalsPredictor.from_checkpoint(p, device=device, **kwargs) if k else
               Predictor.from_checkpoint(p, device=device, **kwargs) for p, k in zip(paths, kinds, strict=True)]
    return FileAverage(members, temperature=1.0 if temperature is None else temperature)


def _feature_kind(path: str | Path) -> tuple[str, bool]:
    """``(features.kind, whether it is an openSMILE descriptor kind)`` of a neural checkpoint."""
    from ser_lightning.models.checkpoint import load_checkpoint
    from ser_lightning.transforms.features import FeatureConfig

    config = FeatureConfig.from_dict(load_checkpoint(path)["hyper_parameters"].get("features") or {})
    return config.kind, config.is_lld
