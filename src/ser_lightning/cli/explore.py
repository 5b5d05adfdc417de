"""``python -m ser_lightning.cli.explore data=<corpus> [out=<folder>]``: a corpus's
class balance, durations, speakers and example spectrograms
(:func:`ser_lightning.data.explore.explore`)."""

from __future__ import annotations

from pathlib import Path


def _main() -> None:
    import os
    import sys

    import hydra
    from omegaconf import OmegaConf

    checkout = Path(__file__).resolve().parents[3]  # src/ser_lightning/cli/explore.py -> the project
    os.environ.setdefault("PROJECT_ROOT", str(checkout if (checkout / "conf").is_dir() else Path.cwd()))
    conf_dir = str(Path(os.environ["PROJECT_ROOT"]) / "conf")

    @hydra.main(version_base="1.3", config_path=conf_dir, config_name="explore")
    def run(cfg) -> None:
        from ser_lightning.cli.common import user_error
        from ser_lightning.data.explore import explore

        out = cfg.out
        try:
            summary = explore(OmegaConf.to_container(cfg.data, resolve=True),
                              OmegaConf.to_container(cfg.features, resolve=True), out)
        except Exception as exc:
            err = user_error(exc)
            if err is None:
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        print(f"{summary['corpus']}: {summary['usable']} of {summary['files']} files, classes {summary['classes']}")
        print(f"wrote {len(list(Path(out).glob('*.png')))} PNGs and summary.json into {out}")

    run()


if __name__ == "__main__":
    _main()
