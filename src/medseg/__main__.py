"""``python -m medseg ...`` runs the command-line interface (e.g. under ``torchrun -m medseg``)."""

from medseg.cli.main import app

app()
