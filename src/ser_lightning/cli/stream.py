"""What stream.py runs: live emotion from a microphone or a file, one line per event.

Sources: ``source=mic`` (PortAudio through ``sounddevice``; ``device=`` chooses the
input, ``list_devices=true`` lists them) or ``source=<file>`` (played at its real pace
with ``realtime=true``, as fast as possible with ``false``). Every fault ends with one
clear message (exit code 1 for a source that failed mid-stream, 2 for a usage error)
and the timeline so far is written; Ctrl-C ends cleanly (exit code 0).
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ser_lightning.errors import ConfigError, SERUserError, SourceError

#: How PortAudio is installed where ``sounddevice`` cannot find it.
PORTAUDIO_HINT = ("the PortAudio library is not installed (sounddevice needs it for microphone input): "
                  "sudo apt-get install libportaudio2 (Debian/Ubuntu), brew install portaudio (macOS)")


def import_sounddevice():
    """The ``sounddevice`` module.

    Raises:
        SourceError: the package is missing, or the PortAudio library is (OSError at import).
    """
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError('PortAudio library not found')
        raise SourceError(f"{PORTAUDIO_HINT} ({exc})") from exc
    except ImportError as exc:
        raise SourceError("source=mic needs the sounddevice package: pip install sounddevice") from exc
    return sounddevice


def list_input_devices() -> str:
    """A table of the input devices PortAudio sees (index, name, channels, default rate).

    Raises:
        SourceError: see :func:`import_sounddevice`.
    """
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot list audio devices: {exc}") from exc
    rows = [f"{i:>3}  {d['name']}  ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)"
            for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]
    return "\n".join(rows) if rows else "no input devices found"


class MicrophoneSource:
    """Mono float32 chunks from an input device, and whether frames were dropped before each.

    Args:
        device: index or name (part of it) of the input device; ``None``: the default one.
        sample_rate: capture rate in Hz; ``None``: the device's default rate.
        chunk_seconds: audio per chunk, in seconds.
        stall_seconds: no audio for this long means the device stopped or disappeared.

    Raises:
        SourceError: no input device, an unknown device, an unsupported sample rate,
            or PortAudio failing to open the stream (all with the reason).
    """

    def __init__(self, device=None, sample_rate: int | None = None, chunk_seconds: float = 0.1, stall_seconds: float = 2.0):
        sd = self._sd = import_sounddevice()
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            what = "no input device found (is a microphone connected? list them with list_devices=true)" if device is None \
                else f"input device {device!r} not found (list them with list_devices=true)"
            raise SourceError(f"{what}: {exc}") from exc
        if not info or info.get("max_input_channels", 0) < 1:
            raise SourceError(f"{info.get('name', device)!r} has no input channels (list input devices with list_devices=true)")
        self.name = info["name"]
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        try:
            sd.check_input_settings(device=device, channels=1, dtype="float32", samplerate=self.sample_rate)
        except (ValueError, sd.PortAudioError) as exc:
            raise SourceError(f"input device {self.name!r} does not support {self.sample_rate} Hz "
                              f"(its default: {info['default_samplerate']:.0f} Hz; leave sample_rate unset to use it): {exc}") from exc
        self.device, self.stall_seconds = device, stall_seconds
        self.blocksize = max(1, int(chunk_seconds * self.sample_rate))
        self._queue: queue.Queue = queue.Queue()

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio's thread
        self._queue.put((indata[:, 0].copy(), bool(status.input_overflow) if status else False))

    def chunks(self) -> Iterator[tuple[np.ndarray, bool]]:
        """Yield ``(chunk [time] float32, frames were dropped before it)``, endlessly.

        Raises:
            SourceError: the stream fails to open, or delivers nothing for ``stall_seconds``.
        """
        sd = self._sd
        try:
            stream = sd.InputStream(device=self.device, channels=1, dtype="float32", samplerate=self.sample_rate,
                                    blocksize=self.blocksize, callback=self._callback)
            stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise SourceError(f"cannot open input device {self.name!r}: {exc}") from exc
        try:
            while True:
                try:
                    yield self._queue.get(timeout=self.stall_seconds)
                except queue.Empty:
                    raise SourceError(f"no audio from {self.name!r} for {self.stall_seconds:g} s: the device stopped or was "
                                      f"disconnected") from None
        finally:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001 - a vanished device may fail to close; we are leaving anyway
                pass


def file_source(path: str, realtime: bool, chunk_seconds: float) -> tuple[int, Iterator[tuple[np.ndarray, bool]]]:
    """``(rate, chunks)`` of a file: mono blocks at its own rate, paced to real time when asked.

    Raises:
        AudioDecodeError: the file cannot be used (when called, or while iterating for
            NaN samples).
    """
    from ser_lightning.inference.live import file_chunks

    rate, blocks = file_chunks(path, chunk_seconds)

    def paced() -> Iterator[tuple[np.ndarray, bool]]:
        t0, sent = time.monotonic(), 0
        for block in blocks:
            if realtime:  # deliver each chunk when it would have been recorded
                time.sleep(max(0.0, t0 + (sent + block.shape[0]) / rate - time.monotonic()))
            sent += block.shape[0]
            yield block, False

    return rate, paced()


def format_event(event) -> str:
    """One terminal line for an event."""
    from ser_lightning.inference.live import SegmentEnd, SegmentStart, StreamIssue, WindowResult

    if isinstance(event, SegmentStart):
        return f"[{event.start:8.2f} s] speech #{event.index} starts"
    if isinstance(event, SegmentEnd):
        conf = f" {event.confidence:6.1%}" if event.confidence is not None else ""
        return (f"[{event.start:8.2f} - {event.end:8.2f} s] speech #{event.index} ends: {event.label.upper()}{conf} "
                f"({event.windows} windows)")
    if isinstance(event, WindowResult):
        if event.confidence is None:
            return f"[{event.start:8.2f} - {event.end:8.2f} s]   {event.label}  ({event.energy_dbfs:.1f} dBFS)"
        top = sorted(event.probabilities.items(), key=lambda kv: -kv[1])[:3]
        return f"[{event.start:8.2f} - {event.end:8.2f} s]   {event.label:<10} {event.confidence:6.1%}   " + \
            "  ".join(f"{c} {p:.2f}" for c, p in top)
    if isinstance(event, StreamIssue):
        return f"[{event.time:8.2f} s] ! {event.kind}: {event.message}"
    return str(event)


def run_stream(cfg: DictConfig) -> int:
    """Run ``stream.py``; returns the exit code: 0 (ended, Ctrl-C included), 1 (the
    source failed mid-stream; what was heard is still written), 2 (usage error)."""
    from ser_lightning.cli.common import adapt_setting, checkpoint_paths, enrol_speaker, released_setup_hint
    from ser_lightning.data.vad import build_vad
    from ser_lightning.errors import AudioDecodeError
    from ser_lightning.inference.live import StreamingPredictor, WindowResult
    from ser_lightning.inference.outputs import Prediction
    from ser_lightning.inference.loading import load_predictor
    from ser_lightning.inference.writers import write_timeline

    if cfg.get("list_devices"):
        try:
            print(list_input_devices())
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    source = str(cfg.source)
    try:
        if cfg.get("timeline") and Path(str(cfg.timeline)).suffix.lower() not in (".csv", ".json"):
            raise ConfigError(f"timeline={cfg.timeline}: use a .csv or .json file name")
        adapt = adapt_setting(cfg)
        if source == "mic":
            mic = MicrophoneSource(cfg.get("device"), cfg.get("sample_rate"), float(cfg.chunk_seconds), float(cfg.stall_seconds))
            rate, chunks, label = mic.sample_rate, mic.chunks(), f"mic:{mic.name}"
        else:
            rate, chunks = file_source(source, bool(cfg.realtime), float(cfg.chunk_seconds))
            label = source
        try:
            predictor = load_predictor(checkpoint_paths(cfg.get("ckpt_path")), device=cfg.get("model_device"),
                                       hop_seconds=cfg.get("hop_seconds"), window_seconds=cfg.get("window_seconds"),
                                       silence_dbfs=cfg.get("silence_dbfs"), speaker_stats="enrol" if cfg.get("enrol") else "training")
        except SERUserError as exc:
            raise released_setup_hint(exc, cfg.get("ckpt_path")) from None
        if cfg.get("enrol") and (predictor.speaker_normalized or adapt == "bn"):  # as predict.py enrol= [adapt=bn]
            predictor = enrol_speaker(predictor, cfg.enrol, adapt)
        vad_settings = dict(cfg.get("vad_settings") or {})
        live = StreamingPredictor(predictor, rate, vad=build_vad(cfg.vad, **vad_settings))
    except SERUserError as exc:  # SourceError, CheckpointError, AudioDecodeError, ConfigError ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.num_threads))

    kind = "voice activity: " + cfg.vad if cfg.vad not in (None, "none") else "no VAD: every window"
    print(f"listening to {label} at {rate} Hz ({kind}; model classes: {', '.join(predictor.class_names)}); Ctrl-C ends", flush=True)
    timeline = Prediction(label)
    show_windows = bool(cfg.get("show_windows", True))
    # on a terminal, each window's line replaces the previous one (a live readout) and
    # segment ends and issues stay; in a pipe or file, one line per event
    in_place = sys.stdout.isatty() if cfg.get("in_place", "auto") == "auto" else bool(cfg.get("in_place"))
    code, reason = 0, "end of input"
    transient = False  # the last line printed is a window line to be overwritten

    def emit(events) -> None:
        nonlocal transient
        for event in events:
            if isinstance(event, WindowResult):
                timeline.windows.append(event.as_window_prediction())
                if not show_windows:
                    continue
            line = format_event(event)
            if in_place and isinstance(event, WindowResult):
                print("\r\033[K" + line, end="", flush=True)
                transient = True
            else:
                print(("\r\033[K" if transient else "") + line, flush=True)
                transient = False

    try:
        for chunk, dropped in chunks:
            if dropped:
                emit(live.mark_dropped())
            emit(live.push(chunk))
    except KeyboardInterrupt:
        reason = "stopped (Ctrl-C)"
    except (SourceError, AudioDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code, reason = 1, "source failed"
    finally:
        chunks.close()  # stops and closes the input stream now, not when garbage-collected
    try:
        emit(live.finish())
    except KeyboardInterrupt:
        pass
    if transient:
        print(flush=True)
    seconds = live.total / predictor.sample_rate
    print(f"{reason}: {seconds:.1f} s of audio, {len(timeline.windows)} windows", flush=True)
    if seconds > 0 and not any(w.confidence is not None for w in timeline.windows):
        print("no speech was classified (silence only)" if cfg.vad not in (None, "none") or timeline.windows
              else "nothing was classified", flush=True)
    if cfg.get("timeline"):
        n = write_timeline([timeline], predictor.class_names, cfg.timeline)
        print(f"wrote {n} timeline rows to {cfg.timeline}", flush=True)
    return code
