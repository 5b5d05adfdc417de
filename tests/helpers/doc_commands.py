"""Check that the commands and links of the Markdown documentation agree with the code.

:func:`check_markdown` reads one Markdown text and returns a list of problems
(``"<file>:<line>: <what>"``); an empty list means the text agrees with the repository:

- **Commands** (every line of a fenced code block in a shell language or none, and every
  inline code span that starts with a command): ``python <script>.py ...``, ``python -m
  <module> ...``, ``make <target> ...`` and the ``ser-*`` console commands of
  pyproject.toml, after env assignments, ``nice``, ``time``, ``.venv/bin/`` prefixes,
  ``&&`` / ``;`` / ``|`` chains and ``\\`` continuations. Each command's program must exist,
  and its arguments must parse *as the program parses them*:

  * a Hydra application (the script, module or console function calls ``hydra.main`` or
    ``cli.common.hydra_app``): its ``config_path`` / ``config_name`` are captured by
    running the program with ``hydra.main`` replaced, then every ``key=value`` override
    (sweeps expanded value by value, ``-m``, ``--cfg``, ``-cn`` understood) is composed
    against that config with Hydra's compose API, so a misspelt key, a missing group
    option or a wrong type fails;
  * an argparse program: its parser is captured by running the program with
    ``ArgumentParser.parse_args`` replaced (the program stops there), then the arguments
    are parsed by it, so an unknown ``--option`` or a missing required one fails;
  * a program with neither takes no arguments;
  * ``make <target>``: the target must be a rule of the Makefile; a recipe line that passes
    ``$(ARGS)`` to a Python program is checked again with the ``ARGS=`` given.
  * ``pip install -e '.[extra]'``: the extra must exist in pyproject.toml.

  Placeholders are not checked as values: a value holding ``<...>``, ``...`` or a shell
  substitution (``$VAR``, ``$(...)``) is replaced (Hydra) or its parse error ignored
  (argparse), but its key or option still must exist. A group option that is a
  placeholder (``model=<name>``) needs only the group to exist.
- **Links**: every relative Markdown link ``[text](path#anchor)`` must name an existing file
  or folder (relative to the Markdown file) and, for a Markdown target, an existing
  heading anchor (GitHub's slugs).

Entry points are found, not listed, so a new script with its own ``conf/<name>.yaml``, a
new config group option or a new ``ser-*`` command is checked the same way once it exists.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}
PLACEHOLDER = "__placeholder__"
#: Words that may stand before the program: they are skipped.
PREFIX_WORDS = {"nice", "time", "/usr/bin/time", "sudo", "exec", "env", "nohup"}
PREFIX_OPTIONS = {"nice": {"-n"}, "/usr/bin/time": set(), "time": set()}
_HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
                           "--config-dir", "-cd", "--experimental-rerun"}
_HYDRA_FLAGS = {"-m", "--multirun", "-h", "--help", "--hydra-help", "--info", "-i", "--resolve", "--version", "--run", "-r",
                "--shell-completion", "-sc"}


# ---------------------------------------------------------------------------------------------
# Markdown scanning


@dataclass
class Command:
    """One shell command found in a Markdown file: its words after shlex splitting."""

    source: str
    line: int
    words: list[str]
    text: str


def _fenced_lines(text: str):
    """Yield ``(line number, line, in_shell_block, in_any_block)`` for every line of ``text``."""
    fence = None
    lang = ""
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        m = re.match(r"^(```+|~~~+)\s*([\w+-]*)", stripped)
        if m and (fence is None or stripped.startswith(fence)):
            if fence is None:
                fence, lang = m.group(1), m.group(2).lower()
            elif stripped == fence or stripped.rstrip("`~") == "":
                fence = None
            yield i, line, False, True
            continue
        yield i, line, fence is not None and lang in SHELL_LANGS, fence is not None


def _substitute_shell(text: str) -> str:
    """Replace shell substitutions (``$(...)``, ``${VAR}``, ``$VAR``, backticks) by a placeholder word."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            out.append(f"<{PLACEHOLDER}>")
            i = j
            continue
        out.append(text[i])
        i += 1
    text = "".join(out)
    text = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z_0-9]*", f"<{PLACEHOLDER}>", text)
    return re.sub(r"`[^`]*`", f"<{PLACEHOLDER}>", text)


def _unbracket(words: list[str]) -> list[str]:
    """Drop the brackets of optional parts of a synopsis (``[out=<folder>]``, ``[--jobs a,b]``);
    a Hydra list value (``key=[a,b]``) keeps its brackets."""
    out = []
    for w in words:
        if w.startswith("[") and (w.startswith("[-") or re.match(r"^\[[\w.+~/@-]+=", w)):
            w = w[1:]
        while w.endswith("]") and w.count("]") > w.count("["):
            w = w[:-1]
        out.append(w)
    return out


def _split_commands(text: str) -> list[list[str]]:
    """Split one shell line into commands (on ``&&``, ``||``, ``;``, ``|``) of shlex words;
    a ``<placeholder with spaces>`` becomes one word."""
    text = re.sub(r"<(?![<\s=])[^<>\n]*>", f"<{PLACEHOLDER}>", text)
    text = _substitute_shell(text)
    try:
        lex = shlex.shlex(text, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        lex.commenters = "#"
        words = list(lex)
    except ValueError:  # an unbalanced quote: split on whitespace instead
        words = text.split("#")[0].split()
    commands, current = [], []
    for w in words:
        if w and set(w) <= set(";&|"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(w)
    if current:
        commands.append(current)
    return [_unbracket(c) for c in commands]


def _is_program_word(word: str) -> bool:
    name = word.rsplit("/", 1)[-1]
    return bool(re.fullmatch(r"python(3(\.\d+)?)?|make|ser-[\w-]+|pip3?", name))


def extract_commands(text: str, source: str) -> list[Command]:
    """The commands of ``text``: fenced shell-block lines (with ``\\`` continuations) and inline
    code spans outside blocks that start with a command word."""
    found: list[Command] = []
    pending, start = "", 0
    for no, line, shell, in_block in _fenced_lines(text):
        if shell:
            if not pending:
                start = no
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            full, pending = pending + line, ""
            for words in _split_commands(full):
                found.append(Command(source, start, words, full.strip()))
            continue
        pending = ""
        if in_block:
            continue
        for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", line):
            first = span.strip().split(" ", 1)[0]
            if _is_program_word(first) and " " in span.strip():
                for words in _split_commands(span):
                    found.append(Command(source, no, words, span))
    return [c for c in found if _program_index(c.words) is not None]


def _program_index(words: list[str]) -> int | None:
    """Index of the program word after env assignments and prefixes such as ``nice -n 10``; None if none."""
    i = 0
    while i < len(words):
        w = words[i]
        if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*=.*", w):
            i += 1
        elif w in PREFIX_WORDS:
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in PREFIX_OPTIONS.get(w, set()) else 1
        else:
            break
    if i < len(words) and _is_program_word(words[i]):
        return i
    return None


# ---------------------------------------------------------------------------------------------
# Capturing how a program parses its arguments


class _Captured(BaseException):
    """Raised inside a program run by :func:`capture` once its argument handling is known."""

    def __init__(self, kind: str, **info):
        super().__init__(kind)
        self.kind, self.info = kind, info


@dataclass
class Program:
    """How a program takes its arguments: ``hydra`` (config dir + name), ``argparse`` (parser)
    or ``none`` (no arguments); ``error`` when it could not be found or run."""

    kind: str
    config_dir: Path | None = None
    config_name: str | None = None
    parser: argparse.ArgumentParser | None = None
    error: str | None = None
    notes: list = field(default_factory=list)


_MODULE_CACHE: dict[tuple, Program] = {}


def _module_file(module: str) -> Path | None:
    """The file ``python -m module`` runs, under the repository root or ``src/``."""
    for base in (REPO, REPO / "src"):
        path = base.joinpath(*module.split("."))
        if (path / "__main__.py").is_file():
            return path / "__main__.py"
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
    return None


def _parses_arguments(path: Path, depth: int = 1) -> bool:
    """Whether the program at ``path`` (or a repository module it imports, ``depth`` levels)
    builds an argument parser or a Hydra app; programs that do not are never run here."""
    text = path.read_text(encoding="utf-8")
    if re.search(r"ArgumentParser|hydra\.main|hydra_app\(|sys\.argv", text):
        return True
    if depth:
        for module in re.findall(r"^\s*from\s+([\w.]+)\s+import|^\s*import\s+([\w.]+)", text, re.M):
            target = _module_file(module[0] or module[1])
            if target and target != path and _parses_arguments(target, depth - 1):
                return True
    return False


def _in_repo(module: str) -> bool:
    """Whether the top-level package of ``module`` is part of the repository (root or ``src/``)."""
    top = module.split(".")[0]
    return any((base / top).is_dir() or (base / f"{top}.py").is_file() for base in (REPO, REPO / "src"))


def _run_captured(run, script_dir: Path | None = None) -> Program:
    """Run ``run()`` (a program as ``__main__``) with ``hydra.main`` and
    ``ArgumentParser.parse_args`` replaced by functions that stop it and report.

    ``script_dir``: the program is a script (``python path/x.py``), so, as Python does, its
    folder and not the repository root is first on ``sys.path`` (``src/`` stays: it is
    installed); the repository's root packages (``bench``, ``scripts``) are hidden."""
    import hydra

    real_main, real_parse, real_known = hydra.main, argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def fake_main(config_path=None, config_name=None, version_base=None):
        def decorate(func):
            def wrapper(*_a, **_k):
                frame_file = func.__code__.co_filename
                raise _Captured("hydra", config_path=config_path, config_name=config_name, file=frame_file)

            return wrapper

        return decorate

    def fake_parse(self, args=None, namespace=None):
        raise _Captured("argparse", parser=self)

    hydra.main = fake_main
    argparse.ArgumentParser.parse_args = fake_parse
    argparse.ArgumentParser.parse_known_args = fake_parse
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    hidden = {}
    if script_dir is None:
        sys.path[:0] = [str(REPO), str(REPO / "src")]
    else:
        root = {str(REPO), "", "."}
        sys.path[:] = [str(script_dir), str(REPO / "src")] + [p for p in sys.path if p not in root and Path(p or ".").resolve() != REPO]
        for name in list(sys.modules):
            top = name.split(".")[0]
            if top not in ("tests",) and ((REPO / top).is_dir() or (REPO / f"{top}.py").is_file()) and top not in ("src", "conf"):
                hidden[name] = sys.modules.pop(name)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run()
    except _Captured as captured:
        if captured.kind == "argparse":
            return Program("argparse", parser=captured.info["parser"])
        config_path = captured.info["config_path"]
        base = Path(captured.info["file"]).parent
        config_dir = (base / config_path).resolve() if config_path else None
        return Program("hydra", config_dir=config_dir, config_name=captured.info["config_name"])
    except SystemExit as exc:
        return Program("error", error=f"exited ({exc.code}) before parsing its arguments")
    except ModuleNotFoundError as exc:
        if exc.name and not _in_repo(exc.name):
            return Program("unchecked", notes=[f"needs the optional package {exc.name!r}"])
        return Program("error", error=f"cannot import: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failure to start is the program's problem
        return Program("error", error=f"{type(exc).__name__} before parsing its arguments: {exc}")
    finally:
        hydra.main = real_main
        argparse.ArgumentParser.parse_args = real_parse
        argparse.ArgumentParser.parse_known_args = real_known
        sys.argv[:], sys.path[:] = saved_argv, saved_path
        sys.modules.update(hidden)
    return Program("error", error="ran to the end without parsing arguments")


def program_for_script(script: str) -> Program:
    """``python <script>``: the script must exist in the repository."""
    path = (REPO / script).resolve()
    key = ("script", str(path))
    if key not in _MODULE_CACHE:
        if not path.is_file():
            _MODULE_CACHE[key] = Program("error", error=f"no such script: {script}")
        elif not _parses_arguments(path):
            _MODULE_CACHE[key] = Program("none")
        else:
            def run():
                sys.argv = [str(path)]
                runpy.run_path(str(path), run_name="__main__")

            _MODULE_CACHE[key] = _run_captured(run, script_dir=path.parent)
    return _MODULE_CACHE[key]


def program_for_module(module: str) -> Program:
    """``python -m <module>``: a module of the repository (or ``src/``) with a ``__main__`` block."""
    key = ("module", module)
    if _has_placeholder(module):
        package = module.split("<", 1)[0].rstrip(".")
        ok = package and _module_file(package) is None and any((b / package.replace(".", "/")).is_dir() for b in (REPO, REPO / "src"))
        return Program("unchecked") if ok else Program("error", error=f"no package {package!r} in the repository")
    if key not in _MODULE_CACHE:
        path = _module_file(module)
        if path is None:
            _MODULE_CACHE[key] = Program("error", error=f"no module {module} in the repository (nor under src/)")
        elif path.name != "__main__.py" and "__main__" not in path.read_text(encoding="utf-8"):
            _MODULE_CACHE[key] = Program("error", error=f"{module} has no `if __name__ == \"__main__\"` block")
        elif not _parses_arguments(path):
            _MODULE_CACHE[key] = Program("none")
        else:
            def run():
                sys.argv = [str(path)]
                runpy.run_module(module, run_name="__main__", alter_sys=True)

            _MODULE_CACHE[key] = _run_captured(run)
    return _MODULE_CACHE[key]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def program_for_console(name: str) -> Program:
    """A ``[project.scripts]`` console command of pyproject.toml."""
    key = ("console", name)
    if key not in _MODULE_CACHE:
        target = _pyproject().get("project", {}).get("scripts", {}).get(name)
        if target is None:
            _MODULE_CACHE[key] = Program("error", error=f"no console command {name} in pyproject.toml [project.scripts]")
        else:
            module, func = target.split(":")

            def run():
                import importlib

                sys.argv = [name]
                getattr(importlib.import_module(module), func)()

            _MODULE_CACHE[key] = _run_captured(run)
    return _MODULE_CACHE[key]


# ---------------------------------------------------------------------------------------------
# Checking arguments


def _has_placeholder(value: str) -> bool:
    return bool(re.search(r"<[^<>]*>", value)) or "..." in value or "…" in value or PLACEHOLDER in value


_COMPOSED: dict[tuple, object] = {}


_OPTIONS: dict[tuple, list[str]] = {}


def _group_options(config_dir: Path, group: str) -> list[str]:
    """Options of a config group: the ``conf/<group>/*.yaml`` files, or Hydra's own (plugins)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if (str(config_dir), group) not in _OPTIONS:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            _OPTIONS[(str(config_dir), group)] = list(GlobalHydra.instance().config_loader().get_group_options(group))
    return _OPTIONS[(str(config_dir), group)]


def _is_group(config_dir: Path, key: str) -> bool:
    """Whether an override's key (``model``, ``hydra/launcher``, ``+augment@x``) names a config group."""
    return bool(_group_options(config_dir, key.lstrip("+~").split("@", 1)[0]))


def _compose(config_dir: Path, config_name: str, groups: tuple[str, ...], values: tuple[str, ...]) -> str | None:
    """Compose ``config_name`` with the group overrides ``groups`` (Hydra's compose API, cached:
    composition is the slow part), then apply the value overrides ``values`` as Hydra does
    (``ConfigLoaderImpl._apply_overrides_to_config``: unknown keys and wrong types fail).
    Returns None, or Hydra's error message."""
    import copy

    from hydra import compose, initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    key = (str(config_dir), config_name, groups)
    try:
        if key not in _COMPOSED:
            try:
                with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
                    _COMPOSED[key] = compose(config_name, overrides=list(groups), return_hydra_config=True)
            except Exception as exc:  # noqa: BLE001 - Hydra's errors vary in type; the message is the answer
                _COMPOSED[key] = exc
        composed = _COMPOSED[key]
        if isinstance(composed, Exception):
            raise composed
        if values:
            cfg = copy.deepcopy(composed)
            OmegaConf.set_readonly(cfg, False)
            OmegaConf.set_struct(cfg, True)
            ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(list(values)), cfg)
    except Exception as exc:  # noqa: BLE001
        message = str(exc).strip().splitlines()
        return " ".join(message[:2]) if message else type(exc).__name__
    return None


def _expand_sweep(override: str) -> list[str] | str:
    """The plain overrides a sweep override stands for (a few values of a choice or range,
    the start of an interval); a plain override is returned as is. A parse error is returned
    as a string."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    try:
        (parsed,) = OverridesParser.create().parse_overrides([override])
    except Exception as exc:  # noqa: BLE001
        return f"not a valid override {override!r}: {str(exc).splitlines()[0]}"
    if not parsed.is_sweep_override():
        return [override]
    prefix = override[: len(override) - len(override.split("=", 1)[1])]
    value = parsed.value()
    if isinstance(value, IntervalSweep):
        start = value.start if not float(value.start).is_integer() or isinstance(value.start, float) else int(value.start)
        return [f"{prefix}{start}"]
    values = list(parsed.sweep_string_iterator())
    return [f"{prefix}{v}" for v in values[:6]]


def check_hydra(program: Program, args: list[str]) -> list[str]:
    """Problems of ``args`` for a Hydra app: unknown flags, overrides that do not compose."""
    problems: list[str] = []
    config_name = program.config_name
    config_dir = program.config_dir
    overrides: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in _HYDRA_FLAGS_WITH_VALUE:
            if a in ("--config-name", "-cn") and i + 1 < len(args):
                config_name = args[i + 1]
            if a in ("--config-dir", "-cd", "--config-path", "-cp") and i + 1 < len(args):
                config_dir = (REPO / args[i + 1]).resolve()
            i += 2
            continue
        if a in _HYDRA_FLAGS:
            if a in ("-h", "--help", "--hydra-help", "--version", "-sc", "--shell-completion"):
                return problems
            i += 1
            continue
        if a.startswith("-") and "=" not in a:
            problems.append(f"unknown flag {a!r} (a Hydra app takes key=value overrides)")
        elif "=" not in a:
            if not _has_placeholder(a) and not (a.startswith("[") and a.endswith("]")):
                problems.append(f"{a!r} is not a key=value override")
        else:
            overrides.append(a)
        i += 1
    if config_dir is None or not (config_dir / f"{config_name}.yaml").is_file():
        return problems + [f"config {config_name!r} not found in {config_dir}"]
    plain: list[list[str]] = []
    for o in overrides:
        key, value = o.split("=", 1)
        bare = key.lstrip("+~")
        if _has_placeholder(key):
            continue
        if _has_placeholder(value) or value.startswith("$"):
            group = bare.split("@", 1)[0]
            if "/" in group or "." not in group:
                options = _group_options(config_dir, group)
                if options:
                    continue  # a group with a placeholder option: the group exists
                if "/" in group:
                    problems.append(f"no config group {group!r}")
                    continue
            o = f"{key}={PLACEHOLDER}"
        expanded = _expand_sweep(o)
        if isinstance(expanded, str):
            problems.append(expanded)
            continue
        plain.append(expanded)
    rounds = max((len(v) for v in plain), default=1)
    for r in range(rounds):
        chosen = [v[min(r, len(v) - 1)] for v in plain]
        groups = [o for o in chosen if _is_group(config_dir, o.split("=", 1)[0])]
        values = tuple(o for o in chosen if o not in groups)
        missing = [m for m in (_missing_option(config_dir, o) for o in groups) if m]
        if missing:
            problems += missing
            break
        if not values:
            continue  # every option exists; tests/test_configs.py composes each of them
        error = _compose(config_dir, config_name, _relevant_groups(config_dir, groups, values), values)
        if error:
            problems.append(f"does not compose with conf/{config_name}.yaml: {error}")
            break
    return problems


def _missing_option(config_dir: Path, override: str) -> str | None:
    """A message when a group override names an option the group lacks (``~group`` deletes: fine)."""
    key, value = override.split("=", 1)
    if key.startswith("~") or value in ("null", PLACEHOLDER):
        return None
    group = key.lstrip("+").split("@", 1)[0]
    options = _group_options(config_dir, group)
    if value not in options:
        return f"no option {value!r} in config group {group!r} (available: {', '.join(sorted(options))})"
    return None


def _relevant_groups(config_dir: Path, groups: list[str], values: tuple[str, ...]) -> tuple[str, ...]:
    """The group overrides that can change what the value overrides act on: a group whose
    package is a prefix of a value's key (``data`` for ``data.fold``, ``hydra/launcher`` for
    ``hydra.launcher.n_jobs``) or whose option is ``@package _global_`` (experiments,
    searches). Composing with only these keeps the number of (slow) compositions small."""
    keys = [v.split("=", 1)[0].lstrip("+~") for v in values]
    relevant = []
    for o in groups:
        key, option = o.split("=", 1)
        group = key.lstrip("+~").split("@", 1)[0]
        package = key.split("@", 1)[1] if "@" in key else group.replace("/", ".")
        path = config_dir / group / f"{option}.yaml"
        is_global = path.is_file() and "@package _global_" in path.read_text(encoding="utf-8")
        if is_global or any(k == package or k.startswith(package + ".") for k in keys):
            relevant.append(o)
    return tuple(relevant)


def check_argparse(program: Program, args: list[str]) -> list[str]:
    """Problems of ``args`` for an argparse program: its own parser's errors (placeholders aside)."""
    args = [PLACEHOLDER if _has_placeholder(a) else a for a in args]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            program.parser.parse_args(args)
    except SystemExit as exc:
        if exc.code in (0, None):
            return []
        message = err.getvalue().strip().splitlines()
        message = message[-1] if message else f"exit code {exc.code}"
        if PLACEHOLDER in message:
            return []
        return [f"arguments rejected: {message}"]
    return []


def _makefile_rules(makefile: Path) -> dict[str, list[str]]:
    """Target -> recipe lines of a Makefile (simple rules; variables in targets not expanded)."""
    rules: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in makefile.read_text(encoding="utf-8").splitlines():
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
            continue
        m = re.match(r"^([A-Za-z0-9_.\-/ ]+):(?!=)", line)
        if m and not line.startswith((".PHONY", "\t")):
            current = []
            for target in m.group(1).split():
                rules.setdefault(target, current)
        elif line.strip() and not line.startswith("#") and not re.match(r"^(ifeq|ifneq|ifdef|ifndef|else|endif)\b", line):
            current = None
    return rules


def check_make(args: list[str]) -> list[str]:
    """``make`` words: targets exist; ``ARGS=`` passed to a Python program is checked as its arguments."""
    rules = _makefile_rules(REPO / "Makefile")
    variables = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    targets = [a for a in args if "=" not in a and not a.startswith("-")]
    problems = [f"no make target {t!r} in the Makefile" for t in targets if t not in rules]
    for t in targets:
        for line in rules.get(t, []):
            if "$(ARGS)" not in line or "$(PY)" not in line:
                continue
            line = line.lstrip("@-")
            line = line.replace("$(PY)", "python").replace("$(ARGS)", variables.get("ARGS", ""))
            line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), f"<{m.group(1)}>"), line)
            for words in _split_commands(line):
                index = _program_index(words)
                if index is not None:
                    problems += [f"make {t}: {p}" for p in check_words(words[index:])]
    return problems


def check_pip(args: list[str]) -> list[str]:
    """``pip install -e '.[extra,...]'``: the extras exist in pyproject.toml."""
    extras = set(_pyproject().get("project", {}).get("optional-dependencies", {}))
    problems = []
    for a in args:
        m = re.fullmatch(r"\.\[([\w,\- ]+)\]", a)
        if m:
            problems += [f"no optional dependency group [{e.strip()}] in pyproject.toml"
                         for e in m.group(1).split(",") if e.strip() not in extras]
    return problems


def check_words(words: list[str]) -> list[str]:
    """Problems of one command (its words from the program on)."""
    program_word, args = words[0], words[1:]
    name = program_word.rsplit("/", 1)[-1]
    if name == "make":
        return check_make(args)
    if name.startswith("pip"):
        return check_pip(args)
    if name.startswith("ser-"):
        program = program_for_console(name)
    else:  # python
        if not args or args[0] in ("-c", "-") or args[0].startswith("<"):
            return []
        flags = []
        while args and args[0].startswith("-") and args[0] not in ("-m",):
            flags.append(args.pop(0))
        if not args:
            return []
        if args[0] == "-m":
            if len(args) < 2:
                return ["python -m without a module"]
            module, args = args[1], args[2:]
            if module in ("pytest", "pip", "venv", "ensurepip", "http.server", "json.tool", "cProfile", "timeit"):
                return check_pip(args) if module == "pip" else []
            program = program_for_module(module)
        else:
            script, args = args[0], args[1:]
            if _has_placeholder(script):
                return []
            program = program_for_script(script)
    if program.kind == "error":
        return [program.error]
    if program.kind == "unchecked":
        return []
    if program.kind == "none":
        return [f"{program_word} takes no arguments, given {args}"] if args else []
    if program.kind == "hydra":
        return check_hydra(program, args)
    return check_argparse(program, args)


# ---------------------------------------------------------------------------------------------
# Links


def github_slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text (duplicates numbered as GitHub does), and explicit ``id``/``name`` anchors."""
    seen: dict[str, int] = {}
    result = set()
    for _, line, _, in_block in _fenced_lines(text):
        if in_block:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            result.add(slug if n == 0 else f"{slug}-{n}")
        result.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return result


def check_links(text: str, path: Path) -> list[str]:
    """Problems of the relative links of a Markdown text at ``path``."""
    problems = []
    for no, line, _, in_block in _fenced_lines(text):
        if in_block:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line) + re.findall(r"href=\"([^\"]+)\"", line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            if not file_part:
                if anchor and anchor not in anchors(text):
                    problems.append(f"{path.name}:{no}: broken link {target!r}: no heading with anchor #{anchor}")
                continue
            dest = (path.parent / file_part).resolve()
            if not dest.exists():
                problems.append(f"{path.name}:{no}: broken link {target!r}: no such file or folder")
                continue
            if anchor and dest.is_file() and dest.suffix == ".md":
                if anchor not in anchors(dest.read_text(encoding="utf-8")):
                    problems.append(f"{path.name}:{no}: broken link {target!r}: no heading with anchor #{anchor} in {dest.name}")
    return problems


# ---------------------------------------------------------------------------------------------


def check_markdown(text: str, path: Path, commands: bool = True) -> list[str]:
    """Every problem of a Markdown text at ``path`` (which need not exist): commands (unless
    ``commands`` is false), then links."""
    problems = []
    os.environ.setdefault("PROJECT_ROOT", str(REPO))
    for command in extract_commands(text, path.name) if commands else []:
        index = _program_index(command.words)
        for problem in check_words(command.words[index:]):
            problems.append(f"{path.name}:{command.line}: `{command.text}`: {problem}")
    return problems + check_links(text, path)


#: Generated files whose commands are records of what was run (scripts/results.py copies them
#: from the run records), not instructions: only their links are checked.
GENERATED = {"RESULTS.md"}


def documentation_files() -> list[Path]:
    """README.md and docs/*.md."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
