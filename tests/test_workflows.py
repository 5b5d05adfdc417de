"""Experiment workflows through the real command line (subprocess), on tiny settings:
multirun with a failing job, Optuna search, resume after a kill, DDP on CPU."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ser_lightning.evaluation.aggregate import aggregate
from ser_lightning.training.wandb_setup import read_offline_run
from tests.conftest import REPO

pytestmark = pytest.mark.slow

TINY = ["trainer=cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1", "data=savee", "data.batch_size=8", "callbacks.progress_bar.refresh_rate=0"]


def train_cli(args: list[str], data_dir: Path, cache_dir: Path, timeout: int = 400, **kwargs):
    env = {**os.environ, "SER_DATA_DIR": str(data_dir), "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args, f"paths.cache_dir={cache_dir}"],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO, **kwargs)


def test_multirun_failing_job_is_logged_others_run_each_has_own_wandb_run(tmp_path, data_dir, cache_dir):
    sweep = tmp_path / "sweep"
    # job 2's Trainer argument is invalid (a Lightning MisconfigurationException, not a user error)
    proc = train_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}", *TINY,
                      "logger=wandb", "+trainer.gradient_clip_algorithm=norm,value,bogus"], data_dir, cache_dir)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # the sweep reports the failure
    assert "bogus is invalid" in proc.stderr
    for job in ("0", "1"):
        assert (sweep / job / "metrics.json").is_file(), (sweep / job / "train.log").read_text()[-2000:]
    assert not (sweep / "2" / "metrics.json").exists()
    failed_log = (sweep / "2" / "train.log").read_text()
    assert "job failed" in failed_log and "MisconfigurationException" in failed_log and "Traceback" in failed_log
    run_ids, algorithms = set(), []
    for job in ("0", "1"):
        runs = list((sweep / job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1
        run_ids.add(runs[0].name.rsplit("-", 1)[-1])
        run = read_offline_run(runs[0])
        algorithms.append(run["config"]["trainer"]["gradient_clip_algorithm"])
        assert "test/uar" in run["summary"]
    assert len(run_ids) == 2 and algorithms == ["norm", "value"]  # separate runs, each with its own config
    rows = aggregate(sweep)
    by_algorithm = {r["trainer.gradient_clip_algorithm"]: r for r in rows}
    assert by_algorithm["bogus"]["failed"] == 1 and by_algorithm["bogus"]["test UAR mean"] is None
    assert by_algorithm["norm"]["runs"] == 1 and 0 <= by_algorithm["norm"]["test UAR mean"] <= 100
    assert "| bogus | 0 | 1 |" in (sweep / "summary.md").read_text()


def test_optuna_search_two_trials_writes_study_results(tmp_path, data_dir, cache_dir):
    sweep = tmp_path / "optuna"
    proc = train_cli(["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", *TINY,
                      "logger=csv", "model.backbone.dropout=interval(0.1,0.2)"], data_dir, cache_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with (sweep / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        job = sweep / t["job"]
        metrics = json.loads((job / "metrics.json").read_text())
        assert float(t["value"]) == pytest.approx(metrics["val/uar"])  # the value is the job's validation UAR
        config = yaml.safe_load((job / "config.yaml").read_text())
        assert config["model"]["optimizer"]["lr"] == pytest.approx(float(t["model.optimizer.lr"]))
        assert str(config["model"]["backbone"]["channels"]).replace(" ", "") == t["model.backbone.channels"]
        assert 1e-4 <= float(t["model.optimizer.lr"]) <= 1e-2
        assert 0.1 <= float(t["model.backbone.dropout"]) <= 0.2  # the command line replaced this dimension
        assert config["model"]["backbone"]["dropout"] == pytest.approx(float(t["model.backbone.dropout"]))
        # data.batch_size=8 on the command line fixes that dimension of the search space
        assert "data.batch_size" not in t and config["data"]["batch_size"] == 8
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["n_complete"] == 2 and results["seed"] == 42
    assert results["best_value"] == pytest.approx(max(float(t["value"]) for t in trials))
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.backbone.channels",
                                           "model.backbone.dropout", "augment.noise.p", "augment.specaugment.p",
                                           "augment.specaugment.time_mask"}


def test_killed_run_resumes_from_last_ckpt_to_the_same_epoch_count(tmp_path, data_dir, cache_dir):
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=3", "+trainer.limit_train_batches=4", "logger=csv", f"hydra.run.dir={run_dir}"]
    args = [a for a in args if a != "+trainer.limit_train_batches=2"]
    env = {**os.environ, "SER_DATA_DIR": str(data_dir), "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, f"paths.cache_dir={cache_dir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # killed, not finished
    assert last.exists() and not (run_dir / "metrics.json").exists()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert killed_at < 2
    resumed = train_cli([a for a in args if not a.startswith("hydra.run.dir")] + [f"hydra.run.dir={run_dir}", "resume=true"],
                        data_dir, cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {last}" in resumed.stdout + resumed.stderr
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["epochs"] == 3  # the same number of epochs as an uninterrupted run
    # 3 epochs x 4 batches: the optimizer steps of an uninterrupted run, none repeated or lost
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 12
    with (run_dir / "history.csv").open() as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == [0, 1, 2]  # the curves before the kill are kept in last.ckpt


def test_ddp_on_cpu_with_two_processes(tmp_path, data_dir, cache_dir):
    run_dir = tmp_path / "ddp"
    proc = train_cli(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=false",
                      *[a for a in TINY if a != "trainer=cpu"], "logger=csv", f"hydra.run.dir={run_dir}"], data_dir, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in text and "Starting with 2 processes" in text
    report = json.loads((run_dir / "metrics.json").read_text())
    # training ran on 2 ranks; rank 0 scored the best checkpoint on the whole test part, once
    assert sum(map(sum, report["confusion_matrix"])) == report["n_test"] > 16
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 re-ran train.py into the same run dir
