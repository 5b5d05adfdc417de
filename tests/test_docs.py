"""The documentation agrees with the code: every command in a code block of README.md and
docs/*.md names a script, module, make target or console command that exists, its Hydra
overrides compose against conf/ and its argparse options parse; every relative link
resolves (file and heading anchor; docs/RESULTS.md, generated from run records, for its
links only). The checker is tests/helpers/doc_commands.py; the
last tests show that it fails on a broken command and a broken link."""

from __future__ import annotations

import re

import pytest

from tests.helpers.doc_commands import GENERATED, REPO, check_markdown, documentation_files, extract_commands

FILES = documentation_files()


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(REPO).as_posix() for p in FILES])
def test_documentation_commands_and_links_agree_with_the_code(path):
    problems = check_markdown(path.read_text(encoding="utf-8"), path, commands=path.name not in GENERATED)
    assert not problems, "\n".join(problems)


def test_readme_is_short_and_leads_with_what_to_expect():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines (at most 300)"
    first_screen = "\n".join(lines[:60]).lower()
    assert "new speaker" in first_screen and "uar" in first_screen


def test_the_readme_commands_are_found():
    """The scanner sees the README's commands (a scanner that finds nothing would pass anything)."""
    commands = extract_commands((REPO / "README.md").read_text(encoding="utf-8"), "README.md")
    programs = {c.words[0].rsplit("/", 1)[-1] for c in commands}
    assert len(commands) >= 15 and {"python", "make"} <= programs


BROKEN = [
    ("```bash\npython train.py model=cnn3d\n```", "cnn3d"),
    ("```bash\npython train.py data.no_such_key=1\n```", "no_such_key"),
    ("```bash\npython train.py -m model=cnn1d,cnn9d data=tess\n```", "cnn9d"),
    ("```bash\npython predict.py ckpt_path=<ckpt> input=a.wav no_such_option=3\n```", "no_such_option"),
    ("```bash\npython bench/prep.py\n```", "bench"),  # fails as Python runs it: no module named bench
    ("```bash\npython scripts/no_such_script.py\n```", "no such script"),
    ("```bash\npython -m bench.no_such_bench --repeats 3\n```", "no module"),
    ("```bash\npython -m bench.prep --no-such-flag\n```", "--no-such-flag"),
    ("```bash\npython scripts/results.py ensemble savee_loso --members a,b\n```", "--tag"),
    ("```bash\nmake no_such_target\n```", "no_such_target"),
    ('```bash\nmake train ARGS="model=cnn5d"\n```', "cnn5d"),
    ("```bash\nser-no-such-command x=1\n```", "ser-no-such-command"),
    ("```bash\npython train.py -m hydra/launcher=no_such_launcher\n```", "no_such_launcher"),
    ("```bash\npython -m ser_lightning.cli.download ravdess --bogus\n```", "--bogus"),
    ("```bash\npip install -e '.[no_such_extra]'\n```", "no_such_extra"),
    ("Inline: `python eval.py ckpt_path=<c> data=nosuchcorpus`.", "nosuchcorpus"),
    ("[the data](docs/NO_SUCH_FILE.md)", "NO_SUCH_FILE"),
    ("[results](docs/RESULTS.md#no-such-heading)", "no-such-heading"),
    ("[here](#nowhere)\n\n## Somewhere\n", "nowhere"),
]


@pytest.mark.parametrize("markdown, expected", BROKEN, ids=[e for _, e in BROKEN])
def test_the_check_fails_on_a_broken_command_or_link(markdown, expected):
    problems = check_markdown(markdown, REPO / "SYNTHETIC.md")
    assert problems and expected in "\n".join(problems), problems


GOOD = """
# Title

## A heading, with `code` and punctuation!

[self](#a-heading-with-code-and-punctuation) [results](docs/RESULTS.md#results) [conf](conf/)

```bash
OMP_NUM_THREADS=1 nice -n 10 python train.py -m model=cnn1d,cnn2d data=tess,ravdess trainer.max_epochs=2  # a comment
python predict.py ckpt_path=outputs/<date>/<time>/checkpoints/best.ckpt input=clip.wav \\
    output=predictions.csv
python train.py -m hparams_search=optuna 'model.backbone.dropout=interval(0.1,0.3)'
python train.py model=<name> data.root=$HOME/corpora/tess
python -m bench.prep --repeats 5 && python scripts/results.py ensemble savee_loso --members a,b --tag c
make train ARGS="model=cnn1d data=ravdess"
ser-predict ckpt_path=best.ckpt input=clip.wav
```
"""


def test_the_check_passes_correct_commands_and_links():
    assert check_markdown(GOOD, REPO / "SYNTHETIC.md") == []


def test_the_architecture_page_names_every_module():
    """docs/ARCHITECTURE.md's tree names every folder and module of the package, so a new
    module (or a new folder such as encoders/ or serving/) is placed there too."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    package = REPO / "src" / "ser_lightning"
    missing = [p.relative_to(package).as_posix() for p in sorted(package.rglob("*.py"))
               if p.name != "__init__.py" and not re.search(rf"\b{re.escape(p.stem)}\b", text)]
    missing += [f"{d.name}/" for d in sorted(package.iterdir()) if d.is_dir() and (d / "__init__.py").is_file()
                and f"{d.name}/" not in text]
    assert not missing, f"add these to docs/ARCHITECTURE.md: {missing}"


def test_every_predict_option_is_in_the_option_table():
    """Every key of conf/predict.yaml has a row in docs/PREDICTION.md's option table."""
    from omegaconf import OmegaConf

    keys = [k for k in OmegaConf.load(REPO / "conf" / "predict.yaml") if k not in ("defaults", "hydra")]
    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", (REPO / "docs" / "PREDICTION.md").read_text(encoding="utf-8"), re.M)}
    missing = [k for k in keys if k not in rows]
    assert not missing, f"conf/predict.yaml keys without a row in docs/PREDICTION.md: {missing}"
