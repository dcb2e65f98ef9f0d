"""Map inputs: ONNX-ML's `DictVectorizer` and `CastMap`, computed by the session.

The guest exchanges tensors, and onnxruntime takes a map input as a Python dict. A model
whose map input feeds a `DictVectorizer` or a `CastMap` (scikit-learn's DictVectorizer,
exported by skl2onnx) is rewritten (`rewrite.py`): the node goes, its output becomes the
graph's input, and the session turns each fed dict into that tensor here, as onnxruntime's
kernel computes it. Sizes come from the model's own lists (a vocabulary is as long as the
model holds), and `CastMap`'s `max_map` is held to the session's memory limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput, InvalidModel

DICT_VECTORIZER = "DictVectorizer"
CAST_MAP = "CastMap"
#: ONNX element types of map values, as their numpy dtypes (strings: object).
VALUE_DTYPES = {
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
    "int64": np.dtype(np.int64),
    "string": np.dtype(object),
}
_CAST_TO = {"TO_FLOAT": "float", "TO_INT64": "int64", "TO_STRING": "string"}


@dataclass(frozen=True)
class MapInput:
    """A lifted map input: the node it fed (`op`), the tensor input it became (`tensor`),
    the map's key and value types, and the node's attributes."""

    name: str
    op: str
    tensor: str
    key: str
    value: str
    vocabulary: list[int | str] = field(default_factory=list)
    cast_to: str = "TO_FLOAT"
    map_form: str = "DENSE"
    max_map: int = 1

    @property
    def type(self) -> str:
        """onnxruntime's name for the input's type, e.g. `map(string,tensor(float))`."""
        return f"map({self.key},tensor({self.value}))"

    @property
    def out_dtype(self) -> np.dtype:
        if self.op == CAST_MAP:
            return VALUE_DTYPES[_CAST_TO[self.cast_to]]
        return VALUE_DTYPES[self.value]

    @classmethod
    def from_json(cls, name: str, doc: Any) -> MapInput:
        """A spec from the rewrite's child, checked field by field.

        Raises:
            InvalidModel: a field is missing or of the wrong kind (a model the rewrite
                should not have lifted).
        """
        try:
            spec = cls(name=name, **doc)
        except TypeError as e:
            raise InvalidModel(f"map input '{name}': {e}") from None
        if spec.op not in (DICT_VECTORIZER, CAST_MAP) or spec.key not in ("string", "int64"):
            raise InvalidModel(f"map input '{name}': {spec.op} over map({spec.key}, ...)")
        if spec.value not in VALUE_DTYPES:
            raise InvalidModel(f"map input '{name}': map values of {spec.value}")
        if spec.op == CAST_MAP:
            if spec.cast_to not in _CAST_TO or spec.map_form not in ("DENSE", "SPARSE"):
                raise InvalidModel(f"CastMap '{name}': cast_to {spec.cast_to}, {spec.map_form}")
            if spec.key != "int64" or spec.value != "float":
                raise InvalidModel(f"CastMap '{name}': map({spec.key}, {spec.value})")
        kind = str if spec.key == "string" else int
        if not all(type(v) is kind for v in spec.vocabulary):
            raise InvalidModel(f"DictVectorizer '{name}': its vocabulary is not of {spec.key}")
        return spec

    def to_tensor(self, value: Any, memory: int) -> np.ndarray:
        """The tensor the lifted node computes from the fed dict.

        Raises:
            InvalidInput: not a dict, keys or values of the wrong type, a sparse key out of
                range, or a sparse output over the memory limit.
        """
        if not isinstance(value, Mapping):
            raise InvalidInput(
                f"input '{self.name}' is {self.type}: feed a dict, not {type(value).__name__}"
            )
        items = [(self._key(k), v) for k, v in value.items()]
        if self.op == DICT_VECTORIZER:
            return self._vectorize(items)
        return self._cast(items, memory)

    def _key(self, key: Any) -> int | str:
        if self.key == "string" and isinstance(key, str):
            return key
        if self.key == "int64" and isinstance(key, int | np.integer) and not isinstance(key, bool):
            return int(key)
        raise InvalidInput(f"input '{self.name}' is {self.type}: a key is {key!r}")

    def _value(self, v: Any) -> Any:
        if self.value == "string":
            if isinstance(v, str):
                return v
        elif (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool)
            and (self.value != "int64" or float(v).is_integer())
        ):
            return v
        raise InvalidInput(f"input '{self.name}' is {self.type}: a value is {v!r}")

    def _vectorize(self, items: list[tuple[int | str, Any]]) -> np.ndarray:
        index = {k: i for i, k in enumerate(self.vocabulary)}
        out = _zeros(len(self.vocabulary), self.out_dtype)
        for k, v in items:
            v = self._value(v)
            i = index.get(k)
            if i is not None:  # keys outside the vocabulary are dropped, as onnxruntime
                out[0, i] = v
        return out

    def _cast(self, items: list[tuple[int | str, Any]], memory: int) -> np.ndarray:
        pairs = sorted((k, self._value(v)) for k, v in items)  # a std::map: by key
        dtype = self.out_dtype
        if self.map_form == "DENSE":
            out = _zeros(len(pairs), dtype)
            for i, (_, v) in enumerate(pairs):
                out[0, i] = _cast_value(v, self.cast_to)
            return out
        width = self.max_map
        if width < 1 or width * max(dtype.itemsize, 8) > memory:
            raise InvalidInput(f"CastMap '{self.name}': max_map {width} does not fit the limits")
        out = _zeros(width, dtype)
        for k, v in pairs:
            if not 0 <= int(k) < width:
                raise InvalidInput(f"CastMap '{self.name}': key {k} is outside [0, {width})")
            out[0, int(k)] = _cast_value(v, self.cast_to)
        return out


def _zeros(width: int, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "O":
        out = np.empty((1, width), dtype=object)
        out[:] = ""
        return out
    return np.zeros((1, width), dtype=dtype)


def _cast_value(v: float, cast_to: str) -> Any:
    if cast_to == "TO_STRING":
        return f"{float(v):f}"  # std::to_string's "%f", onnxruntime's
    if cast_to == "TO_INT64":
        return math.trunc(float(v))
    return v
