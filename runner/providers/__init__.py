"""providers: HTTP to whoever renders: the gateway, fal.ai and Kling clients behind the
Protocol of :mod:`runner.wire.protocol`, downloads, the spool, the session that opens one.

What each provider is (its spec, its wire format) lives below, in :mod:`runner.wire`."""
