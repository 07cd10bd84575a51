"""core: files written crash-safe, logging."""
