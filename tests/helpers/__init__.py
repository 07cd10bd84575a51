"""Shared builders for tests (manifests, emulators, stores, promises); not tests themselves."""
