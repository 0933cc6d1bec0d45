//! `x402-edge-verify-native [ITERATIONS]`: verifies the x402 specification's example payment
//! ITERATIONS times (default 2000) through `x402_edge::paywall::decide` and prints one JSON line:
//! `{"iterations":…,"totalNs":…,"usPerVerification":…}`. Run under
//! `valgrind --tool=callgrind` with a small count for instruction counts.

#[path = "../../verify-case.rs"]
mod case;

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ITERATIONS is a number"))
        .unwrap_or(2000);
    let c = case::case();
    assert!(case::verify_once(&c), "the specification example must verify");
    // Warm caches and the allocator.
    for _ in 0..(iterations / 20).max(1) {
        black_box(case::verify_once(black_box(&c)));
    }
    let started = Instant::now();
    let mut ok = 0u32;
    for _ in 0..iterations {
        ok += u32::from(case::verify_once(black_box(&c)));
    }
    let total = started.elapsed();
    assert_eq!(ok, iterations, "every verification must succeed");
    let ns = total.as_nanos();
    println!(
        "{{\"iterations\":{iterations},\"totalNs\":{ns},\"usPerVerification\":{:.3}}}",
        ns as f64 / f64::from(iterations) / 1000.0
    );
}
