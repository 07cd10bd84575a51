"""Read models for people: what status, the report, review and export show, gathered."""
