"""An ONNX backend (`onnx.backend.base.Backend`) that runs models in wasmhost isolates.

It lets the ONNX project's own test suite drive wasmhost:

    import onnx.backend.test
    from wasmhost import backend
    globals().update(onnx.backend.test.BackendTest(backend.WasmHostBackend, __name__)
                     .test_cases)

    outputs = backend.run_model(onnx.load("model.onnx"), [x])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from ..errors import InvalidArgument, InvalidInput
from ..runtime.limits import Limits
from ..runtime.session import InferenceSession


class WasmHostRep(BackendRep):
    """A model prepared in a wasmhost session; `run` takes inputs in the graph's order."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._inputs = [arg.name for arg in session.get_inputs()]
        self._outputs = [arg.name for arg in session.get_outputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Runs the model on a list (graph input order), a dict by name, or one array.

        Raises:
            InvalidInput: more inputs than the graph has, or a feed the model rejects.
            WasmHostError: any other failure of the run (see `InferenceSession.run`).
        """
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
                inputs = [inputs]
            if len(inputs) > len(self._inputs):
                raise InvalidInput(f"{len(inputs)} inputs given, the model has {len(self._inputs)}")
            feeds = dict(zip(self._inputs, inputs, strict=False))
        outputs = self.session.run(None, feeds)
        return namedtupledict("Outputs", self._outputs)(*outputs)


class WasmHostBackend(Backend):
    """`onnx.backend.base.Backend` over wasmhost: CPU only, each model in its own session."""

    @classmethod
    def prepare(
        cls,
        model: onnx.ModelProto | str | os.PathLike[str] | bytes,
        device: str = "CPU",
        **kwargs: Any,
    ) -> WasmHostRep:
        """Loads `model` (a ModelProto, a path or the bytes of one) into a session;
        `limits=` (a `Limits`) and `pool_size=` pass through.

        Raises:
            InvalidArgument: a device other than CPU.
            InvalidModel, UnsupportedModel: the guest could not load the model.
        """
        if not cls.supports_device(device):
            raise InvalidArgument(f"wasmhost runs on the CPU only, not {device!r}")
        limits: Limits | None = kwargs.get("limits")
        # A path or bytes go to the session as they are: the host never parses a model.
        source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
        session = InferenceSession(source, limits=limits, pool_size=kwargs.get("pool_size", 1))
        return WasmHostRep(session)

    @classmethod
    def run_model(
        cls,
        model: onnx.ModelProto | str | os.PathLike[str] | bytes,
        inputs: Any,
        device: str = "CPU",
        **kwargs: Any,
    ) -> tuple[np.ndarray, ...]:
        """Prepares `model` and runs it once on `inputs` (see `WasmHostRep.run`)."""
        rep = cls.prepare(model, device, **kwargs)
        try:
            return rep.run(inputs)
        finally:
            rep.session.close()

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, ...]:
        """Runs one operator on `inputs` (arrays in the node's input order).

        `outputs_info` gives each output's dtype and shape; without it the outputs are
        declared float with unknown shape, which the guest does not rely on.
        """
        super().run_node(node, inputs, device, outputs_info, **kwargs)  # the onnx checker
        arrays = [np.asarray(x) for x in inputs]
        names = [name for name in node.input if name]
        graph_inputs = [
            onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape
            )
            for name, a in zip(names, arrays, strict=False)
        ]
        graph_outputs = [
            onnx.helper.make_tensor_value_info(
                name,
                onnx.helper.np_dtype_to_tensor_dtype(np.dtype(info[0]))
                if info
                else onnx.TensorProto.FLOAT,
                info[1] if info else None,
            )
            for name, info in zip(
                node.output, outputs_info or [None] * len(node.output), strict=False
            )
        ]
        graph = onnx.helper.make_graph([node], "node", graph_inputs, graph_outputs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        return cls.run_model(model, dict(zip(names, arrays, strict=False)), device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """True for CPU only."""
        return onnx.backend.base.Device(device).type == onnx.backend.base.DeviceType.CPU


prepare = WasmHostBackend.prepare
run_model = WasmHostBackend.run_model
run_node = WasmHostBackend.run_node
supports_device = WasmHostBackend.supports_device
