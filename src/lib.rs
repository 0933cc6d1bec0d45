//! # x402-edge
//!
//! An x402 paywall that runs at the edge. A request for a priced resource without payment gets
//! `402 Payment Required` with machine-readable terms; a request carrying a signed USDC payment
//! (EIP-3009 `transferWithAuthorization`, EIP-712 signed) is verified here, locally, settled through
//! a facilitator, and served.
//!
//! The crate is a plain-Rust core that does no I/O, and a thin Cloudflare shell ([`edge`], built
//! only for wasm32) that gives it the request, the clock and the outside world:
//!
//! ```text
//! request ─▶ price      config::Config::route_for      which rule applies
//!         ─▶ authorize  paywall::decide                 payment header or 402 terms
//!         ─▶ verify     verify::verify                  the exact scheme, locally
//!         ─▶ serve      edge                            on to the origin
//!         ─▶ settle     edge + facilitator              through the facilitator's /settle
//!         ─▶ respond    paywall::PaidRequest            receipt, CORS and cache headers
//! ```
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the publisher's configuration, validated with errors that name the key |
//! | [`pattern`] | route path patterns, matched on normalised paths |
//! | [`networks`] | built-in networks and USDC deployments with their EIP-712 domains |
//! | [`x402`] | wire types of both protocol generations and the header codec |
//! | [`evm`] | keccak, addresses, uint256, signatures, EIP-712 and EIP-191 |
//! | [`verify`] | the exact scheme checked against an offer and the clock |
//! | [`reason`] | every refusal: code, x402 reason string, status, sentence |
//! | [`json`] | the one reader of everything read as JSON, each problem named by its key |
//! | [`facilitator`] | what facilitator answers mean, including the broken ones |
//! | [`cdp`] | CDP API keys, and the JWT each call to CDP's facilitator carries |
//! | [`paywall`] | the decision for one request, and the replies we write ourselves |

/// The Worker's allocator: talc's, smaller than Rust's default for wasm (see `Cargo.toml`).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub mod cdp;
pub mod chain;
pub mod config;
pub mod crawlers;
pub mod discovery;
pub mod evm;
pub mod facilitator;
pub mod json;
pub mod networks;
pub mod page;
pub mod pattern;
pub mod paywall;
pub mod policy;
pub mod reason;
pub mod recent;
pub mod session;
pub mod settlement;
pub mod siwx;
pub mod sorted;
pub mod stats;
pub mod verify;
pub mod x402;

#[cfg(target_arch = "wasm32")]
mod edge;
