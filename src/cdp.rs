//! Coinbase Developer Platform keys: the facilitator at `api.cdp.coinbase.com` wants a fresh JWT
//! on every call, signed with the publisher's CDP API key and naming the one method, host and path
//! it is for. This module reads the key and writes the token around a signature; the signature
//! itself is made by the runtime's WebCrypto from [`ApiKey::pkcs8`] (the Worker's
//! `edge::facilitator`), which keeps both curves out of the bundle.
//!
//! A key secret comes in one of the two forms CDP hands out: Ed25519 (the default), base64 of
//! 64 bytes, the seed then the public key; or ECDSA P-256, a PEM `EC PRIVATE KEY` (SEC 1), or the
//! same key as a PEM `PRIVATE KEY` (PKCS #8).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::x402::codec::base64;

/// How long a token is good for, seconds: what CDP's own SDKs use.
pub const TOKEN_SECONDS: u64 = 120;

/// The signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// Ed25519, JWS `EdDSA`.
    EdDsa,
    /// ECDSA over P-256 with SHA-256, JWS `ES256` (the signature as `r ‖ s`, 64 bytes).
    Es256,
}

impl Alg {
    /// The JWS name.
    pub fn jws(self) -> &'static str {
        match self {
            Alg::EdDsa => "EdDSA",
            Alg::Es256 => "ES256",
        }
    }
}

/// A CDP API key: its id and its private key as PKCS #8 DER, which WebCrypto imports.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub alg: Alg,
    pub pkcs8: Vec<u8>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key, not even in a log line.
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// PKCS #8 of an Ed25519 seed: RFC 8410's fixed prefix, then the 32 bytes.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// `AlgorithmIdentifier { id-ecPublicKey, prime256v1 }`, as PKCS #8 names a P-256 key.
const P256_ALGORITHM: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// The OID of prime256v1, as a SEC 1 key names its curve.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl ApiKey {
    /// Reads a key id and secret as CDP hands them out, or says what is wrong (never quoting the
    /// secret).
    pub fn parse(id: &str, secret: &str) -> Result<ApiKey, String> {
        let id = id.trim();
        if id.is_empty() {
            return Err("the CDP API key id is empty".into());
        }
        // Secrets pasted into an environment often carry `\n` escapes for the PEM's newlines.
        let secret = secret.trim().replace("\\n", "\n");
        let (alg, pkcs8) = if secret.starts_with("-----BEGIN") {
            read_pem(&secret)?
        } else {
            let bytes = STANDARD.decode(secret.as_bytes()).map_err(|_| {
                "the CDP API key secret is neither a PEM EC key nor base64".to_string()
            })?;
            let seed: [u8; 32] = match bytes.len() {
                64 => bytes[..32]
                    .try_into()
                    .map_err(|_| "short key".to_string())?,
                n => {
                    return Err(format!(
                        "an Ed25519 CDP API key secret is 64 bytes (seed and public key), \
                         this one is {n}"
                    ))
                }
            };
            let mut der = ED25519_PKCS8_PREFIX.to_vec();
            der.extend_from_slice(&seed);
            (Alg::EdDsa, der)
        };
        Ok(ApiKey {
            id: id.to_string(),
            alg,
            pkcs8,
        })
    }

    /// What is signed for one call (`method` and the full `url` it goes to) at `now`, with a
    /// fresh `nonce`: the JWS header and claims, base64url, joined by a dot.
    pub fn signing_input(&self, method: &str, url: &str, now: u64, nonce: &[u8; 16]) -> String {
        let header = serde_json::json!({
            "alg": self.alg.jws(),
            "kid": self.id,
            "typ": "JWT",
            "nonce": hex::encode(nonce),
        });
        let claims = serde_json::json!({
            "sub": self.id,
            "iss": "cdp",
            "aud": ["cdp_service"],
            "nbf": now,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            "uris": [uri(method, url)],
        });
        format!(
            "{}.{}",
            base64(header.to_string().as_bytes(), true),
            base64(claims.to_string().as_bytes(), true)
        )
    }
}

/// The token: the signing input and its signature, base64url.
pub fn token(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", base64(signature, true))
}

/// What a token is for: `METHOD host/path` (the host with its port if the URL names one; no
/// scheme, no query).
pub fn uri(method: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    format!("{method} {rest}")
}

fn read_pem(pem: &str) -> Result<(Alg, Vec<u8>), String> {
    let label = pem
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .unwrap_or_default()
        .to_string();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| format!("the CDP API key secret's PEM ({label}) is not base64"))?;
    match label.as_str() {
        // SEC 1: SEQUENCE { 1, OCTET STRING d, [0] curve, [1] public key }, wrapped into PKCS #8
        // as it is (WebCrypto imports that, with or without the public key).
        "EC PRIVATE KEY" => {
            if !der.windows(P256_OID.len()).any(|w| w == P256_OID) || der.first() != Some(&0x30) {
                return Err("the CDP API key secret is an EC key, but not on P-256".into());
            }
            let mut inner = vec![0x02, 0x01, 0x00];
            inner.extend_from_slice(&P256_ALGORITHM);
            inner.extend(der_header(0x04, der.len()));
            inner.extend_from_slice(&der);
            let mut out = der_header(0x30, inner.len());
            out.extend(inner);
            Ok((Alg::Es256, out))
        }
        "PRIVATE KEY"
            if der
                .windows(P256_ALGORITHM.len())
                .any(|w| w == P256_ALGORITHM) =>
        {
            Ok((Alg::Es256, der))
        }
        "PRIVATE KEY" if der.starts_with(&ED25519_PKCS8_PREFIX) && der.len() == 48 => {
            Ok((Alg::EdDsa, der))
        }
        _ => Err(format!(
            "the CDP API key secret's PEM is {label:?}; an EC PRIVATE KEY (P-256) is expected"
        )),
    }
}

/// A DER tag and length.
fn der_header(tag: u8, len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![tag, len as u8],
        0x80..=0xff => vec![tag, 0x81, len as u8],
        _ => vec![tag, 0x82, (len >> 8) as u8, len as u8],
    }
}
