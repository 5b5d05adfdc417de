"""The house rules (docs DESIGN.md, "Target layout"), checked on the source:

* imports run downwards: cli -> training -> evaluation -> inference -> models, data ->
  transforms -> the shared leaves (labels, errors, metrics, plots); a module imports its
  own folder or a folder below it, never one above or beside it;
* the package has no import cycles (modules, including imports inside functions);
* every module imports on its own, in a fresh interpreter;
* the inference path imports neither Lightning nor W&B;
* no test module imports another test module (shared helpers live in tests/helpers/).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "ser_lightning"

#: Folder (or shared leaf) -> its layer; a module may import its own folder and lower layers.
#: data and models share a layer but are independent of each other (see ALLOWED); so do
#: transforms and encoders (pretrained speech encoders, which models/ssl.py composes with a head).
#: ``download`` is the ``python -m ser_lightning.download`` spelling of the cli.download runner.
#: ``serving`` (serve.py's app) is a caller of inference, beside evaluation: cli.serve imports
#: it, and it never imports evaluation, training or cli.
#: ``baselines`` (the openSMILE-functionals SVM) scores through evaluation and is run by training.
LAYERS = {"labels": 0, "errors": 0, "metrics": 0, "plots": 0, "transforms": 1, "encoders": 1, "released": 1, "data": 2, "models": 2,
          "inference": 3, "evaluation": 4, "serving": 4, "baselines": 4.5, "training": 5, "cli": 6, "download": 7}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """Every ser_lightning module ``path`` imports (at top level or inside functions)."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ser_lightning"))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative import
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            if module.startswith("ser_lightning"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_has_a_layer():
    unknown = {_folder(m) for m in _modules()} - set(LAYERS) - {None}
    assert not unknown, f"place these in LAYERS (and in docs/ARCHITECTURE.md): {unknown}"


def test_imports_run_downwards():
    wrong = []
    for module, targets in _graph().items():
        src = _folder(module)
        for target in targets:
            dst = _folder(target)
            if src is None or dst is None or dst == src:
                continue  # the package root (version only) or the module's own folder
            if LAYERS[dst] >= LAYERS[src]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    # an import of a package runs its __init__: count it as an edge to the package
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _fresh_imports(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_module_imports_alone():
    """Each module in its own fresh interpreter (forked from one that has imported only the
    third-party libraries, to stay fast): a module that works only after another one was
    imported first fails here."""
    names = list(_modules())
    code = f"""
import json, os, sys, importlib, traceback
import numpy, torch, torchaudio, soundfile, soxr, omegaconf, hydra, yaml, matplotlib  # third-party only
failed = {{}}
for name in {names!r}:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            msg = ""
        except BaseException:
            msg = traceback.format_exc()[-1500:]
        os.write(w, msg.encode()); os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        msg = fh.read()
    os.waitpid(pid, 0)
    if msg:
        failed[name] = msg
print(json.dumps(failed))
"""
    failed = _fresh_imports(code)
    assert not failed, "\n\n".join(f"{k}:\n{v}" for k, v in failed.items())


@pytest.mark.parametrize("modules", [
    ["ser_lightning.inference.predictor", "ser_lightning.inference.writers", "ser_lightning.inference.live",
     "ser_lightning.inference.export", "ser_lightning.inference.abstention", "ser_lightning.models.checkpoint"],
    ["ser_lightning.cli.predict", "ser_lightning.cli.export", "ser_lightning.cli.stream"],
    ["ser_lightning.cli.serve", "ser_lightning.serving.app", "ser_lightning.serving.server"],
    ["ser_lightning.cli.eval", "ser_lightning.evaluation.evaluate", "ser_lightning.evaluation.scoring",
     "ser_lightning.evaluation.ensemble"],
], ids=["inference", "predict-export-stream-runners", "serve", "eval"])
def test_the_inference_path_imports_neither_lightning_nor_wandb(modules):
    """python predict.py must not pay for `import lightning` (10 s on a small CPU)."""
    code = f"""
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning", "wandb"))))
"""
    assert _fresh_imports(code) == []



def test_no_test_module_imports_another_test_module():
    wrong = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                wrong.append(f"{path.name} imports {node.module}")
            elif isinstance(node, ast.Import):
                wrong += [f"{path.name} imports {a.name}" for a in node.names if a.name.startswith("tests.test_")]
    assert not wrong, "move shared helpers into tests/helpers/:\n" + "\n".join(wrong)
