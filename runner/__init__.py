"""shotrun: a declarative batch manifest runner for Kling O3 reference-to-video."""

__version__ = "0.1.0"
