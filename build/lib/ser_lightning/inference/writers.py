"""Writing predictions: CSV/JSON rows per input, the per-window timeline, the table
printed by predict.py, and the names of the timeline plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ser_lightning.errors import ConfigError
from ser_lightning.inference.outputs import SILENCE


def _write_rows(rows: list[dict], fieldnames: list[str], path: Path) -> None:
    """Rows -> ``path`` as CSV (empty cell for ``None``) or JSON (``null``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2))
    elif path.suffix.lower() == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    else:
        raise ConfigError(f"{path}: use a .csv or .json file name")


def write_predictions(predictions, class_names: list[str], path: str | Path) -> None:
    """Write one row per input: path, label, confidence, one column per class (the
    probabilities), duration_seconds, windows, silent_windows, note, error.

    Raises:
        ValueError: ``path`` does not end in ``.csv`` or ``.json``.
    """
    fieldnames = ["path", "label", "confidence", *class_names, "duration_seconds", "windows", "silent_windows", "note", "error"]
    rows = []
    for p in predictions:
        row = {"path": p.source, "label": p.label, "confidence": p.confidence}
        row.update({c: p.probabilities.get(c) for c in class_names})
        row.update(duration_seconds=p.duration, windows=len(p.windows),
                   silent_windows=sum(w.label == SILENCE for w in p.windows), note=p.note, error=p.error)
        rows.append(row)
    _write_rows(rows, fieldnames, Path(path))


def write_timeline(predictions, class_names: list[str], path: str | Path) -> int:
    """Write the timeline of every predicted input: one row per window with path,
    start and end (seconds), label (a class or ``silence``), confidence, energy_dbfs
    and one probability column per class (empty for silent windows). Returns the
    number of rows.

    Raises:
        ValueError: ``path`` does not end in ``.csv`` or ``.json``.
    """
    fieldnames = ["path", "start", "end", "label", "confidence", "energy_dbfs", *class_names]
    rows = []
    for p in predictions:
        for w in p.windows:
            row = {"path": p.source, "start": round(w.start, 4), "end": round(w.end, 4), "label": w.label,
                   "confidence": w.confidence, "energy_dbfs": round(w.energy_dbfs, 2)}
            row.update({c: w.probabilities.get(c) for c in class_names})
            rows.append(row)
    _write_rows(rows, fieldnames, Path(path))
    return len(rows)


def _plot_paths(predictions, plot_dir: Path) -> dict[int, Path]:
    """One PNG name per input with more than one window (``<stem>.png``, numbered on clashes)."""
    names: dict[int, Path] = {}
    used: set[str] = set()
    for i, p in enumerate(predictions):
        if len(p.windows) > 1:
            stem = Path(p.source).stem or f"input_{i}"
            name, k = f"{stem}.png", 1
            while name in used:
                k += 1
                name = f"{stem}_{k}.png"
            used.add(name)
            names[i] = plot_dir / name
    return names


def print_table(predictions) -> None:
    """One line per input: path, label, confidence, duration, windows, note or error."""
    if not predictions:
        return
    width = min(max(len(p.source) for p in predictions), 80)
    print(f"{'input':<{width}}  {'label':<10} {'conf':>6} {'seconds':>8} {'windows':>7}  note")
    for p in predictions:
        source = p.source if len(p.source) <= width else "..." + p.source[-(width - 3):]
        if p.error:
            reason = p.error[len(p.source) + 2:] if p.error.startswith(p.source + ": ") else p.error
            print(f"{source:<{width}}  {'ERROR':<10} {'':>6} {'':>8} {'':>7}  {reason}")
            continue
        conf = f"{p.confidence:6.1%}" if p.confidence is not None else f"{'':>6}"
        print(f"{source:<{width}}  {p.label:<10} {conf} {p.duration:8.2f} {len(p.windows):7d}  {p.note or ''}")
