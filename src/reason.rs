//! Every refusal the paywall can give, in one place.
//!
//! A client must always learn why it was refused, in a form a program can act on and a sentence a
//! person can read. Each [`Reason`] maps to exactly one row of the table in [`Reason::info`]: our own
//! stable code, the x402 reason string that official clients and facilitators use for the same
//! failure, the HTTP status, and the human sentence. Nothing else in the crate invents status codes
//! or error strings for refusals.

use serde::Serialize;

/// Why a request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No payment was attached to a priced request.
    PaymentRequired,
    /// A payment header is longer than [`crate::x402::codec::MAX_HEADER_BYTES`].
    HeaderTooLarge,
    /// A payment header is not base64.
    InvalidBase64,
    /// A payment header is base64, but not of JSON.
    InvalidJson,
    /// The JSON is not a payment payload of the expected shape.
    InvalidShape,
    /// The request path hides a dot segment, which origins read differently.
    InvalidPath,
    /// The request's URL cannot be read (never one a browser or the runtime writes).
    InvalidUrl,
    /// `x402Version` is missing or not one we speak.
    UnsupportedVersion,
    /// The payment names a scheme other than `exact`.
    UnsupportedScheme,
    /// The payment is for a network this route does not accept.
    NetworkMismatch,
    /// The payment is in a token this route does not accept.
    AssetMismatch,
    /// The `accepted` terms name another recipient than ours.
    PayToMismatch,
    /// The `accepted` terms name another price than ours.
    PriceMismatch,
    /// The `accepted` terms differ from ours in another field (timeout, EIP-712 domain).
    TermsMismatch,
    /// The authorization pays someone else.
    RecipientMismatch,
    /// The authorization's value is not exactly the price.
    ValueMismatch,
    /// The authorization is not valid yet (`validAfter` in the future).
    NotYetValid,
    /// The authorization expires too soon to be settled (`validBefore`).
    ExpiresTooSoon,
    /// The authorization stays valid for longer than the terms allow.
    ValidTooLong,
    /// The nonce is not 32 bytes of hex.
    InvalidNonce,
    /// An address field is not an address.
    InvalidAddress,
    /// A number field is not a decimal uint256.
    InvalidNumber,
    /// The signature is malformed (not hex, `v` not 27/28, high `s`, zero `r`/`s`).
    InvalidSignature,
    /// The signature is well formed but was not made by `from` over these terms.
    SignerMismatch,
    /// The facilitator judged a smart-wallet signature invalid.
    FacilitatorRejected,
    /// This exact authorization was already used.
    Replay,
    /// The `payment-identifier` extension's `id` is not 16–128 of `[A-Za-z0-9_-]`.
    InvalidPaymentId,
    /// The route requires a payment identifier and the payment carries none.
    PaymentIdRequired,
    /// The payment identifier names another payment of the same wallet.
    PaymentIdConflict,
    /// A payment sent again with its identifier while its first request is still being served.
    PaymentInProgress,
    /// An earlier deferred payment of this wallet failed to settle; it owes that first.
    WalletDelinquent,
    /// The wallet's unsettled deferred payments reached the credit limit.
    CreditExceeded,
    /// A session proof (Sign-In-With-X or a session token) was refused; paying still works.
    SessionRefused,
    /// This class of client is not let in on this route, paid or not.
    Blocked,
    /// A crawler's stated price (`crawler-max-price` / `crawler-exact-price`) was refused; the
    /// status and the `crawler-error` header follow Pay Per Crawl.
    CrawlerPriceRefused,
    /// The facilitator refused to settle the payment.
    SettlementFailed,
    /// The facilitator gave no usable answer to a settlement; the payment may have moved.
    FacilitatorUnavailable,
    /// The facilitator gave no usable answer to `/verify`, asked before the origin is; nothing
    /// was charged.
    VerificationUnavailable,
    /// The origin behind the paywall could not be reached or did not answer in time; the payment
    /// was not charged.
    OriginUnavailable,
    /// A paid request's body came too slowly to leave the origin its whole time to answer once it
    /// had arrived: cut off before the origin had it whole, nothing charged.
    BodyTooSlow,
    /// The wallet's ledger (which refuses a payment already taken) did not answer; nothing was
    /// served or charged.
    LedgerUnavailable,
    /// A session's credentials could not be checked now (the store of grants, the ledger or the
    /// chain did not answer): no terms, so that a client holding a session does not pay again.
    SessionUnavailable,
    /// A `POST` names another method in a `_method` parameter (which Rails, Laravel and others
    /// serve as that method), and that method is priced on this path by another route.
    MethodOverride,
    /// Too many payments from the client's address were refused after the facilitator or the
    /// chain was asked (`X402_RATE_LIMIT`): its payments are refused for a while before anything
    /// is asked.
    TooManyRefusals,
    /// The paywall itself is misconfigured.
    ConfigInvalid,
}

/// One row of the refusal table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonInfo {
    /// Our stable machine-readable code.
    pub code: &'static str,
    /// The x402 reason string (what official facilitators call the same failure).
    pub x402: &'static str,
    /// HTTP status of the refusal.
    pub status: u16,
    /// A sentence for a person.
    pub message: &'static str,
}

impl Reason {
    /// Every reason, for tests and documentation.
    pub const ALL: [Reason; 45] = [
        Reason::PaymentRequired,
        Reason::HeaderTooLarge,
        Reason::InvalidBase64,
        Reason::InvalidJson,
        Reason::InvalidShape,
        Reason::InvalidPath,
        Reason::InvalidUrl,
        Reason::UnsupportedVersion,
        Reason::UnsupportedScheme,
        Reason::NetworkMismatch,
        Reason::AssetMismatch,
        Reason::PayToMismatch,
        Reason::PriceMismatch,
        Reason::TermsMismatch,
        Reason::RecipientMismatch,
        Reason::ValueMismatch,
        Reason::NotYetValid,
        Reason::ExpiresTooSoon,
        Reason::ValidTooLong,
        Reason::InvalidNonce,
        Reason::InvalidAddress,
        Reason::InvalidNumber,
        Reason::InvalidSignature,
        Reason::SignerMismatch,
        Reason::FacilitatorRejected,
        Reason::Replay,
        Reason::InvalidPaymentId,
        Reason::PaymentIdRequired,
        Reason::PaymentIdConflict,
        Reason::PaymentInProgress,
        Reason::WalletDelinquent,
        Reason::CreditExceeded,
        Reason::SessionRefused,
        Reason::Blocked,
        Reason::CrawlerPriceRefused,
        Reason::SettlementFailed,
        Reason::FacilitatorUnavailable,
        Reason::VerificationUnavailable,
        Reason::OriginUnavailable,
        Reason::BodyTooSlow,
        Reason::LedgerUnavailable,
        Reason::SessionUnavailable,
        Reason::MethodOverride,
        Reason::TooManyRefusals,
        Reason::ConfigInvalid,
    ];

    /// The table: one row per reason.
    pub const fn info(self) -> ReasonInfo {
        const fn row(
            code: &'static str,
            x402: &'static str,
            status: u16,
            message: &'static str,
        ) -> ReasonInfo {
            ReasonInfo {
                code,
                x402,
                status,
                message,
            }
        }
        match self {
            Reason::PaymentRequired => row(
                "payment_required",
                "payment_required",
                402,
                "This resource costs money: pay with one of the offers in the PAYMENT-REQUIRED header.",
            ),
            Reason::HeaderTooLarge => row(
                "header_too_large",
                "invalid_payload",
                431,
                "The payment header is larger than this paywall accepts (16 KiB).",
            ),
            Reason::InvalidBase64 => row(
                "invalid_base64",
                "invalid_payload",
                400,
                "The payment header is not valid base64.",
            ),
            Reason::InvalidJson => row(
                "invalid_json",
                "invalid_payload",
                400,
                "The payment header does not decode to JSON.",
            ),
            Reason::InvalidShape => row(
                "invalid_payload_shape",
                "invalid_payload",
                400,
                "The payment header is JSON but not an x402 payment payload of the expected shape.",
            ),
            Reason::InvalidPath => row(
                "invalid_path",
                "invalid_request",
                400,
                "The path reads differently to different sites (a hidden '.' or '..' segment, an escape decoded twice, an encoded separator); send the path resolved.",
            ),
            Reason::InvalidUrl => row(
                "invalid_url",
                "invalid_request",
                400,
                "The request's URL cannot be read as an http or https URL.",
            ),
            Reason::UnsupportedVersion => row(
                "unsupported_x402_version",
                "invalid_x402_version",
                400,
                "The payment uses an x402 version this paywall does not speak (it speaks 1 and 2).",
            ),
            Reason::UnsupportedScheme => row(
                "unsupported_scheme",
                "unsupported_scheme",
                402,
                "The payment uses a scheme this route does not accept; only \"exact\" is offered.",
            ),
            Reason::NetworkMismatch => row(
                "network_mismatch",
                "invalid_network",
                402,
                "The payment is for a network this route does not accept.",
            ),
            Reason::AssetMismatch => row(
                "asset_mismatch",
                "invalid_payment_requirements",
                402,
                "The payment is in a token this route does not accept on that network.",
            ),
            Reason::PayToMismatch => row(
                "pay_to_mismatch",
                "invalid_exact_evm_recipient_mismatch",
                402,
                "The accepted terms name a different recipient than this route's.",
            ),
            Reason::PriceMismatch => row(
                "price_mismatch",
                "invalid_exact_evm_authorization_value",
                402,
                "The accepted terms name a different price than this route's.",
            ),
            Reason::TermsMismatch => row(
                "terms_mismatch",
                "invalid_payment_requirements",
                402,
                "The accepted terms differ from the ones this route offers; pay with the terms from the latest 402.",
            ),
            Reason::RecipientMismatch => row(
                "recipient_mismatch",
                "invalid_exact_evm_recipient_mismatch",
                402,
                "The signed authorization pays a different address than this route's payTo.",
            ),
            Reason::ValueMismatch => row(
                "value_mismatch",
                "invalid_exact_evm_authorization_value",
                402,
                "The signed authorization's value is not exactly the price.",
            ),
            Reason::NotYetValid => row(
                "authorization_not_yet_valid",
                "invalid_exact_evm_payload_authorization_valid_after",
                402,
                "The signed authorization is not valid yet (validAfter is in the future).",
            ),
            Reason::ExpiresTooSoon => row(
                "authorization_expires_too_soon",
                "invalid_exact_evm_payload_authorization_valid_before",
                402,
                "The signed authorization expires too soon to be settled (validBefore).",
            ),
            Reason::ValidTooLong => row(
                "authorization_valid_too_long",
                "invalid_exact_evm_payload_authorization_valid_before",
                402,
                "The signed authorization stays valid longer than the terms' maxTimeoutSeconds (or an hour) allow.",
            ),
            Reason::InvalidNonce => row(
                "invalid_nonce",
                "invalid_payload",
                402,
                "The authorization nonce must be 32 bytes written as 0x and 64 hex digits.",
            ),
            Reason::InvalidAddress => row(
                "invalid_address",
                "invalid_payload",
                402,
                "An address in the payment is not a valid 20-byte address (or its EIP-55 checksum is wrong).",
            ),
            Reason::InvalidNumber => row(
                "invalid_number",
                "invalid_payload",
                402,
                "A number in the authorization is not a decimal uint256 string.",
            ),
            Reason::InvalidSignature => row(
                "invalid_signature_format",
                "invalid_exact_evm_signature",
                402,
                "The signature is malformed or would fail on chain (it must be 65 bytes, v 27 or 28, low s).",
            ),
            Reason::SignerMismatch => row(
                "signer_mismatch",
                "invalid_exact_evm_signature",
                402,
                "The signature was not made by the payer over these terms (wrong key, token, chain or fields).",
            ),
            Reason::FacilitatorRejected => row(
                "facilitator_rejected",
                "invalid_exact_evm_signature",
                402,
                "The facilitator found this payment invalid (see the x402 error); nothing was served or charged.",
            ),
            Reason::Replay => row(
                "replayed_authorization",
                "invalid_exact_evm_nonce_already_used",
                402,
                "This signed payment was already used; sign a new one.",
            ),
            Reason::InvalidPaymentId => row(
                "invalid_payment_identifier",
                "invalid_payload",
                400,
                "The payment identifier must be 16 to 128 letters, digits, '-' or '_'.",
            ),
            Reason::PaymentIdRequired => row(
                "payment_identifier_required",
                "invalid_payload",
                400,
                "This route needs a payment identifier (the payment-identifier extension's info.id).",
            ),
            Reason::PaymentIdConflict => row(
                "payment_identifier_conflict",
                "invalid_payload",
                409,
                "This payment identifier went with another payment: a retry sends the same payment again, a new payment takes a new identifier.",
            ),
            Reason::PaymentInProgress => row(
                "payment_in_progress",
                "invalid_payload",
                409,
                "This payment is still being answered to the request that sent it first; send it again in a moment.",
            ),
            Reason::WalletDelinquent => row(
                "wallet_delinquent",
                "invalid_payment",
                402,
                "An earlier payment from this wallet could not be settled; it is refused until that debt is settled with the publisher.",
            ),
            Reason::CreditExceeded => row(
                "credit_exceeded",
                "invalid_payment",
                402,
                "This wallet has too many payments still settling; try again when they have settled.",
            ),
            Reason::SessionRefused => row(
                "session_refused",
                "payment_required",
                402,
                "The session proof was refused, so this request needs a payment.",
            ),
            Reason::Blocked => row(
                "blocked",
                "blocked",
                403,
                "The publisher does not let this kind of client read this resource.",
            ),
            Reason::CrawlerPriceRefused => row(
                "crawler_price_refused",
                "payment_required",
                402,
                "The price this crawler stated does not match this resource's price (see crawler-error).",
            ),
            Reason::SettlementFailed => row(
                "settlement_failed",
                "unexpected_settle_error",
                402,
                "The payment could not be settled on chain, so the content was not served.",
            ),
            Reason::FacilitatorUnavailable => row(
                "facilitator_unavailable",
                "unexpected_settle_error",
                502,
                "The payment service gave no clear answer; nothing was served. The payment may have moved all the same: it is checked on chain. Sent again with its payment identifier, one that moved gets what it paid for; without one, it is shown to the publisher as charged and not served. Check your balance before paying again.",
            ),
            Reason::VerificationUnavailable => row(
                "verification_unavailable",
                "unexpected_verify_error",
                502,
                "The payment service could not check this payment; nothing was served or charged. Try again.",
            ),
            Reason::OriginUnavailable => row(
                "origin_unavailable",
                "unexpected_settle_error",
                502,
                "The site behind the paywall could not be reached or did not answer in time; nothing was charged. Try again.",
            ),
            Reason::BodyTooSlow => row(
                "body_too_slow",
                "invalid_request",
                408,
                "The request's body came too slowly to leave the site its whole time to answer, so it was cut off before the site had it; nothing was charged. Send it again, whole, at once.",
            ),
            Reason::LedgerUnavailable => row(
                "ledger_unavailable",
                "unexpected_verify_error",
                503,
                "The paywall's record of payments did not answer, so this payment could not be checked against reuse; nothing was served, and most likely nothing charged. Send the same payment again; if it is refused as used, check your balance before paying anew.",
            ),
            Reason::SessionUnavailable => row(
                "session_unavailable",
                "unexpected_verify_error",
                503,
                "The paywall could not check this session just now; nothing was charged. Try again in a moment, without paying.",
            ),
            Reason::MethodOverride => row(
                "method_override",
                "invalid_request",
                400,
                "A _method parameter names a method priced here, which many sites would serve; send that method, with its payment.",
            ),
            Reason::TooManyRefusals => row(
                "too_many_refusals",
                "invalid_payment",
                429,
                "Too many payments from this address were refused by the facilitator or the chain; wait a minute before paying again.",
            ),
            Reason::ConfigInvalid => row(
                "paywall_misconfigured",
                "unexpected_verify_error",
                500,
                "This paywall is misconfigured; the publisher has been told which setting is wrong.",
            ),
        }
    }
}

/// A refusal as sent to a client: the reason plus optional detail (the field, the facilitator's
/// own reason string). Serialised as the JSON body of refusals and as the `error` of 402 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    /// What exactly was wrong, when there is more to say than the sentence.
    pub detail: Option<String>,
    /// A more specific x402 reason string, e.g. the facilitator's own.
    pub x402_override: Option<String>,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Refusal {
            reason,
            detail: None,
            x402_override: None,
        }
    }
}

impl Refusal {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: Some(detail.into()),
            x402_override: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.reason.info().status
    }

    /// The x402 reason string clients see in `error`.
    pub fn x402(&self) -> &str {
        self.x402_override
            .as_deref()
            .unwrap_or(self.reason.info().x402)
    }

    /// The human sentence, with the detail appended.
    pub fn message(&self) -> String {
        match &self.detail {
            Some(d) => format!("{} ({})", self.reason.info().message, d),
            None => self.reason.info().message.to_string(),
        }
    }

    /// The JSON object describing this refusal: `{error, reason, message}`.
    pub fn body(&self) -> RefusalBody<'_> {
        RefusalBody {
            error: self.x402(),
            reason: self.reason.info().code,
            message: self.message(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RefusalBody<'a> {
    pub error: &'a str,
    pub reason: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_statuses_are_4xx_or_5xx() {
        let mut codes = HashSet::new();
        for r in Reason::ALL {
            let i = r.info();
            assert!(codes.insert(i.code), "duplicate code {}", i.code);
            assert!(
                (400..600).contains(&i.status),
                "{} has status {}",
                i.code,
                i.status
            );
            assert!(i.message.ends_with('.'), "{} sentence", i.code);
        }
    }

    #[test]
    fn detail_is_appended_to_the_sentence() {
        let r = Refusal::new(Reason::InvalidShape, "missing field `payload`");
        assert!(r.message().contains("missing field `payload`"));
        assert_eq!(r.body().reason, "invalid_payload_shape");
    }
}
