//! wasmhost's guest: tract's ONNX interpreter behind guest ABI v1
//! (docs/guest-abi.md). Built as a wasm32-wasip1 reactor; the host calls
//! `_initialize` once, then `wh_load` and `wh_run` with msgpack requests.

pub mod dtypes;
pub mod ml_forest;
pub mod ml_kernels;
pub mod ml_svm;
pub mod text;
pub mod wire;

#[cfg(feature = "tract")]
mod checks;
#[cfg(feature = "tract")]
mod errors;
#[cfg(feature = "tract")]
mod model;
#[cfg(feature = "tract")]
mod ops;
#[cfg(feature = "tract")]
mod plans;
#[cfg(feature = "tract")]
mod rewrite_rnn;
#[cfg(feature = "tract")]
mod tensors;

#[cfg(feature = "tract")]
mod abi {
    use std::alloc::{alloc, dealloc, Layout};
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tract_onnx::prelude::Tensor;

    use crate::model::Loaded;
    use crate::wire::{self, GuestError, GuestResult, LoadRequest, RunRequest};

    struct Guest {
        loaded: Option<Loaded>,
        result: Vec<u8>,
        /// The last run's outputs, which its response points into.
        outputs: Vec<Tensor>,
    }

    thread_local! {
        static GUEST: RefCell<Guest> = const {
            RefCell::new(Guest { loaded: None, result: Vec::new(), outputs: Vec::new() })
        };
    }

    /// The last response's address and length, where the host reads them without two
    /// calls (`wh_result_cell`). Atomics only for a safe static: the guest has one thread.
    static RESULT_CELL: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

    fn layout(len: usize) -> Option<Layout> {
        Layout::from_size_align(len.max(1), 8).ok()
    }

    #[no_mangle]
    pub extern "C" fn wh_abi_version() -> i32 {
        1
    }

    /// ABI 1's revision (docs/guest-abi.md): 1 = string tensors. Optional for the host.
    #[no_mangle]
    pub extern "C" fn wh_abi_minor() -> i32 {
        1
    }

    /// Never traps: an allocation the memory cap refuses is reported as 0.
    #[no_mangle]
    pub extern "C" fn wh_alloc(len: usize) -> *mut u8 {
        match layout(len) {
            Some(l) => unsafe { alloc(l) },
            None => std::ptr::null_mut(),
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn wh_free(ptr: *mut u8, len: usize) {
        if let (false, Some(l)) = (ptr.is_null(), layout(len)) {
            dealloc(ptr, l)
        }
    }

    fn call(ptr: *const u8, len: usize, f: impl FnOnce(&[u8], &mut Guest) -> GuestResult<()>) -> i32 {
        let request: &[u8] = if ptr.is_null() || len == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(ptr, len) }
        };
        GUEST.with_borrow_mut(|guest| {
            // The previous response, and the outputs it pointed into, expire now.
            guest.outputs.clear();
            let status = match f(request, guest) {
                Ok(()) => 0,
                Err(e) => {
                    guest.outputs.clear();
                    wire::encode_error(&mut guest.result, &e);
                    1
                }
            };
            // wasm32: addresses and lengths fit a u32.
            RESULT_CELL[0].store(guest.result.as_ptr() as usize as u32, Ordering::Relaxed);
            RESULT_CELL[1].store(guest.result.len() as u32, Ordering::Relaxed);
            status
        })
    }

    #[no_mangle]
    pub extern "C" fn wh_load(ptr: *const u8, len: usize) -> i32 {
        call(ptr, len, |bytes, guest| {
            let req: LoadRequest = wire::decode(bytes, "load")?;
            // Free the previous model before parsing the next one.
            guest.loaded = None;
            let loaded = Loaded::load(req.model, req.options)?;
            wire::encode_load_response(&mut guest.result, &loaded.inputs, &loaded.outputs, &loaded.meta);
            guest.loaded = Some(loaded);
            Ok(())
        })
    }

    #[no_mangle]
    pub extern "C" fn wh_run(ptr: *const u8, len: usize) -> i32 {
        // tract seeds an unseeded random operator from the thread generator, which would
        // otherwise go on from run to run (and be frozen into a snapshot): reseeded from
        // the host's random_get, a run draws what the host gives it, never what an
        // earlier run left.
        let _ = rand::rng().reseed();
        call(ptr, len, |bytes, guest| {
            let req: RunRequest = wire::decode(bytes, "run")?;
            let loaded = guest
                .loaded
                .as_mut()
                .ok_or_else(|| GuestError::new("not_loaded", "no model is loaded"))?;
            loaded.run(&req, &mut guest.result, &mut guest.outputs)
        })
    }

    #[no_mangle]
    pub extern "C" fn wh_result_ptr() -> *const u8 {
        GUEST.with_borrow(|g| g.result.as_ptr())
    }

    #[no_mangle]
    pub extern "C" fn wh_result_len() -> usize {
        GUEST.with_borrow(|g| g.result.len())
    }

    /// Where the guest keeps the last response's address and length (two little-endian
    /// u32s), updated by every `wh_load` and `wh_run`.
    #[no_mangle]
    pub extern "C" fn wh_result_cell() -> *const AtomicU32 {
        RESULT_CELL.as_ptr()
    }
}
