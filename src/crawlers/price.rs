//! Pay Per Crawl headers (Cloudflare's `crawler-*` protocol): prices as `USD 0.01`, the crawler's
//! price intent (`crawler-exact-price` / `crawler-max-price`) and the `crawler-error` codes.
//!
//! Amounts are integers in the asset's smallest unit ("atomic", e.g. USDC has 6 decimals, so
//! `10000` is one cent), the same unit as x402 prices; `decimals` converts. The currency is
//! always `USD` (USDC is priced 1:1).
//!
//! Only Cloudflare can bill `crawler-*` charges; a Worker uses these headers to quote its price to
//! crawlers that speak Pay Per Crawl, alongside `PAYMENT-REQUIRED`, and to read their price intent.

use super::wba::VerifiedAgent;
use std::fmt;

/// The price quoted on a 402 (`crawler-price: USD 0.01`).
pub const CRAWLER_PRICE: &str = "crawler-price";
/// The crawler agrees to pay exactly the quoted price.
pub const CRAWLER_EXACT_PRICE: &str = "crawler-exact-price";
/// The crawler agrees to pay up to this price.
pub const CRAWLER_MAX_PRICE: &str = "crawler-max-price";
/// The amount charged, on a successful response.
pub const CRAWLER_CHARGED: &str = "crawler-charged";
/// The error code header.
pub const CRAWLER_ERROR: &str = "crawler-error";
/// The only currency written and accepted.
pub const CURRENCY: &str = "USD";

/// Longest price header value parsed.
const MAX_PRICE_LEN: usize = 64;

/// A Pay Per Crawl error: [`CrawlerError::code`] is the exact `crawler-error` header value and
/// [`CrawlerError::status`] the HTTP status Cloudflare uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrawlerError {
    /// The crawler is blocked.
    CrawlerForbidden,
    /// Paying needs a verified bot or a Web Bot Auth signature, and there is none.
    StrongAuthRequired,
    /// The signature is missing or invalid, or does not cover the price header.
    InvalidSignature,
    /// A price header is not `USD <decimal>`.
    InvalidCrawlerPriceValue,
    /// Content is charged and the request states no price intent.
    MissingCrawlerPrice,
    /// The payment could not be made.
    PaymentFailed,
    /// `crawler-exact-price` differs from the price.
    InvalidCrawlerExactPrice,
    /// `crawler-max-price` is below the price.
    InvalidCrawlerMaxPrice,
    /// Both `crawler-exact-price` and `crawler-max-price` were sent.
    ConflictingPriceHeaders,
    /// The origin's own price is invalid.
    InvalidContentPrice,
    /// Something failed on our side; retry.
    InternalError,
}

impl CrawlerError {
    /// Every code, for tests and documentation.
    pub const ALL: [CrawlerError; 11] = [
        CrawlerError::CrawlerForbidden,
        CrawlerError::StrongAuthRequired,
        CrawlerError::InvalidSignature,
        CrawlerError::InvalidCrawlerPriceValue,
        CrawlerError::MissingCrawlerPrice,
        CrawlerError::PaymentFailed,
        CrawlerError::InvalidCrawlerExactPrice,
        CrawlerError::InvalidCrawlerMaxPrice,
        CrawlerError::ConflictingPriceHeaders,
        CrawlerError::InvalidContentPrice,
        CrawlerError::InternalError,
    ];

    /// The `crawler-error` header value.
    pub fn code(self) -> &'static str {
        match self {
            CrawlerError::CrawlerForbidden => "CrawlerForbidden",
            CrawlerError::StrongAuthRequired => "StrongAuthRequired",
            CrawlerError::InvalidSignature => "InvalidSignature",
            CrawlerError::InvalidCrawlerPriceValue => "InvalidCrawlerPriceValue",
            CrawlerError::MissingCrawlerPrice => "MissingCrawlerPrice",
            CrawlerError::PaymentFailed => "PaymentFailed",
            CrawlerError::InvalidCrawlerExactPrice => "InvalidCrawlerExactPrice",
            CrawlerError::InvalidCrawlerMaxPrice => "InvalidCrawlerMaxPrice",
            CrawlerError::ConflictingPriceHeaders => "ConflictingPriceHeaders",
            CrawlerError::InvalidContentPrice => "InvalidContentPrice",
            CrawlerError::InternalError => "InternalError",
        }
    }

    /// The HTTP status. `InternalError` is 500 (retryable).
    pub fn status(self) -> u16 {
        match self {
            CrawlerError::CrawlerForbidden | CrawlerError::PaymentFailed => 403,
            CrawlerError::StrongAuthRequired
            | CrawlerError::InvalidSignature
            | CrawlerError::InvalidCrawlerPriceValue
            | CrawlerError::ConflictingPriceHeaders => 400,
            CrawlerError::MissingCrawlerPrice
            | CrawlerError::InvalidCrawlerExactPrice
            | CrawlerError::InvalidCrawlerMaxPrice => 402,
            CrawlerError::InvalidContentPrice => 502,
            CrawlerError::InternalError => 500,
        }
    }

    /// Whether the crawler may retry the same request unchanged.
    pub fn retryable(self) -> bool {
        self == CrawlerError::InternalError
    }

    /// A sentence for a person.
    pub fn message(self) -> &'static str {
        match self {
            CrawlerError::CrawlerForbidden => "This crawler is not allowed to fetch this content.",
            CrawlerError::StrongAuthRequired => "Paying for content needs a verified identity: sign the request with Web Bot Auth.",
            CrawlerError::InvalidSignature => "The Web Bot Auth signature is missing, invalid, or does not cover the price header.",
            CrawlerError::InvalidCrawlerPriceValue => "A price header is not of the form \"USD <decimal>\".",
            CrawlerError::MissingCrawlerPrice => "This content is charged: send crawler-exact-price or crawler-max-price.",
            CrawlerError::PaymentFailed => "The payment could not be made.",
            CrawlerError::InvalidCrawlerExactPrice => "crawler-exact-price does not equal the price of this content (see crawler-price).",
            CrawlerError::InvalidCrawlerMaxPrice => "crawler-max-price is below the price of this content (see crawler-price).",
            CrawlerError::ConflictingPriceHeaders => "Send crawler-exact-price or crawler-max-price, not both.",
            CrawlerError::InvalidContentPrice => "The origin set an invalid price for this content.",
            CrawlerError::InternalError => "Something failed on our side; retry the request.",
        }
    }
}

impl fmt::Display for CrawlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CrawlerError {}

/// Formats an atomic amount as a `crawler-price` value: `USD <decimal>`, with at least two and at
/// most `decimals` fractional digits, trailing zeros beyond the second trimmed
/// (`10000, 6` → `USD 0.01`; `1, 6` → `USD 0.000001`; `1500000, 6` → `USD 1.50`; `5, 0` → `USD 5.00`).
pub fn crawler_price(amount_atomic: u128, decimals: u8) -> String {
    let digits = crate::evm::decimal(amount_atomic);
    let d = usize::from(decimals);
    let padded = if digits.len() <= d {
        format!("{}{digits}", "0".repeat(d + 1 - digits.len()))
    } else {
        digits
    };
    let split = padded.len().saturating_sub(d);
    let (int, frac) = padded
        .split_at_checked(split)
        .unwrap_or((padded.as_str(), ""));
    let mut frac = frac.trim_end_matches('0').to_owned();
    while frac.len() < 2 {
        frac.push('0');
    }
    format!("{CURRENCY} {int}.{frac}")
}

/// Parses a price header strictly: `USD`, one space, then a non-negative decimal (`1`, `0.01`,
/// `12.500`; no sign, exponent, or empty part). Surrounding whitespace (HTTP OWS) is ignored.
/// Fractional digits beyond `decimals` must be zeros. Returns the atomic amount.
pub fn parse_crawler_price(value: &str, decimals: u8) -> Result<u128, CrawlerError> {
    let bad = CrawlerError::InvalidCrawlerPriceValue;
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.len() > MAX_PRICE_LEN {
        return Err(bad);
    }
    let number = value
        .strip_prefix(CURRENCY)
        .and_then(|v| v.strip_prefix(' '))
        .ok_or(bad)?;
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return Err(bad);
    }
    if number.contains('.') && frac.is_empty() {
        return Err(bad);
    }
    let d = usize::from(decimals);
    let (kept, extra) = frac.split_at_checked(d.min(frac.len())).ok_or(bad)?;
    if extra.bytes().any(|b| b != b'0') {
        return Err(bad);
    }
    let mut amount: u128 = 0;
    let digits = int
        .bytes()
        .chain(kept.bytes())
        .chain(std::iter::repeat_n(b'0', d.saturating_sub(kept.len())));
    for b in digits {
        amount = amount
            .checked_mul(10)
            .and_then(|a| a.checked_add(u128::from(b - b'0')))
            .ok_or(bad)?;
    }
    Ok(amount)
}

/// Applies a crawler's price intent to our price (both atomic, same `decimals`).
///
/// * neither header → `Ok(None)`: no intent; the shell answers 402 with `crawler-price` (or
///   `MissingCrawlerPrice` where it wants an error code).
/// * both → [`CrawlerError::ConflictingPriceHeaders`] (400).
/// * malformed → [`CrawlerError::InvalidCrawlerPriceValue`] (400).
/// * `exact` ≠ price → [`CrawlerError::InvalidCrawlerExactPrice`] (402).
/// * `max` < price → [`CrawlerError::InvalidCrawlerMaxPrice`] (402).
/// * otherwise `Ok(Some(price))`: the amount to charge, which is always our price, never the max.
pub fn check_crawler_intent(
    max: Option<&str>,
    exact: Option<&str>,
    price_atomic: u128,
    decimals: u8,
) -> Result<Option<u128>, CrawlerError> {
    match (max, exact) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(CrawlerError::ConflictingPriceHeaders),
        (None, Some(exact)) => {
            if parse_crawler_price(exact, decimals)? == price_atomic {
                Ok(Some(price_atomic))
            } else {
                Err(CrawlerError::InvalidCrawlerExactPrice)
            }
        }
        (Some(max), None) => {
            if parse_crawler_price(max, decimals)? >= price_atomic {
                Ok(Some(price_atomic))
            } else {
                Err(CrawlerError::InvalidCrawlerMaxPrice)
            }
        }
    }
}

/// The identity requirement for a price intent: if the request sends `crawler-exact-price` or
/// `crawler-max-price`, it must carry a verified Web Bot Auth signature
/// ([`CrawlerError::StrongAuthRequired`] otherwise) that covers that header
/// ([`CrawlerError::InvalidSignature`] otherwise), so the price cannot be changed in transit.
/// Requests with neither header pass.
pub fn require_signed_intent(
    verified: Option<&VerifiedAgent>,
    max_present: bool,
    exact_present: bool,
) -> Result<(), CrawlerError> {
    if !max_present && !exact_present {
        return Ok(());
    }
    let agent = verified.ok_or(CrawlerError::StrongAuthRequired)?;
    let covered = (!max_present || agent.covers(CRAWLER_MAX_PRICE))
        && (!exact_present || agent.covers(CRAWLER_EXACT_PRICE));
    if covered {
        Ok(())
    } else {
        Err(CrawlerError::InvalidSignature)
    }
}
