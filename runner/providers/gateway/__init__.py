"""Talking to the gateway: the HTTP client, its types, and the Protocol the scheduler uses."""
