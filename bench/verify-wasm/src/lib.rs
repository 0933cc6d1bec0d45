//! Exports for the wasm verification bench (see `scripts/lib/bench-verify.mjs`):
//!
//! - `verify_n(n) -> u32`: verifies the x402 specification's example payment `n` times through
//!   `x402_edge::paywall::decide`, returns how many verified (all of them, or the bench fails);
//! - `prepare() -> u32`: builds the case (parses the configuration and encodes the header) so that
//!   the timed calls do not include it; returns 1 if the example verifies.
//!
//! The x402-edge crate brings its Worker shell along on wasm32, whose wasm-bindgen imports are never
//! called on this path; the bench instantiates the module with stubs for them.

#[path = "../../verify-case.rs"]
mod case;

use std::hint::black_box;
use std::sync::OnceLock;

static CASE: OnceLock<case::Case> = OnceLock::new();

fn the_case() -> &'static case::Case {
    CASE.get_or_init(case::case)
}

#[no_mangle]
pub extern "C" fn prepare() -> u32 {
    u32::from(case::verify_once(the_case()))
}

#[no_mangle]
pub extern "C" fn verify_n(n: u32) -> u32 {
    let c = the_case();
    let mut ok = 0;
    for _ in 0..n {
        ok += u32::from(case::verify_once(black_box(c)));
    }
    ok
}
