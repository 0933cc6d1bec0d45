//! Sign-In-With-X (SIWX): a wallet proves, without paying again, that it controls an address.
//!
//! The `sign-in-with-x` extension of x402 v2 (protocol digest §4.1, `@x402/extensions`
//! `sign-in-with-x`). A 402 carries a challenge ([`extension`]); the client signs an EIP-4361
//! (SIWE) message built from it with `personal_sign` and retries with the proof, base64 JSON, in
//! the `SIGN-IN-WITH-X` request header. Here: parse the proof ([`parse_header`]), rebuild the
//! signed message byte for byte ([`message`]), check it against the request and the clock and
//! recover the signer ([`verify`]). EVM keys (`eip191`, 65-byte signatures) are verified here;
//! a signature the address's own key did not make may still be a smart wallet's (ERC-1271, or
//! ERC-6492 around it), which only the wallet's contract can judge: [`contract_question`] is what
//! the shell asks it on chain. Solana (`ed25519`) is refused with its own code.
//!
//! What the shell does around this (none of it is I/O-free):
//! - the nonce and `issuedAt` of each challenge come from its randomness and clock;
//! - single use: after [`verify`] succeeds, record [`replay_key`] in a strongly consistent store
//!   (a Durable Object, not KV) until [`remember_until`], and refuse a proof whose key is there;
//! - what the wallet may do (a paid grant, see [`crate::session`]) is a separate question: a valid
//!   proof only says who is asking.
//!
//! Following the reference server, an invalid proof is not an error response of its own: the
//! request falls through to the normal 402. [`SiwxError::code`] is for logs and diagnostics.
//!
//! Timestamps are RFC 3339, parsed strictly and by hand ([`parse_rfc3339`]); the challenge writes
//! them as JavaScript's `toISOString()` does ([`format_iso_millis`]).

use core::fmt;

use serde_json::{json, Map, Value};

use crate::evm::{eip191_hash, erc6492, hex_bytes, Address, Signature};
use crate::reason::Reason;
use crate::x402::codec;

/// The request header carrying a proof (HTTP header names are case-insensitive).
pub const HEADER: &str = "sign-in-with-x";
/// The key of the extension in a v2 `PaymentRequired.extensions`.
pub const EXTENSION_KEY: &str = "sign-in-with-x";
/// How old a proof's `issuedAt` may be, as in the reference server (5 minutes).
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 300;
/// How far in the future `issuedAt` may be, for clocks that run ahead of ours. The reference
/// allows none; a client whose clock is a few seconds fast would then never sign in.
pub const CLOCK_SKEW_SECONDS: u64 = 60;
/// The longest nonce accepted. EIP-4361 sets no maximum; ours are 32 characters, and a bound
/// keeps [`replay_key`] short enough for any store.
pub const MAX_NONCE_CHARS: usize = 128;
/// The latest instant [`format_iso_millis`] writes: 9999-12-31T23:59:59Z.
pub const MAX_FORMATTED_UNIX: u64 = 253_402_300_799;

/// Why a proof was refused. Each variant has a stable [`code`](SiwxError::code) and a sentence
/// ([`Display`](fmt::Display)); values echoed from the proof are clipped to a short length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiwxError {
    /// Not base64, not JSON, a missing or mistyped field, or a field EIP-4361 cannot carry.
    Malformed(String),
    /// A chain or signature type other than EVM `eip191` (Solana, another namespace).
    UnsupportedChain(String),
    /// A signature that is not 65 bytes: a smart wallet's (ERC-1271 / ERC-6492), which needs a
    /// chain to check ([`contract_question`]). Carries the byte length.
    UnsupportedSignature(usize),
    /// The request URL given to [`verify`] is not an absolute http(s) URL (a shell bug).
    RequestUrl(String),
    /// `domain` is not the host (and non-default port) the request was made to.
    DomainMismatch { expected: String, got: String },
    /// The origin of `uri` is not the origin the request was made to.
    UriMismatch { expected: String, got: String },
    /// `issuedAt` is older than the allowed age.
    Stale { age: u64, max_age: u64 },
    /// `issuedAt` is further in the future than the allowed clock skew.
    IssuedInFuture { ahead: u64 },
    /// `expirationTime` has passed.
    Expired { expiration_time: String },
    /// `notBefore` has not come yet.
    NotYetValid { not_before: String },
    /// The signature is malformed or would never verify (hex, `v`, high `s`, no key recovers).
    BadSignature(String),
    /// The signature is sound but was made by another key, or over another message.
    SignerMismatch {
        claimed: Address,
        recovered: Address,
    },
}

impl SiwxError {
    /// Every code, for tests and documentation.
    pub const CODES: [&'static str; 12] = [
        "siwx_malformed",
        "siwx_unsupported_chain",
        "siwx_unsupported_signature",
        "siwx_request_url_invalid",
        "siwx_domain_mismatch",
        "siwx_uri_mismatch",
        "siwx_stale",
        "siwx_issued_in_future",
        "siwx_expired",
        "siwx_not_yet_valid",
        "siwx_bad_signature",
        "siwx_signer_mismatch",
    ];

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SiwxError::Malformed(_) => "siwx_malformed",
            SiwxError::UnsupportedChain(_) => "siwx_unsupported_chain",
            SiwxError::UnsupportedSignature(_) => "siwx_unsupported_signature",
            SiwxError::RequestUrl(_) => "siwx_request_url_invalid",
            SiwxError::DomainMismatch { .. } => "siwx_domain_mismatch",
            SiwxError::UriMismatch { .. } => "siwx_uri_mismatch",
            SiwxError::Stale { .. } => "siwx_stale",
            SiwxError::IssuedInFuture { .. } => "siwx_issued_in_future",
            SiwxError::Expired { .. } => "siwx_expired",
            SiwxError::NotYetValid { .. } => "siwx_not_yet_valid",
            SiwxError::BadSignature(_) => "siwx_bad_signature",
            SiwxError::SignerMismatch { .. } => "siwx_signer_mismatch",
        }
    }
}

impl fmt::Display for SiwxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiwxError::Malformed(d) => write!(
                f,
                "The SIGN-IN-WITH-X header is not a well-formed sign-in proof ({}).",
                clip(d)
            ),
            SiwxError::UnsupportedChain(d) => write!(
                f,
                "This paywall only accepts sign-in with an EVM wallet (eip155 chains, eip191 signatures) ({}).",
                clip(d)
            ),
            SiwxError::UnsupportedSignature(n) => write!(
                f,
                "The sign-in signature is {n} bytes, not a wallet key's 65, and this paywall has no chain access to ask a smart wallet's contract."
            ),
            SiwxError::RequestUrl(d) => write!(
                f,
                "The paywall could not read its own request URL to check the sign-in against ({}).",
                clip(d)
            ),
            SiwxError::DomainMismatch { expected, got } => write!(
                f,
                "The sign-in was signed for domain {:?}, not for {:?}.",
                clip(got),
                clip(expected)
            ),
            SiwxError::UriMismatch { expected, got } => write!(
                f,
                "The sign-in URI {:?} is not on this site's origin {:?}.",
                clip(got),
                clip(expected)
            ),
            SiwxError::Stale { age, max_age } => write!(
                f,
                "The sign-in was issued {age} seconds ago; it must be at most {max_age} seconds old. Sign a fresh one."
            ),
            SiwxError::IssuedInFuture { ahead } => write!(
                f,
                "The sign-in is dated {ahead} seconds in the future; check the client's clock."
            ),
            SiwxError::Expired { expiration_time } => write!(
                f,
                "The sign-in expired at {}. Sign a fresh one.",
                clip(expiration_time)
            ),
            SiwxError::NotYetValid { not_before } => write!(
                f,
                "The sign-in is not valid before {}.",
                clip(not_before)
            ),
            SiwxError::BadSignature(d) => write!(
                f,
                "The sign-in signature is malformed or cannot be verified ({}).",
                clip(d)
            ),
            SiwxError::SignerMismatch { claimed, recovered } => write!(
                f,
                "The sign-in was not signed by {claimed} over this message (the signature belongs to {recovered})."
            ),
        }
    }
}

impl std::error::Error for SiwxError {}

/// Keeps echoed values short in messages.
fn clip(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

fn malformed(detail: impl Into<String>) -> SiwxError {
    SiwxError::Malformed(detail.into())
}

// ---------------------------------------------------------------------------------------------
// The 402 side.

/// The `sign-in-with-x` extension for a 402 ([`Extension::to_value`] as a value,
/// [`Extension::to_json`] as the text a 402 carries), as `@x402/extensions`
/// (`enrichPaymentRequiredResponse`) writes it:
///
/// - `info`: `domain`, `uri`, `version` "1", `nonce` (32 lowercase hex digits), `issuedAt` (`now`
///   as `2024-01-15T10:30:00.000Z`), `expirationTime` (`now + expiration_seconds`) if configured,
///   `statement` if given, `resources` `[uri]`;
/// - `supportedChains`: one `{chainId, type: "eip191"}` per distinct `eip155:<n>` entry of
///   `chains`, in order. Other namespaces (Solana) are left out, because [`verify`] cannot check
///   them and a client should not be invited to sign what will be refused;
/// - `schema`: the JSON Schema of the proof payload ([`proof_schema`]).
///
/// `domain` must be the request URL's host with its port when not the default (`URL.host`, see
/// [`HttpUrl::authority`]): the reference client (`assertSIWxChallengeBoundToOrigin`) refuses to
/// sign a challenge whose domain differs from that. `uri` is the resource URL, which must be on
/// the same origin. A `statement` that EIP-4361 cannot carry (see [`statement_is_valid`]) is left
/// out, since the reference client would fail to build the message; an empty one is left out as
/// the reference does. Characters a URL may keep raw but a URI may not (`|`, `^`, `{`, `}`, `\`,
/// a backquote) are percent-encoded in `uri`, so that the proof which echoes it is one [`verify`]
/// accepts.
pub fn extension(
    domain: &str,
    uri: &str,
    chains: &[String],
    nonce: [u8; 16],
    now: u64,
    statement: Option<&str>,
    expiration_seconds: Option<u64>,
) -> Extension {
    let uri = as_uri(uri);
    let mut info = Map::new();
    info.insert("domain".into(), Value::from(domain));
    info.insert("uri".into(), Value::from(uri.as_str()));
    info.insert("version".into(), Value::from("1"));
    info.insert("nonce".into(), Value::from(hex::encode(nonce)));
    info.insert("issuedAt".into(), Value::from(format_iso_millis(now)));
    if let Some(seconds) = expiration_seconds {
        info.insert(
            "expirationTime".into(),
            Value::from(format_iso_millis(now.saturating_add(seconds))),
        );
    }
    if let Some(s) = statement.filter(|s| !s.is_empty() && statement_is_valid(s)) {
        info.insert("statement".into(), Value::from(s));
    }
    info.insert("resources".into(), json!([uri]));

    let mut seen: Vec<&str> = Vec::new();
    let mut supported = Vec::new();
    for chain in chains {
        if evm_chain_id(chain).is_some() && !seen.contains(&chain.as_str()) {
            seen.push(chain);
            supported.push(json!({ "chainId": chain, "type": "eip191" }));
        }
    }
    Extension {
        info: Value::Object(info),
        supported_chains: Value::from(supported),
    }
}

/// A Sign-In-With-X challenge (see [`extension`]): what differs between challenges, the `info`
/// the proof must echo and the chains it may be signed on, beside the proof's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    info: Value,
    supported_chains: Value,
}

impl Extension {
    /// The extension's value: `info`, `supportedChains` and the proof's JSON Schema.
    pub fn to_value(&self) -> Value {
        json!({
            "info": self.info,
            "supportedChains": self.supported_chains,
            "schema": proof_schema(),
        })
    }

    /// The value as compact JSON text, byte for byte, as a 402 carries it. The schema, the same
    /// for every challenge, is spliced in as text written once: parsing it into a value and
    /// writing it out again was three fifths of the cost of a 402 carrying a challenge (`cargo
    /// bench --bench core -- 402`: 32 µs natively before, 12 µs after).
    pub fn to_json(&self) -> String {
        // The keys in the order a JSON object of them is written (sorted).
        [
            "{\"info\":",
            &self.info.to_string(),
            ",\"schema\":",
            proof_schema_json(),
            ",\"supportedChains\":",
            &self.supported_chains.to_string(),
            "}",
        ]
        .concat()
    }
}

/// [`proof_schema`] as compact JSON text, written once.
fn proof_schema_json() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| proof_schema().to_string())
}

/// The JSON Schema (2020-12) of the proof payload, field for field as `buildSIWxSchema()`.
pub fn proof_schema() -> Value {
    // Parsed from its text (compact, as the bundle carries it): a `json!` literal this size
    // compiles to several KB of wasm.
    serde_json::from_str(PROOF_SCHEMA).unwrap_or_default()
}

const PROOF_SCHEMA: &str = concat!(
    r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","#,
    r#""properties":{"domain":{"type":"string"},"address":{"type":"string"},"#,
    r#""statement":{"type":"string"},"uri":{"type":"string","format":"uri"},"#,
    r#""version":{"type":"string"},"chainId":{"type":"string"},"type":{"type":"string"},"#,
    r#""nonce":{"type":"string"},"issuedAt":{"type":"string","format":"date-time"},"#,
    r#""expirationTime":{"type":"string","format":"date-time"},"#,
    r#""notBefore":{"type":"string","format":"date-time"},"requestId":{"type":"string"},"#,
    r#""resources":{"type":"array","items":{"type":"string","format":"uri"}},"#,
    r#""signature":{"type":"string"}},"required":["domain","address","uri","version","#,
    r#""chainId","type","nonce","issuedAt","signature"]}"#,
);

/// Whether EIP-4361 can carry `s` as a statement: one line of the printable ASCII its grammar
/// allows (letters, digits, space and ``!#$&'()*+,-./:;=?@[]_~``; not ``"%<>\^`{|}``, no line
/// breaks, no non-ASCII). The SIWE library refuses anything else. Use it to check configuration.
pub fn statement_is_valid(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" !#$&'()*+,-./:;=?@[]_~".contains(&b))
}

// ---------------------------------------------------------------------------------------------
// The proof.

/// The `signatureScheme` hint a proof may carry. Informational: verification is decided by the
/// signature's shape, not by the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    Eip191,
    Eip1271,
    Eip6492,
    Siws,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::Eip191 => "eip191",
            SignatureScheme::Eip1271 => "eip1271",
            SignatureScheme::Eip6492 => "eip6492",
            SignatureScheme::Siws => "siws",
        }
    }
}

/// A parsed `SIGN-IN-WITH-X` proof. Strings are kept exactly as sent, because the signed message
/// is rebuilt from them; times are also given in unix seconds, rounded toward refusal (see each
/// field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub domain: String,
    /// The claimed signer. The message is rebuilt with its EIP-55 form, as the SIWE library does
    /// (it re-checksums a single-case address and refuses a wrong mixed-case one).
    pub address: Address,
    pub uri: String,
    pub version: String,
    /// The numeric chain id written in the message (`Chain ID: 8453`).
    pub chain_id: u64,
    /// `chainId` as sent (`eip155:8453`).
    pub chain_id_caip2: String,
    pub nonce: String,
    pub issued_at: String,
    /// `issuedAt`, rounded down to the second.
    pub issued_at_unix: u64,
    /// `expirationTime` and its second, rounded down (a fraction of a second early).
    pub expiration_time: Option<(String, u64)>,
    /// `notBefore` and its second, rounded up (a fraction of a second late).
    pub not_before: Option<(String, u64)>,
    pub request_id: Option<String>,
    /// `None` when absent; `Some(vec![])` when sent empty, which still writes a bare
    /// `Resources:` line, as the SIWE library does.
    pub resources: Option<Vec<String>>,
    /// `None` when absent; `Some("")` when sent empty, which changes the message layout.
    pub statement: Option<String>,
    /// As sent; checked by [`verify`].
    pub signature: String,
    /// The optional `signatureScheme` hint.
    pub signature_scheme: Option<SignatureScheme>,
}

/// The longest `SIGN-IN-WITH-X` header read: a proof is well under 2 KB (payment headers, which
/// repeat the terms, may be longer: [`codec::MAX_HEADER_BYTES`]).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Parses a `SIGN-IN-WITH-X` header value: base64 (either alphabet, padded or not, at most
/// [`MAX_HEADER_BYTES`], as [`codec::decode_base64`]) of a JSON object with the fields of the reference zod
/// `SIWxPayloadSchema`. Required: `domain`, `address`, `uri`, `version`, `chainId`, `type`,
/// `nonce`, `issuedAt`, `signature`; optional fields may be absent but not `null`; unknown
/// fields are ignored.
///
/// Beyond the types, every field must be one EIP-4361 can carry, so that the message rebuilt from
/// it is unambiguous: no line breaks anywhere, `version` "1", a nonce of 8 to
/// [`MAX_NONCE_CHARS`] letters and digits, RFC 3339 times, `chainId` `eip155:<n>`, `type`
/// `eip191`.
pub fn parse_header(value: &str) -> Result<Proof, SiwxError> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(malformed("the header is larger than 8 KiB"));
    }
    let json = codec::decode_json(value).map_err(|r| {
        let what = match r.reason {
            Reason::InvalidBase64 => "the header is not base64",
            _ => "the header is not base64 of JSON",
        };
        match r.detail {
            Some(d) => malformed(format!("{what}: {d}")),
            None => malformed(what),
        }
    })?;
    let obj = json
        .as_object()
        .ok_or_else(|| malformed("the JSON is not an object"))?;

    // Chain and type first: a Solana proof should hear that Solana is not supported, not that
    // its address is not an EVM address.
    let chain_id_caip2 = required(obj, "chainId")?;
    let kind = required(obj, "type")?;
    let chain_id = match evm_chain_id(chain_id_caip2) {
        Some(id) => id,
        None if chain_id_caip2.starts_with("eip155:") => {
            return Err(malformed(format!(
                "chainId {:?} is not eip155:<chain id>",
                clip(chain_id_caip2)
            )))
        }
        None if chain_id_caip2.starts_with("solana:") => {
            return Err(SiwxError::UnsupportedChain(
                "Solana (SIWS) sign-in is not supported".into(),
            ))
        }
        None => {
            return Err(SiwxError::UnsupportedChain(format!(
                "chainId {:?}",
                clip(chain_id_caip2)
            )))
        }
    };
    match kind {
        "eip191" => {}
        "ed25519" => {
            return Err(SiwxError::UnsupportedChain(
                "ed25519 (Solana) signatures are not supported".into(),
            ))
        }
        other => {
            return Err(malformed(format!(
                "type {:?} is not \"eip191\" or \"ed25519\"",
                clip(other)
            )))
        }
    }

    let domain = required(obj, "domain")?;
    if domain.is_empty() || !domain.bytes().all(is_authority_char) {
        return Err(malformed(format!(
            "domain {:?} is not a host[:port]",
            clip(domain)
        )));
    }
    let address_text = required(obj, "address")?;
    let address = Address::parse(address_text)
        .map_err(|e| malformed(format!("address {:?}: {e}", clip(address_text))))?;
    let uri = required(obj, "uri")?;
    if !is_uri(uri) {
        return Err(malformed(format!("uri {:?} is not a URI", clip(uri))));
    }
    let version = required(obj, "version")?;
    if version != "1" {
        return Err(malformed(format!(
            "version {:?}; EIP-4361 version \"1\" is the only one",
            clip(version)
        )));
    }
    let nonce = required(obj, "nonce")?;
    if nonce.len() < 8
        || nonce.len() > MAX_NONCE_CHARS
        || !nonce.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(malformed(format!(
            "nonce {:?} must be 8 to {MAX_NONCE_CHARS} letters and digits",
            clip(nonce)
        )));
    }
    let issued_at = required(obj, "issuedAt")?;
    let issued = timestamp("issuedAt", issued_at)?;
    let expiration_time = optional(obj, "expirationTime")?
        .map(|s| timestamp("expirationTime", s).map(|t| (s.to_string(), t.secs)))
        .transpose()?;
    let not_before = optional(obj, "notBefore")?
        .map(|s| timestamp("notBefore", s).map(|t| (s.to_string(), t.ceil_secs())))
        .transpose()?;
    let request_id = optional(obj, "requestId")?;
    if let Some(r) = request_id {
        if !r.bytes().all(is_pchar) {
            return Err(malformed(format!(
                "requestId {:?} has characters EIP-4361 does not allow",
                clip(r)
            )));
        }
    }
    let statement = optional(obj, "statement")?;
    if let Some(s) = statement {
        if !statement_is_valid(s) {
            return Err(malformed(
                "statement has characters EIP-4361 does not allow (one line of printable ASCII)",
            ));
        }
    }
    let resources = match obj.get("resources") {
        None => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(r) if is_uri(r) => out.push(r.to_string()),
                    Some(r) => {
                        return Err(malformed(format!("resource {:?} is not a URI", clip(r))))
                    }
                    None => return Err(malformed("resources must be strings")),
                }
            }
            Some(out)
        }
        Some(_) => return Err(malformed("resources must be an array of strings")),
    };
    let signature_scheme = match optional(obj, "signatureScheme")? {
        None => None,
        Some("eip191") => Some(SignatureScheme::Eip191),
        Some("eip1271") => Some(SignatureScheme::Eip1271),
        Some("eip6492") => Some(SignatureScheme::Eip6492),
        Some("siws") => Some(SignatureScheme::Siws),
        Some(other) => {
            return Err(malformed(format!(
                "signatureScheme {:?} is not eip191, eip1271, eip6492 or siws",
                clip(other)
            )))
        }
    };
    let signature = required(obj, "signature")?;

    Ok(Proof {
        domain: domain.to_string(),
        address,
        uri: uri.to_string(),
        version: version.to_string(),
        chain_id,
        chain_id_caip2: chain_id_caip2.to_string(),
        nonce: nonce.to_string(),
        issued_at: issued_at.to_string(),
        issued_at_unix: issued.secs,
        expiration_time,
        not_before,
        request_id: request_id.map(str::to_string),
        resources,
        statement: statement.map(str::to_string),
        signature: signature.to_string(),
        signature_scheme,
    })
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, SiwxError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(malformed(format!("field `{key}` must be a string"))),
        None => Err(malformed(format!("field `{key}` is missing"))),
    }
}

fn optional<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, SiwxError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!(
            "field `{key}` must be a string when present"
        ))),
        None => Ok(None),
    }
}

fn timestamp(field: &str, s: &str) -> Result<UtcTime, SiwxError> {
    parse_rfc3339(s).ok_or_else(|| {
        malformed(format!(
            "{field} {:?} is not an RFC 3339 date-time (like 2024-01-15T10:30:00.000Z)",
            clip(s)
        ))
    })
}

/// The numeric id of `eip155:<digits>`, if it is one and fits in 64 bits. Leading zeros are
/// accepted and dropped, as the reference (`parseInt`) does.
fn evm_chain_id(caip2: &str) -> Option<u64> {
    let digits = caip2.strip_prefix("eip155:")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// RFC 3986 `pchar` (unreserved, percent sign, sub-delims, `:` and `@`).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@".contains(&b)
}

/// Characters of an RFC 3986 authority: pchar plus the brackets of IPv6 literals.
fn is_authority_char(b: u8) -> bool {
    is_pchar(b) || b == b'[' || b == b']'
}

/// An RFC 3986 URI in shape: `scheme ":"` then only characters a URI may contain. A simplification
/// of the grammar, enough to keep line breaks, spaces and non-ASCII out of the message.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok && rest.bytes().all(is_uri_char)
}

/// A character a URI may hold after its scheme: pchar, the separators of path, query and fragment,
/// and the brackets of IPv6 literals.
fn is_uri_char(b: u8) -> bool {
    is_pchar(b) || matches!(b, b'/' | b'?' | b'#' | b'[' | b']')
}

/// `url` with every character [`is_uri`] would refuse after its scheme percent-encoded (UTF-8
/// bytes, upper-case hex, as URLs write them).
fn as_uri(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let (scheme, rest) = url.split_once(':').unwrap_or(("", url));
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push(':');
    }
    for b in rest.bytes() {
        match is_uri_char(b) {
            true => out.push(char::from(b)),
            false => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The EIP-4361 message the wallet signed, rebuilt byte for byte as `SiweMessage.toMessage()` of
/// `@signinwithethereum/siwe` writes it for the reference client: lines joined by `\n`, no
/// trailing newline,
///
/// ```text
/// {domain} wants you to sign in with your Ethereum account:
/// {address, EIP-55}
///
/// {statement}                 (this line and the blank after it only with a statement;
///                              without one, the address is followed by two blank lines)
/// URI: {uri}
/// Version: {version}
/// Chain ID: {numeric chain id}
/// Nonce: {nonce}
/// Issued At: {issuedAt}
/// Expiration Time: {expirationTime}   (if present)
/// Not Before: {notBefore}             (if present)
/// Request ID: {requestId}             (if present, even empty)
/// Resources:                          (if present, even empty)
/// - {resource}
/// ```
pub fn message(p: &Proof) -> String {
    let mut m = String::with_capacity(400);
    m.push_str(&p.domain);
    m.push_str(" wants you to sign in with your Ethereum account:\n");
    m.push_str(&p.address.to_checksum());
    m.push_str("\n\n");
    if let Some(statement) = &p.statement {
        m.push_str(statement);
        m.push('\n');
    }
    m.push_str("\nURI: ");
    m.push_str(&p.uri);
    m.push_str("\nVersion: ");
    m.push_str(&p.version);
    m.push_str("\nChain ID: ");
    m.push_str(&p.chain_id.to_string());
    m.push_str("\nNonce: ");
    m.push_str(&p.nonce);
    m.push_str("\nIssued At: ");
    m.push_str(&p.issued_at);
    if let Some((s, _)) = &p.expiration_time {
        m.push_str("\nExpiration Time: ");
        m.push_str(s);
    }
    if let Some((s, _)) = &p.not_before {
        m.push_str("\nNot Before: ");
        m.push_str(s);
    }
    if let Some(r) = &p.request_id {
        m.push_str("\nRequest ID: ");
        m.push_str(r);
    }
    if let Some(resources) = &p.resources {
        m.push_str("\nResources:");
        for r in resources {
            m.push_str("\n- ");
            m.push_str(r);
        }
    }
    m
}

/// Checks a proof against the request and the clock, then the signature; returns the signer.
///
/// In order, cheapest first (the signature, the only expensive step, last):
/// 1. `domain` equals the request URL's host, with its port when not the default (`URL.host`;
///    ASCII case-insensitive). The reference server and client (`@x402/extensions` 2.27) compare
///    with the host *including* the port, so on a default port this is the bare hostname;
/// 2. the origin of `uri` (scheme, host, port) equals the request URL's origin. Equality of
///    parsed origins, not a string prefix: `https://api.example.com.evil.io` starts with
///    `https://api.example.com`;
/// 3. `issuedAt` is at most `max_age_seconds` old ([`DEFAULT_MAX_AGE_SECONDS`]) and at most
///    [`CLOCK_SKEW_SECONDS`] in the future;
/// 4. `expirationTime`, if any, is after `now`; `notBefore`, if any, is at or before `now`;
/// 5. the 65-byte signature (v 27/28, low s) recovers, over the EIP-191 hash of [`message`], to
///    `address` (compared as 20 bytes).
///
/// `request_url` should be the public URL of the request (in a Worker, `request.url`, or the
/// configured public origin plus the path when one is configured). The nonce is not checked
/// here: see [`replay_key`].
pub fn verify(
    p: &Proof,
    request_url: &str,
    now: u64,
    max_age_seconds: u64,
) -> Result<Address, SiwxError> {
    let request = HttpUrl::parse_request(request_url)
        .ok_or_else(|| SiwxError::RequestUrl(request_url.into()))?;
    let expected_domain = request.authority();
    if !p.domain.eq_ignore_ascii_case(&expected_domain) {
        return Err(SiwxError::DomainMismatch {
            expected: expected_domain,
            got: p.domain.clone(),
        });
    }
    let expected_origin = request.origin();
    match HttpUrl::parse(&p.uri) {
        Some(u) if u.origin() == expected_origin => {}
        _ => {
            return Err(SiwxError::UriMismatch {
                expected: expected_origin,
                got: p.uri.clone(),
            })
        }
    }

    let age = now.saturating_sub(p.issued_at_unix);
    if age > max_age_seconds {
        return Err(SiwxError::Stale {
            age,
            max_age: max_age_seconds,
        });
    }
    let ahead = p.issued_at_unix.saturating_sub(now);
    if ahead > CLOCK_SKEW_SECONDS {
        return Err(SiwxError::IssuedInFuture { ahead });
    }
    if let Some((s, at)) = &p.expiration_time {
        if *at <= now {
            return Err(SiwxError::Expired {
                expiration_time: s.clone(),
            });
        }
    }
    if let Some((s, at)) = &p.not_before {
        if *at > now {
            return Err(SiwxError::NotYetValid {
                not_before: s.clone(),
            });
        }
    }

    // Some wallets (hardware ones among them) write the recovery id as 0 or 1, which viem's
    // `verifyMessage` accepts too. Off chain nothing else reads it: the nonce, not the signature,
    // is what a replay is recognised by.
    let mut bytes = hex_bytes(&p.signature).map_err(|e| SiwxError::BadSignature(e.to_string()))?;
    if bytes.len() != 65 {
        return Err(SiwxError::UnsupportedSignature(bytes.len()));
    }
    if let Some(v @ 0..=1) = bytes.last_mut() {
        *v += 27;
    }
    let signature =
        Signature::from_bytes(&bytes).map_err(|e| SiwxError::BadSignature(e.to_string()))?;
    let hash = eip191_hash(message(p).as_bytes());
    let recovered = signature
        .recover(&hash)
        .map_err(|e| SiwxError::BadSignature(e.to_string()))?;
    if recovered != p.address {
        return Err(SiwxError::SignerMismatch {
            claimed: p.address,
            recovered,
        });
    }
    Ok(p.address)
}

impl SiwxError {
    /// Whether only the signature was refused, every other check having passed: one that a
    /// smart wallet's contract may still accept ([`contract_question`]).
    pub fn may_be_contract_signature(&self) -> bool {
        matches!(
            self,
            SiwxError::UnsupportedSignature(_)
                | SiwxError::BadSignature(_)
                | SiwxError::SignerMismatch { .. }
        )
    }
}

/// What to ask the wallet contract at a proof's address when its signature is not that
/// address's own key's: ERC-1271 `isValidSignature(hash, signature)`, with the EIP-191 hash of
/// [`message`]; for a wallet not deployed yet, first the factory call that deploys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletQuestion {
    pub hash: [u8; 32],
    /// The signature the contract judges: the one inside an ERC-6492 envelope.
    pub signature: Vec<u8>,
    /// From an ERC-6492 envelope: the factory and the call that deploys the wallet, made in the
    /// same simulation before the question where the address has no code yet.
    pub deploy: Option<(Address, Vec<u8>)>,
}

/// What to ask the contract at the proof's address ([`WalletQuestion`]). `None` for a signature
/// that is not hex, or an ERC-6492 envelope that cannot be read.
pub fn contract_question(p: &Proof) -> Option<WalletQuestion> {
    let bytes = hex_bytes(&p.signature).ok()?;
    let (signature, deploy) = if erc6492::is_wrapped(&bytes) {
        let envelope = erc6492::open(&bytes)?;
        (
            envelope.signature.to_vec(),
            Some((envelope.factory, envelope.factory_calldata.to_vec())),
        )
    } else {
        (bytes, None)
    };
    Some(WalletQuestion {
        hash: eip191_hash(message(p).as_bytes()),
        signature,
        deploy,
    })
}

/// The key under which the shell records that this proof was used: `siwx:` + the address in
/// lowercase hex + `:` + the nonce (at most 176 characters, all of `[0-9a-z:A-Z]`).
///
/// Keyed by address and nonce, not by nonce alone as the reference storage is: a nonce in
/// someone else's challenge cannot be burnt by another wallet signing it first.
pub fn replay_key(p: &Proof) -> String {
    let mut key = String::with_capacity(48 + p.nonce.len());
    key.push_str("siwx:");
    key.push_str(&p.address.to_lower_hex());
    key.push(':');
    key.push_str(&p.nonce);
    key
}

/// Until when (unix seconds) the shell must remember [`replay_key`] after accepting `p`, given the
/// `max_age` it passes to [`verify`].
///
/// A proof can only be accepted while it is fresh (`now ≤ issuedAt + max_age`) and unexpired
/// (`now < expirationTime`); from the first second where either fails, [`verify`] refuses it on
/// time alone and remembering the nonce is useless. So the horizon is the sooner of
/// `issuedAt + max_age + 1` and `expirationTime` (a later expiration does not extend it: the age
/// rule closes the window first; `notBefore` and the future-skew allowance only move its start),
/// plus [`CLOCK_SKEW_SECONDS`] in case the store's clock runs ahead of the verifier's. The shell
/// must use the same `max_age` here as in [`verify`]; raising it later re-opens old proofs for
/// the difference.
pub fn remember_until(p: &Proof, max_age: u64) -> u64 {
    let fresh_until = p.issued_at_unix.saturating_add(max_age).saturating_add(1);
    let until = match &p.expiration_time {
        Some((_, at)) => fresh_until.min(*at),
        None => fresh_until,
    };
    until.saturating_add(CLOCK_SKEW_SECONDS)
}

// ---------------------------------------------------------------------------------------------
// URLs.

/// `a=1&b=x%20y` (a query, or a form body sent as `application/x-www-form-urlencoded`) → pairs,
/// percent-decoded (`+` as space). A `;` separates pairs too, as some frameworks read it.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An absolute `http`/`https` URL, parsed by hand into what origin checks need. Scheme and host
/// are lowercased; a default port (80, 443) is dropped, as WHATWG URL does. Userinfo is skipped.
///
/// Deliberately narrow: anything unusual (spaces, non-ASCII, backslashes, a malformed port, an
/// empty host) is refused rather than normalised, so a differently-parsed URL can only fail a
/// comparison, never pass one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host; IPv6 literals keep their brackets.
    pub host: String,
    /// The port, if given and not the scheme's default.
    pub port: Option<u16>,
    /// The path, `/` if empty; without query or fragment.
    pub path: String,
    /// The query without `?`, if any.
    pub query: Option<String>,
}

impl HttpUrl {
    /// A request's own URL as the runtime serialised it: read as [`HttpUrl::parse`] reads one,
    /// but for a backslash in the query, which WHATWG URL leaves as the client sent it
    /// (`?path=C:\dir`), where it is taken as written.
    pub fn parse_request(url: &str) -> Option<HttpUrl> {
        match url.split_once('?') {
            Some((before, query)) if query.contains('\\') && !before.contains('#') => {
                let query = query.split('#').next().unwrap_or_default();
                if !query.bytes().all(|b| b.is_ascii_graphic()) {
                    return None;
                }
                let mut parsed = HttpUrl::parse(before)?;
                parsed.query = Some(query.to_string());
                Some(parsed)
            }
            _ => HttpUrl::parse(url),
        }
    }

    pub fn parse(url: &str) -> Option<HttpUrl> {
        if !url.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
            return None;
        }
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let host_port = match authority.rfind('@') {
            Some(at) => authority.get(at.saturating_add(1)..)?,
            None => authority,
        };
        let (host, port_text) = if host_port.starts_with('[') {
            let close = host_port.find(']')?;
            let (h, after) = host_port.split_at(close.saturating_add(1));
            match after {
                "" => (h, None),
                _ => (h, Some(after.strip_prefix(':')?)),
            }
        } else {
            match host_port.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            }
        };
        if host.is_empty() || host == "[]" || !host.bytes().all(is_authority_char) {
            return None;
        }
        let port = match port_text {
            None | Some("") => None,
            Some(p) => {
                if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n: u16 = p.parse().ok()?;
                (n != default_port).then_some(n)
            }
        };
        let without_fragment = tail.split('#').next().unwrap_or("");
        let (path, query) = match without_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (without_fragment, None),
        };
        Some(HttpUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            query,
        })
    }

    /// `host[:port]`, the port only when not the default: JavaScript's `URL.host`, and what a
    /// challenge's `domain` must be.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// `scheme://host[:port]`: JavaScript's `URL.origin`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority())
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 3339 time.

/// An instant in UTC at or after the unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcTime {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: u64,
    /// The fraction, in nanoseconds (digits past the ninth are read and dropped).
    pub nanos: u32,
}

impl UtcTime {
    /// The second, rounded up when there is a fraction.
    pub fn ceil_secs(&self) -> u64 {
        if self.nanos > 0 {
            self.secs.saturating_add(1)
        } else {
            self.secs
        }
    }
}

/// Parses an RFC 3339 `date-time` strictly: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` and
/// `Z` in either case, a real calendar date (leap years included), hours 00–23, minutes and
/// seconds 00–59. Refused: leap second `60` (JavaScript's `Date` refuses it too, so the reference
/// server could not accept it), a missing zone, a space for `T`, surrounding whitespace, any
/// other form of ISO 8601, and instants before 1970.
pub fn parse_rfc3339(s: &str) -> Option<UtcTime> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
            i += 1;
        }
        let read = i - start;
        if read == 0 {
            return None;
        }
        for _ in read..9 {
            nanos *= 10;
        }
    }

    let offset: i64 = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let oh = digits(b, i + 1, 2)?;
            let om = digits(b, i + 4, 2)?;
            if b.get(i + 3) != Some(&b':') || oh > 23 || om > 59 {
                return None;
            }
            i += 6;
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }

    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let secs = u64::try_from(local - offset).ok()?;
    Some(UtcTime { secs, nanos })
}

/// `secs` as JavaScript's `Date.prototype.toISOString()` writes it: `2024-01-15T10:30:00.000Z`
/// (the milliseconds are always `000`). Instants after year 9999 are written as
/// [`MAX_FORMATTED_UNIX`].
pub fn format_iso_millis(secs: u64) -> String {
    let secs = secs.min(MAX_FORMATTED_UNIX);
    // At most 2_932_896 days: the casts keep their values.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `n` ASCII digits at `start`, as a number (at most 4 digits are ever read, so no overflow).
fn digits(b: &[u8], start: usize, n: usize) -> Option<u32> {
    let slice = b.get(start..start.checked_add(n)?)?;
    slice.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`). Years
/// here are 0..=9999, so every intermediate value is small.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`], for days in 0..=2_932_896 (1970 to 9999).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in small ranges (see above), so the conversions cannot fail.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        // Every day from 1970 to 2400, both directions.
        let end = days_from_civil(2400, 12, 31);
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..=end {
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(civil_from_days(days), (y, m, d));
            d += 1;
            if d > days_in_month(y as u32, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn max_formatted_is_the_last_second_of_9999() {
        assert_eq!(
            format_iso_millis(MAX_FORMATTED_UNIX),
            "9999-12-31T23:59:59.000Z"
        );
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59Z").map(|t| t.secs),
            Some(MAX_FORMATTED_UNIX)
        );
    }

    #[test]
    fn clip_is_char_safe() {
        let long = "é".repeat(500);
        assert_eq!(clip(&long).chars().count(), 121);
        assert_eq!(clip("short"), "short");
    }
}
