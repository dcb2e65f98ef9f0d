"""`wasmhost serve` and `wasmhost token`: the service and its bearer tokens."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import InvalidArgument
from ..registry.registry import Registry
from ..runtime.limits import parse_size
from .registry import _table, open_registry


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, help="Port to bind.")
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without tokens, every caller as admin (loopback addresses only).",
)
@click.option("--threads", type=int, default=None, help="Threads models run on (default 2 x CPUs).")
@click.option(
    "--max-request-size", default="64MiB", show_default=True, help="Largest infer request body."
)
@click.option(
    "--body-timeout",
    default=60.0,
    show_default=True,
    help="Seconds a request body may take to arrive (408 after that).",
)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--isolation",
    type=click.Choice(["per-run", "pooled"]),
    default="per-run",
    show_default=True,
    help="per-run: each request in a fresh isolate spawned from the model's snapshot "
    "(where it has one); pooled: isolates reused from request to request.",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[ADDRESS]",
    help="Run the models on a Ray cluster's replicas (the ray extra): its head's HOST:PORT, "
    "`auto` (the default: RAY_ADDRESS or this machine's `ray start`), or `local`.",
)
@click.option("--replicas", type=int, default=None, help="[ray] A fixed number of replicas.")
@click.option("--min-replicas", type=int, default=None, help="[ray] Autoscaling's floor (1).")
@click.option("--max-replicas", type=int, default=None, help="[ray] Autoscaling's ceiling (4).")
@click.option(
    "--target-ongoing-requests",
    type=float,
    default=None,
    help="[ray] Requests per replica autoscaling aims at (2).",
)
@click.option(
    "--max-ongoing-requests", type=int, default=None, help="[ray] Runs at once per replica (4)."
)
@click.option(
    "--max-queued-requests",
    type=int,
    default=None,
    help="[ray] Requests waiting for a replica; more are refused with 429 (64).",
)
@click.option(
    "--replica-cpus", type=float, default=None, help="[ray] CPUs reserved per replica (1)."
)
@click.option(
    "--models-per-replica",
    type=int,
    default=None,
    help="[ray] Model versions each replica keeps loaded (8).",
)
@click.option(
    "--request-timeout",
    type=float,
    default=None,
    help="[ray] Seconds a run may take, replica's queue and load included; then 503 (120).",
)
@click.option(
    "--start-timeout",
    type=float,
    default=None,
    help="[ray] Seconds to wait for the replicas at start (120).",
)
@click.option("--ray-app", default=None, help="[ray] The Ray Serve application's name (wasmhost).")
@click.option(
    "--ray-attach",
    is_flag=True,
    default=None,
    help="[ray] Join the app another front deployed (--ray-app) instead of deploying one.",
)
def serve(
    host: str,
    port: int,
    no_auth: bool,
    threads: int | None,
    max_request_size: str,
    body_timeout: float,
    log_level: str,
    isolation: str,
    ray_address: str | None,
    **ray_options: Any,
) -> None:
    """Serve the registry's models: Open Inference Protocol v2 (tritonclient, KServe),
    the management API and /metrics. Stops cleanly on SIGTERM.

    The registry is --registry/--blobs (before `serve`), WASMHOST_REGISTRY or WASMHOST_HOME.
    Every route but /v2/health needs a token: `wasmhost token create`.

    With --ray, the models run on a Ray Serve deployment across a cluster, from a
    registry every node reads (PostgreSQL and S3): docs/scaling.md.
    """
    given = {k: v for k, v in ray_options.items() if v is not None}
    if given and ray_address is None:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InvalidArgument(f"{flags} apply only with --ray")
    scaling = [k for k in ("min_replicas", "max_replicas", "target_ongoing_requests") if k in given]
    if "replicas" in given and scaling:
        flags = ", ".join("--" + k.replace("_", "-") for k in scaling)
        raise InvalidArgument(f"--replicas is a fixed number: {flags} autoscale instead")
    deploying = set(given) - {"ray_app", "ray_attach", "request_timeout"}
    if given.get("ray_attach") and deploying:
        flags = ", ".join(sorted("--" + k.replace("_", "-") for k in deploying))
        raise InvalidArgument(f"{flags}: the deploying front's settings, not --ray-attach's")
    registry = open_registry(
        local_only="serve serves a registry of this host (--registry, WASMHOST_HOME); "
        "--server names a remote service"
    )
    assert isinstance(registry, Registry)
    try:
        from ..serve.server import serve as run
    except ImportError as e:  # the serve extra is not installed: say how, in one line
        raise InvalidArgument(
            f"wasmhost serve needs the serve extra ({e.name} is missing): "
            "pip install 'wasmhost[serve]'"
        ) from None

    settings = None
    if ray_address is not None:
        try:
            from ..serve.ray_backend import RaySettings
        except ImportError as e:  # the ray extra is not installed: say how, in one line
            raise InvalidArgument(
                f"wasmhost serve --ray needs the ray extra ({e.name} is missing): "
                "pip install 'wasmhost[ray]'"
            ) from None
        if "ray_app" in given:
            given["app"] = given.pop("ray_app")
        if "ray_attach" in given:
            given["attach"] = given.pop("ray_attach")
        settings = RaySettings(address=ray_address, **given)
        settings.check()

    run(
        registry,
        host=host,
        port=port,
        auth=not no_auth,
        threads=threads,
        max_request_size=parse_size(max_request_size, "--max-request-size"),
        body_timeout=body_timeout,
        log_level=log_level,
        isolation=isolation,
        ray=settings,
    )


@click.group()
def token() -> None:
    """Bearer tokens of the service (stored hashed; a secret is shown once)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "deploy", "run"]),
    default="run",
    show_default=True,
    help="admin: everything; deploy: a project's models; run: read and run them.",
)
@click.option("--project", default=None, help="The one project it may act on (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_create(name: str, role: str, project: str | None, as_json: bool) -> None:
    """Create token NAME; its secret is the last word printed, shown this once."""
    record, secret = open_registry().create_token(name, role=role, project=project)
    if as_json:
        click.echo(json.dumps(record.to_dict() | {"token": secret}))
    else:
        scope = f"project {record.project}" if record.project else "every project"
        click.echo(f"created token {record.name} ({record.role}, {scope}): {secret}")


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = open_registry().tokens()
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in found]))
        return
    _table(
        None,
        ["name", "role", "project", "created", "by"],
        [[t.name, t.role, t.project or "(all)", t.created_at, t.created_by] for t in found],
    )


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke token NAME: requests bearing it are refused from now on."""
    found = open_registry().revoke_token(name)
    click.echo(f"revoked token {found.name}")


COMMANDS = [serve, token]
