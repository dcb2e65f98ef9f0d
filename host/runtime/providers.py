"""Execution providers, onnxruntime's word for where a session runs: here, always
tract inside a WebAssembly sandbox on the CPU. A script may name onnxruntime's CPU
provider (the same thing here) and give wasmhost's provider options: its limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import InvalidArgument
from .limits import Limits

#: The execution provider a session reports: tract, in a WebAssembly sandbox.
PROVIDER = "WasmHostExecutionProvider"
#: What an onnxruntime script may ask for instead: the sandbox runs on the CPU.
CPU_PROVIDER = "CPUExecutionProvider"
#: Options of wasmhost's provider: the limits (and pool size), as values or strings.
PROVIDER_OPTIONS = ("memory", "timeout", "fuel", "load_fuel", "pool_size")


def get_available_providers() -> list[str]:
    """The providers a session accepts (onnxruntime's function of the same name)."""
    return [PROVIDER, CPU_PROVIDER]


def get_device() -> str:
    """Where models run: the CPU (onnxruntime's function of the same name)."""
    return "CPU"


def provider_options(
    providers: Sequence[str | tuple[str, dict[str, Any]]] | None,
    provider_options: Sequence[dict[str, Any]] | None,
) -> dict[str, Any]:
    """wasmhost's provider options out of onnxruntime's providers arguments.

    Raises:
        InvalidArgument: a provider other than wasmhost's or the CPU's, or options that
            do not pair with the providers.
    """
    if providers is None:
        if provider_options is not None:
            raise InvalidArgument("provider_options given without providers")
        return {}
    if isinstance(providers, str):
        raise InvalidArgument("providers must be a list of provider names, not a string")
    providers = list(providers)
    if provider_options is not None and len(provider_options) != len(providers):
        raise InvalidArgument(
            f"{len(provider_options)} provider_options for {len(providers)} providers"
        )
    ours: dict[str, Any] = {}
    for i, entry in enumerate(providers):
        name, options = entry if isinstance(entry, tuple) else (entry, None)
        if provider_options is not None:
            options = provider_options[i]
        if name not in (PROVIDER, CPU_PROVIDER):
            raise InvalidArgument(
                f"provider {name!r} is not available: wasmhost runs models on the CPU, inside "
                f"a WebAssembly sandbox (providers: {PROVIDER}, {CPU_PROVIDER})"
            )
        if options is not None and not isinstance(options, dict):
            raise InvalidArgument(f"options of {name} must be a dict, not {options!r}")
        # The CPU provider's options tune onnxruntime's arenas and threads: nothing here.
        if name == PROVIDER and options:
            unknown = sorted(set(options) - set(PROVIDER_OPTIONS))
            if unknown:
                raise InvalidArgument(
                    f"{PROVIDER} has no option {unknown[0]!r} "
                    f"(options: {', '.join(PROVIDER_OPTIONS)})"
                )
            ours.update(options)
    return ours


def apply_provider_options(
    limits: Limits, pool_size: int | None, options: dict[str, Any]
) -> tuple[Limits, int | None]:
    """`limits` and `pool_size` with wasmhost's provider options applied."""
    changes: dict[str, Any] = {}
    for key, value in options.items():
        if key == "pool_size":
            pool_size = _int_option(key, value)
        elif key == "memory":
            changes[key] = value
        elif key == "timeout":
            text = str(value).strip().lower()
            changes[key] = None if text in ("none", "") else _float_option(key, value)
        else:
            text = str(value).strip().lower()
            changes[key] = None if text in ("none", "") else _int_option(key, value)
    return replace(limits, **changes), pool_size


def _int_option(key: str, value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidArgument(
            f"provider option {key}: expected an integer, got {value!r}"
        ) from None


def _float_option(key: str, value: Any) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise InvalidArgument(f"provider option {key}: expected seconds, got {value!r}") from None
