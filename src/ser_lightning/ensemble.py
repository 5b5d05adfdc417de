"""Ensembles of trained runs: average the class probabilities of several models of one split.

A seed ensemble trains one recipe several times on the same split with different
initialisations and augmentation draws (``seed=1 data.seed=42``: the first seed is the
model's, ``data.seed`` keeps the split) and averages the members' class probabilities
(softmax of the logits) with equal weights, the "deep ensemble" of Lakshminarayanan et
al. (2017), "Simple and scalable predictive uncertainty estimation using deep
ensembles", NeurIPS. Members may also be different recipes, as long as every member was
trained, validated and tested on the same utterances.

Each member scores the validation and test utterances exactly as training's validation
and test steps score one model: the centred clip of every utterance, the member's own
feature front-end and feature normalisation (speaker statistics included), the weights
of its ``checkpoints/best.ckpt`` (the best validation UAR; with ``callbacks=ema``, the
averaged weights). An ensemble of one run therefore reproduces that run's
``metrics.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from ser_lightning.class_report import macro_f1, per_class_metrics, war_uar
from ser_lightning.inference import CheckpointError, load_backbone

PARTS = ("val", "test")


class ProbabilityAverage(torch.nn.Module):
    """Several backbones as one: features ``[batch, n_features, frames]`` -> the log of the
    members' mean class probabilities ``[batch, n_classes]``.

    The output is a valid logit vector: its softmax is the mean of the members' softmax
    outputs (``log mean_m p_m = logsumexp_m log p_m - log M``), so code that applies a
    softmax to a model's output (:class:`~ser_lightning.inference.Predictor`) gets the
    ensemble's probabilities unchanged.

    Args:
        members: backbones with the same input features and classes.

    Raises:
        ValueError: no members.
    """

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = torch.nn.ModuleList(members)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(feats), dim=-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


class EnsembleError(ValueError):
    """The runs cannot form an ensemble: a run directory lacks its config or best
    checkpoint, or the members disagree on the classes or on the utterances of a part."""


@dataclass
class PartScores:
    """One part of the split, scored by the ensemble.

    Attributes:
        paths: the part's utterances, in data-loader order.
        targets: ``[n]`` true class indices.
        probabilities: ``[n, n_classes]`` the members' mean class probabilities.
        member_uar: UAR of each member alone (fractions), in member order.
    """

    paths: list[str]
    targets: np.ndarray
    probabilities: np.ndarray
    member_uar: list[float] = field(default_factory=list)

    @property
    def confusion(self) -> np.ndarray:
        """``[n_classes, n_classes]`` counts, rows true class, columns predicted."""
        n = self.probabilities.shape[1]
        return np.bincount(self.targets * n + self.probabilities.argmax(axis=1), minlength=n * n).reshape(n, n)


def member_datamodule(run_dir: Path, data_root: str | None = None, built: dict | None = None):
    """The (set-up) DataModule a run was trained with, rebuilt from its ``config.yaml``.

    Args:
        run_dir: a ``train.py`` run directory.
        data_root: the corpus root to read instead of the recorded one (the data may
            live elsewhere on this machine); ``None``: the recorded ``data.root``.
        built: DataModules already set up, by their data and feature settings; a member
            with the same settings (a seed ensemble) reuses one instead of decoding and
            computing speaker statistics again. Filled in.

    Raises:
        EnsembleError: no ``config.yaml`` in ``run_dir``.
    """
    from hydra.utils import instantiate

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise EnsembleError(f"{run_dir} is not a finished train.py run: it has no config.yaml")
    cfg = OmegaConf.load(config_file)
    if data_root is not None:
        cfg.data.root = data_root
    # evaluation does not augment, so data and features alone decide what a member sees
    key = OmegaConf.to_yaml(OmegaConf.create({"data": cfg.data, "features": cfg.features}))
    if built is not None and key in built:
        return built[key]
    dm = instantiate(cfg.data, features=OmegaConf.to_container(cfg.features), augment=OmegaConf.to_container(cfg.augment),
                     output_dir=None, _convert_="all")
    dm.setup("test")
    if built is not None:
        built[key] = dm
    return dm


def member_model(run_dir: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, list[str]]:
    """The backbone of a run's ``checkpoints/best.ckpt``, in eval mode on ``device``, and
    its class names.

    Raises:
        EnsembleError: the run has no best checkpoint, or it cannot be loaded.
    """
    try:
        model, hp = load_backbone(run_dir / "checkpoints" / "best.ckpt")
    except CheckpointError as exc:
        raise EnsembleError(f"ensemble member {run_dir}: {exc}") from exc
    return model.to(device).eval(), list(hp["class_names"])


@torch.inference_mode()
def part_probabilities(model: torch.nn.Module, dm, part: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Score one part of ``dm``'s split as the validation/test step does.

    Returns:
        ``(paths, targets [n], probabilities [n, n_classes])``.
    """
    loader = dm.val_dataloader() if part == "val" else dm.test_dataloader()
    device = next(model.parameters()).device
    probs, targets = [], []
    for waves, target, *speakers in loader:
        feats = dm.transform_batch(waves.to(device), training=False, speakers=speakers[0].to(device) if speakers else None)
        probs.append(torch.softmax(model(feats), dim=-1).float().cpu())
        targets.append(target)
    rows = getattr(dm.split, part)
    return [r.path for r in rows], torch.cat(targets).numpy(), torch.cat(probs).numpy()


def evaluate_ensemble(run_dirs: list[str | Path], parts: tuple[str, ...] = PARTS, device: str = "cpu",
                      data_root: str | None = None) -> dict[str, PartScores]:
    """Average the class probabilities of the runs in ``run_dirs`` on each part.

    Args:
        run_dirs: ``train.py`` run directories (each with ``config.yaml`` and
            ``checkpoints/best.ckpt``) trained on the same split.
        parts: parts of the split to score (``val``, ``test``).
        device: where the members run.
        data_root: see :func:`member_datamodule`.

    Returns:
        part -> :class:`PartScores`.

    Raises:
        EnsembleError: no runs, an unknown part, a run that is not finished, or members
            with different classes or different utterances in a part.
    """
    if not run_dirs:
        raise EnsembleError("an ensemble needs at least one run directory")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise EnsembleError(f"unknown part(s) {sorted(unknown)}; allowed: {list(PARTS)}")
    scores: dict[str, PartScores] = {}
    classes = None
    built: dict = {}
    for run_dir in map(Path, run_dirs):
        model, member_classes = member_model(run_dir, device)
        if classes is None:
            classes = member_classes
        elif member_classes != classes:
            raise EnsembleError(f"ensemble member {run_dir} has classes {member_classes}, the first member {classes}")
        dm = member_datamodule(run_dir, data_root, built)
        for part in parts:
            paths, targets, probs = part_probabilities(model, dm, part)
            member_uar = war_uar(PartScores(paths, targets, probs).confusion)[1]
            if part not in scores:
                scores[part] = PartScores(paths, targets, probs, [member_uar])
                continue
            first = scores[part]
            if paths != first.paths or not np.array_equal(targets, first.targets):
                raise EnsembleError(f"ensemble member {run_dir} was {part}-scored on other utterances than the first "
                                    f"member ({len(paths)} vs {len(first.paths)}); members must share the split")
            first.probabilities = first.probabilities + probs
            first.member_uar.append(member_uar)
    for part_scores in scores.values():
        part_scores.probabilities = part_scores.probabilities / len(part_scores.member_uar)
    return scores


def ensemble_metrics(scores: dict[str, PartScores], class_names: list[str]) -> dict:
    """The ``metrics.json`` keys of a training run for an ensemble's scores:
    ``<part>/war``, ``<part>/uar``, ``<part>/f1_macro`` (fractions), ``best_val_uar``
    (the ensemble's validation UAR: its members are each their own best-validation
    checkpoint), per-member UARs and, for the test part, the confusion matrix and
    per-class scores."""
    metrics: dict = {"class_names": list(class_names)}
    for part, s in scores.items():
        war, uar = war_uar(s.confusion)
        per_class = per_class_metrics(s.confusion, class_names)
        metrics.update({f"{part}/war": war, f"{part}/uar": uar, f"{part}/f1_macro": macro_f1(per_class),
                        f"{part}/member_uar": s.member_uar, f"n_{part}": len(s.paths)})
        if part == "test":
            metrics["confusion_matrix"] = s.confusion.tolist()
            metrics["per_class"] = per_class
    if "val" in scores:
        metrics["best_val_uar"] = metrics["val/uar"]
    return metrics
