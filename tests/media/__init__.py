"""media: verifying outputs."""
