"""The tests' throwaway PostgreSQL cluster: the benchmarks use it too, so it lives in
:mod:`benchmarks.postgres`; this name stays for the tests' imports."""

from benchmarks.postgres import SUPERUSER, PgServer, binaries, start

__all__ = ["SUPERUSER", "PgServer", "binaries", "start"]
