"""The results protocols (:data:`PROTOCOLS`, read from conf/protocol/), run records and
docs/RESULTS.md's table.

Run through ``scripts/results.py``, which has three sub-commands:

    python scripts/results.py run <protocol> [--model cnn2d] [--features logmel] [--set k=v ...] [--jobs a,b]
    python scripts/results.py ensemble <protocol> --members <tag>,<tag>,... --tag <name>
    python scripts/results.py table            # aggregate every finished run -> docs/RESULTS.md

``run`` trains one ``train.py`` job per fold or seed of the protocol, one after another,
each into ``outputs/results/<protocol>/<recipe tag>/<job>/`` (a finished job, one with a
``metrics.json``, is skipped, so an interrupted protocol resumes). Model selection is the
training pipeline's: the checkpoint with the best validation UAR; the test set is scored
once with it.

Each finished job is also copied into a small run record,
``docs/results/<protocol>/<recipe tag>/<job>.json`` (its recipe, command, configuration
summary and ``metrics.json``), which is committed: run directories hold checkpoints and
are git-ignored, so the records are what keeps the table reproducible after they are
deleted. ``table`` first refreshes the records of every run directory present, then
reads the records only: every number in RESULTS.md comes from a ``metrics.json`` written
by a run, with the command that produced it.

``table`` writes, per protocol, one row per recipe with its test UAR under every
test-time statistics mode its runs were scored with (``metrics.json``'s
``test_by_stats``: transductive, enrolment with k=4 and k=8, training statistics,
utterance), each as mean ± std over folds and a hierarchical bootstrap 95 % interval
(:mod:`ser_lightning.evaluation.bootstrap`), and a nested recipe selection per mode
(:mod:`ser_lightning.evaluation.selection`: per fold, the recipe with the best validation UAR on
that fold); targets are judged on the nested figure. Records made before per-mode
scoring show their ``test/*`` under the mode they were scored with (marked †).

``ensemble`` scores, job by job, the average of the class probabilities of finished
recipes of a protocol (:mod:`ser_lightning.evaluation.ensemble`; for example the same recipe trained
with several seeds) and writes it as one more recipe, ``outputs/results/<protocol>/<tag>/``,
with the validation and test scores a training run would write: validation chooses
between it and the single models like between any two recipes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ser_lightning.evaluation.aggregate import (
    MODE_TITLES,
    MODES,
    is_legacy,
    legacy_mode,
    mean_std,
    mode_order,
    scores_by_stats,
    validation_uar,
)
from ser_lightning.evaluation.bootstrap import hierarchical_bootstrap_ci
from ser_lightning.evaluation.calibration import ece_from_bins, ece_noise_floor, pooled_bins
from ser_lightning.evaluation.selection import NestedSelection, fold_confusions, nested_selection

#: The checkout whose outputs/ and docs/ this tool reads and writes (src/ser_lightning/evaluation/results.py -> the project).
REPO = Path(__file__).resolve().parents[3]
RESULTS_DIR = REPO / "outputs" / "results"
RESULTS_MD = REPO / "docs" / "RESULTS.md"
RECORDS_DIR = REPO / "docs" / "results"


@dataclass
class Protocol:
    """One row group of the results table.

    Attributes:
        corpus: corpus and part as shown in the table.
        held_out: which speakers are held out (the evaluation protocol, in words).
        overrides: ``train.py`` overrides shared by every job.
        jobs: job name -> its own overrides (one per fold or seed).
        target: ``(metric, value)`` the issue asks for, or ``None`` (report only).
    """

    corpus: str
    held_out: str
    overrides: list[str]
    jobs: dict[str, list[str]]
    target: tuple[str, float] | None = None
    notes: list[str] = field(default_factory=list)


#: Where the protocols are written: one YAML file per protocol (``conf/protocol/<name>.yaml``).
PROTOCOL_DIR = REPO / "conf" / "protocol"


def load_protocols(folder: Path = PROTOCOL_DIR) -> dict[str, Protocol]:
    """The protocols of ``folder`` (``<name>.yaml``: corpus, held_out, overrides, jobs,
    target ``{metric, value}`` or null, notes, and ``order``, their place in the table),
    in table order.

    Raises:
        FileNotFoundError: ``folder`` holds no protocol.
        KeyError, TypeError: a file lacks a field or has an unknown one.
    """
    import yaml

    found = []
    for path in sorted(Path(folder).glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        order, target = spec.pop("order"), spec.pop("target", None)
        found.append((order, path.stem, Protocol(**spec, target=None if target is None else (target["metric"], float(target["value"])))))
    if not found:
        raise FileNotFoundError(f"no results protocol (*.yaml) in {folder}")
    return {name: proto for _, name, proto in sorted(found, key=lambda item: item[0])}


PROTOCOLS: dict[str, Protocol] = load_protocols()

#: ``model.name`` of the models on openSMILE utterance functionals (no augmentation; standardisation instead of ``features.normalize``).
FUNCTIONALS_MODELS = ("svm", "mlp")


def recipe_tag(model: str, features: str, extra: list[str]) -> str:
    """Folder name of a recipe: model-features, plus a hash-free suffix for extra overrides."""
    tag = f"{model}-{features}"
    if extra:
        tag += "-" + "-".join(e.replace("=", "").replace(".", "").replace("/", "")[:24] for e in extra)
    return tag


def hardware() -> dict:
    """Where the runs ran: CPU model and core count, GPU name when one is used."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average_at_start": round(os.getloadavg()[0], 1)}  # other jobs on the machine stretch wall time
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run(args: argparse.Namespace) -> int:
    proto = PROTOCOLS[args.protocol]
    tag = args.tag or recipe_tag(args.model, args.features, args.set)
    base = RESULTS_DIR / args.protocol / tag
    base.mkdir(parents=True, exist_ok=True)
    command = "python scripts/results.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    recipe = {"protocol": args.protocol, "model": args.model, "features": args.features, "set": args.set,
              "command": command, "hardware": hardware()}
    (base / "recipe.json").write_text(json.dumps(recipe, indent=2))
    jobs = args.jobs.split(",") if args.jobs else list(proto.jobs)
    failed = 0
    for job in jobs:
        if job not in proto.jobs:
            raise SystemExit(f"unknown job '{job}' of {args.protocol}; allowed: {list(proto.jobs)}")
        out = base / job
        if args.no_start_after and time.strftime("%H:%M") >= args.no_start_after:
            print(f"[results] {time.strftime('%H:%M:%S')} not starting {args.protocol}/{tag}/{job}: past --no-start-after {args.no_start_after}")
            continue
        if (out / "metrics.json").is_file():
            print(f"[results] {args.protocol}/{tag}/{job}: done, skipped")
            continue
        overrides = [*proto.overrides, *proto.jobs[job], f"model={args.model}", f"features={args.features}",
                     "logger=csv", "callbacks.progress_bar.refresh_rate=0", *args.set, f"hydra.run.dir={out.relative_to(REPO)}"]
        cmd = [sys.executable, "train.py", *overrides]
        out.mkdir(parents=True, exist_ok=True)
        (out / "command.txt").write_text("python train.py " + " ".join(shlex.quote(o) for o in overrides) + "\n")
        print(f"[results] {time.strftime('%H:%M:%S')} start {args.protocol}/{tag}/{job}", flush=True)
        rc = subprocess.call(cmd, cwd=REPO)
        print(f"[results] {time.strftime('%H:%M:%S')} end {args.protocol}/{tag}/{job} rc={rc}", flush=True)
        failed += rc != 0
    print(f"[results] {save_records()} run record(s) in {RECORDS_DIR.relative_to(REPO)}")
    return 1 if failed else 0


def ensemble(args: argparse.Namespace) -> int:
    """Score the ensemble of ``args.members`` (recipe tags) on every job they all finished."""
    from ser_lightning.evaluation.ensemble import ensemble_metrics, evaluate_ensemble

    members = [m for m in args.members.split(",") if m]
    if len(members) < 2:
        raise SystemExit("--members needs at least 2 recipe tags, comma-separated")
    if args.tag in members:
        raise SystemExit(f"--tag {args.tag} is one of the members; give the ensemble its own name")
    proto_dir = RESULTS_DIR / args.protocol
    recipes = []
    for tag in members:
        recipe_file = proto_dir / tag / "recipe.json"
        if not recipe_file.is_file():
            raise SystemExit(f"no recipe {tag} in {proto_dir.relative_to(REPO)} (run it first with `results.py run`)")
        recipes.append(json.loads(recipe_file.read_text()))
    base = proto_dir / args.tag
    base.mkdir(parents=True, exist_ok=True)
    command = "python scripts/results.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    same = {(r["model"], r["features"]) for r in recipes}
    model, features = next(iter(same)) if len(same) == 1 else ("+".join(r["model"] for r in recipes), "+".join(r["features"] for r in recipes))
    (base / "recipe.json").write_text(json.dumps({
        "protocol": args.protocol, "model": f"ensemble of {len(members)} {model}", "features": features, "members": members,
        "command": command, "hardware": recipes[0]["hardware"]}, indent=2))
    jobs = args.jobs.split(",") if args.jobs else list(PROTOCOLS[args.protocol].jobs)
    done = 0
    for job in jobs:
        run_dirs = [proto_dir / tag / job for tag in members]
        missing = [str(d.relative_to(REPO)) for d in run_dirs if not (d / "metrics.json").is_file()]
        if missing:
            print(f"[results] {args.protocol}/{args.tag}/{job}: not scored, unfinished member run(s): {', '.join(missing)}")
            continue
        start = time.perf_counter()
        member_metrics = [json.loads((d / "metrics.json").read_text()) for d in run_dirs]
        scores = evaluate_ensemble(run_dirs, device=args.device, data_root=args.data_root)
        metrics = ensemble_metrics(scores, member_metrics[0]["class_names"])
        metrics.update({
            "members": [str(d.relative_to(REPO)) for d in run_dirs],
            "split": member_metrics[0].get("split", ""),
            "parameters": sum(m.get("parameters", 0) for m in member_metrics),
            "epochs": round(statistics.fmean(m.get("epochs", 0) for m in member_metrics)),
            # the ensemble costs its members' training plus its own scoring
            "wall_seconds": sum(m.get("wall_seconds", 0.0) for m in member_metrics) + time.perf_counter() - start,
        })
        out = base / job
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dirs[0] / "config.yaml", out / "config.yaml")  # the first member's recipe (augmentation, epochs)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out / "command.txt").write_text(f"{command} --jobs {job}\n")
        print(f"[results] {args.protocol}/{args.tag}/{job}: val UAR {100 * metrics['val/uar']:.1f} % "
              f"(members {', '.join(f'{100 * u:.1f}' for u in metrics['val/member_uar'])})", flush=True)
        done += 1
    print(f"[results] {done} of {len(jobs)} job(s) scored; {save_records()} run record(s) in {RECORDS_DIR.relative_to(REPO)}")
    return 0 if done == len(jobs) else 1


def rescore(args: argparse.Namespace) -> int:
    """Score finished jobs of a protocol again with the current scoring path
    (:func:`ser_lightning.evaluation.run_scoring.rescore_run`) and refresh their records."""
    from ser_lightning.evaluation.run_scoring import rescore_run

    proto_dir = RESULTS_DIR / args.protocol
    tags = [t for t in args.tags.split(",") if t] or sorted(d.name for d in proto_dir.iterdir() if d.is_dir())
    done = 0
    for tag in tags:
        for job_dir in sorted((proto_dir / tag).iterdir()) if (proto_dir / tag).is_dir() else []:
            finished = (job_dir / "metrics.json").is_file() or (job_dir / "checkpoints" / "best.ckpt").is_file()
            if finished and (job_dir / "config.yaml").is_file() and (job_dir / "checkpoints").is_dir():
                m = rescore_run(job_dir, overrides=args.set)
                print(f"[results] rescored {args.protocol}/{tag}/{job_dir.name}: test UAR {100 * m['test/uar']:.1f} % ({m['test_stats']})", flush=True)
                done += 1
    print(f"[results] {done} job(s) rescored; {save_records()} run record(s) in {RECORDS_DIR.relative_to(REPO)}")
    return 0


def _mean_std(values: list[float]) -> str:
    """``mean ± std`` in % (sample standard deviation; a single run shows no std)."""
    mean, std = mean_std(values)
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def record_of(job_dir: Path) -> dict | None:
    """The run record of a finished job directory (``None`` when it has no metrics or recipe)."""
    metrics_file, recipe_file = job_dir / "metrics.json", job_dir.parent / "recipe.json"
    if not metrics_file.is_file() or not recipe_file.is_file():
        return None
    command_file = job_dir / "command.txt"
    return {
        "protocol": job_dir.parent.parent.name,
        "tag": job_dir.parent.name,
        "job": job_dir.name,
        "recipe": json.loads(recipe_file.read_text()),
        "metrics": json.loads(metrics_file.read_text()),
        "command": command_file.read_text().strip().replace(f"{REPO}/", "") if command_file.is_file() else "",
        "max_epochs": _max_epochs(job_dir),
        "augment": _augmentations(job_dir),
        "normalize": _normalization(job_dir),
    }


def save_records() -> int:
    """Write the run record of every finished run directory under ``outputs/results``
    into ``docs/results`` (replacing an older record of the same job). Returns how many."""
    n = 0
    for metrics_file in sorted(RESULTS_DIR.glob("*/*/*/metrics.json")):
        job_dir = metrics_file.parent
        record = record_of(job_dir)
        if record is None or record["protocol"] not in PROTOCOLS:
            continue
        out = RECORDS_DIR / record["protocol"] / record["tag"] / f"{record['job']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        n += 1
    return n


def collect() -> list[dict]:
    """Every recorded run (``docs/results``, refreshed from the run directories first)."""
    save_records()
    runs = []
    for path in sorted(RECORDS_DIR.glob("*/*/*.json")):
        record = json.loads(path.read_text())
        if record.get("protocol") in PROTOCOLS:
            record.setdefault("normalize", "utterance")
            runs.append(record)
    return runs


def _normalization(job_dir: Path) -> str:
    """The feature normalisation a run used (``features.normalize`` in its config.yaml;
    for the models on functionals, ``model=svm|mlp``, their standardisation ``model.standardize``)."""
    cfg = job_dir / "config.yaml"
    if not cfg.is_file():
        return "utterance"
    from omegaconf import OmegaConf

    conf = OmegaConf.load(cfg)
    if conf.get("model", {}).get("name") in FUNCTIONALS_MODELS:
        return f"{conf.model.standardize} z-score"
    return str(conf.features.get("normalize", "utterance"))


def _augmentations(job_dir: Path) -> str:
    """The training augmentations a run used (those with ``p > 0`` in its config.yaml)."""
    cfg = job_dir / "config.yaml"
    if not cfg.is_file():
        return "—"
    from omegaconf import OmegaConf

    conf = OmegaConf.load(cfg)
    if conf.get("model", {}).get("name") in FUNCTIONALS_MODELS:
        return "none (a model on functionals takes each original file's functionals)"
    augment = conf.get("augment")
    augment = OmegaConf.to_container(augment) if augment else {}  # an empty section is a falsy DictConfig
    names = [k for k, v in augment.items() if v and v.get("enabled", True) and v.get("p", 1.0) > 0]
    return ", ".join(names) or "none"


def _max_epochs(job_dir: Path) -> int | None:
    cfg = job_dir / "config.yaml"
    if not cfg.is_file():
        return None
    from omegaconf import OmegaConf

    conf = OmegaConf.load(cfg)
    return None if conf.get("model", {}).get("name") == "svm" else conf.trainer.max_epochs  # the SVM has no epochs


def protocol_command(command: str) -> str:
    """The command that runs every job of a protocol: a recorded ``run`` command without
    the scheduling options ``--jobs`` and ``--no-start-after`` (which only pick when and
    which jobs one invocation ran)."""
    return re.sub(r" --(jobs|no-start-after) \S+", "", command)


def nested_selections(runs: list[dict], protocol: str, seed: int = 0) -> dict[str, NestedSelection]:
    """The nested recipe selection of ``protocol`` (:func:`ser_lightning.evaluation.selection.nested_selection`:
    per fold, the recipe with the best validation UAR on that fold) under every test-time
    statistics mode some run of it was scored under, in table order."""
    rs = [r for r in runs if r["protocol"] == protocol]
    modes = mode_order(m for r in rs for m in _scores(r))
    return {mode: nested_selection(rs, list(PROTOCOLS[protocol].jobs), mode, seed=seed) for mode in modes}


def _scores(record: dict) -> dict[str, dict]:
    """A run record's test scores per test-time statistics mode (:func:`scores_by_stats`)."""
    return scores_by_stats(record["metrics"], record.get("normalize"), f"{record['protocol']}/{record['tag']}/{record['job']}")


def _pct_cell(mean: float | None, std: float | None, ci, legacy: bool = False) -> str:
    """``mean ± std [low, high]`` in %, with † for scores recorded before per-mode
    scoring and ‡ for an interval that resampled folds only."""
    if mean is None:
        return "—"
    text = f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")
    if ci is not None:
        text += f" [{100 * ci.low:.1f}, {100 * ci.high:.1f}]" + ("" if ci.speakers_resampled else "‡")
    return text + ("†" if legacy else "")


def mode_cell(rs: list[dict], mode: str, n_jobs: int) -> str:
    """The table cell of one recipe under one mode: mean ± sample std over its runs of
    the test UAR, and the hierarchical bootstrap 95 % interval (``—`` when no run of it
    was scored under ``mode``; ``(k runs)`` when only some were)."""
    entries = [s[mode] for s in map(_scores, rs) if mode in s]
    if not entries:
        return "—"
    mean, std = mean_std([float(e["uar"]) for e in entries])
    ci = None
    if all(e.get("per_speaker") or e.get("confusion_matrix") is not None for e in entries):
        ci = hierarchical_bootstrap_ci([fold_confusions(e) for e in entries])
    cell = _pct_cell(mean, std, ci, legacy=any(e["legacy"] for e in entries))
    return cell + (f" ({len(entries)} of {n_jobs} runs)" if len(entries) < len(rs) else "")


def _headline_war(rs: list[dict]) -> str:
    """Mean ± std of ``test/war`` and the statistics mode(s) behind it."""
    modes = sorted({r["metrics"].get("test_stats") or legacy_mode(r["metrics"], r.get("normalize")) for r in rs})
    return f"{_mean_std([r['metrics']['test/war'] for r in rs])} ({', '.join(MODE_TITLES.get(m, m) for m in modes)})"


def _scoring(rs: list[dict]) -> str:
    """The scoring policy of a recipe's runs; runs recorded before the field existed were
    scored by the test step's centred clip."""
    names = sorted({r["metrics"].get("scoring") or ("center†" if is_legacy(r["metrics"]) else "—") for r in rs})
    return ", ".join(names)


def _calibration(rs: list[dict]) -> str:
    """Test ECE % of all the recipe's test files together (the folds' bins pooled), at
    ``T = 1`` -> with the fitted temperature, and the floor a perfectly calibrated model
    would show on as many files (runs recorded before calibration existed: —)."""
    cal = [r["metrics"]["calibration"] for r in rs if isinstance(r["metrics"].get("calibration"), dict) and "test" in r["metrics"]["calibration"]]
    if not cal:
        return "—"
    before = pooled_bins([c["test"]["before"]["bins"] for c in cal])
    after = pooled_bins([c["test"]["after"]["bins"] for c in cal])
    fitted = sum(c.get("method") == "temperature" and c.get("temperature") != 1.0 for c in cal)
    text = (f"{100 * ece_from_bins(before):.1f} → {100 * ece_from_bins(after):.1f} (floor {100 * ece_noise_floor(after):.1f}; "
            f"T fitted in {fitted} of {len(cal)})")
    return text + (f" ({len(cal)} of {len(rs)} runs)" if len(cal) < len(rs) else "")


def _coverage(rs: list[dict]) -> str:
    """Mean test accuracy % of the kept predictions at 80 % and 50 % coverage (calibrated
    confidences; abstaining on the rest, ``predict.py min_confidence``)."""
    rows = [r["metrics"]["calibration"].get("risk_coverage") for r in rs if isinstance(r["metrics"].get("calibration"), dict)]
    rows = [t for t in rows if t]
    if not rows:
        return "—"
    at = {c: statistics.fmean(next(a["accuracy"] for a in t["at_coverage"] if a["coverage"] == c) for t in rows) for c in (0.8, 0.5)}
    return f"{100 * at[0.8]:.1f} / {100 * at[0.5]:.1f}"


def _verdict(sel: NestedSelection, target: tuple[str, float] | None) -> str:
    if target is None:
        return ""
    metric, value = target
    got = sel.uar if metric == "uar" else sel.war
    if got is None:
        return f"; target {metric.upper()} ≥ {100 * value:.1f}: no figure to judge"
    if not sel.complete:
        return f"; target {metric.upper()} ≥ {100 * value:.1f}: {'above' if got >= value else 'below'} on the folds chosen, incomplete: **no verdict**"
    return f"; target {metric.upper()} ≥ {100 * value:.1f}: **{'met' if got >= value else 'not met'}**"


def nested_line(sel: NestedSelection, target: tuple[str, float] | None) -> str:
    """One Markdown bullet: a protocol's nested-selection figure under one mode, its
    verdict against the protocol's target and the recipe chosen on each fold."""
    title = MODE_TITLES.get(sel.mode, sel.mode)
    folds = "; ".join(
        f"{c.job}: " + (f"`{c.tag}` (val {100 * c.val_uar:.1f}" + ("" if c.rule in ("best validation UAR", "only candidate") else f", {c.rule}") + ")"
                        if c.tag else f"{c.rule}" + (f" ({len(c.candidates)} recipes at val {100 * c.val_uar:.1f})" if c.val_uar is not None else ""))
        for c in sel.choices)
    if sel.uar is None:
        return f"- nested selection, {title}: **no figure**: validation cannot choose on any fold. Folds: {folds}."
    war = "" if sel.war is None else f", WAR {100 * sel.war:.1f}"
    partial = "" if sel.complete else f" (over {sum(c.tag is not None for c in sel.choices)} of {len(sel.choices)} folds)"
    return (f"- nested selection, {title}: test UAR **{_pct_cell(sel.uar, sel.uar_std, sel.ci)}**{war}{partial}"
            f"{_verdict(sel, target)}. Chosen: {folds}.")


def _hw_text(hw: dict) -> str:
    threads = f", {hw['torch_threads']} torch thread(s)" if hw.get("torch_threads") else ""
    load = f", load average {hw['load_average_at_start']} at start" if hw.get("load_average_at_start") is not None else ""
    return hw.get("gpu") or f"CPU: {hw.get('cpu')} ({hw.get('cpu_cores')} cores{threads}{load}), no GPU"


INTRO = """# Results

Written by `python scripts/results.py table` from the run records in `docs/results/`
(one JSON file per job, copied from its run directory under `outputs/results/`, made by
`python scripts/results.py run <protocol> ...`). Every number below comes from a run's
`metrics.json`; nothing is typed in by hand.

**Test-time statistics.** A speaker-normalised model (`features.normalize=speaker`) puts
each utterance's features at zero mean and unit variance with statistics of its speaker;
where those come from at test time changes the score, so every recipe is reported under
each mode it was scored with:

- *transductive*: a test speaker's statistics over all of their test recordings, the one
  being scored included. Assumes the speaker is known and many of their recordings, of
  varied emotions, are at hand before scoring (their labels are never used).
- *enrol k=4*, *enrol k=8*: statistics from k recordings of the speaker chosen at random
  (seeded, blind to labels), which are then left out of scoring. Assumes the user can give
  k recordings of the speaker (an enrolment), as `predict.py enrol=...` takes.
- *training statistics*: the statistics stored from the training speakers; needs nothing
  of the test speaker.
- *utterance*: a model trained with per-utterance normalisation (`features.normalize=utterance`,
  each utterance by its own statistics); needs nothing of the speaker.

Scoring policy: `center` = the centred training-length clip of each file (the test step's),
`windows` = the mean over windows covering the file (`predict.py`'s).

Model selection: the checkpoint with the best **validation** UAR (validation speakers or
utterances are never test speakers or utterances); the test set is scored once with it,
and "val UAR" is that checkpoint's. **Recipe selection is nested**: for each outer test
fold, the recipe with the best validation UAR *on that fold* is chosen, among the recipes
scored under the mode in question, and the protocol's figure is the mean of the chosen
runs' test scores (`nested selection` lines; targets are judged on them). When validation
ties between some recipes of a fold, the one with the fewest parameters is chosen, then
the first by name; when every recipe of a fold ties (TESS's same-speaker validation set,
which all recipes master), validation cannot choose and no nested figure is given. The
nested figure's interval resamples the chosen runs and takes the choices as given. The
per-recipe rows are for reference: picking the best test row would select on test data.

Ensembles (`results.py ensemble`, recipe model "ensemble of N ..."): per job, the mean class
probabilities of the listed recipes' best-validation checkpoints; its validation UAR is that
of the averaged probabilities on the same validation speakers, and its wall time includes
its members' training. An ensemble that mixes an SVM baseline with a CNN (late fusion,
`fusion-...` tags) averages the members' calibrated probabilities file by file (the CNN's
mean over its windows, the SVM's whole-file prediction).

UAR = unweighted average recall (macro recall over the classes with test examples), WAR =
weighted average recall (accuracy), in %. Cells read `mean ± sample std over the folds or
seeds [95 % confidence interval]`. The interval is a hierarchical bootstrap (Efron &
Tibshirani, 1993; cluster bootstrap): 2000 replicates, each resampling the folds with
replacement and, within each drawn fold, its test speakers with replacement, pooling their
confusion matrices; the statistic is the mean over drawn folds of the pooled UAR
(`ser_lightning.evaluation.bootstrap`). Under leave-one-speaker-out every fold holds one speaker, so
the interval comes from resampling folds; with 2-3 folds it is coarse and tends to be too
narrow. ‡ = the runs recorded no per-speaker confusion matrices, so only folds were
resampled. † = recorded before per-mode scoring: the run's `test/*` (transductive speaker
statistics for a speaker-normalised recipe, its own statistics for an utterance-normalised
one; scoring `center`), `—` under modes it was not scored with.
Calibration: after training a temperature T is fitted on the validation part (the
checkpoint's validation speakers or utterances) and stored in the checkpoint (Guo et al.,
2017; `calibration=auto`: only where the validation speakers are not training speakers, so
not under SAVEE's leave-one-speaker-out, whose validation utterances are the training
voices); "test ECE" is the expected calibration error of the top-label confidences of all
the recipe's test files together (15 equal-width bins; each fold's test part is scored by
its own model), at T = 1 and with the fitted T, and "floor" the ECE a perfectly
calibrated model would show on as many files with the same confidences (the binned ECE is
biased upwards on a few hundred files); "accuracy at 80 / 50 %
coverage" is the accuracy of the most confident 80 % / 50 % of test files (abstaining on
the rest, `predict.py min_confidence`), with calibrated confidences. Temperature scaling
leaves each window's arg-max unchanged; a file's mean over several windows can change
class in rare cases. Recipes tagged `-trimvad` were trained on audio whose leading and
trailing silence was cut by Silero VAD (`data.trim=vad`); they are scored, like every
recipe, on the untrimmed files, as `predict.py` reads them.
Classic baseline (`svm-egemaps`, `svm-compare`; `python train.py model=svm features=egemaps|compare`,
docs/EXPERT_FEATURES.md): openSMILE's 88 eGeMAPS v02 or 6,373 ComParE 2016 functionals of
each whole file (scoring `functionals`), standardised with the training part's mean and
standard deviation (normalisation `training z-score`; needs nothing of a test speaker, so
it stands in the "utterance" column, the scorer's mode of a model without speaker
statistics) or per speaker (`speaker z-score`, under the
speaker modes), then a class-balanced SVM (scikit-learn SVC) whose kernel and C are chosen
on the validation part and which is fitted on the training part only; same splits (same
split fingerprints) as the neural recipes. Its "val UAR" is that of the chosen SVM; it has
no epochs. `mlp-egemaps`, `mlp-compare` (`python train.py model=mlp`): the same standardised
functionals into a small MLP (or, `model.hidden=[]`, a linear head) trained by the Lightning
loop, checkpoint chosen on validation UAR.
Wall time is the sum over a row's runs, including time spent waiting for the CPU when
other jobs shared the machine (the load average when a protocol started is recorded).
"""


def table(args: argparse.Namespace) -> int:
    runs = collect()
    modes = mode_order([*MODES, *(m for r in runs for m in _scores(r))])
    selections = {name: nested_selections(runs, name) for name in PROTOCOLS}
    lines = INTRO.splitlines() + [
        "", "## Summary: nested selection", "",
        "Per protocol and test-time statistics mode, the mean test UAR % of the recipes validation chose fold by fold.", "",
        "| corpus | protocol (held-out speakers) | " + " | ".join(f"test UAR % {MODE_TITLES.get(m, m)}" for m in modes) + " | target |",
        "|---|---|" + "---|" * len(modes) + "---|"]
    for name, proto in PROTOCOLS.items():
        cells = []
        for mode in modes:
            sel = selections[name].get(mode)
            cells.append("—" if sel is None else "no choice" if sel.uar is None else
                         _pct_cell(sel.uar, sel.uar_std, sel.ci) + ("" if sel.complete else " (incomplete)"))
        target = f"{proto.target[0].upper()} ≥ {100 * proto.target[1]:.1f}" if proto.target else "report"
        lines.append(f"| {proto.corpus} | {name}: {proto.held_out} | {' | '.join(cells)} | {target} |")
    target_lines = []
    header = ("| recipe | normalisation | scoring | val UAR % | " + " | ".join(f"test UAR % {MODE_TITLES.get(m, m)}" for m in modes)
              + " | test WAR % (statistics) | test ECE % of all folds' files (T = 1 → calibrated) | test accuracy % at 80 / 50 % coverage"
              " | runs | epochs trained (max) | wall time | command |")
    for name, proto in PROTOCOLS.items():
        target_text = f"{proto.target[0].upper()} ≥ {100 * proto.target[1]:.1f}" if proto.target else "report only"
        lines += ["", f"## {name}: {proto.corpus}", "", f"Held-out speakers: {proto.held_out}. Target: {target_text}.", ""]
        tags = sorted({r["tag"] for r in runs if r["protocol"] == name})
        if not tags:
            lines.append(f"Not run (0 of {len(proto.jobs)} jobs).")
            target_lines.append(f"- {name}: {target_text}: **not run** in this table.")
            continue
        lines += [header, "|" + "---|" * header.count(" | ") + "---|"]
        recipes = []
        for tag in tags:
            rs = [r for r in runs if r["protocol"] == name and r["tag"] == tag]
            val = [v for r in rs if (v := validation_uar(r["metrics"])) is not None]
            epochs = [r["metrics"].get("epochs", 0) for r in rs]  # trainer.current_epoch after fit = epochs run
            max_epochs = {r["max_epochs"] for r in rs}
            wall = sum(r["metrics"].get("wall_seconds", 0.0) for r in rs)
            recipe = rs[0]["recipe"]
            missing = [j for j in proto.jobs if j not in {r["job"] for r in rs}]
            runs_text = f"{len(rs)} of {len(proto.jobs)}" + (f" (not run: {', '.join(missing)})" if missing else "")
            normalize = ", ".join(sorted({r["normalize"] for r in rs}))
            lines.append(
                f"| {tag} | {normalize} | {_scoring(rs)} | {_mean_std(val)} | "
                + " | ".join(mode_cell(rs, m, len(rs)) for m in modes)
                + f" | {_headline_war(rs)} | {_calibration(rs)} | {_coverage(rs)} | {runs_text} | {statistics.fmean(epochs):.0f} ({'/'.join(str(m) for m in sorted(max_epochs, key=str))}) | "
                f"{wall / 60:.1f} min | `{protocol_command(recipe['command'])}` |")
            recipes.append(f"- `{tag}`: model {recipe['model']}, features {recipe['features']}, augmentation (training only): "
                           f"{rs[0]['augment']}; {_hw_text(recipe['hardware'])}.")
        lines += ["", "Nested selection (per fold, the recipe with the best validation UAR on that fold; the figure is the mean "
                  "of the chosen runs' test scores):", ""]
        for mode in modes:
            sel = selections[name].get(mode)
            if sel is None:
                lines.append(f"- nested selection, {MODE_TITLES.get(mode, mode)}: — (no run of this protocol was scored under it).")
                continue
            lines.append(nested_line(sel, proto.target))
            if proto.target or sel.uar is not None:
                target_lines.append(f"- {name}, {MODE_TITLES.get(mode, mode)}: " + _target_text(sel, proto.target))
        lines += ["", "Recipes:", "", *recipes]
    random_war = [r["metrics"]["test/war"] for r in runs if r["protocol"] == "tess_random"]
    cross_war = [r["metrics"]["test/war"] for r in runs if r["protocol"] == "tess_cross"]
    if random_war and cross_war:
        target_lines.append(
            f"- TESS, same data, two protocols: random split mean test WAR {100 * statistics.fmean(random_war):.1f}% "
            f"vs cross-speaker {100 * statistics.fmean(cross_war):.1f}% (all recipes). The random split puts both "
            "speakers in training and test, so it measures speaker-dependent accuracy.")
    for r in runs:  # the same held-out TESS speaker, trained on TESS alone vs on all corpora
        tess = r["metrics"].get("test_by_corpus", {}).get("tess")
        held = re.search(r"test speakers .*?tess:(\w+)", r["metrics"].get("split", ""))
        if r["protocol"] != "combined" or not tess or not held:
            continue
        other = {"YAF": "OAF", "OAF": "YAF"}.get(held.group(1))
        alone = [x["metrics"]["test/war"] for x in runs if x["protocol"] == "tess_cross" and x["job"] == f"{other}-to-{held.group(1)}"]
        if alone:
            recipes_text = "" if len(alone) == 1 else f", mean of {len(alone)} recipes"
            target_lines.append(
                f"- TESS speaker {held.group(1)} held out: test WAR {100 * statistics.fmean(alone):.1f}% when trained on TESS {other} alone "
                f"(tess_cross{recipes_text}), {100 * tess['war']:.1f}% when trained on {other} plus the other corpora (combined, {r['tag']}, {r['job']}).")
    lines += ["", "## Targets", "", "Judged on the nested selection of each protocol, per test-time statistics mode.", "",
              *target_lines, "", "## Every run", "",
              "| protocol | recipe | job | split (held-out speakers) | best val UAR % | scoring | test UAR % by test-time statistics | test WAR % | epochs | wall time | command |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        m = r["metrics"]
        val = validation_uar(m)
        split = m.get("split", "").replace(" | ", "; ")  # a "|" would end the table cell
        if m.get("split_fingerprint"):
            split += f" (split {m['split_fingerprint'][:12]})"
        by_mode = "; ".join(f"{MODE_TITLES.get(k, k)} {100 * s['uar']:.1f}{'†' if s['legacy'] else ''}" for k, s in
                            ((k, _scores(r)[k]) for k in mode_order(_scores(r))))
        lines.append(f"| {r['protocol']} | {r['tag']} | {r['job']} | {split} | {'—' if val is None else f'{100 * val:.1f}'} | "
                     f"{_scoring([r])} | {by_mode} | {100 * m['test/war']:.1f} | {m.get('epochs', 0)} | "
                     f"{m.get('wall_seconds', 0) / 60:.1f} min | `{r['command']}` |")
    by_corpus = [r for r in runs if r["metrics"].get("test_by_corpus")]
    if by_corpus:
        lines += ["", "## Combined corpora, per corpus (held-out speakers of each corpus)", "",
                  "| recipe | job | corpus | test utterances | test UAR % | test WAR % |", "|---|---|---|---|---|---|"]
        for r in by_corpus:
            for corpus, m in r["metrics"]["test_by_corpus"].items():
                lines.append(f"| {r['tag']} | {r['job']} | {corpus} | {m['n']} | {100 * m['uar']:.1f} | {100 * m['war']:.1f} |")
        for tag in sorted({r["tag"] for r in by_corpus}):
            rs = [r for r in by_corpus if r["tag"] == tag]
            for corpus in sorted({c for r in rs for c in r["metrics"]["test_by_corpus"]}):
                u = [r["metrics"]["test_by_corpus"][corpus]["uar"] for r in rs if corpus in r["metrics"]["test_by_corpus"]]
                w = [r["metrics"]["test_by_corpus"][corpus]["war"] for r in rs if corpus in r["metrics"]["test_by_corpus"]]
                lines.append(f"| {tag} | mean of {len(u)} | {corpus} | | {_mean_std(u)} | {_mean_std(w)} |")
    lines += general_against_alone(runs)
    notes = [f"- {name}: {n}" for name, p in PROTOCOLS.items() for n in p.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS_MD} ({len(runs)} runs)")
    return 0


#: Recipe-tag suffixes of general7 variants that change only how the corpora are mixed in
#: training (a no-op on one corpus), so their "corpus alone" is the base recipe's own7 run.
MIXING_SUFFIXES = ("-corpus-sampler",)


def general_against_alone(runs: list[dict]) -> list[str]:
    """The general model beside each corpus trained alone (EmoBox-style, one row per corpus).

    Pairs each ``general7`` run's per-corpus test score (``test_by_corpus``) with the
    ``own7`` run whose job is that corpus and whose tag is the general run's tag, or the
    general tag less a suffix of :data:`MIXING_SUFFIXES` (``<recipe>-corpus-sampler``
    pairs with ``<recipe>``: a variant that only changes how corpora are mixed is the same
    recipe on one corpus; ``<recipe>-2ep`` is another recipe): the same test speakers (both split each corpus with ``speaker_split``
    and seed 0) and the same test-time statistics, one corpus in training instead of seven.
    Nothing when no pair exists.
    """
    alone = {(r["tag"], r["job"]): r["metrics"] for r in runs if r["protocol"] == "own7"}
    rows = []
    for r in runs:
        if r["protocol"] != "general7":
            continue
        for corpus, m in sorted(r["metrics"].get("test_by_corpus", {}).items()):
            bases = [r["tag"], *(r["tag"][:-len(x)] for x in MIXING_SUFFIXES if r["tag"].endswith(x))]
            tag = next((t for t in bases if (t, corpus) in alone), None)
            if tag is None:
                continue
            own = alone[(tag, corpus)]
            diff = 100 * (m["uar"] - own["test/uar"])
            rows.append(f"| {r['tag']} | {r['job']} | {corpus} | {m['n']} | {100 * m['uar']:.1f} | {100 * own['test/uar']:.1f} ({tag}) | "
                        f"{diff:+.1f} |")
    if not rows:
        return []
    return ["", "## The general model against each corpus alone (general7 vs own7: same test speakers, same recipe)", "",
            "Test UAR % on each corpus's held-out speakers, its own classes, the run's test-time statistics; \"alone\" "
            "trains on that corpus only. Positive difference: the general model is better.", "",
            "| recipe | general7 job | corpus | test utterances | general model | corpus alone (its recipe) | difference (points) |",
            "|---|---|---|---|---|---|---|", *rows]


def _target_text(sel: NestedSelection, target: tuple[str, float] | None) -> str:
    """A Targets bullet's text: the nested figure against the protocol's target."""
    if sel.uar is None:
        return "validation cannot choose on any fold (every recipe ties), so no figure and no verdict."
    if target is None:
        war = "" if sel.war is None else f", WAR {100 * sel.war:.1f}%"
        return f"report only; nested selection test UAR {100 * sel.uar:.1f}%{war}."
    metric, value = target
    got = sel.uar if metric == "uar" else sel.war
    if got is None:
        return f"no {metric.upper()} recorded for the chosen runs; no verdict."
    verdict = ("met" if got >= value else "not met") if sel.complete else \
        f"{'above' if got >= value else 'below'} target on the {sum(c.tag is not None for c in sel.choices)} fold(s) with a choice; incomplete, no verdict"
    return f"nested selection test {metric.upper()} {100 * got:.2f}% vs target {100 * value:.1f}%: **{verdict}**."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train and test every job of a protocol")
    p_run.add_argument("protocol", choices=sorted(PROTOCOLS))
    p_run.add_argument("--model", default="cnn2d")
    p_run.add_argument("--features", default="logmel")
    p_run.add_argument("--set", nargs="*", default=[], help="extra train.py overrides, e.g. trainer.max_epochs=20 augment=strong")
    p_run.add_argument("--jobs", default="", help="comma-separated subset of the protocol's jobs (e.g. fold0,fold1)")
    p_run.add_argument("--tag", default="", help="recipe folder name (default: model-features[-overrides])")
    p_run.add_argument("--no-start-after", default="", help="HH:MM (local clock): start no further job after this time")
    p_ens = sub.add_parser("ensemble", help="average the probabilities of finished recipes, job by job, as a new recipe")
    p_ens.add_argument("protocol", choices=sorted(PROTOCOLS))
    p_ens.add_argument("--members", required=True, help="comma-separated recipe tags (folders of outputs/results/<protocol>)")
    p_ens.add_argument("--tag", required=True, help="the ensemble's recipe folder name")
    p_ens.add_argument("--jobs", default="", help="comma-separated subset of the protocol's jobs")
    p_ens.add_argument("--device", default="cpu")
    p_ens.add_argument("--data-root", default=None, help="corpus root, when the data moved since training (default: the recorded one)")
    p_re = sub.add_parser("rescore", help="score finished jobs again with the current scoring path (their checkpoints are kept)")
    p_re.add_argument("protocol", choices=sorted(PROTOCOLS))
    p_re.add_argument("--tags", default="", help="comma-separated recipe tags (default: every recipe of the protocol)")
    p_re.add_argument("--set", nargs="*", default=[], help="scoring settings over the run's config, e.g. adapt=bn "
                      "report_stats=[transductive,enrol4,enrol8,training]")
    sub.add_parser("table", help="aggregate finished runs into docs/RESULTS.md")
    args = parser.parse_args(argv)
    return {"run": run, "ensemble": ensemble, "rescore": rescore, "table": table}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
