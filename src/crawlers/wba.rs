//! Web Bot Auth: RFC 9421 HTTP Message Signatures from bots and agents, Ed25519 only.
//!
//! Two steps, because the key directory has to be fetched in between and this crate does no I/O:
//!
//! 1. [`parse_signature`] reads `Signature-Input`, `Signature` and `Signature-Agent`, applies the
//!    Web Bot Auth verifier requirements and builds the RFC 9421 §2.5 signature base. It names the
//!    directory to fetch in [`ParsedSignature::agent_url`].
//! 2. The shell fetches (and caches) that directory, gives the body to [`parse_directory`], and
//!    calls [`verify`] with the keys and the clock. The Worker calls [`check`] instead, which does
//!    every check but the Ed25519 arithmetic, and has the runtime's WebCrypto do that (the same
//!    verification, without the curve's code in the bundle).
//!
//! What the signature proves: the holder of a key published under the `Signature-Agent` host
//! signed this request for this authority within `created..expires`. A signature that fails any
//! check is worth exactly as much as no signature: the shell must never treat a request *worse*
//! than an unsigned one because its signature failed, nor better.

use super::sfv::{self, Bare, Entry, Member};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// The only `tag` this verifier accepts.
pub const WEB_BOT_AUTH_TAG: &str = "web-bot-auth";
/// The well-known path of a key directory (draft-meunier-http-message-signatures-directory).
pub const DIRECTORY_PATH: &str = "/.well-known/http-message-signatures-directory";
/// The media type a directory is served with.
pub const DIRECTORY_MEDIA_TYPE: &str = "application/http-message-signatures-directory+json";
/// How far `created` may be ahead of our clock, for clock skew.
pub const CREATED_SKEW_SECONDS: u64 = 60;
/// The longest `expires - created` window accepted.
pub const MAX_VALIDITY_SECONDS: u64 = 24 * 60 * 60;
/// The longest `Signature-Input`, `Signature` or `Signature-Agent` value read.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// The longest directory body [`parse_directory`] reads.
pub const MAX_DIRECTORY_BYTES: usize = 64 * 1024;
/// At most this many keys of a directory are kept.
pub const MAX_DIRECTORY_KEYS: usize = 64;
/// At most this many covered components.
pub const MAX_COMPONENTS: usize = 32;

/// The request as the signature sees it. Header names are asked for in lowercase; `header` must
/// return the field value with repeated fields joined by `", "` (what `Headers.get` does in a
/// Worker), or `None` when absent.
pub struct SignedRequest<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The authority, `host[:port]` (what `new URL(request.url).host` gives).
    pub authority: &'a str,
    /// The full request URL (`request.url`).
    pub target_uri: &'a str,
    /// The URL path (`new URL(request.url).pathname`).
    pub path: &'a str,
    /// Header lookup.
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

/// One covered component: a derived component (`@authority`) or a header field, optionally one
/// member of a dictionary field (`"signature-agent";key="agent1"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveredComponent {
    /// The component name: `@authority`, `signature-agent`, …
    pub name: String,
    /// The `key` parameter, for a dictionary member.
    pub key: Option<String>,
}

impl fmt::Display for CoveredComponent {
    /// The component identifier as it appears in the signature base.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sfv::serialize_string(&self.name))?;
        if let Some(key) = &self.key {
            write!(f, ";key={}", sfv::serialize_string(key))?;
        }
        Ok(())
    }
}

/// How the `Signature-Agent` named its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentLink {
    /// A directory origin; keys are at [`DIRECTORY_PATH`] on it.
    Directory,
    /// A direct JWKS URL (`type=jwks_uri` on a dictionary member).
    JwksUri,
}

/// A signature that passed every check that does not need keys or the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The `Signature-Input` label that was chosen (the first with `tag="web-bot-auth"`).
    pub label: String,
    /// The `keyid` parameter: normally the JWK thumbprint of the key.
    pub keyid: String,
    /// The `created` parameter, Unix seconds.
    pub created: u64,
    /// The `expires` parameter, Unix seconds.
    pub expires: u64,
    /// The `nonce` parameter, if any (for a replay cache, if the shell keeps one).
    pub nonce: Option<String>,
    /// The covered components, in signed order.
    pub components: Vec<CoveredComponent>,
    /// The `Signature-Agent` URI the signature points at, as sent (after sf-string decoding).
    pub agent_uri: Option<String>,
    /// How [`Self::agent_url`] was derived.
    pub agent_link: Option<AgentLink>,
    /// The URL to fetch the key set from: `https://<host>/.well-known/http-message-signatures-directory`
    /// for a directory, or the `jwks_uri` itself. `None` when the request has no `Signature-Agent`:
    /// then only keys the shell already knows (configuration) can verify it.
    pub agent_url: Option<String>,
    /// The identity the signature claims: the `host[:port]` of [`Self::agent_url`], or `None`.
    pub agent: Option<String>,
    /// The exact RFC 9421 §2.5 signature base (ASCII): one `"<component>": <value>` line per
    /// covered component, then `"@signature-params": <inner list and parameters as received>`.
    pub signature_base: String,
    /// A second base for old signers that covered `"signature-agent";key="…"` but signed the whole
    /// field value instead of the member (cloudflare/web-bot-auth's Rust example does). It binds the
    /// same request data, so also accepting it is safe.
    legacy_base: Option<String>,
    signature: [u8; 64],
}

impl ParsedSignature {
    /// Whether the signature covers the header field `name` (lowercase), whole.
    pub fn covers(&self, name: &str) -> bool {
        self.components
            .iter()
            .any(|c| c.name == name && c.key.is_none())
    }

    /// The covered component names, in signed order.
    pub fn component_names(&self) -> Vec<&str> {
        self.components.iter().map(|c| c.name.as_str()).collect()
    }

    /// The 64-byte Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAgent {
    /// Who signed: the `Signature-Agent` host (`host[:port]`), or, for a request without
    /// `Signature-Agent` verified against keys the shell supplied, `keyid:<keyid>`.
    pub agent: String,
    /// The URL of the key set, where the request named its keys by URL (`type=jwks_uri`); `None`
    /// for keys from the signer's directory (named by its host) or supplied by the shell. Which
    /// entries of a list of signers name it depends on it ([`crate::crawlers::signer_trusted`]).
    pub key_set_url: Option<String>,
    /// The `keyid` parameter.
    pub keyid: String,
    /// The `kid` of the matching JWK, if it had one.
    pub kid: Option<String>,
    /// `created`, Unix seconds.
    pub created: u64,
    /// `expires`, Unix seconds.
    pub expires: u64,
    /// `nonce`, if any.
    pub nonce: Option<String>,
    /// The covered components.
    pub components: Vec<CoveredComponent>,
}

impl VerifiedAgent {
    /// Whether the signature covered the header field `name` (lowercase), whole. Pay-per-crawl
    /// price headers count only if covered (Cloudflare requires it since 2025-11-18).
    pub fn covers(&self, name: &str) -> bool {
        self.components
            .iter()
            .any(|c| c.name == name && c.key.is_none())
    }
}

/// One Ed25519 public key of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// The `kid` member, if any.
    pub kid: Option<String>,
    /// The `x` member, base64url.
    pub x: String,
    /// The RFC 7638 thumbprint, base64url (the usual `keyid`).
    pub thumbprint: String,
    public: [u8; 32],
}

impl Jwk {
    /// An Ed25519 key from its base64url `x`. Fails if `x` is not 32 bytes of a valid point.
    pub fn ed25519(x: &str, kid: Option<&str>) -> Result<Jwk, WbaError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(x.as_bytes())
            .map_err(|_| WbaError::MalformedDirectory("a key's x is not base64url"))?;
        let public: [u8; 32] = bytes
            .try_into()
            .map_err(|_| WbaError::MalformedDirectory("a key's x is not 32 bytes"))?;
        // In the Worker, a key that is not a point is found when WebCrypto imports it (and then
        // verifies nothing).
        #[cfg(not(target_arch = "wasm32"))]
        ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| WbaError::MalformedDirectory("a key's x is not an Ed25519 point"))?;
        Ok(Jwk {
            kid: kid.map(str::to_owned),
            x: x.to_owned(),
            thumbprint: jwk_thumbprint(x),
            public,
        })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }
}

/// The usable keys of a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    /// Ed25519 keys, in directory order.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key whose thumbprint, or failing that whose `kid`, equals `keyid`.
    pub fn find(&self, keyid: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.thumbprint == keyid)
            .or_else(|| self.keys.iter().find(|k| k.kid.as_deref() == Some(keyid)))
    }
}

/// The RFC 7638 JWK thumbprint of an Ed25519 key: base64url (no padding) of SHA-256 over
/// `{"crv":"Ed25519","kty":"OKP","x":"<x>"}`.
pub fn jwk_thumbprint(x: &str) -> String {
    let canonical = format!(
        "{{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":{}}}",
        serde_json::Value::String(x.to_owned())
    );
    crate::x402::codec::base64(&Sha256::digest(canonical.as_bytes()), true)
}

/// Why a Web Bot Auth signature was not accepted. [`WbaError::code`] is stable; the sentence from
/// [`WbaError::message`] (also `Display`) is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WbaError {
    /// One of `Signature-Input` / `Signature` is present without the other.
    MissingSignatureHeader(&'static str),
    /// A signature header, or a covered header, is longer than [`MAX_HEADER_BYTES`].
    HeaderTooLarge(String),
    /// `Signature-Input` is not a structured-field dictionary of inner lists of strings.
    MalformedSignatureInput,
    /// `Signature` is not a dictionary, or the chosen label's value is not a 64-byte byte sequence.
    MalformedSignature,
    /// `Signature` has no member for the chosen label.
    SignatureLabelMissing(String),
    /// No signature carries a `tag` parameter.
    MissingTag,
    /// Signatures are tagged, but none `tag="web-bot-auth"`.
    WrongTag(String),
    /// `keyid`, `created` or `expires` is missing.
    MissingParameter(&'static str),
    /// A parameter has the wrong type (`created` not a non-negative integer, …).
    InvalidParameter(&'static str),
    /// `alg` names something other than `ed25519`.
    UnsupportedAlgorithm(String),
    /// Neither `@authority` nor `@target-uri` is covered.
    AuthorityNotCovered,
    /// The request has a `Signature-Agent` header that the signature does not cover.
    SignatureAgentNotCovered,
    /// `Signature-Agent` is neither a dictionary of strings nor an sf-string.
    MalformedSignatureAgent,
    /// `Signature-Agent` lists several agents and the signature does not say which (`;key=`).
    AmbiguousSignatureAgent,
    /// `Signature-Agent` is well formed but not something we fetch keys from.
    UnsupportedSignatureAgent(&'static str),
    /// A covered component we cannot build (`@query-param`, `@status`, `;sf`, `;bs`, …).
    UnsupportedComponent(String),
    /// A component is covered twice.
    DuplicateComponent(String),
    /// A covered header is absent (or a covered dictionary key is missing from it).
    MissingComponent(String),
    /// A covered `;key=` field is not a dictionary.
    MalformedComponent(String),
    /// A covered value has characters outside printable ASCII.
    NonAsciiComponent(String),
    /// More than [`MAX_COMPONENTS`] covered components.
    TooManyComponents,
    /// `created` is more than [`CREATED_SKEW_SECONDS`] ahead of our clock.
    SignatureCreatedInFuture,
    /// `expires` has passed.
    SignatureIsExpired,
    /// `expires` is not after `created`, or the window is longer than [`MAX_VALIDITY_SECONDS`].
    InvalidValidityWindow,
    /// No key of the directory matches `keyid`.
    UnknownKey,
    /// The Ed25519 signature does not verify over the signature base.
    InvalidSignature,
    /// The directory body is not a JWKS we can read.
    MalformedDirectory(&'static str),
    /// The directory has no usable Ed25519 key.
    DirectoryWithoutKeys,
    /// The directory could not be fetched (an error, a timeout, a status other than 200, a body
    /// over [`MAX_DIRECTORY_BYTES`]), or failed to read a few minutes ago and is remembered so.
    DirectoryUnavailable(String),
    /// The signer (`Signature-Agent` host) is not one the publisher trusts (`trustSigners`).
    UntrustedSigner(String),
}

impl WbaError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WbaError::MissingSignatureHeader(_) => "missing_signature_header",
            WbaError::HeaderTooLarge(_) => "signature_header_too_large",
            WbaError::MalformedSignatureInput => "malformed_signature_input",
            WbaError::MalformedSignature => "malformed_signature",
            WbaError::SignatureLabelMissing(_) => "signature_label_missing",
            WbaError::MissingTag => "missing_tag",
            WbaError::WrongTag(_) => "wrong_tag",
            WbaError::MissingParameter(_) => "missing_signature_parameter",
            WbaError::InvalidParameter(_) => "invalid_signature_parameter",
            WbaError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            WbaError::AuthorityNotCovered => "authority_not_covered",
            WbaError::SignatureAgentNotCovered => "signature_agent_not_covered",
            WbaError::MalformedSignatureAgent => "malformed_signature_agent",
            WbaError::AmbiguousSignatureAgent => "ambiguous_signature_agent",
            WbaError::UnsupportedSignatureAgent(_) => "unsupported_signature_agent",
            WbaError::UnsupportedComponent(_) => "unsupported_component",
            WbaError::DuplicateComponent(_) => "duplicate_component",
            WbaError::MissingComponent(_) => "missing_component",
            WbaError::MalformedComponent(_) => "malformed_component",
            WbaError::NonAsciiComponent(_) => "non_ascii_component",
            WbaError::TooManyComponents => "too_many_components",
            WbaError::SignatureCreatedInFuture => "signature_created_in_future",
            WbaError::SignatureIsExpired => "signature_expired",
            WbaError::InvalidValidityWindow => "invalid_validity_window",
            WbaError::UnknownKey => "unknown_key",
            WbaError::InvalidSignature => "invalid_signature",
            WbaError::MalformedDirectory(_) => "malformed_directory",
            WbaError::DirectoryWithoutKeys => "directory_without_keys",
            WbaError::DirectoryUnavailable(_) => "directory_unavailable",
            WbaError::UntrustedSigner(_) => "untrusted_signer",
        }
    }

    /// A sentence for a person.
    pub fn message(&self) -> String {
        match self {
            WbaError::MissingSignatureHeader(which) => {
                format!("The request is signed but has no {which} header; Web Bot Auth needs both Signature-Input and Signature.")
            }
            WbaError::HeaderTooLarge(which) => {
                format!("The {which} header is longer than this verifier reads ({MAX_HEADER_BYTES} bytes).")
            }
            WbaError::MalformedSignatureInput => "Signature-Input is not a structured-field dictionary of signature definitions.".into(),
            WbaError::MalformedSignature => "Signature is not a structured-field dictionary holding a 64-byte Ed25519 signature for the chosen label.".into(),
            WbaError::SignatureLabelMissing(label) => {
                format!("Signature has no value for the label {label:?} chosen from Signature-Input.")
            }
            WbaError::MissingTag => "The signature has no tag parameter; Web Bot Auth signatures carry tag=\"web-bot-auth\".".into(),
            WbaError::WrongTag(tag) => {
                format!("The signature is tagged {tag:?}; only tag=\"web-bot-auth\" is accepted here.")
            }
            WbaError::MissingParameter(name) => {
                format!("The signature has no {name} parameter; Web Bot Auth requires keyid, created, expires and tag.")
            }
            WbaError::InvalidParameter(name) => format!("The signature's {name} parameter has the wrong type or value."),
            WbaError::UnsupportedAlgorithm(alg) => {
                format!("The signature uses alg={alg:?}; only ed25519 is supported.")
            }
            WbaError::AuthorityNotCovered => "The signature covers neither @authority nor @target-uri, so it could be replayed against another site.".into(),
            WbaError::SignatureAgentNotCovered => "The request has a Signature-Agent header that the signature does not cover.".into(),
            WbaError::MalformedSignatureAgent => "Signature-Agent is neither a dictionary of URL strings (agent1=\"https://…\") nor a URL string.".into(),
            WbaError::AmbiguousSignatureAgent => "Signature-Agent names several agents and the signature does not pick one with ;key=.".into(),
            WbaError::UnsupportedSignatureAgent(why) => format!("Signature-Agent cannot be used: {why}."),
            WbaError::UnsupportedComponent(name) => {
                format!("The signature covers {name}, which this verifier cannot reproduce.")
            }
            WbaError::DuplicateComponent(name) => format!("The signature covers {name} twice."),
            WbaError::MissingComponent(name) => {
                format!("The signature covers {name}, which is not in the request.")
            }
            WbaError::MalformedComponent(name) => {
                format!("The signature covers a dictionary member of {name}, but that header is not a structured-field dictionary.")
            }
            WbaError::NonAsciiComponent(name) => {
                format!("The covered value of {name} has characters outside printable ASCII.")
            }
            WbaError::TooManyComponents => format!("The signature covers more than {MAX_COMPONENTS} components."),
            WbaError::SignatureCreatedInFuture => "The signature's created time is in the future.".into(),
            WbaError::SignatureIsExpired => "The signature has expired.".into(),
            WbaError::InvalidValidityWindow => format!("The signature's expires is not after created, or the window is longer than {MAX_VALIDITY_SECONDS} seconds."),
            WbaError::UnknownKey => "No key in the agent's directory matches the signature's keyid.".into(),
            WbaError::InvalidSignature => "The signature does not verify for this request with the agent's key.".into(),
            WbaError::MalformedDirectory(why) => format!("The key directory could not be read: {why}."),
            WbaError::DirectoryWithoutKeys => "The key directory has no Ed25519 key.".into(),
            WbaError::DirectoryUnavailable(why) => format!("The key directory {why}."),
            WbaError::UntrustedSigner(agent) => format!("The signer {agent} is not one this site trusts (trustSigners): the request is judged as unsigned, and its key directory is not fetched."),
        }
    }

    /// The Pay Per Crawl `crawler-error` a failed signature maps to.
    pub fn crawler_error(&self) -> super::CrawlerError {
        super::CrawlerError::InvalidSignature
    }
}

impl fmt::Display for WbaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for WbaError {}

/// Reads a header, trimmed of surrounding whitespace, refusing over-long values.
fn read_header(
    req: &SignedRequest<'_>,
    name: &'static str,
    display: &'static str,
) -> Result<Option<String>, WbaError> {
    match (req.header)(name) {
        None => Ok(None),
        Some(v) if v.len() > MAX_HEADER_BYTES => Err(WbaError::HeaderTooLarge(display.to_owned())),
        Some(v) => Ok(Some(trim_ows(&v).to_owned())),
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b) || b == b'\t')
}

/// Parses the Web Bot Auth signature of a request, without keys or the clock.
///
/// `Ok(None)` means the request is not signed (neither `Signature-Input` nor `Signature`).
/// A `Signature-Agent` header alone is ignored: without a signature it proves nothing.
pub fn parse_signature(req: &SignedRequest<'_>) -> Result<Option<ParsedSignature>, WbaError> {
    let input = read_header(req, "signature-input", "Signature-Input")?;
    let signature = read_header(req, "signature", "Signature")?;
    let (input, signature) = match (input, signature) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(WbaError::MissingSignatureHeader("Signature")),
        (None, Some(_)) => return Err(WbaError::MissingSignatureHeader("Signature-Input")),
        (Some(i), Some(s)) => (i, s),
    };

    let dict = sfv::parse_dictionary(&input).map_err(|_| WbaError::MalformedSignatureInput)?;
    let (entry, items, params) = pick_web_bot_auth(&dict)?;
    let raw_params = input
        .get(entry.raw.clone())
        .ok_or(WbaError::MalformedSignatureInput)?;

    // Parameters.
    let keyid = match sfv::param(params, "keyid") {
        None => return Err(WbaError::MissingParameter("keyid")),
        Some(Bare::String(s)) => s.clone(),
        Some(_) => return Err(WbaError::InvalidParameter("keyid")),
    };
    let created = unix_param(params, "created")?;
    let expires = unix_param(params, "expires")?;
    let nonce = match sfv::param(params, "nonce") {
        None => None,
        Some(Bare::String(s)) => Some(s.clone()),
        Some(_) => return Err(WbaError::InvalidParameter("nonce")),
    };
    match sfv::param(params, "alg") {
        None => {}
        Some(Bare::String(alg)) if alg == "ed25519" => {}
        Some(Bare::String(alg)) => return Err(WbaError::UnsupportedAlgorithm(alg.clone())),
        Some(_) => return Err(WbaError::InvalidParameter("alg")),
    }

    // Covered components.
    if items.len() > MAX_COMPONENTS {
        return Err(WbaError::TooManyComponents);
    }
    let mut components: Vec<CoveredComponent> = Vec::with_capacity(items.len());
    for item in items {
        let component = covered_component(item)?;
        if components.contains(&component) {
            return Err(WbaError::DuplicateComponent(component.to_string()));
        }
        components.push(component);
    }
    let covers_authority = components
        .iter()
        .any(|c| c.name == "@authority" || c.name == "@target-uri");
    if !covers_authority {
        return Err(WbaError::AuthorityNotCovered);
    }

    // Signature-Agent.
    let agent_header = read_header(req, "signature-agent", "Signature-Agent")?;
    let mut agent_uri = None;
    let mut agent_link = None;
    let mut agent_url = None;
    let mut agent = None;
    if let Some(value) = &agent_header {
        let covered = components
            .iter()
            .find(|c| c.name == "signature-agent")
            .ok_or(WbaError::SignatureAgentNotCovered)?;
        let (uri, link) = resolve_agent(value, covered.key.as_deref())?;
        let url = match link {
            AgentLink::Directory => directory_url(&uri),
            AgentLink::JwksUri => jwks_url(&uri),
        }
        .ok_or(WbaError::UnsupportedSignatureAgent(
            "it must be an https URL (http only for localhost or 127.0.0.1)",
        ))?;
        agent = url_authority(&url);
        agent_uri = Some(uri);
        agent_link = Some(link);
        agent_url = Some(url);
    }

    // The signature itself.
    let sig_dict = sfv::parse_dictionary(&signature).map_err(|_| WbaError::MalformedSignature)?;
    let sig_entry = sig_dict
        .iter()
        .find(|e| e.key == entry.key)
        .ok_or_else(|| WbaError::SignatureLabelMissing(entry.key.clone()))?;
    let signature: [u8; 64] = match &sig_entry.member {
        Member::Item(item) => match &item.bare {
            Bare::Bytes(b) => b
                .as_slice()
                .try_into()
                .map_err(|_| WbaError::MalformedSignature)?,
            _ => return Err(WbaError::MalformedSignature),
        },
        Member::InnerList(..) => return Err(WbaError::MalformedSignature),
    };

    // The signature base (RFC 9421 §2.5).
    let mut base = String::new();
    let mut legacy = String::new();
    let mut has_legacy = false;
    // Each header covered by `;key=` members is parsed once, however many of its members are
    // covered.
    let mut dictionaries: Vec<(String, Vec<sfv::Entry>)> = Vec::new();
    for component in &components {
        let (value, whole) = component_value(req, component, &mut dictionaries)?;
        let id = component.to_string();
        base.push_str(&id);
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
        legacy.push_str(&id);
        legacy.push_str(": ");
        match whole {
            Some(whole) if whole != value => {
                has_legacy = true;
                legacy.push_str(&whole);
            }
            _ => legacy.push_str(&value),
        }
        legacy.push('\n');
    }
    // Already printable ASCII: the structured-field parser accepts nothing else.
    let params_line = format!("\"@signature-params\": {raw_params}");
    base.push_str(&params_line);
    legacy.push_str(&params_line);

    Ok(Some(ParsedSignature {
        label: entry.key.clone(),
        keyid,
        created,
        expires,
        nonce,
        components,
        agent_uri,
        agent_link,
        agent_url,
        agent,
        signature_base: base,
        legacy_base: has_legacy.then_some(legacy),
        signature,
    }))
}

type Picked<'d> = (&'d Entry, &'d [sfv::Item], &'d sfv::Params);

/// Chooses the first signature tagged `web-bot-auth`; explains why none is when none is.
fn pick_web_bot_auth(dict: &[Entry]) -> Result<Picked<'_>, WbaError> {
    let mut first_other_tag: Option<String> = None;
    let mut any_list = false;
    for entry in dict {
        let Member::InnerList(items, params) = &entry.member else {
            continue;
        };
        any_list = true;
        match sfv::param(params, "tag") {
            Some(Bare::String(tag)) if tag == WEB_BOT_AUTH_TAG => {
                return Ok((entry, items.as_slice(), params));
            }
            Some(Bare::String(tag)) => {
                first_other_tag.get_or_insert_with(|| tag.clone());
            }
            Some(_) => {
                first_other_tag.get_or_insert_with(|| "(not a string)".to_owned());
            }
            None => {}
        }
    }
    if !any_list {
        return Err(WbaError::MalformedSignatureInput);
    }
    match first_other_tag {
        Some(tag) => Err(WbaError::WrongTag(tag)),
        None => Err(WbaError::MissingTag),
    }
}

fn unix_param(params: &sfv::Params, name: &'static str) -> Result<u64, WbaError> {
    match sfv::param(params, name) {
        None => Err(WbaError::MissingParameter(name)),
        Some(Bare::Integer(i)) => u64::try_from(*i).map_err(|_| WbaError::InvalidParameter(name)),
        Some(_) => Err(WbaError::InvalidParameter(name)),
    }
}

const DERIVED: [&str; 7] = [
    "@method",
    "@authority",
    "@target-uri",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
];

fn covered_component(item: &sfv::Item) -> Result<CoveredComponent, WbaError> {
    let Bare::String(name) = &item.bare else {
        return Err(WbaError::MalformedSignatureInput);
    };
    let shown = || sfv::serialize_string(name);
    if name.starts_with('@') {
        if !DERIVED.contains(&name.as_str()) || !item.params.is_empty() {
            let mut id = shown();
            sfv::serialize_params(&item.params, &mut id);
            return Err(WbaError::UnsupportedComponent(id));
        }
        return Ok(CoveredComponent {
            name: name.clone(),
            key: None,
        });
    }
    let valid_name = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        });
    if !valid_name {
        return Err(WbaError::UnsupportedComponent(shown()));
    }
    let mut key = None;
    for (param, value) in &item.params {
        match (param.as_str(), value) {
            ("key", Bare::String(k)) if key.is_none() => key = Some(k.clone()),
            _ => {
                let mut id = shown();
                sfv::serialize_params(&item.params, &mut id);
                return Err(WbaError::UnsupportedComponent(id));
            }
        }
    }
    Ok(CoveredComponent {
        name: name.clone(),
        key,
    })
}

/// The value of one component, and for a `;key=` component also the whole field value (for the
/// legacy base).
fn component_value(
    req: &SignedRequest<'_>,
    c: &CoveredComponent,
    dictionaries: &mut Vec<(String, Vec<sfv::Entry>)>,
) -> Result<(String, Option<String>), WbaError> {
    let value = match c.name.as_str() {
        "@method" => req.method.to_ascii_uppercase(),
        "@authority" => normalize_authority(req.authority, scheme_of(req.target_uri)),
        "@target-uri" => req.target_uri.to_owned(),
        "@scheme" => scheme_of(req.target_uri)
            .ok_or_else(|| WbaError::MissingComponent(c.to_string()))?
            .to_owned(),
        "@path" => path_or_root(req.path),
        "@query" => format!("?{}", query_of(req.target_uri).unwrap_or("")),
        "@request-target" => match query_of(req.target_uri) {
            Some(q) => format!("{}?{q}", path_or_root(req.path)),
            None => path_or_root(req.path),
        },
        name if name.starts_with('@') => return Err(WbaError::UnsupportedComponent(c.to_string())),
        name => {
            let whole =
                (req.header)(name).ok_or_else(|| WbaError::MissingComponent(c.to_string()))?;
            if whole.len() > MAX_HEADER_BYTES {
                return Err(WbaError::HeaderTooLarge(name.to_owned()));
            }
            let whole = trim_ows(&whole).to_owned();
            if !printable_ascii(&whole) {
                return Err(WbaError::NonAsciiComponent(c.to_string()));
            }
            let Some(key) = &c.key else {
                return Ok((whole, None));
            };
            let at = match dictionaries.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    let dict = sfv::parse_dictionary(&whole)
                        .map_err(|_| WbaError::MalformedComponent(c.name.clone()))?;
                    dictionaries.push((name.to_owned(), dict));
                    dictionaries.len() - 1
                }
            };
            let member = dictionaries
                .get(at)
                .map_or(&[][..], |(_, dict)| dict.as_slice())
                .iter()
                .find(|e| &e.key == key)
                .ok_or_else(|| WbaError::MissingComponent(c.to_string()))?;
            return Ok((sfv::serialize_member(&member.member), Some(whole)));
        }
    };
    if !printable_ascii(&value) || value.contains('\t') {
        return Err(WbaError::NonAsciiComponent(c.to_string()));
    }
    Ok((value, None))
}

fn path_or_root(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

fn scheme_of(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once("://")?;
    let ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (ok && !rest.is_empty()).then_some(scheme)
}

fn query_of(uri: &str) -> Option<&str> {
    let without_fragment = uri.split('#').next().unwrap_or(uri);
    without_fragment.split_once('?').map(|(_, q)| q)
}

/// `@authority` per RFC 9421 §2.2.3: host lowercased, the scheme's default port removed.
pub fn normalize_authority(authority: &str, scheme: Option<&str>) -> String {
    let lower = authority.to_ascii_lowercase();
    let default_port = match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("https") => Some(":443"),
        Some("http") => Some(":80"),
        _ => None,
    };
    match default_port {
        Some(port) if lower.ends_with(port) => {
            lower.strip_suffix(port).map(str::to_owned).unwrap_or(lower)
        }
        _ => lower,
    }
}

/// Decides which URI the `Signature-Agent` header points at.
///
/// * `;key="K"` covered → the dictionary member `K`, a string, with optional `type=directory`
///   (default) or `type=jwks_uri`.
/// * covered whole → a dictionary with exactly one string member (the current form), else an
///   sf-string (the legacy form `"https://…"`), else a bare token (`https://…` or a host name,
///   taken as `https://<host>`).
fn resolve_agent(value: &str, key: Option<&str>) -> Result<(String, AgentLink), WbaError> {
    let (uri, link) = if let Some(key) = key {
        let dict = sfv::parse_dictionary(value).map_err(|_| WbaError::MalformedSignatureAgent)?;
        let entry = dict
            .iter()
            .find(|e| e.key == key)
            .ok_or(WbaError::MissingComponent(format!(
                "\"signature-agent\";key={}",
                sfv::serialize_string(key)
            )))?;
        member_agent(&entry.member)?
    } else {
        match sfv::parse_dictionary(value) {
            Ok(dict) if !dict.is_empty() && dict.iter().all(|e| is_string_member(&e.member)) => {
                match dict.as_slice() {
                    [only] => member_agent(&only.member)?,
                    _ => return Err(WbaError::AmbiguousSignatureAgent),
                }
            }
            _ => {
                let item = sfv::parse_item(value).map_err(|_| WbaError::MalformedSignatureAgent)?;
                match item.bare {
                    Bare::String(s) => (s, AgentLink::Directory),
                    Bare::Token(t)
                        if t.contains("://") || t.to_ascii_lowercase().starts_with("data:") =>
                    {
                        (t, AgentLink::Directory)
                    }
                    Bare::Token(t) if !t.contains(':') && !t.contains('/') => {
                        (format!("https://{t}"), AgentLink::Directory)
                    }
                    _ => return Err(WbaError::MalformedSignatureAgent),
                }
            }
        }
    };
    if uri.len() >= 5
        && uri
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
    {
        return Err(WbaError::UnsupportedSignatureAgent(
            "an inline data: directory carries its own keys, so it proves nothing about who signed",
        ));
    }
    Ok((uri, link))
}

fn is_string_member(member: &Member) -> bool {
    matches!(member, Member::Item(item) if matches!(item.bare, Bare::String(_)))
}

fn member_agent(member: &Member) -> Result<(String, AgentLink), WbaError> {
    let Member::Item(item) = member else {
        return Err(WbaError::MalformedSignatureAgent);
    };
    let Bare::String(uri) = &item.bare else {
        return Err(WbaError::MalformedSignatureAgent);
    };
    let link = match sfv::param(&item.params, "type") {
        None => AgentLink::Directory,
        Some(Bare::Token(t)) if t == "directory" => AgentLink::Directory,
        Some(Bare::Token(t)) if t == "jwks_uri" => AgentLink::JwksUri,
        Some(Bare::Token(t)) if t == "cimd" => {
            return Err(WbaError::UnsupportedSignatureAgent(
                "client ID metadata documents (type=cimd) are not supported",
            ))
        }
        Some(_) => return Err(WbaError::MalformedSignatureAgent),
    };
    Ok((uri.clone(), link))
}

/// Splits `scheme://authority/rest` into a lowercased scheme, a normalised authority and the rest,
/// if the scheme is `https`, or `http` to a loopback host (`localhost`, `127.0.0.1`, `[::1]`), and
/// the authority is a plain `host[:port]` (no user info).
fn split_fetchable(uri: &str) -> Option<(String, String, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(end)?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    let host = host.to_ascii_lowercase();
    let host_ok = if host.starts_with('[') {
        host.ends_with(']')
            && host.len() > 2
            && host
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b'[' | b']' | b':' | b'.'))
    } else {
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            && !host.starts_with('.')
            && !host.starts_with('-')
    };
    if !host_ok {
        return None;
    }
    let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" if loopback => 80,
        _ => return None,
    };
    let authority = match port {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host,
    };
    Some((scheme, authority, tail))
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at_checked(close + 1)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// The key directory URL for a `Signature-Agent` URI: `https://<host[:port]>` plus
/// [`DIRECTORY_PATH`]; any path in `agent` is ignored (the directory lives at the origin).
///
/// Only `https` is accepted, except that `http` is allowed for `localhost`, `127.0.0.1` and
/// `[::1]` so local tests can serve a directory without TLS. Such a URL is only ever fetched from
/// the Worker itself, where loopback means the Worker's own machine; production shells may refuse
/// it. Returns `None` for anything else (other schemes, user info, bad host or port, `data:`).
pub fn directory_url(agent: &str) -> Option<String> {
    let (scheme, authority, _) = split_fetchable(trim_ows(agent))?;
    Some(format!("{scheme}://{authority}{DIRECTORY_PATH}"))
}

/// A `type=jwks_uri` URL, kept whole, with the same scheme rule as [`directory_url`]: how such a
/// URL is fetched, and how a publisher's `trustSigners` entry naming one is read.
pub fn jwks_url(uri: &str) -> Option<String> {
    let (scheme, authority, tail) = split_fetchable(uri)?;
    if !tail.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    let tail = tail.split('#').next().unwrap_or("");
    let tail = if tail.is_empty() { "/" } else { tail };
    Some(format!("{scheme}://{authority}{tail}"))
}

fn url_authority(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.get(..end).map(str::to_owned)
}

/// The key under which a signer's directory is cached in KV: its URL, or the URL's SHA-256 where
/// the URL would make a key longer than KV takes (512 bytes), so that every directory can be
/// cached (a directory fetched again for every request would let a signer slow the paywall).
pub fn directory_key(url: &str) -> String {
    const PREFIX: &str = "wba-directory:";
    const KV_KEY_MAX: usize = 512;
    if PREFIX.len() + url.len() <= KV_KEY_MAX {
        return format!("{PREFIX}{url}");
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(url.as_bytes());
    format!("{PREFIX}sha256:{}", hex::encode(digest))
}

/// Reads a key directory (a JWKS, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"…"}, …]}`).
/// Keys of other types or curves, and malformed Ed25519 keys, are skipped; at most
/// [`MAX_DIRECTORY_KEYS`] are kept. Fails if the body is not such an object or has no usable key.
///
/// This does not check the directory's own response signature
/// (`tag="http-message-signatures-directory"`); see the module notes.
pub fn parse_directory(json: &str) -> Result<Jwks, WbaError> {
    if json.len() > MAX_DIRECTORY_BYTES {
        return Err(WbaError::MalformedDirectory(
            "the body is larger than 64 KiB",
        ));
    }
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|_| WbaError::MalformedDirectory("the body is not JSON"))?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or(WbaError::MalformedDirectory("there is no \"keys\" array"))?;
    let mut out = Jwks::default();
    for key in keys {
        if out.keys.len() >= MAX_DIRECTORY_KEYS {
            break;
        }
        let field = |name: &str| key.get(name).and_then(serde_json::Value::as_str);
        if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
            continue;
        }
        let Some(x) = field("x") else { continue };
        if let Ok(jwk) = Jwk::ed25519(x, field("kid")) {
            out.keys.push(jwk);
        }
    }
    if out.keys.is_empty() {
        return Err(WbaError::DirectoryWithoutKeys);
    }
    Ok(out)
}

/// Verifies a parsed signature with the agent's keys at time `now` (Unix seconds).
///
/// Checks, in order: `created <= now + 60`, `expires > now`, `created < expires <= created + 24 h`,
/// a key whose thumbprint (or `kid`) equals `keyid`, and the Ed25519 signature (strict
/// verification) over [`ParsedSignature::signature_base`].
#[cfg(not(target_arch = "wasm32"))]
pub fn verify(parsed: &ParsedSignature, keys: &Jwks, now: u64) -> Result<VerifiedAgent, WbaError> {
    use ed25519_dalek::{Signature, VerifyingKey};
    let unverified = check(parsed, keys, now)?;
    let key = VerifyingKey::from_bytes(unverified.key).map_err(|_| WbaError::UnknownKey)?;
    let signature = Signature::from_bytes(unverified.signature);
    let ok = unverified
        .bases
        .iter()
        .any(|base| key.verify_strict(base.as_bytes(), &signature).is_ok());
    unverified.conclude(ok)
}

/// A signature that passed every check of [`verify`] but the Ed25519 verification itself, and what
/// that verification is over.
pub struct Unverified<'a> {
    /// The signer's raw 32-byte public key.
    pub key: &'a [u8; 32],
    /// The 64-byte signature.
    pub signature: &'a [u8; 64],
    /// What the signature may be over: the RFC 9421 base, then the legacy one if there is one.
    /// Verifying over either is enough.
    pub bases: Vec<&'a str>,
    parsed: &'a ParsedSignature,
    jwk: &'a Jwk,
}

impl Unverified<'_> {
    /// The agent, if the signature verified over one of [`Self::bases`].
    pub fn conclude(&self, verified: bool) -> Result<VerifiedAgent, WbaError> {
        if !verified {
            return Err(WbaError::InvalidSignature);
        }
        let parsed = self.parsed;
        Ok(VerifiedAgent {
            agent: parsed
                .agent
                .clone()
                .unwrap_or_else(|| format!("keyid:{}", parsed.keyid)),
            key_set_url: parsed
                .agent_url
                .clone()
                .filter(|_| parsed.agent_link == Some(AgentLink::JwksUri)),
            keyid: parsed.keyid.clone(),
            kid: self.jwk.kid.clone(),
            created: parsed.created,
            expires: parsed.expires,
            nonce: parsed.nonce.clone(),
            components: parsed.components.clone(),
        })
    }
}

/// Every check of [`verify`] but the Ed25519 arithmetic: the validity window, then the key.
pub fn check<'a>(
    parsed: &'a ParsedSignature,
    keys: &'a Jwks,
    now: u64,
) -> Result<Unverified<'a>, WbaError> {
    if parsed.created > now.saturating_add(CREATED_SKEW_SECONDS) {
        return Err(WbaError::SignatureCreatedInFuture);
    }
    if parsed.expires <= now {
        return Err(WbaError::SignatureIsExpired);
    }
    if parsed.expires <= parsed.created || parsed.expires - parsed.created > MAX_VALIDITY_SECONDS {
        return Err(WbaError::InvalidValidityWindow);
    }
    let jwk = keys.find(&parsed.keyid).ok_or(WbaError::UnknownKey)?;
    let mut bases = vec![parsed.signature_base.as_str()];
    bases.extend(parsed.legacy_base.as_deref());
    Ok(Unverified {
        key: &jwk.public,
        signature: &parsed.signature,
        bases,
        parsed,
        jwk,
    })
}
