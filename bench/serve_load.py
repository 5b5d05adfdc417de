"""Load on serve.py: requests per second and p50 / p95 latency of ``POST /predict`` with
3-s clips at 1, 8 and 32 concurrent clients, with request batching and one request at a
time; then the server's resident memory over 10,000 requests.

    nice -n 10 python -m bench.serve_load [--ckpt best.ckpt] [--data /work/shared/data]
        [--requests 300] [--clients 1 8 32] [--memory-requests 10000] [--json out.json]

The server is ``serve.py`` itself, in its own process (``num_threads=1``, as
predict.yaml; ``vad=none``), on 127.0.0.1 only; the clients are one asyncio process
(httpx) on the same machine, so on a 2-core CPU they take their share of it: the figures
are end to end on one machine, client included. Each configuration sends a bounded
number of requests (``--requests``, after ``2 x clients`` warm-up requests); every answer
is checked (status 200, the clip's label). "batched": ``limits.max_batch_files=32`` (the
requests waiting while the model works are scored in one ``Predictor.predict`` call);
"one at a time": ``limits.max_batch_files=1``. The model is ``--ckpt``, or the default
``model=cnn2d`` + log-mel with 7 classes, untrained (speed does not depend on the
weights; bench.predict_bench does the same). The clip is a real RAVDESS utterance cut or
padded to 3.0 s, 16 kHz 16-bit WAV (one window of the model). The 1-minute load average
is printed before and after each configuration (the machine may be shared).

Memory: ``--memory-requests`` requests (8 clients) to the batched server; the server's
resident memory (VmRSS of its process) after every tenth of them. Flat means no growth
per request (no leaked upload, future or buffer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import REPO, header, load_avg
from ser_lightning.data.audio import fit_length, load_audio

CLIP = "ravdess/Actor_01/03-01-05-01-01-01-01.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python serve.py ...`` in a subprocess, until the context ends."""

    def __init__(self, ckpt: Path, batch_files: int, log: Path):
        self.log_path = log
        self.log = log.open("w")  # the server's stderr (a pipe nobody reads could fill and stall it)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "serve.py"), f"ckpt_path={ckpt}", f"port={self.port}", "device=cpu", "vad=none",
             "log_level=warning", f"limits.max_batch_files={batch_files}", "limits.max_queue=256", "limits.timeout_seconds=300"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)

    def __enter__(self) -> "Server":
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("serve.py did not start within 180 s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads), seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def health(self) -> dict:
        import httpx

        return httpx.get(f"{self.url}/health").json()


async def load(url: str, clip: bytes, clients: int, requests: int, label: str | None) -> dict:
    """``requests`` POSTs from ``clients`` concurrent loops; latencies in seconds, wall time."""
    import httpx

    latencies: list[float] = []
    sent = 0
    errors = 0
    transport_errors: list[str] = []

    async def worker(session) -> None:
        nonlocal sent, errors
        while sent < requests:
            sent += 1
            t = time.perf_counter()
            try:
                r = await session.post(f"{url}/predict", files=[("file", ("clip.wav", clip, "audio/wav"))], timeout=300)
            except httpx.TransportError as exc:  # counted and reported, never hidden
                transport_errors.append(f"{type(exc).__name__}: {exc}")
                errors += 1
                continue
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200 or (label is not None and r.json()["results"][0]["label"] != label):
                errors += 1

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 4)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        wall = time.perf_counter() - start
    return {"latencies": latencies, "wall": wall, "errors": errors, "transport_errors": transport_errors}


def run_config(server: Server, clip: bytes, clients: int, requests: int) -> dict:
    import httpx

    label = httpx.post(f"{server.url}/predict", files=[("file", ("clip.wav", clip, "audio/wav"))]).json()["results"][0]["label"]
    asyncio.run(load(server.url, clip, clients, 2 * clients, label))  # warm-up
    before, batches0, files0 = load_avg(), server.health()["batches"], server.health()["files_scored"]
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    out = asyncio.run(load(server.url, clip, clients, requests, label))
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    h = server.health()
    lat = np.array(out["latencies"]) * 1000
    return {"clients": clients, "requests": len(lat), "errors": out["errors"], "rps": len(lat) / out["wall"],
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "files_per_batch": (h["files_scored"] - files0) / max(1, h["batches"] - batches0),
            "transport_errors": out["transport_errors"],
            "server_cpu_ms": 1000 * server_cpu / len(lat), "client_cpu_ms": 1000 * client_cpu / len(lat),
            "load_before": before, "load_after": load_avg()}


def model_only(ckpt: Path, path: Path, repeats: int = 10) -> list[dict]:
    """The bound on what batching can gain: ``Predictor.predict`` in this process (1 intra-op
    thread, as the server) on 1, 8 and 32 copies of the clip; wall and CPU milliseconds per file."""
    import torch

    from ser_lightning.inference.predictor import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    rows = []
    for n in (1, 8, 32):
        predictor.predict([path] * n)
        wall, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            predictor.predict([path] * n)
            wall.append((time.perf_counter() - t) / n)
            cpu.append((time.process_time() - c) / n)
        rows.append({"files_per_call": n, "wall_ms_per_file": 1000 * float(np.median(wall)),
                     "cpu_ms_per_file": 1000 * float(np.median(cpu)), "load": load_avg()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data")))
    parser.add_argument("--requests", type=int, default=300, help="timed requests per configuration")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--memory-requests", type=int, default=10000, help="0 skips the memory run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--model-only", action="store_true",
                        help="only Predictor.predict in this process on 1, 8 and 32 files per call (no server)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = args.ckpt
        if ckpt is None:
            from bench.predict_bench import default_checkpoint

            ckpt = default_checkpoint(tmp / "default_cnn2d.ckpt")
        path = tmp / "clip_3s.wav"
        sf.write(str(path), fit_length(load_audio(args.data / CLIP, 16000), 48000), 16000, subtype="PCM_16")
        clip = path.read_bytes()
        if args.model_only:
            print(header("Predictor.predict on 3-s clips, files per call (the bound on request batching)"))
            print("| files per call | wall per file | CPU per file | load |\n|---:|---:|---:|---|")
            for r in model_only(ckpt, path):
                print(f"| {r['files_per_call']} | {r['wall_ms_per_file']:.1f} ms | {r['cpu_ms_per_file']:.1f} ms | {r['load']} |")
            return
        results = {"throughput": [], "memory": []}
        for mode, batch_files in (("batched", 32), ("one at a time", 1)):
            with Server(ckpt, batch_files, tmp / f"server-{batch_files}.log") as server:
                for clients in args.clients:
                    row = run_config(server, clip, clients, args.requests)
                    row["mode"] = mode
                    results["throughput"].append(row)
                    if row["transport_errors"]:
                        print(f"transport errors: {row['transport_errors'][:3]}; server log: "
                              f"{server.log_path.read_text()[-1500:]}", flush=True)
                    print(f"{mode:>13} {clients:>3} clients: {row['rps']:.1f} req/s, p50 {row['p50_ms']:.0f} ms, "
                          f"p95 {row['p95_ms']:.0f} ms, {row['files_per_batch']:.1f} files/batch, CPU per request: server "
                          f"{row['server_cpu_ms']:.1f} ms, client {row['client_cpu_ms']:.1f} ms, errors {row['errors']}, "
                          f"load {row['load_before']} -> {row['load_after']}", flush=True)
        if args.memory_requests:
            with Server(ckpt, 32, tmp / "server-memory.log") as server:
                step = max(1, args.memory_requests // 10)
                results["memory"].append({"requests": 0, "rss_mb": server.rss_mb(), "load": load_avg()})
                asyncio.run(load(server.url, clip, 8, 50, None))
                results["memory"].append({"requests": 50, "rss_mb": server.rss_mb(), "load": load_avg()})
                done, errors = 50, 0
                while done < args.memory_requests + 50:
                    out = asyncio.run(load(server.url, clip, 8, step, None))
                    done += step
                    errors += out["errors"]
                    results["memory"].append({"requests": done, "rss_mb": server.rss_mb(), "load": load_avg()})
                    print(f"memory: {done} requests, server RSS {results['memory'][-1]['rss_mb']:.1f} MB, errors {errors}", flush=True)
                results["memory_errors"] = errors

    print()
    print(header("serve.py load: POST /predict, 3-s clips, 127.0.0.1"))
    print("| server | clients | requests | req/s | p50 latency | p95 latency | files per batch | server CPU / request "
          "| client CPU / request | load before -> after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results["throughput"]:
        print(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | "
              f"{r['files_per_batch']:.1f} | {r['server_cpu_ms']:.1f} ms | {r['client_cpu_ms']:.1f} ms | "
              f"{r['load_before']} -> {r['load_after']} |")
    for clients in args.clients:
        b = [r for r in results["throughput"] if r["clients"] == clients]
        if len(b) == 2:
            print(f"\n{clients} clients: batched / one at a time = {b[0]['rps'] / b[1]['rps']:.2f}x requests per second", end="")
    print()
    if results["memory"]:
        print("\n| requests served | server RSS | load |\n|---:|---:|---|")
        for m in results["memory"]:
            print(f"| {m['requests']} | {m['rss_mb']:.1f} MB | {m['load']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
