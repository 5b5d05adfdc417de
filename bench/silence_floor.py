"""The quietest analysis window of real speech: where the silence threshold must stay below.

    python -m bench.silence_floor [--data /work/shared/data]

Cuts every file of the shared TESS, RAVDESS, SAVEE and CREMA-D copies into the windows
``Predictor`` uses (3 s every 1.5 s at 16 kHz; one window for a shorter file) and prints
the lowest window energies in dBFS (:func:`ser_lightning.data.streaming.energy_dbfs`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.common import REPO
from ser_lightning.data.audio import load_audio
from ser_lightning.data.corpora import list_audio_files
from ser_lightning.data.streaming import WindowSlicer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data")))
    args = parser.parse_args()
    lowest = []
    for corpus in ("tess", "ravdess", "savee", "crema_d"):
        for path in list_audio_files(args.data / corpus):
            wave = load_audio(path, 16000)
            slicer = WindowSlicer(48000, 24000)
            windows = [*slicer.push(wave), *slicer.finish()]  # energies of the real samples only
            lowest.append((min(w.energy_dbfs for w in windows), str(path.relative_to(args.data))))
    lowest.sort()
    print(f"{len(lowest)} files; quietest window of each file, lowest first:")
    for db, name in lowest[:5]:
        print(f"  {db:7.1f} dBFS  {name}")


if __name__ == "__main__":
    main()
