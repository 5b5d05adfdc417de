"""Command line: download, verify and lay out a corpus under the data root.

    python -m ser_lightning.cli.download --list
    python -m ser_lightning.cli.download ravdess [root=DIR] [accept_licence=true] [verify=true]
        [mirror=URL] [archive=PATH] [retries=N] [workers=N] [progress=false] [implicit=true]

Arguments follow the ``key=value`` style of train.py / predict.py (Hydra overrides), but
this is a plain argparse program: it needs no config composition and must start fast.
The data root is ``root=``, else $SER_DATA_DIR, else ./data (as ``paths.data_dir``).
Exit code 0: installed, already installed, or verified clean; 1: any error (one message
on stderr) or a verification that found problems. See docs/DATA.md, "Getting the corpora".
"""

from __future__ import annotations

import argparse
import sys

from ser_lightning.errors import ConfigError, SERUserError

KEYS = {
    "root": "data root (default: $SER_DATA_DIR, else ./data)",
    "accept_licence": "true: accept a non-commercial or research-only licence",
    "verify": "true: re-check an installed corpus (SHA-256, counts, names) and list missing or changed files",
    "mirror": "base URL serving the corpus's files (default: $SER_DATA_MIRROR/<corpus>/)",
    "archive": "manual corpora (SAVEE): the archive you downloaded after registering",
    "retries": "extra attempts per file after a network error or a wrong checksum (default 2)",
    "workers": "parallel transfers for per-file corpora (default 8)",
    "progress": "false: no progress bars",
    "implicit": "true: fetch started by `make train` (only the default corpus may be fetched this way)",
    "manifest": "another corpus manifest (default: the one shipped with the package)",
}
_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _parser() -> argparse.ArgumentParser:
    epilog = "keys:\n" + "\n".join(f"  {k}=...  {v}" for k, v in KEYS.items())
    p = argparse.ArgumentParser(
        prog="python -m ser_lightning.cli.download",
        description="Download, verify and lay out an emotional-speech corpus under the data root.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--list", action="store_true", help="show every corpus: source, size, licence, status")
    p.add_argument("args", nargs="*", metavar="CORPUS | key=value")
    return p


def _parse_overrides(items: list[str]) -> tuple[str | None, dict[str, object]]:
    corpus, opts = None, {}
    for item in items:
        if "=" not in item:
            if corpus is not None:
                raise ConfigError(f"two corpora given ('{corpus}', '{item}'); download one at a time")
            corpus = item
            continue
        key, value = item.split("=", 1)
        if key not in KEYS:
            raise ConfigError(f"unknown key '{key}'; allowed: {', '.join(KEYS)}")
        if key in ("accept_licence", "verify", "progress", "implicit"):
            if value.lower() not in _BOOL:
                raise ConfigError(f"{key}={value}: use true or false")
            opts[key] = _BOOL[value.lower()]
        elif key in ("retries", "workers"):
            if not value.isdigit():
                raise ConfigError(f"{key}={value}: use a whole number")
            opts[key] = int(value)
        else:
            opts[key] = value
    return corpus, opts


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code (0 success, 1 error)."""
    from ser_lightning.data.download import install_corpus, list_corpora

    args = _parser().parse_args(argv)
    try:
        corpus, opts = _parse_overrides(args.args)
        if args.list:
            rows = list_corpora(opts.get("root"), opts.get("manifest"))
            cols = ["corpus", "method", "size", "files", "licence", "status", "source"]
            widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
            print("  ".join(c.ljust(widths[c]) for c in cols))
            for r in rows:
                print("  ".join(r[c].ljust(widths[c]) for c in cols))
            return 0
        if corpus is None:
            raise ConfigError("name a corpus (python -m ser_lightning.cli.download --list shows them)")
        result = install_corpus(corpus, **opts)
        if result.action == "verified":
            for line in result.report.lines():
                print(line)
            if not result.report.ok:
                hint = (f"delete {result.folder} and download it again" if result.report.recorded
                        else "this copy is not the pinned release")
                print(f"error: {corpus}: verification failed; {hint}", file=sys.stderr)
                return 1
            print(f"{corpus}: verified" + ("" if result.report.recorded else
                                           " (no installation record: counts, names and pinned hashes only)"))
        return 0
    except (SERUserError, ValueError) as err:  # ValueError: a corrupt archive (data.archive)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; files downloaded so far are kept under <data root>/.downloads and the "
              "corpus folder was not created. Run the same command again to resume.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
