"""Guest ABI v1, in one place: the exports a guest module has, their signatures, and
the layouts the host and the guest share. docs/guest-abi.md is its prose."""

from __future__ import annotations

import struct

ABI_VERSION = 1
#: ABI v1's functions: how many i32 parameters and i32 results each has.
ABI_FUNCTIONS = {
    "_initialize": (0, 0),
    "wh_abi_version": (0, 1),
    "wh_alloc": (1, 1),
    "wh_free": (2, 0),
    "wh_load": (2, 1),
    "wh_run": (2, 1),
    "wh_result_ptr": (0, 1),
    "wh_result_len": (0, 1),
}
#: Exports a guest may add: the host uses them when present.
OPTIONAL_FUNCTIONS = {
    # The address of the last response's (address, length): two calls fewer per run.
    "wh_result_cell": (0, 1),
    # ABI 1's revision: 1 adds string tensors. A guest without it is revision 0.
    "wh_abi_minor": (0, 1),
}
#: The revision of ABI 1 this host speaks; it speaks every earlier one too.
ABI_MINOR = 1
#: The revision that added string tensors (`"dtype": "string"`, data an array of str).
STRINGS_MINOR = 1
ABI_EXPORTS = ("memory", *ABI_FUNCTIONS)

#: `wh_result_cell`'s layout: the last response's address and length (two u32, LE).
CELL = struct.Struct("<II")
#: msgpack extension type of an output the guest left in its memory (guest-bytes).
EXT_GUEST_BYTES = 1
#: guest-bytes' payload: the output's address and length in guest memory (two u32, LE).
ADDRESS_AND_LENGTH = struct.Struct("<II")
