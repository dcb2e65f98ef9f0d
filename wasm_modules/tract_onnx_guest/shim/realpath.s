# realpath(3) for the guest. Debian's wasi-libc (2022) lacks it, and std's
# fs::canonicalize references it (tract-onnx calls canonicalize for external
# tensor data). The guest has no file system, so it always fails: NULL.
# A separate object, not Rust code: a #[no_mangle] Rust function would become
# an export of the module, and ABI v1 allows no extra exports.
	.text
	.functype realpath (i32, i32) -> (i32)
	.section .text.realpath,"",@
	.globl realpath
	.type realpath,@function
realpath:
	.functype realpath (i32, i32) -> (i32)
	i32.const 0
	end_function
