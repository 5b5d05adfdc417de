"""Train and evaluate the results protocols and write docs/RESULTS.md:

    python scripts/results.py run <protocol> [--model cnn2d] [--features logmel] [--set k=v ...] [--jobs a,b]
    python scripts/results.py ensemble <protocol> --members <tag>,<tag>,... --tag <name>
    python scripts/results.py rescore <protocol> [--tags a,b]   # score finished jobs again (scoring code changed)
    python scripts/results.py table

The logic (protocols, run records, nested selection, the Markdown table) is
:mod:`ser_lightning.evaluation.results`.
"""

import sys

from ser_lightning.evaluation.results import main

if __name__ == "__main__":
    sys.exit(main())
