"""The FastAPI application: ``POST /predict``, ``WebSocket /stream``, ``GET /health`` and
the page (``GET /``, ``/static/...``).

Why FastAPI + uvicorn and not LitServe (Lightning's serving library): LitServe serves
request/response APIs (with batching and streamed responses) but has no bidirectional
WebSocket endpoint, which ``/stream`` needs (PCM chunks in, segment labels out, on one
connection); it also starts its own worker processes around a ``LitAPI`` class, while
here one process holds the model for both endpoints. FastAPI (on Starlette) gives both
endpoint kinds, the static page and exception handlers; the request batching it lacks is
the small queue of :mod:`ser_lightning.serving.batching`.
"""

# no `from __future__ import annotations`: FastAPI reads the route functions' annotations
# (Request, WebSocket, imported inside create_app) at definition time.
import asyncio
import json
import logging
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np

from ser_lightning.inference.abstention import abstain_window, apply_min_confidence
from ser_lightning.inference.predictor import Predictor
from ser_lightning.serving.batching import BatchQueue
from ser_lightning.serving.limits import KEY_HEADER, RequestRejected, ServeSettings, key_matches, upload_root
from ser_lightning.serving.results import event_json, prediction_json
from ser_lightning.serving.uploads import UploadFolder, check_audio, is_raw_audio, receive_files, receive_raw

log = logging.getLogger("ser_lightning.serving")

#: The page's files (package data).
STATIC = Path(str(resources.files("ser_lightning.serving") / "static"))

#: Sample rate of the PCM a /stream client sends unless its start message says otherwise (Hz).
STREAM_RATE = 16000

_TRUE = {"1", "true", "yes", "on"}

#: Uploads up to this size have their header checked in the event loop (a header read of a
#: file in the upload folder: about 0.1 ms); larger ones in a worker thread, since some
#: formats (MP3) may be scanned whole to count their frames.
INLINE_CHECK_BYTES = 1 << 20


class Scorer:
    """The scoring settings of ``predict.py`` bound to one predictor: what a batch of
    uploads and a new stream are scored with.

    Args:
        predictor: the one scoring path (:class:`~ser_lightning.inference.predictor.Predictor`).
        segmenter: ``windows`` (:meth:`Predictor.predict`, as ``predict.py``) or ``vad``
            (:func:`~ser_lightning.inference.live.predict_segments`, as ``predict.py
            segmenter=vad``).
        vad, vad_settings: the detector of ``/stream`` (and of ``segmenter=vad``), as
            ``stream.py``'s ``vad=`` and ``vad_settings=``; ``none``: every window.
        batch_size: windows per forward pass.
        min_confidence: labels below it become ``uncertain`` (as ``predict.py``).

    Raises:
        ConfigError / VADUnavailableError: an unknown segmenter, a VAD that cannot be built.
    """

    def __init__(self, predictor: Predictor, segmenter: str = "windows", vad: str | None = "silero",
                 vad_settings: dict | None = None, batch_size: int = 32, min_confidence: float | None = None):
        from ser_lightning.data.vad import build_vad
        from ser_lightning.errors import ConfigError

        if segmenter not in ("windows", "vad"):
            raise ConfigError(f"segmenter={segmenter}: use windows or vad")
        self.predictor, self.segmenter, self.batch_size, self.min_confidence = predictor, segmenter, int(batch_size), min_confidence
        self.vad_name = None if vad in (None, "none") else str(vad)
        self.vad_settings = {k: v for k, v in (vad_settings or {}).items() if v is not None}
        self._build_vad = build_vad
        # one detector for the batch worker's segmenter=vad (it is stateful: one thread uses it)
        self._batch_vad = self.new_vad() if segmenter == "vad" else None
        if self.vad_name is not None and self._batch_vad is None:
            self.new_vad()  # fail at start-up, not at the first stream, when the VAD cannot be built

    def new_vad(self):
        return self._build_vad(self.vad_name, **self.vad_settings) if self.vad_name is not None else None

    def score(self, paths: list) -> list:
        """Files -> one :class:`~ser_lightning.inference.outputs.Prediction` each (min_confidence applied)."""
        if self.segmenter == "vad":
            from ser_lightning.inference.live import predict_segments

            predictions = predict_segments(self.predictor, paths, self._batch_vad)
        else:
            predictions = self.predictor.predict(paths, batch_size=self.batch_size)
        return apply_min_confidence(predictions, self.min_confidence)

    def new_stream(self, input_rate: int):
        """A :class:`~ser_lightning.inference.live.StreamingPredictor` for one connection (its own VAD)."""
        from ser_lightning.inference.live import StreamingPredictor

        return StreamingPredictor(self.predictor, input_rate, vad=self.new_vad())


def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def create_app(scorer: Scorer, settings: ServeSettings):
    """The application; its :class:`BatchQueue` worker starts now and stops with the app.

    Responses never carry a traceback: a rejected request gets its status and one
    message (``{"error": ...}``), anything unexpected a 500 with a fixed message (the
    traceback goes to the server's log).
    """
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    queue = BatchQueue(scorer.score, settings.max_batch_files, settings.max_queue, settings.batch_wait_ms / 1000)
    streams = {"open": 0}
    streams_lock = threading.Lock()
    predictor = scorer.predictor
    uploads_root = upload_root(settings.upload_dir)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await run_in_threadpool(queue.close)

    app = FastAPI(title="ser-lightning", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.queue, app.state.settings, app.state.scorer = queue, settings, scorer
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestRejected)
    async def rejected(_request, exc: RequestRejected):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        return _error(422, "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()))

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception):  # the catch-all: log the traceback, answer one line
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal server error (the details are in the server's log)")

    def check_key(given: str | None) -> None:
        if not key_matches(settings.api_key, given):
            raise RequestRejected(401, f"a valid API key is required in the {KEY_HEADER} header")

    @app.get("/health")
    async def health():
        return {"status": "ok", "classes": predictor.class_names, "sample_rate": predictor.sample_rate,
                "stream_sample_rate": STREAM_RATE, "window_seconds": predictor.window_seconds,
                "hop_seconds": predictor.hop_seconds, "vad": scorer.vad_name or "none", "segmenter": scorer.segmenter,
                "key_required": bool(settings.api_key), "queue": queue.waiting, "streams": streams["open"],
                "batches": queue.batches, "files_scored": queue.items_scored,
                "model_cpu_seconds": round(queue.worker_cpu_seconds, 4),
                "model": getattr(predictor, "description", None)}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.post("/predict")
    async def predict(request: Request):
        """One or more files as ``multipart/form-data``, or one file as the raw body
        (``Content-Type: audio/*`` or ``application/octet-stream``, its name in
        ``?filename=``); any format libsndfile reads. JSON with one result per file.
        ``?timeline=true`` adds each file's windows."""
        check_key(request.headers.get(KEY_HEADER))
        deadline = time.monotonic() + settings.timeout_seconds
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes:
            raise RequestRejected(413, f"the request is larger than the limit of {settings.max_upload_mb:g} MiB")
        query = request.query_params
        timeline = query.get("timeline", "false").lower() in _TRUE
        content_type = request.headers.get("content-type")
        with UploadFolder(uploads_root) as folder:
            if is_raw_audio(content_type):
                name = (query.get("filename") or "upload")[:255]
                receiving = _one(receive_raw(request.stream(), folder.path, name, settings.max_upload_bytes))
            else:
                receiving = receive_files(content_type, request.stream(), folder.path, settings.max_upload_bytes,
                                          settings.max_files)
            try:
                files, fields = await asyncio.wait_for(receiving, settings.timeout_seconds)
            except (asyncio.TimeoutError, TimeoutError):
                raise RequestRejected(504, f"the upload took longer than the per-request timeout of "
                                           f"{settings.timeout_seconds:g} s") from None
            timeline = timeline or fields.get("timeline", "").lower() in _TRUE
            for upload in files:  # 413 / 415 / 422 before the request takes a place in the queue
                if upload.size <= INLINE_CHECK_BYTES:
                    check_audio(upload, settings.max_audio_seconds)
                else:
                    await run_in_threadpool(check_audio, upload, settings.max_audio_seconds)
            predictions = await queue.submit([u.path for u in files], max(0.001, deadline - time.monotonic()))
        results = [prediction_json(p, u.name, timeline) for p, u in zip(predictions, files, strict=True)]
        body = {"classes": predictor.class_names, "results": results}
        if all(r["error"] for r in results):  # e.g. undecodable data behind a valid header
            return _error_body(422, results[0]["error"], body)
        return JSONResponse(body)  # plain JSON types already: skips FastAPI's jsonable_encoder walk

    @app.websocket("/stream")
    async def stream(ws: WebSocket):
        """16-bit PCM (little-endian, mono) chunks in as binary messages; out, one JSON
        message per speech segment (``type: segment``), and with ``?windows=true`` also
        ``segment_start`` and ``window`` messages. A text ``{"type": "end"}`` (or ``end``)
        finishes the stream: the last segment is sent, then ``{"type": "end"}``."""
        await ws.accept()
        want_windows = ws.query_params.get("windows", "false").lower() in _TRUE
        rate = STREAM_RATE
        with streams_lock:
            full = streams["open"] >= settings.max_streams
            if not full:
                streams["open"] += 1
        if full:
            await _close(ws, 1013, f"{settings.max_streams} streams are open: try again later")
            return
        try:
            authorised = key_matches(settings.api_key, ws.headers.get(KEY_HEADER))
            live = None
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), settings.idle_seconds)
                except (asyncio.TimeoutError, TimeoutError):
                    await _close(ws, 1001, f"no audio for {settings.idle_seconds:g} s: stream closed")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text, data = message.get("text"), message.get("bytes")
                if text is not None:
                    try:
                        command = json.loads(text) if text.strip().startswith("{") else {"type": text.strip()}
                    except ValueError:
                        command = {"type": "?"}
                    kind = command.get("type") if isinstance(command, dict) else None
                    if kind == "start":
                        if live is not None:
                            await _close(ws, 1008, "start must be the first message")
                            return
                        authorised = authorised or key_matches(settings.api_key, command.get("key"))
                        try:
                            rate = int(command.get("sample_rate", STREAM_RATE))
                        except (TypeError, ValueError):
                            rate = 0
                        if not 8000 <= rate <= 192000:
                            await _close(ws, 1008, "sample_rate must be a number of Hz between 8000 and 192000")
                            return
                        if not authorised:
                            await _close(ws, 1008, f"a valid API key is required (the {KEY_HEADER} header or the start message's key)")
                            return
                        continue
                    if kind == "end":
                        if live is not None:
                            events = await run_in_threadpool(live.finish)
                            await _send_events(ws, events, want_windows, scorer.min_confidence)
                            seconds = live.total / predictor.sample_rate
                        else:
                            seconds = 0.0
                        await ws.send_json({"type": "end", "seconds": round(seconds, 3)})
                        await ws.close(1000)
                        return
                    await _close(ws, 1003, "text messages are {\"type\": \"start\", ...} or {\"type\": \"end\"}; audio is binary")
                    return
                if data is None:
                    continue
                if not authorised:
                    await _close(ws, 1008, f"a valid API key is required (the {KEY_HEADER} header or the start message's key)")
                    return
                if len(data) > settings.max_chunk_bytes:
                    await _close(ws, 1009, f"a chunk of {len(data)} bytes is larger than the limit of {settings.max_chunk_bytes}")
                    return
                if len(data) % 2:
                    await _close(ws, 1003, "audio must be 16-bit PCM: an even number of bytes per message")
                    return
                if live is None:
                    live = await run_in_threadpool(scorer.new_stream, rate)
                    await ws.send_json({"type": "ready", "classes": predictor.class_names, "sample_rate": rate})
                if live.total / predictor.sample_rate > settings.max_stream_seconds:
                    await _close(ws, 1009, f"the stream is longer than the limit of {settings.max_stream_seconds:g} s")
                    return
                chunk = np.frombuffer(data, dtype="<i2")
                events = await run_in_threadpool(live.push, chunk)
                await _send_events(ws, events, want_windows, scorer.min_confidence)
        except WebSocketDisconnect:
            return
        except Exception:  # noqa: BLE001 - the catch-all of a stream: logged here, one line to the client
            log.exception("internal error in /stream")
            await _close(ws, 1011, "internal server error (the details are in the server's log)")
        finally:
            with streams_lock:
                streams["open"] -= 1

    return app


async def _one(receiving) -> tuple[list, dict]:
    """A raw body's one upload as ``receive_files`` returns uploads: ``([upload], {})``."""
    return [await receiving], {}


def _error_body(status: int, message: str, body: dict):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, **body}, status_code=status)


async def _send_events(ws, events, want_windows: bool, min_confidence: float | None) -> None:
    for event in events:
        message = event_json(event)
        if message is None or (message["type"] != "segment" and message["type"] != "issue" and not want_windows):
            continue
        if message["type"] in ("segment", "window") and min_confidence is not None:
            message["label"] = abstain_window(event, min_confidence).label
        await ws.send_json(message)


async def _close(ws, code: int, reason: str) -> None:
    """Send ``{"type": "error", "message": reason}``, then close with ``code`` (ignoring a gone client)."""
    try:
        await ws.send_json({"type": "error", "message": reason})
        await ws.close(code, reason[:120])
    except Exception:  # noqa: BLE001 - the client may already be gone
        pass
