"""The runtime: a model in sandboxed isolates, onnxruntime's API over them.

    session    InferenceSession (onnxruntime's API; options, providers)
    pool       isolates of one model, lent one run at a time
    snapshot   a model loaded once; isolates spawned from it (per-run isolation)
    rewrite    what tract lacks, rewritten in a child process
    isolate    one wasmtime Store + Instance with a model loaded
    traps, stdio, fastcall   naming traps, the guest's streams, the call path
    wire, abi  the msgpack codec and guest ABI v1
    engine     the wasmtime Engine and the compiled guest module
    cache, wasmbin   compiled modules on disk; the wasm binary format, section by section
    limits     what an isolate may use

Imports point down this list (tests/test_layers.py checks it).
"""
