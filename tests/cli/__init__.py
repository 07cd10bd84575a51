"""The command line: argv parsing, progress display, start-up, and each command."""
