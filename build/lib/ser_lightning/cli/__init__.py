"""The command runners behind the thin entry points (train.py, predict.py, eval.py,
export.py, stream.py, explore.py; ``python -m ser_lightning.cli.explore`` and
``python -m ser_lightning.cli.download``) and the ``ser-*`` console commands
(``console``). Each runner imports only the folders its command needs: predict, export
and stream import the inference path alone (no Lightning, no W&B).

May import: any folder.
"""
