"""``python -m ser_lightning.download <corpus> ...``: the spelling issue #15 and earlier notes
give for the corpus downloader; it runs :mod:`ser_lightning.cli.download` (the runner, also
``ser-download`` and ``make data``)."""

import sys

from ser_lightning.cli.download import main

if __name__ == "__main__":
    sys.exit(main())
