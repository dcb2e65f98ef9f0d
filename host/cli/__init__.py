"""The `wasmhost` command line: `main` runs it (`python -m wasmhost.cli`)."""

from .main import EXIT_CODES, cli, main, map_inputs

__all__ = ["EXIT_CODES", "cli", "main", "map_inputs"]
