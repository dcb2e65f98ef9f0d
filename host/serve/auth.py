"""Who may do what: bearer tokens, their roles and their projects.

- `admin`: everything (projects, runtimes, settings, tokens);
- `deploy`: its project's models (upload, alias, delete), and what `run` may;
- `run`: its project's models, read and run.

A token bound to a project sees nothing of another: another project is answered as if it
did not exist (404), not "forbidden", so tokens cannot probe for names. The catalog is
readable and runnable by every token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import Forbidden, NotFound, Unauthorized
from ..registry.names import CATALOG
from ..registry.records import Token
from ..registry.registry import Registry

_RANK = {"run": 0, "deploy": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    """The caller: a token, or the operator when the server runs with `--no-auth`."""

    name: str
    role: str
    project: str | None

    @classmethod
    def of(cls, token: Token) -> Principal:
        return cls(token.name, token.role, token.project)

    def sees(self, project: str) -> bool:
        return project == CATALOG or self.project is None or self.project == project

    def require(self, role: str, project: str | None = None) -> None:
        """Raises NotFound for a project it may not see, Forbidden for a role it lacks."""
        if project is not None and not self.sees(project):
            raise NotFound(f"no project {project!r}")
        if project == CATALOG and role in ("run", "read"):
            return
        needed = _RANK["run"] if role == "read" else _RANK[role]
        if _RANK[self.role] < needed:
            raise Forbidden(f"token {self.name!r} ({self.role}) may not do this: it needs {role}")


OPERATOR = Principal("operator", "admin", None)


def bearer(header: str | None) -> str:
    """The secret of an `Authorization: Bearer` header. Raises Unauthorized."""
    if not header:
        raise Unauthorized("this route needs a token: Authorization: Bearer TOKEN")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("the Authorization header must be: Bearer TOKEN")
    return secret.strip()


class Authenticator:
    """Tokens looked up in the registry, each answer kept for `ttl` seconds (a revoked
    token is refused within that time), so that a request costs no database read."""

    def __init__(self, registry: Registry, ttl: float = 1.0) -> None:
        self.registry = registry
        self.ttl = ttl
        self._known: dict[str, tuple[float, Principal]] = {}
        self._generation = 0  # bumped by forget(): a lookup begun before is not kept

    def cached(self, secret: str) -> Principal | None:
        found = self._known.get(secret)
        if found is not None and time.monotonic() - found[0] < self.ttl:
            return found[1]
        return None

    def lookup(self, secret: str) -> Principal:
        """Raises Unauthorized for a token the registry does not know (not cached)."""
        generation = self._generation
        principal = Principal.of(self.registry.authenticate(secret))
        if len(self._known) > 10_000:
            self._known.clear()
        if generation == self._generation:
            self._known[secret] = (time.monotonic(), principal)
        return principal

    def forget(self) -> None:
        """Drops every kept answer: a token was revoked (or its project deleted) through
        this server, which holds from the next request on."""
        self._known.clear()
        self._generation += 1
