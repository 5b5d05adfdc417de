"""The ser-* console commands ([project.scripts]) run the same Hydra apps as the scripts
at the repository root, from any working directory."""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import tomllib

from tests.conftest import REPO


def test_every_console_command_names_a_function():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"ser-train", "ser-predict", "ser-eval", "ser-export", "ser-stream"} <= set(scripts)
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_ser_predict_runs_from_another_directory_with_relative_paths(ckpt, originals, tmp_path):
    """Relative input= and output= are the caller's directory's; the configs are the checkout's."""
    work = tmp_path / "elsewhere"
    (work / "audio").mkdir(parents=True)
    (work / "audio" / "clip.wav").write_bytes((originals / "savee" / "ALL" / "JK_n10.wav").read_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    env.pop("PROJECT_ROOT", None)
    code = "import sys; from ser_lightning.cli.console import predict; sys.argv[0] = 'ser-predict'; predict()"
    proc = subprocess.run([sys.executable, "-c", code, f"ckpt_path={ckpt}", "input=audio/clip.wav", "output=preds.csv",
                           "progress=false", f"hydra.run.dir={tmp_path / 'run'}"], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with (work / "preds.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == ["audio/clip.wav"] and rows[0]["error"] == ""


def test_ser_predict_exits_2_with_one_line_on_a_user_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "from ser_lightning.cli.console import predict; predict()"
    proc = subprocess.run([sys.executable, "-c", code, f"ckpt_path={tmp_path / 'missing.ckpt'}", "input=x.wav",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_the_configs_come_from_ser_config_dir_else_the_checkout(tmp_path, monkeypatch, capsys):
    import pytest

    from ser_lightning.cli import common

    monkeypatch.delenv("SER_CONFIG_DIR", raising=False)
    assert common.config_dir() == (REPO / "conf").resolve()  # an editable install: the checkout's conf/
    monkeypatch.setattr(common, "CHECKOUT", tmp_path)  # a wheel: no conf/ beside the package
    with pytest.raises(SystemExit) as info:
        common.config_dir()
    assert info.value.code == 2 and "SER_CONFIG_DIR" in capsys.readouterr().err
    monkeypatch.setenv("SER_CONFIG_DIR", str(REPO / "conf"))
    assert common.config_dir() == (REPO / "conf").resolve()
