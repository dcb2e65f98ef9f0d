"""The registry: projects, models (versions, aliases), the catalog and runtimes, on SQLite
and a blob directory, or PostgreSQL and S3."""

from .catalog import CatalogEntry
from .names import NAME_PATTERN, Reference, parse_reference
from .records import Model, ModelVersion, Project, Runtime, Tensor, Token
from .registry import Registry, SessionSource, home

__all__ = [
    "NAME_PATTERN",
    "CatalogEntry",
    "Model",
    "ModelVersion",
    "Project",
    "Reference",
    "Registry",
    "Runtime",
    "SessionSource",
    "Tensor",
    "Token",
    "home",
    "parse_reference",
]
