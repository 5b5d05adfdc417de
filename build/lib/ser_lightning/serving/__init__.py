"""Serving: the HTTP / WebSocket app behind ``serve.py`` and ``ser-serve``, its limits
and API key, and the browser page (``static/``, package data).

A caller of :mod:`ser_lightning.inference`, never a copy of it: ``POST /predict`` scores
uploads with :meth:`~ser_lightning.inference.predictor.Predictor.predict` (or
:func:`~ser_lightning.inference.live.predict_segments` for ``segmenter=vad``), exactly as
``predict.py`` does, and ``WebSocket /stream`` feeds PCM chunks to a
:class:`~ser_lightning.inference.live.StreamingPredictor` with a VAD, exactly as
``stream.py`` does. Modules: ``limits`` (settings, limits, the access rule), ``uploads``
(private temporary files, size/length/format checks), ``batching`` (the bounded queue
and request batching), ``results`` (JSON of predictions and stream events), ``app``
(the FastAPI routes), ``server`` (uvicorn).

May import: :mod:`ser_lightning.inference`, ``models``, ``data``, ``transforms`` and the
shared leaves; never ``evaluation``, ``training`` or ``cli`` (tests/test_architecture.py),
and never Lightning or W&B.
"""
