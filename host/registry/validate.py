"""An upload's validation: the model is loaded in a sandboxed isolate of its project's
runtime, under strict limits, before the registry keeps a byte of it. The host's own ONNX
parser never decides: the bytes are untrusted until the sandbox has typed them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import InvalidModel
from ..runtime.limits import Limits
from ..runtime.session import InferenceSession
from .records import Tensor


def validate(data: bytes, limits: Limits, module: Path | None) -> tuple[list[Tensor], list[Tensor]]:
    """The model's (inputs, outputs), as the sandbox types them.

    Raises:
        InvalidModel: not ONNX, over the size cap, external data, contradictory shapes.
        UnsupportedModel: the runtime cannot run it.
        MemoryLimitExceeded, TimeoutExceeded, FuelExhausted, GuestCrash: loading it
            trapped under the validation limits.
    """
    limits = dataclasses.replace(limits, max_model_size=max(len(data), 1))
    try:
        session = InferenceSession(data, limits=limits, pool_size=1, module=module)
    except InvalidModel as e:
        if "external data" in str(e):
            raise InvalidModel(
                "the model keeps its weights in external data files, which an upload "
                "cannot carry: save it with onnx.save_model(model, path, "
                "save_as_external_data=False)"
            ) from None
        raise
    with session:
        return (
            [Tensor(a.name, a.type, list(a.shape)) for a in session.get_inputs()],
            [Tensor(a.name, a.type, list(a.shape)) for a in session.get_outputs()],
        )
