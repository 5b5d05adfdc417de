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
