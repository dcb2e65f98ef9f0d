"""The registry's commands: `runtime`, `project`, `model`, `catalog`, `config`, `registry`.

Each prints a table, or JSON with `--json`. The registry is a service's with `--server`
(and `--token`; or `WASMHOST_SERVER`, `WASMHOST_TOKEN`), through `wasmhost.Client`; else
`--registry`/`--blobs` (or `WASMHOST_REGISTRY`/`WASMHOST_BLOBS`), else the directory
`WASMHOST_HOME`, else the user data directory. What only works on the registry's own host
(`runtime add`, `registry info|check|gc`) is refused with `--server`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from ..errors import InvalidArgument
from ..registry.records import ModelVersion
from ..registry.registry import Registry
from ..registry.settings import SETTINGS
from ..runtime.limits import Limits, format_size

if TYPE_CHECKING:
    from ..client import Client

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def server_client() -> Client | None:
    """The service `--server` (or `WASMHOST_SERVER`) names, with `--token`; None if none.

    Raises InvalidArgument when `--registry` is given on the command line too.
    """
    root = click.get_current_context().find_root()
    server = root.params.get("server")
    if not server:
        return None
    if root.get_parameter_source("registry") is ParameterSource.COMMANDLINE:
        raise InvalidArgument("--server and --registry name two registries: give one")
    from ..client import Client

    return Client(server, root.params.get("token"))


def open_registry(*, local_only: str | None = None) -> Registry | Client:
    """The registry the command line names: a service's (`--server`, a `Client` with the
    same methods), else root options, environment, home.

    `local_only`: why the command needs a registry in this process; with `--server` it
    is refused (InvalidArgument) with that reason.
    """
    root = click.get_current_context().find_root()
    if local_only and root.params.get("server"):
        raise InvalidArgument(f"{local_only}: drop --server (or unset WASMHOST_SERVER)")
    client = server_client()
    if client is not None:
        return client
    return Registry(root.params.get("registry"), blobs=root.params.get("blobs"))


def _console() -> Console:
    return Console(width=1000 if not click.get_text_stream("stdout").isatty() else None)


def _emit(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=None))


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    _console().print(table)


def _limits_text(limits: dict[str, Any]) -> str:
    parts = []
    for key, value in limits.items():
        parts.append(f"{key}={format_size(value) if key == 'memory' else value}")
    return ", ".join(parts) or "defaults"


def _signature(tensors: list[Any]) -> str:
    return "; ".join(f"{t.name}: {t.type} {t.shape}" for t in tensors)


# --- runtime ----------------------------------------------------------------------


@click.group()
def runtime() -> None:
    """Runtimes: the guest modules projects run their models on."""


@runtime.command("list")
@_json_option
def runtime_list(as_json: bool) -> None:
    """List runtimes with their versions and module sha256."""
    found = open_registry().runtimes()
    if as_json:
        _emit([r.to_dict() for r in found])
        return
    _table(
        None,
        ["name", "version", "module sha256", "description"],
        [[r.name, r.version, r.module_sha256, r.description] for r in found],
    )


@runtime.command("add")
@click.argument("name")
@click.argument("module", type=click.Path(exists=True, dir_okay=False))
@click.option("--version", "version", default="", help="A version label to show.")
@click.option("--description", default="", help="What this runtime is.")
@_json_option
def runtime_add(name: str, module: str, version: str, description: str, as_json: bool) -> None:
    """Register MODULE (a guest .wasm of ABI v1) as runtime NAME."""
    registry = open_registry(
        local_only="runtime add registers a guest module in a registry on this host; "
        "a server's runtimes are registered on its host"
    )
    found = registry.register_runtime(name, module, version=version, description=description)
    if as_json:
        _emit(found.to_dict())
    else:
        click.echo(f"registered runtime {found.name} (module sha256 {found.module_sha256})")


# --- project ----------------------------------------------------------------------


def _limit_overrides(
    memory: str | None,
    timeout: str | None,
    fuel: int | None,
    concurrency: int | None = None,
    queue: int | None = None,
) -> dict:
    given: dict[str, Any] = {}
    if memory is not None:
        given["memory"] = memory
    if timeout is not None:
        if timeout.lower() == "none":
            given["timeout"] = None
        else:
            try:
                given["timeout"] = float(timeout)
            except ValueError:
                raise InvalidArgument(
                    f"--timeout: expected seconds or 'none', got {timeout!r}"
                ) from None
    if fuel is not None:
        given["fuel"] = fuel
    Limits(**given)  # checks the values now, with the option's name in the message
    for name, value, low in (("concurrency", concurrency, 1), ("queue", queue, 0)):
        if value is not None:
            if not low <= value <= 10_000:
                raise InvalidArgument(f"--{name}: expected {low} to 10000, got {value}")
            given[name] = value
    return given


def _project_limit_options(f: Any) -> Any:
    f = click.option(
        "--queue", type=int, default=None, help="Service: requests that may wait per model."
    )(f)
    f = click.option(
        "--concurrency", type=int, default=None, help="Service: runs at once per model."
    )(f)
    f = click.option("--fuel", type=int, default=None, help="Default instructions per run.")(f)
    f = click.option("--timeout", default=None, help="Default seconds per guest call, or none.")(f)
    f = click.option("--memory", default=None, help="Default guest memory cap, e.g. 256MiB.")(f)
    return f


@click.group()
def project() -> None:
    """Projects: named groups of models on one runtime."""


@project.command("create")
@click.argument("name")
@click.option("--runtime", "runtime_name", default="onnx", show_default=True)
@_project_limit_options
@_json_option
def project_create(
    name: str,
    runtime_name: str,
    memory: str | None,
    timeout: str | None,
    fuel: int | None,
    concurrency: int | None,
    queue: int | None,
    as_json: bool,
) -> None:
    """Create project NAME; its sessions default to the given limits."""
    limits = _limit_overrides(memory, timeout, fuel, concurrency, queue) or None
    found = open_registry().create_project(name, runtime=runtime_name, limits=limits)
    if as_json:
        _emit(found.to_dict())
    else:
        click.echo(f"created project {found.name} ({found.id}) on runtime {found.runtime}")


@project.command("list")
@_json_option
def project_list(as_json: bool) -> None:
    """List projects."""
    found = open_registry().projects()
    if as_json:
        _emit([p.to_dict() for p in found])
        return
    _table(
        None,
        ["name", "id", "runtime", "models", "limits", "created"],
        [[p.name, p.id, p.runtime, p.models, _limits_text(p.limits), p.created_at] for p in found],
    )


@project.command("show")
@click.argument("name")
@_json_option
def project_show(name: str, as_json: bool) -> None:
    """Show project NAME and its models."""
    registry = open_registry()
    found = registry.project(name)
    models = registry.models(found.id)
    if as_json:
        _emit(found.to_dict() | {"model_list": [m.to_dict() for m in models]})
        return
    console = _console()
    console.print(f"[bold]{found.name}[/bold] ({found.id}), runtime {found.runtime}")
    console.print(f"created {found.created_at} by {found.created_by}")
    console.print(f"limits: {_limits_text(found.limits)}")
    _models_table(models)


@project.command("set-limits")
@click.argument("name")
@_project_limit_options
@click.option("--reset", is_flag=True, help="Back to wasmhost's defaults.")
@_json_option
def project_set_limits(
    name: str,
    memory: str | None,
    timeout: str | None,
    fuel: int | None,
    concurrency: int | None,
    queue: int | None,
    reset: bool,
    as_json: bool,
) -> None:
    """Set the default limits of project NAME's sessions."""
    registry = open_registry()
    given = _limit_overrides(memory, timeout, fuel, concurrency, queue)
    if not reset:
        given = registry.project(name).limits | given
    found = registry.set_project_limits(name, given or None)
    if as_json:
        _emit(found.to_dict())
    else:
        click.echo(f"project {found.name}: limits {_limits_text(found.limits)}")


@project.command("delete")
@click.argument("name")
@_json_option
def project_delete(name: str, as_json: bool) -> None:
    """Delete project NAME with all its models."""
    found = open_registry().delete_project(name)
    if as_json:
        _emit(found.to_dict())
    else:
        click.echo(f"deleted project {found.name} and its {found.models} models")


# --- model ------------------------------------------------------------------------


def _models_table(models: list[Any]) -> None:
    _table(
        None,
        ["name", "id", "latest", "versions", "aliases", "description"],
        [
            [
                m.name,
                m.id,
                m.latest_version,
                m.versions,
                ", ".join(f"{a}=@{v}" for a, v in m.aliases.items()),
                m.description,
            ]
            for m in models
        ],
    )


def _version_lines(v: ModelVersion) -> None:
    console = _console()
    console.print(f"[bold]{v.reference}[/bold] ({v.id}): {v.status}")
    if v.reason:
        console.print(f"reason: {v.reason}")
    console.print(f"sha256 {v.sha256}, {format_size(v.size)}")
    console.print(f"uploaded {v.created_at} by {v.created_by}")
    if v.aliases:
        console.print(f"aliases: {', '.join(v.aliases)}")
    console.print(f"inputs: {_signature(v.inputs)}")
    console.print(f"outputs: {_signature(v.outputs)}")


@click.group()
def model() -> None:
    """Models: upload, list, show, version, alias, download, delete."""


@model.command("upload")
@click.argument("project_name", metavar="PROJECT")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--description", default=None, help="What the model does.")
@_json_option
def model_upload(
    project_name: str, name: str, file: str, description: str | None, as_json: bool
) -> None:
    """Upload FILE as model NAME of PROJECT (the next version if NAME exists).

    The model is loaded in a sandbox under the project's limits first; a refusal stores
    nothing. FILE may be catalog/NAME (when no such file exists): the catalog model joins
    the project without its bytes being copied.
    """
    registry = open_registry()
    if file.startswith("catalog/") and not Path(file).exists():
        version = registry.add_from_catalog(project_name, name, file, description=description)
    else:
        version = registry.upload(project_name, name, file, description=description)
    if as_json:
        _emit(version.to_dict())
    else:
        click.echo(
            f"uploaded {version.reference} ({version.id}), {format_size(version.size)}, "
            f"{version.status}"
        )


@model.command("list")
@click.argument("project_name", metavar="PROJECT")
@_json_option
def model_list(project_name: str, as_json: bool) -> None:
    """List the models of PROJECT."""
    found = open_registry().models(project_name)
    if as_json:
        _emit([m.to_dict() for m in found])
    else:
        _models_table(found)


@model.command("show")
@click.argument("ref")
@_json_option
def model_show(ref: str, as_json: bool) -> None:
    """Show the version REF names (project/model is its newest ready version)."""
    found = open_registry().version(ref)
    if as_json:
        _emit(found.to_dict())
    else:
        _version_lines(found)


@model.command("versions")
@click.argument("ref")
@_json_option
def model_versions(ref: str, as_json: bool) -> None:
    """List every version of the model REF names."""
    found = open_registry().versions(ref)
    if as_json:
        _emit([v.to_dict() for v in found])
        return
    _table(
        None,
        ["version", "id", "status", "size", "sha256", "aliases", "uploaded", "by"],
        [
            [
                v.version,
                v.id,
                v.status,
                format_size(v.size),
                v.sha256[:16],
                ", ".join(v.aliases),
                v.created_at,
                v.created_by,
            ]
            for v in found
        ],
    )


@model.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from REF's model instead.")
@_json_option
def model_alias(ref: str, alias: str, remove: bool, as_json: bool) -> None:
    """Point ALIAS (e.g. production) at the version REF names; it moves if it existed."""
    registry = open_registry()
    if remove:
        registry.remove_alias(ref, alias)
        if as_json:
            _emit({"removed": alias})
        else:
            click.echo(f"removed alias {alias}")
        return
    version = registry.set_alias(ref, alias)
    if as_json:
        _emit(version.to_dict())
    else:
        click.echo(f"{version.project}/{version.model}@{alias} -> version {version.version}")


@model.command("download")
@click.argument("ref")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@_json_option
def model_download(ref: str, output: str, as_json: bool) -> None:
    """Write the bytes of the model REF names to OUTPUT (checked by sha256)."""
    found = open_registry().download(ref, output)
    if as_json:
        _emit({"reference": ref, "sha256": found.sha256, "size": found.size, "file": output})
    else:
        click.echo(f"wrote {format_size(found.size)} to {output}")


@model.command("delete")
@click.argument("ref")
@_json_option
def model_delete(ref: str, as_json: bool) -> None:
    """Delete a version (project/model@N or @alias) or a whole model (project/model)."""
    deleted = open_registry().delete(ref)
    if as_json:
        _emit([v.to_dict() for v in deleted])
    else:
        what = ", ".join(f"@{v.version}" for v in deleted) or "no versions"
        click.echo(f"deleted {ref} ({what})")


# --- catalog ----------------------------------------------------------------------


@click.group()
def catalog() -> None:
    """The catalog of verified models (read-only): run them as catalog/NAME."""


@catalog.command("list")
@_json_option
def catalog_list(as_json: bool) -> None:
    """List the catalog's models."""
    from ..registry import catalog as entries

    client = server_client()
    found = client.catalog() if client else list(entries.entries())
    if as_json:
        _emit([e.to_dict() for e in found])
        return
    _table(
        None,
        ["name", "task", "size", "description"],
        [[e.reference, e.task, format_size(e.size), e.description] for e in found],
    )


@catalog.command("show")
@click.argument("name")
@_json_option
def catalog_show(name: str, as_json: bool) -> None:
    """Show catalog model NAME: source, licence, how to feed it, what it answers."""
    from ..registry import catalog as entries

    client = server_client()
    get = client.catalog_entry if client else entries.entry
    found = get(name.removeprefix("catalog/"))
    if as_json:
        _emit(found.to_dict())
        return
    console = _console()
    console.print(f"[bold]{found.reference}[/bold] ({found.id}): {found.description}")
    console.print(f"task: {found.task}; runtime: {found.runtime}")
    console.print(f"source: {found.source}")
    console.print(f"license: {found.license}")
    console.print(f"sha256 {found.sha256}, {format_size(found.size)}")
    for tensor in found.inputs:
        console.print(
            f"input {tensor['name']}: {tensor['dtype']} {tensor['shape']}; "
            f"{tensor.get('layout', '')}; preprocessing: {tensor.get('preprocessing', 'none')}"
        )
    for tensor in found.outputs:
        console.print(
            f"output {tensor['name']}: {tensor['dtype']} {tensor['shape']}; "
            f"{tensor.get('meaning', '')}"
        )
    if found.labels:
        shown = ", ".join(found.labels[:10]) + (", ..." if len(found.labels) > 10 else "")
        console.print(f"labels ({len(found.labels)}): {shown}")


# --- config, registry -------------------------------------------------------------


@click.group()
def config() -> None:
    """The registry's settings (shared by every process using it)."""


@config.command("list")
@_json_option
def config_list(as_json: bool) -> None:
    """Show every setting."""
    values = open_registry().settings()
    if as_json:
        _emit(values)
        return
    _table(
        None,
        ["setting", "value", "default", "meaning"],
        [[name, s.show(values[name]), s.show(s.initial), s.help] for name, s in SETTINGS.items()],
    )


@config.command("get")
@click.argument("key")
def config_get(key: str) -> None:
    """Print setting KEY."""
    from ..registry.settings import setting

    click.echo(setting(key).show(open_registry().get_setting(key)))


@config.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--reset", is_flag=True, help="Back to the default.")
def config_set(key: str, value: str | None, reset: bool) -> None:
    """Set setting KEY to VALUE (e.g. max_model_size 100MiB)."""
    from ..registry.settings import setting

    if value is None and not reset:
        raise InvalidArgument("config set: give a VALUE, or --reset")
    parsed = open_registry().set_setting(key, None if reset else value)
    click.echo(f"{key} = {setting(key).show(parsed)}")


@click.group("registry")
def registry_group() -> None:
    """The registry itself: where it is, its integrity, garbage collection."""


@registry_group.command("info")
@_json_option
def registry_info(as_json: bool) -> None:
    """Where the registry keeps its metadata and blobs."""
    registry = open_registry(
        local_only="registry info shows where a registry on this host keeps its database "
        "and blobs; a server's are on its host"
    )
    assert isinstance(registry, Registry)
    doc = {
        "database": registry.db.engine.url.render_as_string(hide_password=True),
        "blobs": registry.blobs.url,
        "projects": len(registry.projects()),
    }
    if as_json:
        _emit(doc)
    else:
        for key, value in doc.items():
            click.echo(f"{key}: {value}")


@registry_group.command("check")
@click.option("--deep", is_flag=True, help="Read every blob and check its sha256.")
@_json_option
def registry_check(deep: bool, as_json: bool) -> None:
    """Check the registry's integrity; exits 1 if anything is wrong."""
    problems = open_registry(
        local_only="registry check reads a registry's database and blobs directly: "
        "run it on the server's host"
    ).check(deep=deep)
    if as_json:
        _emit({"problems": problems})
    else:
        for problem in problems:
            click.echo(problem)
        click.echo("registry: sound" if not problems else f"{len(problems)} problems")
    if problems:
        raise click.exceptions.Exit(1)


@registry_group.command("gc")
@click.option(
    "--grace",
    default=3600.0,
    show_default=True,
    help="Collect only leftovers older than this many seconds.",
)
@_json_option
def registry_gc(grace: float, as_json: bool) -> None:
    """Remove what interrupted uploads and deletes left behind."""
    done = open_registry(
        local_only="registry gc deletes a registry's leftover files directly: "
        "run it on the server's host"
    ).gc(grace)
    if as_json:
        _emit(done)
    else:
        click.echo(", ".join(f"{v} {k}" for k, v in done.items()) + " removed")


COMMANDS = [runtime, project, model, catalog, config, registry_group]
