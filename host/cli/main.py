"""The `wasmhost` command: run and inspect ONNX models in a sandbox from the shell.

Every failure is one line on stderr (`wasmhost: error: ...`) and an exit code
per error class (see `EXIT_CODES`); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from .. import __version__
from ..errors import (
    ALL_ERRORS,
    EXIT_FILE_ERROR,
    EXIT_INTERNAL,
    InvalidArgument,
    InvalidInput,
    InvalidModel,
    MemoryLimitExceeded,
    TimeoutExceeded,
    UnsupportedModel,
    WasmHostError,
)
from ..registry.catalog import CatalogEntry
from ..registry.names import parse_reference
from ..runtime.engine import manifest, wasmtime_version
from ..runtime.isolate import RunStats
from ..runtime.limits import Limits, format_size
from ..runtime.session import InferenceSession, NodeArg
from .registry import COMMANDS as REGISTRY_COMMANDS
from .registry import open_registry, server_client
from .serve import COMMANDS as SERVE_COMMANDS

#: Exit code per outcome, as README documents them.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "usage": 2,
    **{cls.__name__: cls.exit_code for cls in ALL_ERRORS},
    "file": EXIT_FILE_ERROR,
    "internal": EXIT_INTERNAL,
}
_MAX_MESSAGE = 600
_OUTPUT_SUFFIXES = (".npz", ".npy", ".json")


def _one_line(message: str) -> str:
    line = " ".join(str(message).split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def _versions() -> str:
    m = manifest()
    return (
        f"wasmhost {__version__}, tract {m.get('tract_version', '?')}, "
        f"wasmtime {wasmtime_version()}, module sha256 {m.get('sha256', '?')}"
    )


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_versions())
        ctx.exit(0)


def _limits(memory: str, timeout: str, fuel: int | None, load_fuel: int | None = None) -> Limits:
    if timeout.lower() == "none":
        seconds = None
    else:
        try:
            seconds = float(timeout)
        except ValueError:
            raise InvalidArgument(
                f"--timeout: expected seconds or 'none', got {timeout!r}"
            ) from None
    return Limits(memory=memory, timeout=seconds, fuel=fuel, load_fuel=load_fuel)


def _limit_options(f: Any) -> Any:
    f = click.option(
        "--load-fuel",
        type=int,
        default=None,
        help="Instruction budget for loading the model (default: none).",
    )(f)
    f = click.option(
        "--fuel", type=int, default=None, help="Instruction budget per run (deterministic)."
    )(f)
    f = click.option(
        "--timeout", default="30", show_default=True, help="Seconds per guest call, or 'none'."
    )(f)
    f = click.option(
        "--memory", default="512MiB", show_default=True, help="Guest memory cap, e.g. 256MiB, 1GB."
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show wasmhost, tract and wasmtime versions and the guest module's sha256.",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.option(
    "--registry",
    envvar="WASMHOST_REGISTRY",
    default=None,
    help="The registry: a directory, sqlite:///FILE or postgresql://... "
    "(default: WASMHOST_HOME, else the user data directory).",
)
@click.option(
    "--blobs",
    envvar="WASMHOST_BLOBS",
    default=None,
    help="Where the registry keeps model bytes: a directory or s3://BUCKET/PREFIX.",
)
@click.option(
    "--server",
    envvar="WASMHOST_SERVER",
    default=None,
    metavar="URL",
    help="A wasmhost service (`wasmhost serve`): the registry's commands, and `run` by "
    "reference, act on it instead of a local registry.",
)
@click.option(
    "--token",
    envvar="WASMHOST_TOKEN",
    default=None,
    metavar="T",
    help="The bearer token for --server (`wasmhost token create`).",
)
def cli(
    debug: bool, registry: str | None, blobs: str | None, server: str | None, token: str | None
) -> None:
    """Run ONNX models in a sandboxed WebAssembly isolate (tract on wasmtime).

    MODEL is a file, or a registry reference: project/model, project/model@3,
    project/model@ALIAS, a model id, or catalog/NAME. With --server URL, references
    name the service's models: `run` runs them on the server; `inspect` and `bench`,
    which load the model in this process, refuse them.
    """


for _command in [*REGISTRY_COMMANDS, *SERVE_COMMANDS]:
    cli.add_command(_command)


def _is_reference(model: str) -> bool:
    try:
        parse_reference(model)
    except WasmHostError:
        return False
    return True


def _open_model(model: str, limits: Limits) -> tuple[str | bytes, Limits, Path | None, str]:
    """MODEL as a session takes it: (file or bytes, limits, guest module, label).

    A path that exists is a file; else a registry reference is looked up, its project's
    limits the defaults under those given on the command line.
    """
    if Path(model).exists() or not _is_reference(model):
        return model, limits, None, Path(model).name
    command = click.get_current_context().info_name
    registry = open_registry(
        local_only=f"{command} loads {model} in this process, and a --server's models run on "
        f"the server (`wasmhost --server URL run {model} ...` runs it there)"
    )
    source = registry.source(model)
    ctx = click.get_current_context()
    given = {
        name: getattr(limits, name)
        for name in ("memory", "timeout", "fuel", "load_fuel")
        if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
    }
    return source.model, replace(source.limits, **given), source.module, source.reference


# --- run ------------------------------------------------------------------------


def _remote_signature(client: Any, model: str) -> tuple[str, list[NodeArg], list[NodeArg]]:
    """The version (or catalog entry) a reference names on the server: its exact
    reference, inputs and outputs."""
    target = client.resolve(model)
    if isinstance(target, CatalogEntry):
        onnx_type = {"float32": "tensor(float)", "float64": "tensor(double)"}

        def arg(t: dict[str, Any]) -> NodeArg:
            return NodeArg(
                t["name"], onnx_type.get(t["dtype"], f"tensor({t['dtype']})"), t["shape"]
            )

        return target.reference, [arg(t) for t in target.inputs], [arg(t) for t in target.outputs]
    return (
        target.reference,
        [NodeArg(t.name, t.type, t.shape) for t in target.inputs],
        [NodeArg(t.name, t.type, t.shape) for t in target.outputs],
    )


def _refuse_local_options(model: str, stats: bool) -> None:
    """`run --server` runs under the project's limits on the server, which reports no stats."""
    ctx = click.get_current_context()
    for name in ("memory", "timeout", "fuel", "load_fuel", "isolation"):
        if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT):
            option = "--" + name.replace("_", "-")
            raise InvalidArgument(
                f"{option}: the server runs {model} under its project's limits "
                "(`wasmhost project set-limits`) and its own isolation, not the command line's"
            )
    if stats:
        raise InvalidArgument("--stats: a run on the server reports no stats")


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _load_array(path: str, what: str, arg: NodeArg) -> np.ndarray:
    if path.lower().endswith(".json"):
        return _json_array(_read_json(path, what), f"{what} ({path})", arg)
    with open(path, "rb") as f:  # OSError (missing, a directory) is a file error: exit 11
        magic = f.read(len(_NPY_MAGIC))
    if not magic.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        # numpy would read it as a pickle and advise allow_pickle: not for a sandbox tool.
        raise InvalidInput(f"{what}: {path} is not a .npy file (it has no NumPy header)")
    try:
        value = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (ValueError, OSError, EOFError) as e:
        raise InvalidInput(f"{what}: {path} is not a valid .npy file ({_one_line(e)})") from None
    if isinstance(value, np.lib.npyio.NpzFile):
        value.close()
        raise InvalidInput(f"{what}: {path} is an .npz archive; pass it alone, not as one input")
    return value


def _read_json(path: str, what: str) -> Any:
    text = Path(path).read_text(encoding="utf-8", errors="strict")
    try:
        return json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"{what}: {path} is not valid JSON ({_one_line(e)})") from None


def _json_array(value: Any, what: str, arg: NodeArg) -> np.ndarray:
    """A JSON value (nested lists, or a scalar) as an array of `arg`'s dtype: strings for a
    string input, numbers (or booleans) for a numeric one; never a silent conversion."""
    if arg.type.startswith("map(int64,") and isinstance(value, dict):
        try:  # JSON's keys are strings
            return {int(k): v for k, v in value.items()}  # type: ignore[return-value]
        except ValueError:
            raise InvalidInput(
                f"{what}: input '{arg.name}' is {arg.type}: keys are integers"
            ) from None
    if arg.type.startswith("map("):
        if not isinstance(value, dict):
            raise InvalidInput(f"{what}: input '{arg.name}' is {arg.type}: give a JSON object")
        return value  # type: ignore[return-value]  # the session checks it
    if arg.dtype is None:
        raise InvalidInput(f"{what}: input '{arg.name}' is {arg.type}, which JSON cannot give")
    try:
        array = np.array(value, dtype=object)
    except ValueError as e:
        raise InvalidInput(f"{what}: not a rectangular array ({_one_line(e)})") from None
    leaves = list(array.flat)
    if any(isinstance(v, list | dict) or v is None for v in leaves):
        raise InvalidInput(f"{what}: not a rectangular array of values")
    if arg.dtype.kind == "O":
        if not all(isinstance(v, str) for v in leaves):
            raise InvalidInput(f"{what}: the input is {arg.type}: give strings")
        return array
    if any(isinstance(v, str) for v in leaves):
        raise InvalidInput(f"{what}: the input is {arg.type}: give numbers")
    if arg.dtype.kind == "b":
        if not all(isinstance(v, bool) for v in leaves):
            raise InvalidInput(f"{what}: the input is {arg.type}: give true or false")
        return array.astype(np.bool_)
    try:
        typed = array.astype(arg.dtype)
    except (OverflowError, ValueError, TypeError) as e:
        raise InvalidInput(f"{what}: not {arg.type} ({_one_line(e)})") from None
    with np.errstate(invalid="ignore"):
        exact = all(typed.flat[i] == v or v != v for i, v in enumerate(leaves))
    if arg.dtype.kind in "iu" and not exact:
        raise InvalidInput(f"{what}: the input is {arg.type}: a value is not an integer")
    return typed


def _is_one_map(doc: dict, inputs: list[NodeArg], feed: dict) -> bool:
    """Whether a JSON object given in input order is the next input's map, rather than
    inputs by name: that input is a map and the object's keys are not input names."""
    free = [i for i in inputs if i.name not in feed]
    names = {i.name for i in inputs}
    return bool(free) and free[0].type.startswith("map(") and not set(doc) <= names


def _load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise InvalidInput(f"{path} is not an .npz archive")
            return {k: archive[k] for k in archive.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (ValueError, OSError, EOFError) as e:
        raise InvalidInput(f"{path} is not a valid .npz file ({_one_line(e)})") from None


def map_inputs(args: tuple[str, ...], inputs: list[NodeArg]) -> dict[str, np.ndarray]:
    """Feeds from the command line: `x.npy` (or `x.json`) in input order, `name=x.npy`, or
    `all.npz` (or a `.json` object of name -> values).

    Raises:
        InvalidInput: an unknown name, an input given twice, too many files, a bad file.
        OSError: a file cannot be read.
    """
    names = [i.name for i in inputs]
    by_name = {i.name: i for i in inputs}
    feed: dict[str, np.ndarray] = {}
    positional: list[str] = []

    def put(name: str, value: np.ndarray, source: str) -> None:
        if name not in names:
            raise InvalidInput(
                f"{source}: the model has no input '{name}' (inputs: {', '.join(names)})"
            )
        if name in feed:
            raise InvalidInput(f"{source}: input '{name}' is given twice")
        feed[name] = value

    for arg in args:
        name, sep, path = arg.partition("=")
        if sep and name in names:
            put(name, _load_array(path, f"input '{name}'", by_name[name]), arg)
        elif arg.endswith(".npz"):
            for key, value in _load_npz(arg).items():
                put(key, value, arg)
        elif (
            arg.lower().endswith(".json")
            and isinstance(doc := _read_json(arg, arg), dict)
            and not _is_one_map(doc, inputs, feed)
        ):
            for key, value in doc.items():
                if key not in by_name:
                    put(key, np.empty(0), arg)  # names the unknown input
                put(key, _json_array(value, f"{arg}: '{key}'", by_name[key]), arg)
        elif sep and not Path(arg).exists():
            raise InvalidInput(
                f"{arg}: the model has no input '{name}' (inputs: {', '.join(names)})"
            )
        else:
            positional.append(arg)
    free = [n for n in names if n not in feed]
    if len(positional) > len(free):
        raise InvalidInput(
            f"too many inputs: the model takes {len(names)} ({', '.join(names)}), "
            f"{len(feed) + len(positional)} given"
        )
    for name, path in zip(free, positional, strict=False):
        feed[name] = _load_array(path, f"input '{name}'", by_name[name])
    return feed


def _check_output_path(output: str | None, outputs: list[NodeArg]) -> None:
    if output is None:
        return
    suffix = Path(output).suffix.lower()
    if suffix not in _OUTPUT_SUFFIXES:
        raise InvalidArgument(f"--output: {output} must end in .npz, .npy or .json")
    if suffix == ".npy" and len(outputs) != 1:
        raise InvalidArgument(
            f"--output: {len(outputs)} outputs do not fit one .npy file; write .npz or .json"
        )
    if suffix in (".npz", ".npy"):
        for arg in outputs:
            if arg.type.startswith("seq("):
                raise InvalidArgument(
                    f"--output: output '{arg.name}' is {arg.type}, not a tensor; write .json"
                )
    parent = Path(output).parent
    if not parent.is_dir():
        raise FileNotFoundError(2, "No such directory", str(parent))


def _tensor_json(name: str, value: np.ndarray | list[dict[Any, float]]) -> dict[str, Any]:
    if isinstance(value, list):  # a ZipMap's maps; JSON keys are strings
        return {
            "name": name,
            "type": "seq(map)",
            "data": [{str(k): v for k, v in m.items()} for m in value],
        }
    return {
        "name": name,
        "dtype": "string" if value.dtype.kind == "O" else value.dtype.name,
        "shape": list(value.shape),
        "data": value.tolist(),
    }


def _stats_json(stats: RunStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "wall_time_s": stats.wall_time,
        "fuel_consumed": stats.fuel_consumed,
        "peak_memory_bytes": stats.peak_memory,
    }


def _write_output(path: str, names: list[str], arrays: list[Any]) -> None:
    suffix = Path(path).suffix.lower()
    # String outputs as numpy str arrays: an object array would be pickled.
    arrays = [
        a.astype(str) if isinstance(a, np.ndarray) and a.dtype.kind == "O" else a for a in arrays
    ]
    if suffix == ".npz":
        with open(path, "wb") as f:
            np.savez(f, **dict(zip(names, arrays, strict=True)))
    elif suffix == ".npy":
        with open(path, "wb") as f:
            np.save(f, arrays[0], allow_pickle=False)
    else:
        doc = {"outputs": [_tensor_json(n, a) for n, a in zip(names, arrays, strict=True)]}
        Path(path).write_text(json.dumps(doc) + "\n")


def _summary(array: np.ndarray) -> tuple[str, str, str, str]:
    if array.size == 0:
        return "-", "-", "-", "[]"
    if array.dtype.kind == "O":  # strings
        first = ", ".join(repr(v) for v in array.reshape(-1)[:4].tolist())
        return "-", "-", "-", f"[{first}{', ...' if array.size > 4 else ''}]"
    values = array.astype(np.float64) if array.dtype != np.bool_ else array.astype(np.int8)
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size:
        lo, hi, mean = (f"{float(v):.6g}" for v in (finite.min(), finite.max(), finite.mean()))
    else:
        lo = hi = mean = "nan"
    first = array.reshape(-1)[:6].tolist()
    text = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in first)
    return lo, hi, mean, f"[{text}{', ...' if array.size > 6 else ''}]"


def _stats_line(stats: RunStats | None) -> str:
    if stats is None:
        return ""
    fuel = "unmetered" if stats.fuel_consumed is None else f"{stats.fuel_consumed:,}"
    return (
        f"run: {stats.wall_time * 1000:.1f} ms, fuel {fuel}, "
        f"peak guest memory {format_size(stats.peak_memory)}"
    )


@cli.command()
@click.argument("model")
@click.argument("inputs", nargs=-1)
@click.option(
    "-o", "--output", help="Write outputs to FILE: .npz (all), .npy (exactly one) or .json."
)
@click.option("--json", "as_json", is_flag=True, help="Print outputs (and stats) as JSON.")
@click.option("--stats", is_flag=True, help="Show wall time, fuel used and peak guest memory.")
@click.option(
    "--isolation",
    type=click.Choice(["pooled", "per-run"]),
    default="pooled",
    show_default=True,
    help="per-run: run in an isolate spawned from the model's snapshot (built and cached "
    "on first use, 10-15 s).",
)
@_limit_options
def run(
    model: str,
    inputs: tuple[str, ...],
    output: str | None,
    as_json: bool,
    stats: bool,
    isolation: str,
    memory: str,
    timeout: str,
    fuel: int | None,
    load_fuel: int | None,
) -> None:
    """Run MODEL on INPUT files in a sandbox.

    INPUT is `x.npy` (the model's inputs in order), `name=x.npy`, or one `.npz`
    holding every input by name. With --server, a reference runs on the server (OIP v2),
    under its project's limits.
    """
    limits = _limits(memory, timeout, fuel, load_fuel)
    client = None if Path(model).exists() or not _is_reference(model) else server_client()
    if client is not None:  # on the server, by OIP
        _refuse_local_options(model, stats)
        with client:
            label, in_args, out_args = _remote_signature(client, model)
            _check_output_path(output, out_args)
            results = client.infer(label, map_inputs(inputs, in_args))
        out_names, arrays = list(results), list(results.values())
        run_stats = None
    else:
        source, limits, module, label = _open_model(model, limits)
        session = InferenceSession(source, limits=limits, module=module, isolation=isolation)
        out_names = [o.name for o in session.get_outputs()]
        _check_output_path(output, session.get_outputs())
        feed = map_inputs(inputs, session.get_inputs())
        arrays = session.run(None, feed)
        run_stats = session.last_run_stats
    if output:
        _write_output(output, out_names, arrays)
    if as_json:
        doc: dict[str, Any] = {
            "outputs": [_tensor_json(n, a) for n, a in zip(out_names, arrays, strict=True)]
        }
        if stats:
            doc["stats"] = _stats_json(run_stats)
        click.echo(json.dumps(doc))
        return
    console = _console()
    table = Table(title=label, title_justify="left")
    for column in ("output", "dtype", "shape", "min", "max", "mean", "first values"):
        table.add_column(column, overflow="fold")
    for name, array in zip(out_names, arrays, strict=True):
        if isinstance(array, list):  # a ZipMap's maps
            first = "[]"
            if array:
                pairs = ", ".join(f"{k}: {v:.4g}" for k, v in list(array[0].items())[:4])
                first = f"[{{{pairs}}}{', ...' if len(array) > 1 else ''}]"
            table.add_row(name, "seq(map)", f"[{len(array)}]", "-", "-", "-", first)
            continue
        dtype = "string" if array.dtype.kind == "O" else array.dtype.name
        table.add_row(name, dtype, str(list(array.shape)), *_summary(array))
    console.print(table)
    if output:
        console.print(f"wrote {len(arrays)} output{'s' * (len(arrays) != 1)} to {output}")
    if stats:
        console.print(_stats_line(run_stats))


# --- bench ---------------------------------------------------------------------


@cli.command("bench")
@click.argument("model")
@click.argument("inputs", nargs=-1)
@click.option("-n", "--rounds", default=20, show_default=True, help="Timed runs.")
@click.option("--warmup", default=3, show_default=True, help="Untimed runs first.")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="Interleave onnxruntime (1 thread) runs, if it is installed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@_limit_options
def bench_command(
    model: str,
    inputs: tuple[str, ...],
    rounds: int,
    warmup: int,
    compare: bool,
    as_json: bool,
    memory: str,
    timeout: str,
    fuel: int | None,
    load_fuel: int | None,
) -> None:
    """Time MODEL in the sandbox: session creation, first run, then ROUNDS runs.

    INPUT as for `run`; without any, inputs are made up from the model's signature
    (symbolic dims as 1). The full benchmark against native tract and onnxruntime-web
    is scripts/bench.py.
    """
    from ..tools.bench import bench

    if rounds < 1 or warmup < 0:
        raise InvalidArgument("--rounds must be at least 1 and --warmup at least 0")
    source, limits, module, label = _open_model(model, _limits(memory, timeout, fuel, load_fuel))
    feeds = (lambda args: map_inputs(inputs, args)) if inputs else None
    result = bench(source, feeds, rounds, warmup, limits, compare, module=module)
    ms = 1e3
    if as_json:
        doc: dict[str, Any] = {
            "session_ms": result.session_seconds * ms,
            "first_run_ms": result.first_run_seconds * ms,
            "wasmhost_ms": _timing_json(result.wasmhost),
            "peak_memory": result.peak_memory,
        }
        if result.peer:
            doc["peer"] = result.peer_name
            doc["peer_ms"] = _timing_json(result.peer)
            doc["ratio"] = result.wasmhost.median / result.peer.median
        click.echo(json.dumps(doc))
        return
    console = _console()
    table = Table(title=f"{label}: {rounds} runs after {warmup}", title_justify="left")
    for column in ("engine", "median ms", "p95 ms", "best ms"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    rows = [("wasmhost", result.wasmhost)]
    if result.peer and result.peer_name:
        rows.append((result.peer_name, result.peer))
    for name, t in rows:
        table.add_row(name, f"{t.median * ms:.3g}", f"{t.p95 * ms:.3g}", f"{t.best * ms:.3g}")
    console.print(table)
    console.print(
        f"session creation {result.session_seconds * ms:.0f} ms, first run (plans for the "
        f"shapes) {result.first_run_seconds * ms:.0f} ms"
        + (f", peak guest memory {format_size(result.peak_memory)}" if result.peak_memory else "")
    )
    if result.peer:
        console.print(
            f"wasmhost / {result.peer_name}: {result.wasmhost.median / result.peer.median:.2f}x"
        )


# --- inspect -------------------------------------------------------------------


def _describe_refused(
    model: str | bytes,
    label: str,
    refused: WasmHostError,
    limits: Limits,
    as_json: bool,
    module: Path | None,
) -> None:
    """What can be read of a model the sandbox refused, and why it refused it."""
    from ..runtime import rewrite

    size = len(model) if isinstance(model, bytes) else Path(model).stat().st_size
    doc = None
    if 0 < size <= int(limits.max_model_size):
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        doc = rewrite.describe_isolated(data, limits.timeout)
    hint = (
        _memory_that_would_do(model, limits, module)
        if isinstance(refused, MemoryLimitExceeded)
        else None
    )
    if as_json:
        out = dict(doc or {}, loads_in_sandbox=False, refused=_one_line(str(refused)))
        if hint:
            out["loads_with_memory"] = hint
        click.echo(json.dumps(out))
        return
    console = _console()
    if doc is None:
        console.print(f"[bold]{label}[/bold]: cannot be read as an ONNX model")
    else:
        producer = doc.get("producer") or "unknown producer"
        console.print(
            f"[bold]{label}[/bold]: graph '{doc.get('graph_name', '')}' by {producer}"
            " (read without loading it)"
        )
        opsets = ", ".join(f"{d} {v}" for d, v in sorted(doc["opset"].items()))
        console.print(f"opset: {opsets or 'none declared'}")
        table = Table(title_justify="left")
        for column in ("", "name", "type", "shape"):
            table.add_column(column, overflow="fold")
        for key in ("inputs", "outputs"):
            for a in doc[key]:
                table.add_row(
                    key[:-1], str(a.get("name")), str(a.get("type")), _shape_text(a.get("shape"))
                )
        console.print(table)
        ops = Table(title="operators", title_justify="left")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        for op, count in sorted(doc["operators"].items(), key=lambda kv: (-kv[1], kv[0])):
            ops.add_row(str(op), str(count))
        console.print(ops)
    console.print(f"sandbox: [red]refused[/red] ({type(refused).__name__})")
    if hint:
        console.print(f"sandbox: loads with --memory {hint}")


def _memory_that_would_do(model: str | bytes, limits: Limits, module: Path | None) -> str | None:
    """The smallest doubling of the memory cap (up to 4 GiB) under which the model loads."""
    memory = int(limits.memory)
    while memory < 4 * 1024**3:
        memory = min(memory * 2, 4 * 1024**3)
        try:
            InferenceSession(
                model, limits=replace(limits, memory=memory), pool_size=1, module=module
            ).close()
        except MemoryLimitExceeded:
            continue
        except WasmHostError:
            return None
        return format_size(memory)
    return None


def _timing_json(t: Any) -> dict[str, float]:
    """A Timing in milliseconds, with every figure the table shows."""
    return {"median": t.median * 1e3, "p95": t.p95 * 1e3, "best": t.best * 1e3}


def _console() -> Console:
    """Rich's console; piped, at no fixed width, so that tables are not wrapped at 80."""
    return Console() if sys.stdout.isatty() else Console(width=1_000)


def _shape_text(shape: list[int | str | None] | None) -> str:
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@_limit_options
def inspect(
    model: str,
    as_json: bool,
    memory: str,
    timeout: str,
    fuel: int | None,
    load_fuel: int | None,
) -> None:
    """Describe MODEL: inputs, outputs, opset, operators; and load it in the sandbox.

    A model the sandbox refuses is described as far as it can be read without loading it
    (onnx reads it in a child process), then the refusal is the error.
    """
    source, limits, module, label = _open_model(model, _limits(memory, timeout, fuel, load_fuel))
    try:
        session = InferenceSession(source, limits=limits, pool_size=1, module=module)
    except (InvalidModel, UnsupportedModel, MemoryLimitExceeded, TimeoutExceeded) as refused:
        _describe_refused(source, label, refused, limits, as_json, module)
        raise
    meta = session.get_modelmeta()
    args = {"inputs": session.get_inputs(), "outputs": session.get_outputs()}
    if as_json:
        doc = {
            key: [{"name": a.name, "type": a.type, "shape": a.shape} for a in values]
            for key, values in args.items()
        }
        doc.update(
            producer=meta.producer_name,
            graph_name=meta.graph_name,
            opset=meta.opset,
            operators=meta.operators,
            metadata=meta.custom_metadata_map,
            loads_in_sandbox=True,
            expanded_functions=session.expanded_functions,
        )
        click.echo(json.dumps(doc))
        return
    console = _console()
    producer = meta.producer_name or "unknown producer"
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(meta.opset.items()))
    console.print(f"[bold]{label}[/bold]: graph '{meta.graph_name}' by {producer}")
    console.print(f"opset: {opsets or 'none declared'}")
    table = Table(title_justify="left")
    for column in ("", "name", "type", "shape"):
        table.add_column(column, overflow="fold")
    for key, values in args.items():
        for a in values:
            table.add_row(key[:-1], a.name, a.type, _shape_text(a.shape))
    console.print(table)
    ops = Table(title="operators", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, count in sorted(meta.operators.items(), key=lambda kv: (-kv[1], kv[0])):
        ops.add_row(op, str(count))
    console.print(ops)
    for key, value in sorted(meta.custom_metadata_map.items()):
        console.print(f"metadata {key}: {_one_line(value)}")
    if session.expanded_functions:
        inlined = ", ".join(session.expanded_functions)
        console.print(
            f"sandbox: [green]loads[/green] with {inlined} inlined from the ONNX "
            "definition (tract lacks it; the operators above are after inlining)"
        )
    else:
        console.print("sandbox: [green]loads[/green] (tract accepted every operator)")


# --- fuzz ---------------------------------------------------------------------------


@cli.command()
@click.argument("model", required=False)
@click.option("-n", "--iterations", default=100, show_default=True, help="Cases to run.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same cases.")
@click.option(
    "--corpus",
    default="wasmhost-corpus",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where distinct findings are saved as reproducers.",
)
@click.option("-j", "--jobs", default=1, show_default=True, help="Worker processes.")
@click.option(
    "--replay",
    "replay_path",
    type=click.Path(),
    help="Re-run one reproducer (its directory or its outcome.json) instead.",
)
@click.option("--memory", default="256MiB", show_default=True, help="Guest memory cap per case.")
@click.option("--timeout", default="10", show_default=True, help="Seconds per guest call.")
@click.option("--fuel", type=int, default=None, help="Instruction budget per run.")
@click.option(
    "--differential",
    is_flag=True,
    help="Check every answer: run it again in the same session, and in onnxruntime and "
    "native tract (when installed), each in a worker process. A reproducer of a "
    "differential campaign replays differentially without it.",
)
def fuzz(
    model: str | None,
    iterations: int,
    seed: int,
    corpus: str,
    jobs: int,
    replay_path: str | None,
    memory: str,
    timeout: str,
    fuel: int | None,
    differential: bool,
) -> None:
    """Fuzz MODEL: run mutated copies of it (and of its inputs) in limited isolates.

    Every case ends in a class (ok, error:<code>, trap:panic, trap:crash, trap:oom,
    timeout, fuel, protocol-error, host-crash; with --differential also mismatch, a wrong
    answer, and nondeterministic, an answer that changed on a second run); distinct
    findings are saved under --corpus. Exits 1 if wasmhost itself failed (host-crash,
    mismatch, nondeterministic), else 0. --replay exits 1 if the finding did not reproduce.
    """
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    from ..tools import differential as diff
    from ..tools import fuzz as fz

    limits = _limits(memory, timeout, fuel)
    console = _console()
    if replay_path:
        outcome, recorded = fz.replay(Path(replay_path), limits, differential or None)
        before = recorded["outcome"]["kind"]
        if differential or recorded.get("differential"):
            console.print(f"differential: rerun and {diff.describe_peers(diff.available_peers())}")
        console.print(f"recorded: {before}: {_one_line(recorded['outcome']['message'])}")
        console.print(f"now:      {outcome.kind}: {_one_line(outcome.panic or outcome.message)}")
        if outcome.kind != before:
            console.print("not reproduced")
            raise click.exceptions.Exit(1)
        console.print("reproduced")
        return
    if model is None:
        raise click.UsageError("fuzz needs a MODEL (or --replay FILE)")
    if iterations < 1 or jobs < 1:
        raise InvalidArgument("--iterations and --jobs must be at least 1")
    seed_bytes = Path(model).read_bytes()
    if differential:
        console.print(f"differential: rerun and {diff.describe_peers(diff.available_peers())}")
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"fuzzing {Path(model).name}", total=iterations)
        campaign = fz.fuzz(
            seed_bytes,
            iterations,
            seed,
            limits,
            jobs=jobs,
            on_case=lambda case, outcome: progress.advance(task),
            differential=differential,
        )
    for finding in campaign.findings.values():
        fz.save_reproducer(Path(corpus), finding)

    summary = Table(title=f"{iterations} cases, seed {seed}", title_justify="left")
    summary.add_column("outcome")
    summary.add_column("cases", justify="right")
    for kind, count in sorted(campaign.counts.items(), key=lambda kv: (-kv[1], kv[0])):
        summary.add_row(kind, str(count))
    console.print(summary)
    if differential:
        checks = Table(title="differential checks", title_justify="left")
        checks.add_column("check")
        checks.add_column("cases", justify="right")
        for kind, count in sorted(campaign.checks.items()):
            checks.add_row(kind, str(count))
        console.print(checks)
    if campaign.findings:
        found = Table(title="distinct findings", title_justify="left")
        for column in ("finding", "cases", "reproducer"):
            found.add_column(column, overflow="fold")
        for f in campaign.findings.values():
            found.add_row(f.key, str(f.count), str(f.path))
        console.print(found)
    else:
        console.print("no findings")
    if any(campaign.counts.get(kind) for kind in fz.FAILURES):
        raise click.exceptions.Exit(1)


# --- entry point ----------------------------------------------------------------


def _os_error_message(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the CLI and turns every error into one line and a code."""
    args = sys.argv[1:] if argv is None else argv
    # --debug anywhere on the line, before or after the subcommand (the internal-error
    # message says "rerun with --debug"): it is the entry point's, not a command's.
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        # Outside standalone mode, click returns the code of a `click.exceptions.Exit`
        # raised by a command (fuzz's exit 1) instead of raising it.
        result = cli.main(args=args, prog_name="wasmhost", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        # One line like every other failure; click's usage text is one --help away.
        where = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) else ""
        click.echo(f"wasmhost: error: {_one_line(e.format_message())}{where}", err=True)
        code = EXIT_CODES["usage"]
    except click.exceptions.Abort:
        click.echo("wasmhost: interrupted", err=True)
        code = 130
    except WasmHostError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"wasmhost: error: {_one_line(str(e))}", err=True)
        code = e.exit_code
    except OSError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"wasmhost: error: {_one_line(_os_error_message(e))}", err=True)
        code = EXIT_FILE_ERROR
    except Exception as e:  # a bug: still one line, and --debug for the rest
        if debug:
            traceback.print_exc()
        name = type(e).__name__
        click.echo(
            f"wasmhost: internal error: {name}: {_one_line(str(e))} (rerun with --debug)",
            err=True,
        )
        code = EXIT_INTERNAL
    sys.exit(code)


if __name__ == "__main__":
    main()


__all__ = ["EXIT_CODES", "cli", "main", "map_inputs"]
