"""Run the application with uvicorn (one process, one event loop; the model's work runs
in the batch worker and in threads, see :mod:`ser_lightning.serving.batching`)."""

from __future__ import annotations

from ser_lightning.serving.app import Scorer, create_app
from ser_lightning.serving.limits import ServeSettings


def serve(scorer: Scorer, settings: ServeSettings, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM end it cleanly).

    Raises:
        OSError: the address cannot be bound (in use, not an address of this machine).
    """
    import uvicorn

    app = create_app(scorer, settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"serving {len(scorer.predictor.class_names)} classes ({', '.join(scorer.predictor.class_names)}) on "
          f"http://{host}:{settings.port}/  (POST /predict, WebSocket /stream, GET /health; Ctrl-C ends)", flush=True)
    # uvicorn's own limits beside ours: no server header, a short keep-alive; the websocket
    # message limit is ours (max_chunk_bytes) plus room for the frame.
    uvicorn.run(app, host=settings.host, port=int(settings.port), log_level=log_level, server_header=False,
                timeout_keep_alive=5, ws_max_size=int(settings.max_chunk_bytes) + 1024)


class ServerThread:
    """The application served by uvicorn in a background thread, for tests, benchmarks and
    embedding: ``with ServerThread(app) as url: ...`` (``url`` like ``http://127.0.0.1:PORT``).

    Args:
        app: the ASGI application (:func:`~ser_lightning.serving.app.create_app`).
        host: address to bind (loopback).
        port: 0 picks a free port.
        ws_max_size: largest WebSocket message uvicorn accepts, bytes.

    Raises:
        RuntimeError: the server did not start within 30 s.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, ws_max_size: int = (1 << 20) + 1024):
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False,
                                     timeout_keep_alive=5, ws_max_size=ws_max_size)
        self.server = uvicorn.Server(self.config)
        self.url = ""
        self._thread = None

    def __enter__(self) -> str:
        import threading
        import time

        self._thread = threading.Thread(target=self.server.run, name="ser-serve-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
