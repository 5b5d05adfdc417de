"""Command line: download, verify and lay out a corpus under the data root.

    python -m ser_lightning.cli.download --list
    python -m ser_lightning.cli.download ravdess [root=DIR] [accept_licence=true] [verify=true]
        [mirror=URL] [archive=PATH] [retries=N] [workers=N] [progress=false] [implicit=true]
    python -m ser_lightning.cli.download encoder=wavlm_base_plus [mirror=URL] [verify=true]
        [retries=N] [progress=false]

Arguments follow the ``key=value`` style of train.py / predict.py (Hydra overrides), but
this is a plain argparse program: it needs no config composition and must start fast.
The data root is ``root=``, else $SER_DATA_DIR, else ./data (as ``paths.data_dir``).
Exit code 0: installed, already installed, or verified clean; 1: any error (one message
on stderr) or a verification that found problems. See docs/DATA.md, "Getting the corpora".

``encoder=<name>`` fetches a pretrained speech encoder's weight file (docs/ENCODERS.md)
into the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<file>``, the file torchaudio's
bundle would download, through the same resumable download code as the corpora.
torchaudio publishes no checksum for these files, so the SHA-256 is computed, shown and
recorded beside the file (``<file>.sha256``); ``verify=true`` checks the file against it.
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
    "encoder": "a pretrained speech encoder's weight file instead of a corpus (wavlm_base_plus, hubert_base, ...)",
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
        if "encoder" in opts:
            if corpus is not None:
                raise ConfigError(f"give a corpus or encoder=..., not both ('{corpus}')")
            return install_encoder(str(opts.pop("encoder")), **opts)
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


def install_encoder(name: str, mirror: str | None = None, verify: bool = False, retries: int = 2, progress: bool = True,
                    **unused) -> int:
    """Fetch (or verify) encoder ``name``'s weight file in the torch hub cache; print its
    path, size and SHA-256. Returns the exit code.

    Args:
        mirror: base URL serving the file as ``<mirror>/<file>`` (default: torchaudio's
            download server, :data:`~ser_lightning.encoders.registry.BASE_URL`).

    Raises:
        ConfigError: an unknown encoder, or keys that apply to corpora only.
        DownloadError: the download failed (one sentence; running again resumes).
    """
    from ser_lightning.data.download import fetch_file
    from ser_lightning.encoders.registry import encoder_spec, human_bytes
    from ser_lightning.encoders.weights import file_sha256

    extra = sorted(k for k in unused if k not in ("implicit",))
    if extra:
        raise ConfigError(f"encoder=...: {', '.join(extra)} apply to corpora only")
    spec = encoder_spec(name)
    target = spec.cache_path()
    record = target.with_name(target.name + ".sha256")
    recorded = record.read_text().split()[0] if record.is_file() else None
    if verify:
        if not target.is_file():
            raise ConfigError(f"encoder={name}: {target} is not there; fetch it without verify=true")
        digest = file_sha256(target)
        if recorded is None:
            print(f"{name}: {target} ({human_bytes(target.stat().st_size)}), SHA-256 {digest}: no record to compare with")
            return 0
        if digest != recorded:
            print(f"error: {name}: {target} has SHA-256 {digest}, not the recorded {recorded}: the file changed or is "
                  f"damaged; delete it and fetch it again", file=sys.stderr)
            return 1
        print(f"{name}: verified {target} (SHA-256 {digest})")
        return 0
    if target.is_file():
        print(f"{name}: already in the cache: {target} ({human_bytes(target.stat().st_size)}), SHA-256 "
              f"{recorded or file_sha256(target)}")
        return 0
    url = (mirror.rstrip("/") + "/" + spec.filename) if mirror else spec.url
    print(f"{name}: {spec.bundle} from {url} (about {human_bytes(spec.approx_bytes())}) to {target}")
    fetch_file(url, target.parent, target.name, retries=retries, progress=progress, what=f"encoder {name}")
    digest = file_sha256(target)
    record.write_text(f"{digest}  {target.name}\n")
    print(f"{name}: {target} ({human_bytes(target.stat().st_size)}), SHA-256 {digest} (torchaudio publishes no checksum; "
          f"recorded in {record} for verify=true)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
