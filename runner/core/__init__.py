"""core: the words every room shares: errors and exit codes, model values, money, words,
files written crash-safe, logging, redaction, time, advice, bulk work, selection.

The bottom layer: imports nothing else of runner."""
