"""``python -m memfs`` runs the command line."""

from memfs.cli import main

main()
