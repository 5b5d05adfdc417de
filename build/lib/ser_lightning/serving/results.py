"""JSON of what the scorer returns: a :class:`~ser_lightning.inference.outputs.Prediction`
per uploaded file (``POST /predict``) and the events of a
:class:`~ser_lightning.inference.live.StreamingPredictor` (``WebSocket /stream``).

The fields are those of ``predict.py``'s output and timeline files (label, confidence,
one probability per class, duration in seconds, note, error; timeline rows with start
and end in seconds, energy in dBFS), so a client reads the same numbers as the CLI writes.
"""

from __future__ import annotations

from ser_lightning.inference.live import SegmentEnd, SegmentStart, StreamIssue, WindowResult
from ser_lightning.inference.outputs import SILENCE, Prediction


def window_json(w) -> dict:
    """One timeline row: start and end (s), label, confidence, energy_dbfs, probabilities."""
    return {"start": round(w.start, 4), "end": round(w.end, 4), "label": w.label, "confidence": w.confidence,
            "energy_dbfs": round(w.energy_dbfs, 2), "probabilities": dict(w.probabilities)}


def prediction_json(p: Prediction, name: str, timeline: bool) -> dict:
    """One uploaded file's answer; ``name`` replaces the private temporary path."""
    out = {"file": name, "label": p.label, "confidence": p.confidence, "probabilities": dict(p.probabilities),
           "duration_seconds": p.duration, "windows": len(p.windows),
           "silent_windows": sum(w.label == SILENCE for w in p.windows), "note": p.note,
           "error": p.error.replace(p.source, name) if p.error else None}
    if timeline:
        out["timeline"] = [window_json(w) for w in p.windows]
    return out


def event_json(event) -> dict | None:
    """A stream event as a message (``type``: ``segment``, ``segment_start``, ``window``
    or ``issue``); ``None`` for anything else."""
    if isinstance(event, SegmentEnd):
        return {"type": "segment", "index": event.index, "start": round(event.start, 4), "end": round(event.end, 4),
                "label": event.label, "confidence": event.confidence, "probabilities": dict(event.probabilities),
                "windows": event.windows, "energy_dbfs": round(event.energy_dbfs, 2)}
    if isinstance(event, SegmentStart):
        return {"type": "segment_start", "index": event.index, "start": round(event.start, 4)}
    if isinstance(event, WindowResult):
        return {"type": "window", "segment": event.segment, **window_json(event)}
    if isinstance(event, StreamIssue):
        return {"type": "issue", "kind": event.kind, "time": round(event.time, 4), "message": event.message}
    return None
