"""wire: payloads, fingerprints and costs."""
