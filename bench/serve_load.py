"""Load on serve.py: requests (and files) per second and p50 / p95 latency of
``POST /predict`` with 3-s clips at 1, 8 and 32 concurrent clients, with request batching
and one request at a time; then, optionally, the server's resident memory over 10,000
requests.

    nice -n 10 python -m bench.serve_load [--ckpt best.ckpt] [--data /work/shared/data]
        [--requests 600] [--clients 1 8 32] [--upload raw|multipart] [--client raw|httpx]
        [--files-per-request 8] [--rounds 3] [--memory-requests 0] [--json out.json]
    python -m bench.serve_load --model-only     # Predictor.predict alone, files per call
    python -m bench.serve_load --folders        # one upload folder on disk and in RAM

Servers: ``serve.py`` itself, twice, each in its own process (``num_threads=1`` as
predict.yaml, ``vad=none``), on 127.0.0.1 only, both started before the first
measurement and measured back to back for each number of clients (the machine may be
shared: the 1-minute load average is printed with every row). "batched":
``limits.max_batch_files=32`` (the requests waiting while the model works are scored in
one ``Predictor.predict`` call); "one at a time": ``limits.max_batch_files=1``, the same
server code otherwise, so every saving outside the model applies to both.

Clients: one asyncio process on the same machine. ``--client raw`` (default) keeps one
HTTP/1.1 keep-alive connection per client and sends pre-built request bytes, reading only
the status line, ``Content-Length`` and the JSON body (what load generators such as wrk
or oha do), so that the client takes little of the two cores the server runs on;
``--client httpx`` is a full HTTP client (4-9 ms of CPU per request here). The client's
CPU per request is reported beside the server's.

Answers: 8 RAVDESS utterances of actor 1, one per emotion, cut or padded to 3.0 s (16 kHz
16-bit WAV, one window of the model), sent round-robin so that concurrent requests carry
different clips, each under its own name. Every answer is checked: status 200, one result
per file sent, the file's name, and the label and every class probability equal (to 1e-5)
to what the one-at-a-time server answered for that clip sent alone: a crossed, lost or
duplicated answer counts as an error. The model is ``--ckpt``, or the default
``model=cnn2d`` + log-mel with 7 classes, untrained (speed does not depend on the
weights; bench.predict_bench does the same): its labels of the 8 clips are not all
different (one label for all 8, usually), their probabilities are: at every run the
closest two clips must differ by at least 10x the tolerance in some class probability
(printed; 3e-4 to 8e-4 seen), else the benchmark stops. The untrained weights come from
``torch.manual_seed(0)``.

Rows: each number of ``--clients`` with one file per request (``--upload``: the raw body,
``Content-Type: audio/wav``, or multipart/form-data); then, with 32 clients, the other
upload form, and ``--files-per-request`` files per multipart request (the issue's
"several files per request": a client-side batch, reported in files per second, not
request batching).

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

#: One RAVDESS utterance per emotion (actor 1, statement 1, repetition 1, normal intensity).
CLIPS = [f"ravdess/Actor_01/03-01-{e:02d}-01-01-01-01.flac" for e in range(1, 9)]
#: Largest difference of a class probability from the reference that still counts as the same answer.
TOLERANCE = 1e-5
BOUNDARY = b"serveloadboundary7f3a9c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python serve.py ...`` in a subprocess, until :meth:`stop`."""

    def __init__(self, ckpt: Path, batch_files: int, log: Path, extra: list[str]):
        self.log_path = log
        self.log = log.open("w")  # the server's stderr (a pipe nobody reads could fill and stall it)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "serve.py"), f"ckpt_path={ckpt}", f"port={self.port}", "device=cpu", "vad=none",
             "log_level=warning", f"limits.max_batch_files={batch_files}", "limits.max_queue=256",
             "limits.timeout_seconds=300", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited: {self.log_path.read_text()[-2000:]}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("serve.py did not start within 180 s")

    def stop(self) -> None:
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
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
            return json.loads(r.read())


def build_request(port: int, clips: list[tuple[str, bytes]], upload: str) -> bytes:
    """The bytes of one ``POST /predict`` (HTTP/1.1, keep-alive) carrying ``clips``
    (``(name, wav bytes)``): a raw body (one clip) or a multipart body (any number)."""
    if upload == "raw":
        (name, data), = clips
        target, content_type, body = f"/predict?filename={name}".encode(), b"audio/wav", data
    else:
        target, content_type = b"/predict", b"multipart/form-data; boundary=" + BOUNDARY
        body = b"".join(b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="' + name.encode()
                        + b'"\r\nContent-Type: audio/wav\r\n\r\n' + data + b"\r\n" for name, data in clips)
        body += b"--" + BOUNDARY + b"--\r\n"
    return (b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: " % port + content_type
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


class Plan:
    """What request ``i`` carries: clips ``(i * k + j) % n`` for ``j < k``, named
    ``clip<c>-<j>.wav``; and what each answer must say (``reference``: clip -> (label,
    probabilities))."""

    def __init__(self, wavs: list[bytes], files_per_request: int, upload: str, port: int):
        self.wavs, self.k, self.upload, self.port = wavs, files_per_request, upload, port
        n = len(wavs)
        self.variants = n // np.gcd(n, files_per_request)  # distinct requests before the pattern repeats
        self.clips = [[(i * files_per_request + j) % n for j in range(files_per_request)] for i in range(self.variants)]
        self.names = [[f"clip{c}-{j}.wav" for j, c in enumerate(cs)] for cs in self.clips]
        self.requests = [build_request(port, list(zip(names, (wavs[c] for c in cs), strict=True)), upload)
                         for cs, names in zip(self.clips, self.names, strict=True)]
        self.reference: dict[int, tuple[str, dict]] = {}

    def check(self, i: int, status: int, body: bytes) -> str | None:
        """``None`` when the answer to request ``i`` is right, else what is wrong."""
        if status != 200:
            return f"status {status}: {body[:200]!r}"
        results = json.loads(body)["results"]
        v = i % self.variants
        if len(results) != self.k:
            return f"{len(results)} results for {self.k} files"
        for result, c, name in zip(results, self.clips[v], self.names[v], strict=True):
            label, probabilities = self.reference[c]
            if result["file"] != name or result["label"] != label:
                return f"answer {result['file']}/{result['label']} to {name} (expected {label})"
            if max(abs(result["probabilities"][k] - p) for k, p in probabilities.items()) > TOLERANCE:
                return f"probabilities of {name} differ from its clip's"
        return None


async def raw_load(port: int, plan: Plan, clients: int, requests: int) -> dict:
    """``requests`` POSTs from ``clients`` keep-alive connections (one request in flight
    each); latencies in seconds, wall time, errors."""
    latencies: list[float] = []
    problems: list[str] = []
    sent = 0

    async def worker() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent < requests:
                i = sent
                sent += 1
                t = time.perf_counter()
                writer.write(plan.requests[i % plan.variants])
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    at = head.lower().find(b"\r\ncontent-length:") + 17
                    body = await reader.readexactly(int(head[at:head.index(b"\r\n", at)]))
                except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:  # counted, never hidden
                    problems.append(f"transport: {type(exc).__name__}: {exc}")
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - t)
                problem = plan.check(i, int(head[9:12]), body)
                if problem:
                    problems.append(problem)
                if b"\r\nconnection: close" in head.lower():
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"latencies": latencies, "wall": time.perf_counter() - start, "problems": problems}


async def httpx_load(port: int, plan: Plan, clients: int, requests: int) -> dict:
    """As :func:`raw_load`, with httpx (a full HTTP client) and the same request bodies."""
    import httpx

    latencies: list[float] = []
    problems: list[str] = []
    sent = 0
    parts = []
    for request in plan.requests:
        head, body = request.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        target = lines[0].split(b" ")[1].decode()
        headers = {"content-type": next(x.split(b": ", 1)[1].decode() for x in lines if x.lower().startswith(b"content-type"))}
        parts.append((target, headers, body))

    async def worker(session) -> None:
        nonlocal sent
        while sent < requests:
            i = sent
            sent += 1
            target, headers, body = parts[i % plan.variants]
            t = time.perf_counter()
            try:
                r = await session.post(f"http://127.0.0.1:{port}{target}", content=body, headers=headers, timeout=300)
            except httpx.TransportError as exc:
                problems.append(f"transport: {type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t)
            problem = plan.check(i, r.status_code, r.content)
            if problem:
                problems.append(problem)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 4)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return {"latencies": latencies, "wall": time.perf_counter() - start, "problems": problems}


def run_load(client: str, port: int, plan: Plan, clients: int, requests: int) -> dict:
    load = raw_load if client == "raw" else httpx_load
    try:  # uvloop for the client's event loop too where installed (the serve extra has it)
        import uvloop

        return uvloop.run(load(port, plan, clients, requests))
    except ImportError:
        return asyncio.run(load(port, plan, clients, requests))


def run_config(server: Server, plan: Plan, clients: int, requests: int, client: str) -> dict:
    """One row: warm-up (``2 x clients`` requests), then ``requests`` timed ones."""
    run_load(client, server.port, plan, clients, 2 * clients)
    before, h0 = load_avg(), server.health()
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    out = run_load(client, server.port, plan, clients, requests)
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    h = server.health()
    n = len(out["latencies"])
    lat = np.array(out["latencies"] or [float("nan")]) * 1000
    return {"clients": clients, "files_per_request": plan.k, "upload": plan.upload, "client": client, "requests": n,
            "errors": len(out["problems"]), "problems": out["problems"][:5], "rps": n / out["wall"],
            "files_per_s": n * plan.k / out["wall"], "wall": out["wall"], "latencies_ms": lat,
            "files_per_batch": (h["files_scored"] - h0["files_scored"]) / max(1, h["batches"] - h0["batches"]),
            "server_cpu_ms": 1000 * server_cpu / max(1, n), "client_cpu_ms": 1000 * client_cpu / max(1, n),
            "model_cpu_ms": 1000 * (h["model_cpu_seconds"] - h0["model_cpu_seconds"]) / max(1, n),
            "load_before": before, "load_after": load_avg()}


def merge(parts: list[dict]) -> dict:
    """Rounds of one row as one row: totals over the rounds (requests, errors, CPU per
    request, files per batch weighted by requests), throughput as total requests over total
    wall time, latency percentiles over all requests; ``rps_rounds``: each round's req/s."""
    out = dict(parts[0])
    n = sum(p["requests"] for p in parts)
    wall = sum(p["wall"] for p in parts)
    lat = np.concatenate([p["latencies_ms"] for p in parts])
    out.update({"requests": n, "errors": sum(p["errors"] for p in parts), "problems": sum((p["problems"] for p in parts), []),
                "wall": wall, "rps": n / wall, "files_per_s": n * out["files_per_request"] / wall,
                "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
                "rps_rounds": [round(p["rps"], 1) for p in parts], "load_after": parts[-1]["load_after"]})
    for key in ("files_per_batch", "server_cpu_ms", "client_cpu_ms", "model_cpu_ms"):
        out[key] = sum(p[key] * p["requests"] for p in parts) / max(1, n)
    del out["latencies_ms"]
    return out


def reference(server: Server, plan: Plan, n_clips: int) -> dict[int, tuple[str, dict]]:
    """Each clip's answer from ``server`` when sent alone (label, probabilities)."""
    import urllib.request

    out = {}
    for c in range(n_clips):
        request = urllib.request.Request(f"{server.url}/predict?filename=ref.wav", data=plan.wavs[c],
                                         headers={"Content-Type": "audio/wav"})
        with urllib.request.urlopen(request, timeout=60) as r:
            (result,) = json.loads(r.read())["results"]
        out[c] = (result["label"], result["probabilities"])
    return out


def model_only(ckpt: Path, path: Path, repeats: int = 12, batch_sizes=(32, 16, 8)) -> list[dict]:
    """The bound on what batching can gain: ``Predictor.predict`` in this process (1 intra-op
    thread, as the server) on 1, 8, 16 and 32 copies of the clip in forward passes of
    ``batch_sizes`` windows; the configurations interleaved in each of ``repeats`` rounds
    (so that all meet the same machine load); median wall and CPU (this thread's)
    milliseconds per file."""
    import torch

    from ser_lightning.inference.predictor import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    configs = [(n, b) for b in batch_sizes for n in (1, 8, 16, 32)]
    wall: dict = {c: [] for c in configs}
    cpu: dict = {c: [] for c in configs}
    for n, b in configs:
        predictor.predict([path] * n, batch_size=b)
    for _ in range(repeats):
        for n, b in configs:
            t, c = time.perf_counter(), time.thread_time()
            predictor.predict([path] * n, batch_size=b)
            wall[(n, b)].append((time.perf_counter() - t) / n)
            cpu[(n, b)].append((time.thread_time() - c) / n)
    return [{"files_per_call": n, "batch_size": b, "wall_ms_per_file": 1000 * float(np.median(wall[(n, b)])),
             "cpu_ms_per_file": 1000 * float(np.median(cpu[(n, b)])), "load": load_avg()} for n, b in configs]


def folder_costs(wav: bytes, repeats: int = 500) -> list[dict]:
    """What one request's upload folder costs (``UploadFolder``: ``mkdtemp``, the clip
    written, ``rmtree``) under the system's temporary folder and under ``/dev/shm``: wall
    and CPU milliseconds per request (the event loop waits the wall time)."""
    from ser_lightning.serving.limits import SHM
    from ser_lightning.serving.uploads import UploadFolder

    rows = []
    for root in (Path(tempfile.gettempdir()), SHM):
        if not root.is_dir():
            continue
        t, c = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            with UploadFolder(root) as folder:
                (folder.path / "upload-0.wav").write_bytes(wav)
        rows.append({"root": str(root), "wall_ms": 1000 * (time.perf_counter() - t) / repeats,
                     "cpu_ms": 1000 * (time.process_time() - c) / repeats, "load": load_avg()})
    return rows


def cpu_bound(r: dict, cores: int = 2) -> float:
    """Requests per second that ``cores`` idle cores could serve at most, from the CPU times
    of a row: neither the model worker (one thread), nor the event loop (one thread: the
    server's CPU outside the worker), nor all of it with the client's share (``cores``
    cores) can be busier than 100 %. An upper bound: waiting for the GIL is not counted."""
    loop = r["server_cpu_ms"] - r["model_cpu_ms"]
    return 1000 / max(r["model_cpu_ms"], loop, (r["server_cpu_ms"] + r["client_cpu_ms"]) / cores, 1e-9)


def print_row(mode: str, r: dict) -> None:
    print(f"{mode:>13} {r['clients']:>3} clients, {r['files_per_request']} file(s)/request ({r['upload']}): "
          f"{r['rps']:.1f} req/s = {r['files_per_s']:.1f} files/s, p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
          f"{r['files_per_batch']:.1f} files/batch, rounds {r['rps_rounds']} req/s, CPU per request: server {r['server_cpu_ms']:.1f} ms (model worker {r['model_cpu_ms']:.1f} ms), client "
          f"{r['client_cpu_ms']:.2f} ms, errors {r['errors']} {r['problems'][:2] if r['problems'] else ''}, "
          f"load {r['load_before']} -> {r['load_after']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--model", default="cnn2d", help="without --ckpt: conf/model/<model>.yaml + log-mel, untrained")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data")))
    parser.add_argument("--requests", type=int, default=600, help="timed requests per row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--upload", choices=["raw", "multipart"], default="raw", help="how the main rows send the clip")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--files-per-request", type=int, default=8, help="files per request of the last row (0: no such row)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="each row's requests in this many slices, alternating between the two servers")
    parser.add_argument("--memory-requests", type=int, default=0, help="0 skips the memory run (10000 in docs/PERFORMANCE.md)")
    parser.add_argument("--server-args", nargs="*", default=[], help="more serve.py overrides, for both servers")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 16, 8],
                        help="with --model-only: windows per forward pass to try")
    parser.add_argument("--folders", action="store_true",
                        help="only the cost of one upload folder under the temporary folder and /dev/shm (no server)")
    parser.add_argument("--model-only", action="store_true",
                        help="only Predictor.predict in this process on 1-32 files per call (no server)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = args.ckpt
        if ckpt is None:
            import torch

            from bench.predict_bench import default_checkpoint

            torch.manual_seed(0)
            ckpt = default_checkpoint(tmp / f"default_{args.model}.ckpt", args.model)
        wavs = []
        for i, clip in enumerate(CLIPS):
            path = tmp / f"clip{i}_3s.wav"
            sf.write(str(path), fit_length(load_audio(args.data / clip, 16000), 48000), 16000, subtype="PCM_16")
            wavs.append(path.read_bytes())
        if args.folders:
            print(header("One request's upload folder: mkdtemp, a 3-s WAV written, rmtree"))
            print("| folder under | wall per request | CPU per request | load |\n|---|---:|---:|---|")
            for r in folder_costs(wavs[0]):
                print(f"| {r['root']} | {r['wall_ms']:.2f} ms | {r['cpu_ms']:.2f} ms | {r['load']} |")
            return
        if args.model_only:
            print(header("Predictor.predict on 3-s clips, files per call (the bound on request batching)"))
            print("| files per call | windows per forward pass | wall per file | CPU per file | load |\n|---:|---:|---:|---:|---|")
            for r in model_only(ckpt, tmp / "clip0_3s.wav", batch_sizes=args.batch_sizes):
                print(f"| {r['files_per_call']} | {r['batch_size']} | {r['wall_ms_per_file']:.1f} ms | "
                      f"{r['cpu_ms_per_file']:.1f} ms | {r['load']} |", flush=True)
            return
        servers = {mode: Server(ckpt, batch_files, tmp / f"server-{batch_files}.log", args.server_args)
                   for mode, batch_files in (("batched", 32), ("one at a time", 1))}
        results: dict = {"throughput": [], "memory": []}
        try:
            for server in servers.values():
                server.wait_ready()
            one = servers["one at a time"]
            ref = reference(one, Plan(wavs, 1, "raw", one.port), len(wavs))
            alone = reference(servers["batched"], Plan(wavs, 1, "raw", servers["batched"].port), len(wavs))
            assert all(ref[c][0] == alone[c][0] for c in ref), "the two servers label a clip differently"
            results["labels"] = [ref[c][0] for c in range(len(wavs))]
            vectors = np.array([[ref[c][1][k] for k in sorted(ref[0][1])] for c in range(len(wavs))])
            gaps = np.abs(vectors[:, None] - vectors[None]).max(-1)
            results["closest_clips"] = float(gaps[~np.eye(len(wavs), dtype=bool)].min())
            print(f"labels of the {len(wavs)} clips: {results['labels']}; the closest two differ by "
                  f"{results['closest_clips']:.1e} in a class probability (tolerance {TOLERANCE:g})", flush=True)
            if results["closest_clips"] < 10 * TOLERANCE:
                raise SystemExit("two clips get nearly the same probabilities: a crossed answer would not show")
            rows = [(c, 1, args.upload) for c in args.clients]
            if 32 in args.clients:
                rows.append((32, 1, "multipart" if args.upload == "raw" else "raw"))
            if args.files_per_request > 1:
                rows.append((32, args.files_per_request, "multipart"))
            for clients, k, upload in rows:
                n = max(args.requests // k // args.rounds, 2 * clients)
                parts: dict[str, list[dict]] = {mode: [] for mode in servers}
                for _ in range(args.rounds):  # back to back, alternating, under the same load
                    for mode, server in servers.items():
                        plan = Plan(wavs, k, upload, server.port)
                        plan.reference = ref
                        parts[mode].append(run_config(server, plan, clients, n, args.client))
                for mode in servers:
                    row = merge(parts[mode])
                    row["mode"] = mode
                    results["throughput"].append(row)
                    print_row(mode, row)
            if args.memory_requests:
                server = servers["batched"]
                plan = Plan(wavs, 1, args.upload, server.port)
                plan.reference = ref
                step = max(1, args.memory_requests // 10)
                results["memory"].append({"requests": 0, "rss_mb": server.rss_mb(), "load": load_avg()})
                done, errors = 0, 0
                while done < args.memory_requests:
                    out = run_load(args.client, server.port, plan, 8, step)
                    done += step
                    errors += len(out["problems"])
                    results["memory"].append({"requests": done, "rss_mb": server.rss_mb(), "load": load_avg()})
                    print(f"memory: {done} requests, server RSS {results['memory'][-1]['rss_mb']:.1f} MB, errors {errors}",
                          flush=True)
                results["memory_errors"] = errors
        finally:
            for server in servers.values():
                server.stop()

    print()
    print(header("serve.py load: POST /predict, 3-s clips, 127.0.0.1"))
    print(f"Client: {args.client}; every answer checked (status, file name, label and the 7 probabilities of its own clip "
          f"to {TOLERANCE:g}; the closest two clips differ by {results['closest_clips']:.1e}); errors in all rows: "
          f"{sum(r['errors'] for r in results['throughput'])}. Labels of the clips: {results['labels']}.\n")
    print("| server | clients | files / request | upload | requests | req/s | files/s | p50 latency | p95 latency "
          "| files per batch | server CPU / request (model worker) | client CPU / request | CPU bound, req/s "
          "| load before -> after |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results["throughput"]:
        print(f"| {r['mode']} | {r['clients']} | {r['files_per_request']} | {r['upload']} | {r['requests']} | {r['rps']:.1f} | "
              f"{r['files_per_s']:.1f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['files_per_batch']:.1f} | "
              f"{r['server_cpu_ms']:.1f} ms ({r['model_cpu_ms']:.1f} ms) | {r['client_cpu_ms']:.2f} ms | {cpu_bound(r):.0f} | "
              f"{r['load_before']} -> {r['load_after']} |")
    print()
    rows = results["throughput"]
    for b, o in zip(rows[::2], rows[1::2], strict=True):
        per_round = [round(x / y, 2) for x, y in zip(b["rps_rounds"], o["rps_rounds"], strict=True)]
        print(f"- {b['clients']} clients, {b['files_per_request']} file(s) per request ({b['upload']}): batched / one at a "
              f"time = {b['files_per_s'] / o['files_per_s']:.2f}x requests per second (rounds: {per_round}); server CPU per "
              f"request {o['server_cpu_ms'] / b['server_cpu_ms']:.2f}x less; CPU bound {cpu_bound(b) / cpu_bound(o):.2f}x")
    single = {(r["mode"], r["clients"], r["upload"]): r for r in rows if r["files_per_request"] == 1}
    for r in rows:
        base = single.get(("one at a time", 32, args.upload))
        if r["files_per_request"] > 1 and base:
            print(f"- {r['files_per_request']} files per request, {r['mode']} server, 32 clients: {r['files_per_s']:.1f} "
                  f"files/s = {r['files_per_s'] / base['files_per_s']:.2f}x one file per request one at a time "
                  f"({base['files_per_s']:.1f} files/s)")
    if results["memory"]:
        print("\n| requests served | server RSS | load |\n|---:|---:|---|")
        for m in results["memory"]:
            print(f"| {m['requests']} | {m['rss_mb']:.1f} MB | {m['load']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
