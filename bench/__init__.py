"""Benchmarks, run from the repository root as ``python -m bench.<name>`` (for example
``python -m bench.prep``) with ser-lightning installed (``pip install -e .``). Each
prints a Markdown block for docs/PERFORMANCE.md. ``bench.common``: machine description,
timing and medians shared by all."""
