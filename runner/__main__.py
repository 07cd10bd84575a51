"""``python -m runner`` is ``shotrun``."""

from runner.cli import console_main

console_main()
