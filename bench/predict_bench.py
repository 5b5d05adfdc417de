"""Prediction speed on CPU: 3-s clip latency, a folder of 1000 clips, a 1-hour recording.

    nice -n 10 python -m bench.predict_bench [--ckpt best.ckpt | --model cnn2d] [--data /work/shared/data] [--repeats 3]

Without ``--ckpt`` the model is the default ``model=cnn2d`` (conf/model/cnn2d.yaml; another
with ``--model``, e.g. ``ecapa``, ``conformer``) with
the default ``features=logmel`` front-end and 7 classes, freshly initialised: speed does
not depend on the weights. Every figure is the median over ``--repeats`` runs (latency:
over all timed calls), with the load average of the machine printed beside it, because
the benchmark machine may be shared. Results are printed as a Markdown table and saved
as JSON (``--json``).

What is timed (wall clock, ``time.perf_counter``):
CPU time (``time.process_time``, all threads) is recorded beside each wall time: on a
busy machine it is close to what the same work takes on an idle core.

- latency: ``Predictor.predict(path)`` on one 3.0-s 16 kHz WAV file (decode, window,
  log-mel, CNN, softmax), after 10 warm-up calls; also the same clip as a NumPy array,
  and the exported ONNX model on onnxruntime (``--onnx``).
- folder: ``Predictor.predict(files)`` over 1000 real clips (RAVDESS speech, 16 kHz
  FLAC, 3-5 s each); RTF = seconds of compute / seconds of audio.
- ``--threads 1`` is the right setting on a machine shared with other jobs: with
  several threads per process, busy cores make each thread wait for the slowest.
- 1 hour: ``Predictor.predict`` on a 1-hour 44.1 kHz stereo 16-bit WAV (real RAVDESS
  speech with its pauses, looped) in a fresh process; RTF and the process's peak
  resident memory (VmHWM) next to its resident memory before the call; the same for a
  10-minute file, to show that peak memory does not grow with the length.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bench.common import REPO
from ser_lightning.data.audio import fit_length, load_audio
from ser_lightning.inference.predictor import Predictor

CLASSES = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]


def default_checkpoint(path: Path, model: str = "cnn2d") -> Path:
    """The default ``model`` (conf/model/<model>.yaml; cnn2d) + log-mel model of conf/,
    untrained, saved like train.py does."""
    from omegaconf import OmegaConf

    from ser_lightning.transforms.features import FeatureConfig
    from ser_lightning.models.module import SERModule

    model_cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"{model}.yaml"))
    features = FeatureConfig.from_dict(OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "features" / "logmel.yaml")))
    module = SERModule(model_cfg["backbone"], CLASSES, features.to_dict(), 3.0)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def peak_rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def bench_latency(ckpt: Path, data: Path, tmp: Path, calls: int, onnx: bool) -> dict:
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    clip = fit_length(load_audio(data / "ravdess" / "Actor_01" / "03-01-05-01-01-01-01.flac", 16000), 48000)
    path = tmp / "clip_3s.wav"
    sf.write(str(path), clip, 16000, subtype="PCM_16")
    out = {"load_before": load(), "torch_threads": torch.get_num_threads()}
    for name, arg in (("file", [path]), ("array", [(clip, 16000)])):
        for _ in range(10):
            predictor.predict(arg)
        times, cpu = [], []
        for _ in range(calls):
            t, c = time.perf_counter(), time.process_time()
            predictor.predict(arg)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[f"{name}_median_ms"] = 1000 * statistics.median(times)
        out[f"{name}_p90_ms"] = 1000 * float(np.percentile(times, 90))
        out[f"{name}_cpu_median_ms"] = 1000 * statistics.median(cpu)
    if onnx:
        import onnxruntime as ort

        from ser_lightning.inference.export import export_checkpoint

        model = export_checkpoint(ckpt, "onnx", tmp / "model.onnx").path
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the same thread budget as PyTorch
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        batch = clip[None].astype(np.float32)
        for _ in range(10):
            session.run(None, {"waveform": batch})
        times, cpu = [], []
        for _ in range(calls):
            t, c = time.perf_counter(), time.process_time()
            session.run(None, {"waveform": batch})
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out["onnx_median_ms"] = 1000 * statistics.median(times)
        out["onnx_cpu_median_ms"] = 1000 * statistics.median(cpu)
        out["onnx_p90_ms"] = 1000 * float(np.percentile(times, 90))
    out["load_after"] = load()
    return out


def bench_folder(ckpt: Path, data: Path, repeats: int, n_files: int = 1000) -> dict:
    files = sorted((data / "ravdess").rglob("*.flac"))[:n_files]
    audio_seconds = sum(sf.info(str(f)).duration for f in files)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    predictor.predict(files[:32])  # warm-up
    runs = []
    for _ in range(repeats):
        before = load()
        t, c = time.perf_counter(), time.process_time()
        results = predictor.predict(files, batch_size=32)
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        assert all(r.error is None for r in results)
        runs.append({"seconds": elapsed, "cpu_seconds": cpu, "load_before": before, "load_after": load()})
    elapsed = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    return {"files": len(files), "audio_seconds": audio_seconds, "median_seconds": elapsed, "files_per_second": len(files) / elapsed,
            "rtf": elapsed / audio_seconds, "median_cpu_seconds": cpu, "cpu_rtf": cpu / audio_seconds, "runs": runs}


def write_long_recording(data: Path, path: Path, seconds: int, sr: int = 44100) -> None:
    """Real RAVDESS speech (with its pauses), looped to ``seconds``, 44.1 kHz stereo PCM_16."""
    clips = [load_audio(f, sr) for f in sorted((data / "ravdess" / "Actor_01").glob("*.flac"))]
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, subtype="PCM_16") as fh:
        written, i = 0, 0
        while written < seconds * sr:
            block = clips[i % len(clips)][: seconds * sr - written]
            fh.write(np.stack([block, 0.9 * block], axis=1))
            written += block.size
            i += 1


LONG_CHILD = """
import json, sys, time
import torch
torch.set_num_threads({threads})
from bench.predict_bench import peak_rss_mb
from ser_lightning.inference.predictor import Predictor
predictor = Predictor.from_checkpoint({ckpt!r}, device="cpu")
predictor.predict([{warm!r}])
rss_before, _ = peak_rss_mb()
t, c = time.perf_counter(), time.process_time()
result = predictor.predict([{path!r}])[0]
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
_, peak = peak_rss_mb()
assert result.error is None, result.error
print(json.dumps({{"seconds": elapsed, "cpu_seconds": cpu, "rss_before_mb": rss_before, "peak_rss_mb": peak, "windows": len(result.windows),
                  "audio_seconds": result.duration}}))
"""


def bench_long(ckpt: Path, data: Path, tmp: Path, repeats: int) -> dict:
    threads = torch.get_num_threads()
    warm = tmp / "warm.wav"
    sf.write(str(warm), np.zeros(16000, np.float32) + 0.01, 16000)
    out = {}
    for minutes in (10, 60):
        path = tmp / f"session_{minutes}min.wav"
        write_long_recording(data, path, minutes * 60)
        runs = []
        for _ in range(repeats if minutes == 60 else 1):
            before = load()
            code = LONG_CHILD.format(ckpt=str(ckpt), warm=str(warm), path=str(path),
                               threads=threads)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)  # bench importable
            runs.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "load_before": before, "load_after": load()})
        median = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        out[f"{minutes}min"] = {"file_mb": path.stat().st_size / 1e6, "median_seconds": median, "rtf": median / runs[0]["audio_seconds"],
                                "median_cpu_seconds": cpu, "cpu_rtf": cpu / runs[0]["audio_seconds"],
                                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "rss_before_mb": runs[0]["rss_before_mb"],
                                "windows": runs[0]["windows"], "runs": runs}
        path.unlink()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="checkpoint (default: untrained default --model)")
    parser.add_argument("--model", default="cnn2d", help="conf/model option of the untrained model without --ckpt")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=100, help="timed calls for the latency figures")
    parser.add_argument("--onnx", action="store_true", help="also time the exported ONNX model on onnxruntime")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice, one per core)")
    parser.add_argument("--only", choices=["latency", "folder", "long"], action="append")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    sections = args.only or ["latency", "folder", "long"]
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = args.ckpt or default_checkpoint(tmp / f"{args.model}_default.ckpt", args.model)
        results = {"cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
        if "latency" in sections:
            results["latency"] = r = bench_latency(ckpt, args.data, tmp, args.calls, args.onnx)
            print(f"3-s clip latency (warm, CPU): file {r['file_median_ms']:.1f} ms median (p90 {r['file_p90_ms']:.1f}, "
                  f"CPU time {r['file_cpu_median_ms']:.1f}), "
                  f"array {r['array_median_ms']:.1f} ms" + (f", ONNX Runtime {r['onnx_median_ms']:.1f} ms" if "onnx_median_ms" in r else "")
                  + f"; load {r['load_before']} -> {r['load_after']}", flush=True)
        if "folder" in sections:
            results["folder"] = r = bench_folder(ckpt, args.data, args.repeats)
            print(f"folder: {r['files']} files, {r['audio_seconds']:.0f} s of audio in {r['median_seconds']:.1f} s (median of {args.repeats}): "
                  f"{r['files_per_second']:.0f} files/s, RTF {r['rtf']:.4f} (CPU time {r['median_cpu_seconds']:.1f} s, RTF {r['cpu_rtf']:.4f}); loads {[x['load_before'] for x in r['runs']]}", flush=True)
        if "long" in sections:
            results["long"] = r = bench_long(ckpt, args.data, tmp, args.repeats)
            for k, v in r.items():
                print(f"{k} recording ({v['file_mb']:.0f} MB WAV, {v['windows']} windows): {v['median_seconds']:.1f} s, RTF {v['rtf']:.4f}, "
                      f"peak RSS {v['peak_rss_mb']:.0f} MB (before the call {v['rss_before_mb']:.0f} MB); "
                      f"loads {[x['load_before'] for x in v['runs']]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
