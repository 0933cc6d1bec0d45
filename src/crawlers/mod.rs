//! Crawlers and agents: who is asking, whether they proved it, and Pay Per Crawl headers.
//!
//! Three parts, all pure (no I/O; the clock and fetched key directories are passed in):
//!
//! | part | job |
//! |---|---|
//! | Web Bot Auth ([`parse_signature`], [`parse_directory`], [`verify`]) | RFC 9421 HTTP Message Signatures from bots, Ed25519 only |
//! | classification ([`classify`], [`is_strong`]) | human, crawler or agent, and how sure we are |
//! | Pay Per Crawl ([`crawler_price`], [`parse_crawler_price`], [`check_crawler_intent`]) | the `crawler-*` headers and [`CrawlerError`] codes |
//!
//! # What the shell does with a request
//!
//! ```text
//! parse_signature(&SignedRequest{..})
//!   Ok(None)          unsigned: classify without web_bot_auth
//!   Err(e)            a bad signature is worth no signature: classify without it; may report
//!                     e.code() in a debug header, and e.crawler_error() on Pay Per Crawl replies
//!   Ok(Some(parsed))  a signer the publisher does not trust (signer_trusted(parsed.agent, the
//!                     key set URL if named by type=jwks_uri, trusted), or
//!                     Cloudflare's own verified-bot flag): unsigned, its directory not fetched
//!                     (anyone can host one, so its word is worth nothing, and fetching it on
//!                     demand would let anyone make the paywall fetch any URL); otherwise
//!                     keys = cache.get(parsed.agent_url) or fetch it:
//!                       GET parsed.agent_url, Accept: application/http-message-signatures-directory+json,
//!                       no redirect followed (one is a failure), a short timeout, a body
//!                       limit of 64 KiB, parse_directory(body), cache by URL (KV, ~1 h;
//!                       failures in the isolate's memory, ~5 min)
//!                     verify(&parsed, &keys, now_unix_seconds)
//! classify(&ClassifyInput { web_bot_auth, cloudflare: request.cf bot fields, user_agent, accept })
//! ```
//!
//! With no `Signature-Agent` (`agent_url == None`) a signature can only be checked against keys
//! the shell already trusts (e.g. from configuration); otherwise treat it as unsigned.
//!
//! Not done here, and why: the directory response's own signature
//! (`tag="http-message-signatures-directory"`) needs the response headers and is left to the shell
//! if it wants it; it only stops others from *mirroring* a directory, and a mirrored directory
//! still only verifies signatures made with the owner's private key, for the mirror's name,
//! which the signature base binds via the covered `signature-agent`. Nonce replay caching is the
//! shell's choice ([`VerifiedAgent::nonce`]); signatures are short-lived anyway.
//!
//! # Compatibility notes
//!
//! * `@signature-params` is the member value exactly as received (what the signer serialized),
//!   which equals the RFC 8941 re-serialization for every conforming signer.
//! * `"signature-agent";key="k"` is signed over the serialized dictionary member, as RFC 9421
//!   §2.1.2 says; signatures made by older Cloudflare libraries over the whole field value are
//!   also accepted (both bind the same header).
//! * `@query` is `?` plus the query, and `?` alone without one (RFC 9421 §2.2.7).
//! * `@authority` is lowercased and loses the scheme's default port.

mod classify;
mod price;
mod sfv;
mod wba;

pub use classify::{
    classify, is_strong, signer_trusted, Class, ClassifyInput, CloudflareBot, Evidence,
    AUTOMATED_SCORE_BELOW, KNOWN_AGENT_HOSTS,
};
pub use price::{
    check_crawler_intent, crawler_price, parse_crawler_price, require_signed_intent, CrawlerError,
    CRAWLER_CHARGED, CRAWLER_ERROR, CRAWLER_EXACT_PRICE, CRAWLER_MAX_PRICE, CRAWLER_PRICE,
    CURRENCY,
};
#[cfg(not(target_arch = "wasm32"))]
pub use wba::verify;
pub use wba::{
    check, directory_key, directory_url, jwk_thumbprint, jwks_url, normalize_authority,
    parse_directory, parse_signature, AgentLink, CoveredComponent, Jwk, Jwks, ParsedSignature,
    SignedRequest, Unverified, VerifiedAgent, WbaError, CREATED_SKEW_SECONDS, DIRECTORY_MEDIA_TYPE,
    DIRECTORY_PATH, MAX_COMPONENTS, MAX_DIRECTORY_BYTES, MAX_DIRECTORY_KEYS, MAX_HEADER_BYTES,
    MAX_VALIDITY_SECONDS, WEB_BOT_AUTH_TAG,
};
