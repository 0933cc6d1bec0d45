//! The x402 wire protocol, and nothing else: the JSON types of both generations (v1 and v2) and the
//! base64-JSON header codec. No chain logic lives here; see [`crate::evm`] and [`crate::verify`].

pub mod codec;
pub mod types;

pub use types::*;

/// Request header carrying a v2 payment.
pub const PAYMENT_SIGNATURE: &str = "payment-signature";
/// Request header carrying a v1 payment.
pub const X_PAYMENT: &str = "x-payment";
/// Response header carrying the v2 terms of a 402.
pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
/// Response header carrying a v2 settlement receipt.
pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
/// Response header carrying a v1 settlement receipt.
pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";
