"""Build, check and probe the released general model (src/ser_lightning/released/).

    python scripts/release.py build   [--set k=v ...]   # train, calibrate on held-out corpora, package, record
    python scripts/release.py check                     # rebuild in a temporary folder: same predictions?
    python scripts/release.py perturb [--draws 3]       # encoder weights moved within float16 rounding

``build`` (the one command that rebuilds the release, recorded in ``release.json``):

1. **Temperature on held-out corpora.** For each release corpus with 3 or more speakers,
   the recipe (``experiment=release``) is trained on the *other* release corpora and its
   logits on every file of the held-out one are kept; one temperature is fitted on all of
   them together (:func:`ser_lightning.evaluation.calibration.fit_temperature`, NLL of each
   file): the calibration of a model on a corpus it never heard, which is what a user is.
2. **The model.** The recipe on all release corpora (per-corpus speaker split: 15 % of each
   corpus's speakers validate, 15 % test), the checkpoint chosen on validation UAR.
3. **Packaging.** The head's checkpoint without optimiser state, machine paths or training
   data locations, with the held-out temperature, as ``<name>.ckpt``; ``release.json`` with
   the classes, licence, corpora and file counts, data fingerprint, seed, the encoder's
   name and weights' SHA-256, both temperatures, and the reference predictions of the
   fixed clips (``originals/``: the corpora's own WAV files, the decode path included).

``check`` trains step 2 again into a temporary folder and compares its predictions on the
fixed clips with the recorded ones (the tolerance is stated in docs/MODEL_CARD.md).
``perturb`` adds uniform noise within each encoder weight's float16 rounding interval
(half a float16 unit in the last place either side: what separates the float16-derived
copy of Whisper base used here from OpenAI's float32 original) and measures how far the
released model's probabilities on the fixed clips move.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RELEASE_DIR = REPO / "src" / "ser_lightning" / "released"
NAME = "ser-general-whisper-base-v1"
LICENCE = "CC BY-NC-SA 4.0"
#: Release corpora with 3 or more speakers: each is held out once for the temperature.
HELD_OUT = ("ravdess", "nemo", "savee", "ased")


def _compose(overrides: list[str], out: Path):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=release", "logger=csv", "trainer=cpu", "callbacks.progress_bar.refresh_rate=0",
                                          *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def _train(overrides: list[str], out: Path) -> Path:
    """Train the recipe into ``out``; the best checkpoint."""
    from ser_lightning.training.pipeline import train

    cfg = _compose(overrides, out)
    train(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    return out / metrics["best_checkpoint"]


def _held_out_logits(overrides: list[str], out: Path, corpus: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train without ``corpus``; its files' logits (uncalibrated, training statistics) and targets."""
    from ser_lightning.baselines.functionals import prepare_functionals
    from ser_lightning.inference.functionals import FunctionalsPredictor

    fold = [*overrides, "data.split=corpus", f"data.test_corpus={corpus}"]
    best = _train(fold, out)
    data = prepare_functionals(_compose(fold, out / "scoring"))
    predictor = FunctionalsPredictor.from_checkpoint(best, calibration="none", extractor=data.extractor)
    test = data.parts["test"]
    known = [i for i, c in enumerate(np.asarray(data.class_names)[test.y]) if c in predictor.class_names]
    logits = predictor.logits(test.x[known])
    targets = np.array([predictor.class_names.index(data.class_names[test.y[i]]) for i in known])
    uar = _uar(logits.argmax(1), targets, len(predictor.class_names))
    return logits, targets, {"corpus": corpus, "files": len(known), "uar_all_classes": uar, "classes": predictor.class_names}


def _held_out_ece(logits: list[np.ndarray], targets: list[np.ndarray], folds: list[dict]) -> None:
    """Each fold's ECE (%) at T = 1 and at the temperature fitted on the *other* held-out
    corpora (what the release's temperature is to a corpus it never saw), added to ``folds``."""
    from ser_lightning.evaluation.calibration import calibration_metrics, fit_temperature
    from ser_lightning.inference.calibration import calibrated_probabilities

    for i, fold in enumerate(folds):
        others = [j for j in range(len(folds)) if j != i]
        t = fit_temperature(np.concatenate([logits[j] for j in others]), np.concatenate([targets[j] for j in others]))
        fold["temperature_from_other_folds"] = float(t)
        fold["ece_at_1"] = 100 * calibration_metrics(calibrated_probabilities(logits[i], 1.0, None), targets[i])["ece"]
        fold["ece"] = 100 * calibration_metrics(calibrated_probabilities(logits[i], t, None), targets[i])["ece"]
        print(f"held out {fold['corpus']}: ECE {fold['ece_at_1']:.1f} % at T = 1, {fold['ece']:.1f} % at T = {t:.2f} "
              f"(fitted on the other held-out corpora)")


def _uar(pred: np.ndarray, targets: np.ndarray, k: int) -> float:
    recalls = [float((pred[targets == c] == c).mean()) for c in range(k) if (targets == c).any()]
    return float(np.mean(recalls))


def _fixed_clips() -> list[Path]:
    root = Path(os.environ.get("SER_DATA_DIR") or REPO / "data") / "originals"
    clips = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav")
    if not clips:
        raise SystemExit(f"no reference clips under {root} (set SER_DATA_DIR to the shared corpora)")
    return clips


def _reference(ckpt: Path, clips: list[Path], extractor=None) -> dict[str, list[float]]:
    from ser_lightning.inference.functionals import FunctionalsPredictor

    predictor = FunctionalsPredictor.from_checkpoint(ckpt, extractor=extractor, silence_dbfs=None)
    root = clips[0].parents[2]
    return {str(p.relative_to(root)): [round(float(pr.probabilities[c]), 6) for c in predictor.class_names]
            for p, pr in zip(clips, predictor.predict([str(p) for p in clips]), strict=True)}


def _package(best: Path, temperature: dict, dest: Path) -> dict:
    """The head's checkpoint without optimiser state or machine paths, with ``temperature``."""
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    hp = dict(ckpt["hyper_parameters"])
    validation_calibration = hp.get("calibration")
    hp["calibration"] = temperature
    features = json.loads(json.dumps(hp["features"]))
    features["encoder"]["weights"] = None  # found on the user's machine ($SER_ENCODERS, the Hugging Face cache)
    hp["features"] = features
    settings = dict(hp.get("data_settings") or {})
    settings.pop("root", None)
    hp["data_settings"] = settings
    hp["release"] = NAME
    torch.save({"hyper_parameters": hp, "state_dict": ckpt["state_dict"]}, dest)
    return validation_calibration or {}


def build(args) -> int:
    from ser_lightning.evaluation.calibration import fit_calibration

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    overrides = list(args.set or [])
    # 1. the temperature on held-out corpora
    pooled_logits, pooled_targets, folds = [], [], []
    for corpus in HELD_OUT:
        logits, targets, info = _held_out_logits(overrides, work / f"without-{corpus}", corpus)
        pooled_logits.append(logits)
        pooled_targets.append(targets)
        folds.append(info)
        print(f"held out {corpus}: {info['files']} files, UAR {100 * info['uar_all_classes']:.1f} % (all classes, T = 1)")
    if len({tuple(f["classes"]) for f in folds}) != 1:  # each class has another source corpus: one class order
        raise SystemExit(f"the held-out folds' models have different classes: {[f['classes'] for f in folds]}")
    temperature = fit_calibration(np.concatenate(pooled_logits), np.concatenate(pooled_targets), method="temperature",
                                  fitted_on="held-out corpora: " + ", ".join(HELD_OUT) + " (each scored by a model trained without it)")
    print(f"temperature {temperature['temperature']:.3f} (NLL {temperature['nll_before']:.3f} -> {temperature['nll_after']:.3f})")
    _held_out_ece(pooled_logits, pooled_targets, folds)
    # 2. the model on every release corpus
    final = work / "final"
    best = _train(overrides, final)
    # 3. packaging and record
    RELEASE_DIR.mkdir(parents=True, exist_ok=True)
    dest = RELEASE_DIR / f"{NAME}.ckpt"
    validation_calibration = _package(best, temperature, dest)
    clips = _fixed_clips()
    metrics = json.loads((final / "metrics.json").read_text())
    hp = torch.load(dest, map_location="cpu", weights_only=True)["hyper_parameters"]
    cfg = _compose(overrides, final)
    record = {
        "name": NAME, "file": dest.name, "licence": LICENCE, "classes": hp["class_names"],
        "encoder": {"name": hp["features"]["encoder"]["name"], "sha256": hp["features"]["encoder"]["sha256"],
                    "window": hp["features"]["encoder"]["window"], "stats": hp["features"]["encoder"]["stats"]},
        "head": {"hidden": hp["hidden"], "standardize": hp["standardize"], "layers": (hp.get("layer_blocks") and "weighted") or "concat"},
        "training": {"corpora": list(cfg.data.reader_args.corpora), "calm": str(cfg.data.reader_args.calm), "seed": int(cfg.seed),
                     "files": {"train": metrics["n_train"], "val": metrics["n_val"], "test": metrics["n_test"]},
                     "split": metrics["split"], "split_fingerprint": metrics["split_fingerprint"],
                     "data_fingerprint": hp.get("data_settings", {}).get("fingerprint"),
                     "command": "python scripts/release.py build " + " ".join(f"--set {s}" for s in overrides),
                     "val_uar": metrics["val/uar"], "test_uar_own_speakers": metrics["test/uar"]},
        "calibration": {"held_out": temperature, "held_out_folds": folds, "validation_of_training_corpora": validation_calibration},
        "reference": {"clips": "SER_DATA_DIR/originals/*.wav (15 files as the corpora ship them)",
                      "probabilities": _reference(dest, clips)},
        "checkpoint_sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
        "checkpoint_bytes": dest.stat().st_size,
    }
    (RELEASE_DIR / "release.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"released {dest} ({dest.stat().st_size / 1e3:.0f} kB), record {RELEASE_DIR / 'release.json'}")
    return 0


def check(args) -> int:
    from ser_lightning.released import record, released_checkpoint

    rec = record()
    with tempfile.TemporaryDirectory() as tmp:
        best = _train(list(args.set or []), Path(tmp) / "final")
        rebuilt = Path(tmp) / "rebuilt.ckpt"
        _package(best, rec["calibration"]["held_out"], rebuilt)
        got = _reference(rebuilt, _fixed_clips())
    want = rec["reference"]["probabilities"]
    diff = max(abs(a - b) for k in want for a, b in zip(want[k], got[k], strict=True))
    same = sum(int(np.argmax(want[k]) == np.argmax(got[k])) for k in want)
    verdict = (f"largest probability difference {diff:.1e} over {len(want)} clips, the same label on {same} of {len(want)} "
               f"(tolerance {args.tolerance:g})")
    print(f"rebuilt vs {released_checkpoint().name}: {verdict}")
    _add_to_record("rebuild_check", verdict)
    return 0 if diff <= args.tolerance else 1


def _add_to_record(key: str, value) -> None:
    """Write ``key`` into release.json (the card reads it)."""
    from ser_lightning.released import RECORD, record

    rec = dict(record())
    rec[key] = value
    RECORD.write_text(json.dumps(rec, indent=2) + "\n")
    record.cache_clear()


def perturb(args) -> int:
    from ser_lightning.encoders.embedding import EncoderEmbedding
    from ser_lightning.released import record, released_checkpoint

    rec = record()
    want = rec["reference"]["probabilities"]
    clips = _fixed_clips()
    worst, flips = 0.0, 0
    for draw in range(args.draws):
        emb = EncoderEmbedding(rec["encoder"]["name"], window=rec["encoder"]["window"], stats=rec["encoder"]["stats"])
        gen = torch.Generator().manual_seed(draw)
        with torch.no_grad():
            for p in emb.encoder.parameters():
                half = torch.from_numpy(np.spacing(np.abs(p.detach().numpy()).astype(np.float16)).astype(np.float32)) / 2
                p.add_((torch.rand(p.shape, generator=gen) * 2 - 1) * half)
        got = _reference(released_checkpoint(), clips, extractor=emb)
        d = max(abs(a - b) for k in want for a, b in zip(want[k], got[k], strict=True))
        f = sum(int(np.argmax(want[k]) != np.argmax(got[k])) for k in want)
        worst, flips = max(worst, d), flips + f
        print(f"draw {draw}: largest probability change {d:.2e}, labels changed {f} of {len(want)}")
    verdict = (f"every encoder weight moved by uniform noise within its float16 rounding interval ({args.draws} draws): "
               f"the probabilities of the {len(want)} fixed clips moved by at most {worst:.1e}, and {flips} of "
               f"{args.draws * len(want)} labels changed")
    print(verdict)
    _add_to_record("perturbation", verdict)
    return 0


#: Each release corpus: language, and why a model learnt from it may be shared (docs/MODEL_CARD.md).
CORPORA = {
    "ravdess": ("RAVDESS (Livingstone & Russo, 2018)", "English (North American)", "CC BY-NC-SA 4.0: adaptations allowed, "
                "non-commercial, shared alike: the model is released under the same licence."),
    "nemo": ("nEMO (Christop, 2024)", "Polish", "CC BY-NC-SA 4.0: as RAVDESS."),
    "savee": ("SAVEE (Haq & Jackson)", "English (British)", "free for research use after registration: the model is for "
              "non-commercial research use only, which keeps that use; the recordings themselves are not shared."),
    "ased": ("ASED v1 (Retta et al., 2022)", "Amharic", "for research, with citation: research use only, the corpus is cited "
             "here; no recording is shared."),
    "crema_d": ("CREMA-D, 12-file sample (Cao et al., 2014)", "English (North American)", "Open Database License: a model "
                "is a produced work, allowed with attribution (given here)."),
    "tess": ("TESS (Dupuis & Pichora-Fuller, 2010)", "English (Canadian)", "CC BY-NC-ND 4.0: no adaptations, so NOT used "
             "to train or calibrate the released model (only to evaluate the recipe, loco7)."),
    "turev": ("TurEV-DB (Canpolat et al., 2020)", "Turkish", "CC BY-NC-ND 4.0: as TESS, NOT used for the released model."),
}
MODE_TITLES = {"training": "nothing of the speaker (training statistics; the default)", "enrol8": "8 enrolment clips of the speaker",
               "inputset": "a folder of unlabelled recordings from the same setting (input-set statistics)",
               "transductive": "all of the speaker's recordings (transductive, upper bound)", "utterance": "nothing of the speaker"}


def _records(protocol: str, tag: str) -> list[dict]:
    folder = REPO / "docs" / "results" / protocol / tag
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _genders() -> dict[str, str]:
    """``corpus:speaker`` -> gender, from the corpora under ``$SER_DATA_DIR``."""
    from ser_lightning.data.corpora import read_corpus

    root = Path(os.environ.get("SER_DATA_DIR") or REPO / "data")
    out = {}
    for corpus in CORPORA:
        folder = root / ("savee" if corpus == "savee" else corpus)
        try:
            rows = read_corpus(corpus, folder)
        except Exception:  # noqa: BLE001 - a corpus not here has no genders to give
            continue
        out.update({r.speaker: r.gender for r in rows if r.gender})  # speaker ids carry their corpus ("savee:DC")
    return out


def _uar_of(confusions: list) -> float:
    from ser_lightning.metrics import war_uar

    return 100 * war_uar(np.sum([np.asarray(c) for c in confusions], axis=0))[1]


def card(args) -> int:
    """docs/MODEL_CARD.md from release.json and the run records of the release's recipe."""
    from ser_lightning.released import record

    rec = record()
    tag = args.tag
    loco = sorted(_records("loco7", tag), key=lambda r: r["job"])
    if not loco:
        raise SystemExit(f"no loco7 run records of recipe {tag} in docs/results/loco7/{tag}")
    modes = [m for m in ("training", "enrol8", "inputset", "transductive", "utterance") if m in loco[0]["metrics"]["test_by_stats"]]
    genders = _genders()
    lines = []
    w = lines.append
    w("---")
    w("license: cc-by-nc-sa-4.0\nlanguage: [en, pl, am]\nlibrary_name: ser-lightning\ntags: [speech-emotion-recognition, audio-classification, whisper]")
    w("base_model: openai/whisper-base\nmetrics: [uar, war, ece]\n---\n")
    w(f"# {rec['name']}\n")
    w(f"<!-- Written by `python scripts/release.py card --tag {tag}` from src/ser_lightning/released/release.json and the run "
      f"records in docs/results/ (RESULTS.md); edit the script, not this file. -->\n")
    w(f"A speech emotion recognition model anyone can run on their own recordings without training: OpenAI's Whisper base "
      f"encoder, frozen, and a small head ({'linear' if not rec['head']['hidden'] else 'MLP ' + str(rec['head']['hidden'])}, "
      f"embedding standardised by its {rec['head']['standardize']} statistics) trained on {len(rec['training']['corpora'])} "
      f"acted emotional-speech corpora in {len({CORPORA[c][1].split(' ')[0] for c in rec['training']['corpora']})} languages. "
      f"It ships with the package (`{rec['file']}`, {rec['checkpoint_bytes'] / 1e3:.0f} kB); the encoder comes from Whisper's "
      f"own distribution.\n")
    w("```bash\npython -m ser_lightning.cli.download encoder=whisper_base     # once: the encoder (MIT licence, about 290 MB)\n"
      "python predict.py input=my_recording.wav                          # no ckpt_path: this model\n"
      "python serve.py                                                   # the browser page, http://127.0.0.1:8000/\n```\n")
    w("## Model details\n")
    w(f"- **Classes** ({len(rec['classes'])}): {', '.join(rec['classes'])}. RAVDESS's *calm* is merged into *neutral*: it is "
      f"the only source of that class here, and a user's unemotional speech should read as neutral rather than split "
      f"between two near-synonyms.")
    w(f"- **Encoder**: `{rec['encoder']['name']}`, window `{rec['encoder']['window']}` (positions cut to the clip), "
      f"embedding `{rec['encoder']['stats']}` (each of the 7 hidden states' mean over time, the last one's standard "
      f"deviation: 4,096 numbers). Weights SHA-256 `{rec['encoder']['sha256']}` (the float16-derived copy; OpenAI's float32 "
      f"original differs within float16 rounding, see below).")
    w(f"- **Calibration**: temperature T = {rec['calibration']['held_out']['temperature']:.3f}, fitted on corpora the model "
      f"did not learn from: each of {', '.join(f['corpus'] for f in rec['calibration']['held_out_folds'])} scored by the "
      f"recipe trained without it, all files together (the temperature fitted on the training corpora's validation "
      f"speakers would be {rec['calibration']['validation_of_training_corpora'].get('temperature', float('nan')):.3f}, "
      f"sharper, and over-confident on a new corpus).")
    w(f"- **Licence**: the model **{rec['licence']}**, for non-commercial research use (it inherits the strictest terms of "
      f"its training data, below); the code is MIT. `predict.py`, `stream.py`, `serve.py` and `eval.py` print this when "
      f"they use it.")
    w(f"- **Rebuild**: `{rec['training']['command'].strip()}` (seed {rec['training']['seed']}, split fingerprint "
      f"`{rec['training']['split_fingerprint']}`). `python scripts/release.py check` rebuilds it and compares the "
      f"probabilities of {len(rec['reference']['probabilities'])} fixed clips"
      + (f": {rec['rebuild_check']}" if rec.get("rebuild_check") else "") + ".")
    if rec.get("perturbation"):
        w(f"- **Float16 rounding** (`python scripts/release.py perturb`): {rec['perturbation']}")
    w("\n## Training data\n")
    w("| corpus | language | used | licence and reasoning |\n|---|---|---|---|")
    for c, (title, lang, why) in CORPORA.items():
        w(f"| {title} | {lang} | {'yes' if c in rec['training']['corpora'] else 'no'} | {why} |")
    files = rec["training"]["files"]
    w(f"\nFiles: {files['train']} train, {files['val']} validation (the checkpoint is chosen on their UAR), {files['test']} "
      f"test (held-out speakers of each corpus): {rec['training']['split']}. Its own held-out speakers: test UAR "
      f"{100 * rec['training']['test_uar_own_speakers']:.1f} % (validation {100 * rec['training']['val_uar']:.1f} %).\n")
    w("## Results\n")
    w(f"The release's recipe (`{tag}`) under leave-one-corpus-out over the seven shared corpora (`loco7`: each job trains on "
      f"six, TESS and TurEV-DB included there, and tests on every file of the seventh, scored on its own classes; "
      f"[RESULTS.md](RESULTS.md), loco7). Test UAR %, by what the model knows of the speaker at test time:\n")
    w("| held-out corpus | language | files | " + " | ".join(MODE_TITLES[m] for m in modes) + " | ECE % (T of its run) |")
    w("|---|---|---|" + "---|" * len(modes) + "---|")
    means = {m: [] for m in modes}
    for r in loco:
        corpus = r["job"].removeprefix("test-")
        m = r["metrics"]
        row = [f"{100 * m['test_by_stats'][mode]['uar']:.1f}" for mode in modes]
        for mode in modes:
            means[mode].append(100 * m["test_by_stats"][mode]["uar"])
        w(f"| {corpus} | {CORPORA.get(corpus, (corpus, '?'))[1]} | {m['n_test']} | " + " | ".join(row) + f" | {100 * m['test/ece']:.1f} |")
    w("| **mean** | | | " + " | ".join(f"**{np.mean(v):.1f}**" for v in means.values()) + " | |")
    w("\nBy gender (the held-out corpora's speakers pooled, training statistics):\n")
    w("| gender | speakers | test UAR % |\n|---|---|---|")
    headline = "training" if "training" in modes else modes[0]
    for g in ("female", "male"):
        cms = [cm for r in loco for spk, cm in r["metrics"]["test_by_stats"][headline]["per_speaker_confusion"].items()
               if genders.get(spk) == g]
        if cms:
            w(f"| {g} | {len(cms)} | {_uar_of(cms):.1f} |")
    w("\nCalibration on corpora the model never heard (ECE %, 15 bins; each corpus with the temperature fitted on the "
      "*other* held-out corpora, as the release's temperature is to yours):\n")
    w("| held-out corpus | files | UAR % (all classes) | ECE at T = 1 | ECE at the held-out T | T |\n|---|---|---|---|---|---|")
    for f in rec["calibration"]["held_out_folds"]:
        if "ece" in f:
            w(f"| {f['corpus']} | {f['files']} | {100 * f['uar_all_classes']:.1f} | {f['ece_at_1']:.1f} | {f['ece']:.1f} | "
              f"{f['temperature_from_other_folds']:.2f} |")
    for protocol, what in (("ravdess_kfold", "RAVDESS 5-fold over actors"), ("savee_loso", "SAVEE leave-one-speaker-out"),
                           ("tess_cross", "TESS, train on one speaker, test on the other")):
        recs = _records(protocol, args.single_corpus_tag)
        if recs:
            vals = [100 * r["metrics"]["test/uar"] for r in recs]
            w(f"\nThe same head trained on one corpus alone, {what} (`{args.single_corpus_tag}`): test UAR "
              f"{np.mean(vals):.1f} ± {np.std(vals):.1f} % over {len(vals)} folds (RESULTS.md, {protocol}).")
    w("\n## Intended use\n")
    w("Research on emotional expression in speech: describing which emotion a recording most resembles among seven acted "
      "categories, for exploring recordings, prototyping, teaching and as a baseline. Read its output as a probability "
      "over acted categories, not as what the speaker feels.\n")
    w("**Not fit for**: clinical, diagnostic or mental-health decisions; hiring, admission, credit, insurance or any "
      "decision about a person; surveillance, policing, border control or lie detection; monitoring of employees, "
      "students or customers; any commercial use (licence).\n")
    w("## Limits\n")
    w("- Every training corpus is **acted** (actors reading fixed sentences with a requested emotion). Natural, "
      "spontaneous speech expresses emotion less and less clearly; acted-to-natural studies report large drops. No "
      "natural-speech corpus is available here, so the size of that drop for this model is **not measured**.")
    w(f"- On a corpus it never heard, expect about {np.mean(means[headline]):.0f} % UAR with nothing of the speaker "
      f"(the table above), far below its {100 * rec['training']['test_uar_own_speakers']:.0f} % on new speakers of its own corpora.")
    w("- Languages: trained on English, Polish and Amharic speech; loco7 tests it on Canadian English and Turkish too. Other "
      "languages and cultures are untested.")
    w("- Seven classes only; mixed, weak or other emotions (boredom, contempt, pain) are forced into them. Use "
      "`min_confidence=` to abstain (docs/CALIBRATION.md).")
    w("\n## Modes a user can choose\n")
    for mode in modes:
        w(f"- **{MODE_TITLES[mode]}**: loco7 mean {np.mean(means[mode]):.1f} % UAR. " + {
            "training": "`python predict.py input=...` (nothing else needed).",
            "enrol8": "`python predict.py input=... enrol=<8 clips of the speaker> speaker_stats=enrol`.",
            "inputset": "`python predict.py input=<a folder of your recordings> speaker_stats=inputs` (at least 20 recordings).",
            "transductive": "all of one speaker's recordings at once: `speaker_stats=inputs` on a folder holding only that speaker.",
            "utterance": ""}[mode])
    other = sorted(_records("loco7", args.statistics_tag), key=lambda r: r["job"])
    if other:
        extra = [m for m in ("training", "enrol8", "inputset", "transductive") if m in other[0]["metrics"]["test_by_stats"]]
        w(f"\nThe released head standardises with its training statistics, so it has no other mode: validation chose it "
          f"over the same head with each corpus standardised by itself (`{args.statistics_tag}`, RESULTS.md loco7), which "
          f"is what to train (`python train.py experiment=general model.standardize=corpus`) to use a speaker's or a "
          f"setting's own recordings. Its loco7 means, same protocol:")
        for mode in extra:
            vals = [100 * r["metrics"]["test_by_stats"][mode]["uar"] for r in other]
            w(f"- {MODE_TITLES[mode]}: {np.mean(vals):.1f} % UAR over {len(vals)} held-out corpora"
              + {"inputset": " (`predict.py speaker_stats=inputs` on a folder of at least 20 recordings)",
                 "enrol8": " (`predict.py enrol=<8 clips> speaker_stats=enrol`)", "training": "", "transductive": ""}[mode] + ".")
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--set", action="append", help="extra train.py overrides of experiment=release")
    b.add_argument("--work", default=str(REPO / "outputs" / "release"))
    c = sub.add_parser("check")
    c.add_argument("--set", action="append")
    c.add_argument("--tolerance", type=float, default=1e-3)
    p = sub.add_parser("perturb")
    p.add_argument("--draws", type=int, default=3)
    d = sub.add_parser("card")
    d.add_argument("--tag", default="whisper_base-probe-training",
                   help="the loco7 recipe tag of the release's recipe (docs/results/loco7/<tag>)")
    d.add_argument("--single-corpus-tag", default="whisper_base-probe-training")
    d.add_argument("--statistics-tag", default="whisper_base-probe-corpus", help="the same head standardised per corpus")
    d.add_argument("--out", default=str(REPO / "docs" / "MODEL_CARD.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    return {"build": build, "check": check, "perturb": perturb, "card": card}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
