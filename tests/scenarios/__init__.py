"""End-to-end suites: whole runs against the emulator (torture, continuity, kept renders)."""
