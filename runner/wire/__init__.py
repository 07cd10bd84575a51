"""wire: pure: what each provider is sent and answers: payloads and fingerprints, the
providers' specs and body translations, answer parsing, error translation, the client
Protocol and its answer types. No I/O of its own."""
