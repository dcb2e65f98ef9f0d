# wasmhost: a sandboxed ONNX inference host. `make demo` and `make test` each do
# all of their set-up on a fresh machine (Python packages; Rust is on the machine).
PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install demo test lint wasm wasm-check clean

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) '.[dev]'

demo: install
	bash scripts/demo.sh

test: install
	$(PYTHON) scripts/wasm_manifest.py check
	$(PYTHON) scripts/build_catalog.py check
	$(PYTHON) -m ruff check host tests scripts examples
	$(PYTHON) -m ruff format --check host tests scripts examples
	cargo test -q --locked --no-default-features --manifest-path wasm_modules/tract_onnx_guest/Cargo.toml
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check host tests scripts examples
	$(PYTHON) -m ruff format --check host tests scripts examples

# Rebuild the guest and its manifest (installs Debian's toolchain packages if missing).
wasm:
	bash scripts/build_wasm.sh

# Rebuild from scratch in a temporary directory; fails unless byte-identical.
wasm-check:
	bash scripts/build_wasm.sh --check

clean:
	rm -rf build dist .pytest_cache .ruff_cache wasm_modules/tract_onnx_guest/target
