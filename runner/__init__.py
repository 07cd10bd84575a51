"""shotrun: a declarative batch manifest runner for Kling O3 reference-to-video."""

__version__ = "0.1.0"

# Logging is set up before any module of shotrun can log: see runner.core.log.
from runner.core import log as _log  # noqa: F401
