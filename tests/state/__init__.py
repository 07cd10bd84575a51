"""state: the store and the output folder."""
