#!/usr/bin/env bash
# Builds the guest (wasm_modules/tract_onnx_guest/) into wasm_modules/tract_onnx.wasm
# and writes its manifest wasm_modules/tract_onnx.json.
#
#   scripts/build_wasm.sh           build and install the module and manifest
#   scripts/build_wasm.sh --check   rebuild from scratch in a temporary directory and
#                                   fail unless the bytes equal the committed module
#
# Toolchain: Debian's rustc-web (its Rust has the wasm32-wasip1 std sources that
# rustup here lacks), rebuilt with -Zbuild-std; see ../shared/notes/wasm-toolchain.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
crate_name=tract_onnx_guest  # the folder, the package (with dashes) and the lib
crate="$root/wasm_modules/$crate_name"
out_wasm="$root/wasm_modules/tract_onnx.wasm"
out_manifest="$root/wasm_modules/tract_onnx.json"
packages=(rustc-web cargo-web rust-web-src wasi-libc lld-19 llvm-19)
# The guest's shadow stack, in linear memory. Deep graphs recurse in tract's
# optimiser; 1 MiB (the default) is too small for them (docs/guest.md).
stack_size=$((8 * 1024 * 1024))

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

rust_src=$(ls -d /usr/src/rustc-*/ | sort -V | tail -n 1)
rust_src=${rust_src%/}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

build_dir="$crate"
if [ $check -eq 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/$crate_name"
  cp -r "$crate/Cargo.toml" "$crate/Cargo.lock" "$crate/src" "$crate/shim" "$tmp/$crate_name/"
  build_dir="$tmp/$crate_name"
fi

# libc functions Debian's wasi-libc lacks, assembled into an object of their own (shim/).
shim=target/wasm32-wasip1/shim.o
mkdir -p "$build_dir/target/wasm32-wasip1"
llvm-mc-19 -triple=wasm32-wasi -filetype=obj "$build_dir/shim/realpath.s" -o "$build_dir/$shim"

rustflags=(
  "-Ctarget-feature=+simd128"
  "-Clink-self-contained=no"
  "-Lnative=/usr/lib/wasm32-wasi"
  "-Clink-arg=/usr/lib/wasm32-wasi/crt1-reactor.o"
  "-Clink-arg=-zstack-size=$stack_size"
  "-Clink-arg=$shim"  # relative: cargo runs rustc in the crate's directory
  "--remap-path-prefix=$build_dir=/guest"
  "--remap-path-prefix=$cargo_home=/cargo"
  "--remap-path-prefix=$rust_src=/rustc"
)
flags_toml=$(printf '"%s",' "${rustflags[@]}")

cd "$build_dir"
# Debian's cargo and rustc by full path: rustup's come first on PATH and have no wasm target.
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0 \
  /usr/bin/cargo build --locked --release --target wasm32-wasip1 \
  -Zbuild-std=std,panic_abort \
  --config 'target.wasm32-wasip1.linker="wasm-ld-19"' \
  --config "target.wasm32-wasip1.rustflags=[${flags_toml%,}]" >&2

built="$build_dir/target/wasm32-wasip1/release/$crate_name.wasm"
if [ $check -eq 1 ]; then
  if cmp -s "$built" "$out_wasm"; then
    echo "reproducible: a clean rebuild equals wasm_modules/tract_onnx.wasm ($(sha256sum < "$built" | cut -c1-16))"
  else
    echo "NOT reproducible: a clean rebuild differs from wasm_modules/tract_onnx.wasm" >&2
    echo "  committed $(sha256sum < "$out_wasm" | cut -c1-64)" >&2
    echo "  rebuilt   $(sha256sum < "$built" | cut -c1-64)" >&2
    exit 1
  fi
  exit 0
fi

cp "$built" "$out_wasm"
versions=$(for p in "${packages[@]}"; do dpkg-query -W -f='${Package}=${Version}\n' "$p"; done)
python3 "$root/scripts/wasm_manifest.py" write \
  --rustc "$(/usr/bin/rustc -V)" \
  --packages="$versions" \
  --rustflags="$(printf '%s\n' "${rustflags[@]}" | sed -e "s#$build_dir#<crate>#" -e "s#$cargo_home#<cargo-home>#" -e "s#$rust_src#<rust-src>#")" \
  --build-std "std,panic_abort"
echo "wrote $out_wasm ($(stat -c %s "$out_wasm") bytes) and $out_manifest"
