"""providers.gateway: talking to the gateway over HTTP: the client, reachability, timeouts.

Its answer types and the Protocol the scheduler uses are pure, in :mod:`runner.wire.protocol`."""
