//! Wallet-bound sessions: what a payment buys beyond the one request, and the token that carries it.
//!
//! A route may sell a session along with (or instead of) a single request: a [`SessionOffer`] for
//! a path scope, either for a number of seconds or for a number of requests. When a payment for
//! such a route is accepted, the shell stores a [`Grant`] under [`grant_key`] (wallet + scope)
//! and may hand the client a session token ([`issue_token`]) in a cookie ([`cookie`]) or for use
//! as a bearer credential. Later requests are served if a token checks out ([`check_token`]) or
//! a SIWX proof ([`crate::siwx`]) names a wallet with a grant that [`Grant::covers`] the path.
//!
//! Tokens are our own extension of x402 (standard clients never see them): a compact, versioned,
//! HMAC-SHA256-authenticated claim `v1.<base64url(JSON claims)>.<base64url(MAC)>`. They are
//! bearer credentials: whoever holds one is the wallet for that scope until it expires, so the
//! shell must also check that the grant still exists (revocation, for example after a failed
//! settlement) and should keep tokens out of logs and away from the origin.
//!
//! Nothing here does I/O: the shell gives the clock, the secret and the stored grants.

use core::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::evm::Address;
use crate::json::{self, Fields, Read};
use crate::pattern::PathPattern;

type HmacSha256 = Hmac<Sha256>;

/// What the names of the session cookies start with: `x402_session_` and eight hexadecimal digits
/// naming the session sold ([`cookie_name`]), one cookie per session a browser holds. A cookie
/// named `x402_session` alone, as earlier versions set it, is read too.
pub const COOKIE_NAME: &str = "x402_session";
/// How many values of one cookie name are read at most: a browser holds one per name (two where
/// a cookie of another path or domain has the same name); more are someone repeating a name.
pub const MOST_PER_NAME: usize = 2;
/// The token format version, the first dot-separated part of every token.
pub const TOKEN_VERSION: &str = "v1";
/// Tokens longer than this are refused before any decoding. A token for a 100-character scope is
/// about 300 bytes; cookies are limited to about 4 KiB.
pub const MAX_TOKEN_BYTES: usize = 2048;
/// The shortest secret [`check_token`] accepts. A short or empty secret makes tokens forgeable,
/// so a misconfigured secret fails closed: no token checks out.
pub const MIN_SECRET_BYTES: usize = 32;
/// How long a counted grant (a number of requests) lasts at most, so that stored grants always
/// expire: 30 days.
pub const COUNTED_GRANT_MAX_SECONDS: u64 = 30 * 24 * 60 * 60;
/// Domain separation: the MAC covers this label, then `v1.<payload>`, so a MAC made with the same
/// secret for another purpose is never a valid token MAC.
const MAC_LABEL: &[u8] = b"x402-edge session token\n";

// ---------------------------------------------------------------------------------------------
// Offers and grants.

/// What a payment for a route buys beyond the request itself: access to every path matching
/// `scope`, either for `seconds` or for `requests` requests. Exactly one of the two is set
/// (use [`SessionOffer::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOffer {
    pub scope: PathPattern,
    pub seconds: Option<u64>,
    pub requests: Option<u64>,
    /// What this offer's grants are stored and its tokens signed under: the scope as written,
    /// then the method and path of the route that sells it (see `config::session_name`). Two
    /// offers never share a name, and a name never passes from one route to another when routes
    /// are added or removed, so a session bought cheaply can never stand for another route's
    /// dearer one, and buying one never replaces the grant of the other.
    pub name: String,
    /// The name of the cookie its tokens are set in, [`cookie_name`] of `name`, worked out once.
    pub cookie: String,
}

impl SessionOffer {
    /// An offer, or why it is not one: exactly one of `seconds` and `requests`, and not zero.
    pub fn new(
        scope: PathPattern,
        seconds: Option<u64>,
        requests: Option<u64>,
    ) -> Result<SessionOffer, String> {
        match (seconds, requests) {
            (Some(_), Some(_)) => Err(format!(
                "session for {:?}: give either a duration or a number of requests, not both",
                scope.as_str()
            )),
            (None, None) => Err(format!(
                "session for {:?}: give a duration or a number of requests",
                scope.as_str()
            )),
            (Some(0), None) => Err(format!(
                "session for {:?}: the duration must be at least one second",
                scope.as_str()
            )),
            (None, Some(0)) => Err(format!(
                "session for {:?}: the number of requests must be at least one",
                scope.as_str()
            )),
            _ => Ok(SessionOffer {
                cookie: cookie_name(scope.as_str()),
                name: scope.as_str().to_string(),
                scope,
                seconds,
                requests,
            }),
        }
    }

    /// The grant `wallet` gets by paying at `now`: until `now + seconds`, or for `requests`
    /// requests within [`COUNTED_GRANT_MAX_SECONDS`].
    pub fn grant(&self, wallet: Address, now: u64) -> Grant {
        let lifetime = self.seconds.unwrap_or(COUNTED_GRANT_MAX_SECONDS);
        Grant {
            wallet,
            scope: self.name.clone(),
            expires_at: now.saturating_add(lifetime),
            requests: self.requests,
            chain: None,
        }
    }
}

/// A wallet's right to the paths of a scope, as stored (compact JSON, see [`Grant::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub wallet: Address,
    /// The name of the offer that sold it ([`SessionOffer::name`]): its scope's pattern as
    /// written ([`scope_of`]), then the route that sold it.
    pub scope: String,
    /// Unix seconds; the grant is valid while `now < expires_at`.
    pub expires_at: u64,
    /// For counted grants, the requests left. The shell decrements it ([`Grant::spend`]) in a
    /// strongly consistent store; KV cannot count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// The chain id of the payment that bought it: a smart wallet signs in on that chain only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u64>,
}

impl Grant {
    /// Whether this grant lets its wallet have `path` (the raw request path) at `now`: not
    /// expired, requests left if counted, and `path` matched by the scope. A scope that no longer
    /// parses covers nothing.
    pub fn covers(&self, path: &str, now: u64) -> bool {
        PathPattern::parse(scope_of(&self.scope)).is_ok_and(|p| self.covers_with(&p, path, now))
    }

    /// [`Grant::covers`] with the scope already parsed (the caller has checked it is this
    /// grant's).
    pub fn covers_with(&self, scope: &PathPattern, path: &str, now: u64) -> bool {
        now < self.expires_at && self.requests != Some(0) && scope.matches_formatted(path)
    }

    /// The grant after serving `path` once at `now`, or `None` if it does not cover it. Timed
    /// grants come back unchanged; counted ones with one request fewer.
    pub fn spend(&self, path: &str, now: u64) -> Option<Grant> {
        if !self.covers(path, now) {
            return None;
        }
        Some(Grant {
            requests: self.requests.map(|n| n.saturating_sub(1)),
            ..self.clone()
        })
    }

    /// Seconds left until expiry at `now` (0 once expired), for a store's time-to-live. Workers
    /// KV wants at least 60.
    pub fn ttl(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// Compact JSON: `{"wallet":"0x…","scope":"/x/*\n* /x/*","expiresAt":1700000000,
    /// "requests":3,"chain":8453}` (`requests` only for counted grants, `chain` where known).
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads [`Grant::to_json`] back; unknown fields are ignored, for later versions.
    pub fn from_json(json: &str) -> Result<Grant, String> {
        json::parse(json).map_err(|e| e.to_string())
    }
}

impl Read for Grant {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(Grant {
            wallet: f.get("wallet")?,
            scope: f.get("scope")?,
            expires_at: f.get("expiresAt")?,
            requests: f.maybe("requests")?,
            chain: f.maybe("chain")?,
        })
    }
}

/// The store key of `wallet`'s grant for `scope`:
/// `grant:0x<40 lowercase hex>:<first 16 bytes of SHA-256(scope), 32 hex digits>`, 81 characters
/// of `[0-9a-x:]`. The scope is hashed so that any pattern gives a short key that is safe in any
/// store; 128 bits leave no room for collisions between one publisher's scopes.
pub fn grant_key(wallet: &Address, scope: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(scope.as_bytes()).into();
    let (head, _) = digest.split_at(16);
    format!("grant:{}:{}", wallet.to_lower_hex(), hex::encode(head))
}

// ---------------------------------------------------------------------------------------------
// Tokens.

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub wallet: Address,
    /// The name of the offer it was issued for ([`SessionOffer::name`]).
    pub scope: String,
    /// Unix seconds; the token is valid while `now < expires_at`.
    pub expires_at: u64,
}

impl TokenClaims {
    /// Whether the token's scope matches `path` (expiry was checked by [`check_token`]).
    pub fn covers(&self, path: &str) -> bool {
        PathPattern::parse(scope_of(&self.scope)).is_ok_and(|p| p.matches_formatted(path))
    }
}

/// The scope's pattern in an offer's name (its first line; see [`SessionOffer::name`]).
pub fn scope_of(name: &str) -> &str {
    name.split('\n').next().unwrap_or(name)
}

/// The claims as serialised inside a token.
#[derive(Serialize)]
struct WireClaims {
    /// The wallet, lowercase hex.
    sub: String,
    scope: String,
    exp: u64,
}

/// Exactly the three claims: a token with any other field is not one of ours.
impl Read for WireClaims {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?.only(&["sub", "scope", "exp"])?;
        Ok(WireClaims {
            sub: f.get("sub")?,
            scope: f.get("scope")?,
            exp: f.get("exp")?,
        })
    }
}

/// Why a token was refused. Each variant has a stable [`code`](TokenError::code) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of our shape (empty, wrong number of parts, bad base64, too long, bad claims).
    Malformed(&'static str),
    /// A token of another format version.
    UnsupportedVersion,
    /// The MAC does not match: the token was altered, or made with another secret.
    BadMac,
    /// The token's lifetime is over.
    Expired { expires_at: u64 },
    /// The server's secret is shorter than [`MIN_SECRET_BYTES`]: a configuration error.
    WeakSecret,
}

impl TokenError {
    /// Every code, for tests and documentation.
    pub const CODES: [&'static str; 5] = [
        "session_token_malformed",
        "session_token_unsupported_version",
        "session_token_bad_mac",
        "session_token_expired",
        "session_secret_too_short",
    ];

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "session_token_malformed",
            TokenError::UnsupportedVersion => "session_token_unsupported_version",
            TokenError::BadMac => "session_token_bad_mac",
            TokenError::Expired { .. } => "session_token_expired",
            TokenError::WeakSecret => "session_secret_too_short",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed(why) => {
                write!(f, "The session token is not one this paywall issued ({why}).")
            }
            TokenError::UnsupportedVersion => f.write_str(
                "The session token has a format version this paywall does not read; sign in again.",
            ),
            TokenError::BadMac => f.write_str(
                "The session token was altered or was not issued by this paywall.",
            ),
            TokenError::Expired { expires_at } => write!(
                f,
                "The session token expired at {expires_at} (unix time); pay or sign in again."
            ),
            TokenError::WeakSecret => write!(
                f,
                "The paywall's session secret is shorter than {MIN_SECRET_BYTES} bytes, so it issues no valid sessions."
            ),
        }
    }
}

impl std::error::Error for TokenError {}

/// The requests left on a wallet's counted grants, by grant key: `(left, until)`, and the ends of
/// its timed grants (`(0, until)` under the key then `:time`: [`add_timed_grant`]). The ledger
/// keeps it; entries past their time are dropped when it is read (one used up stays until then).
pub type GrantCounts = crate::sorted::SortedMap<(u64, u64)>;

/// How long a purchase is remembered by its payment ([`add_counted_grant`]): far longer than the
/// request that records it may take to send its command a second time, or than a client takes to
/// send again a payment owed its content, whose serving records its grant again. Not longer: a
/// wallet paying every second on a route that sells a session keeps that many markers in a map
/// every grant command rewrites.
pub const PAID_MARKER_SECONDS: u64 = 600;

/// Adds the `requests` a payment bought to the counted grant `key`, which then runs until
/// `until` at least. Buying again before the last purchase is used up adds to what is left.
/// `paid` names the payment (its chain, token and authorization's nonce): a payment already
/// counted adds nothing, so that the command sent again after its answer was lost does not
/// double the purchase. It is kept beside the grants under a key no grant has (`paid:…`), with one
/// "request" (which nothing spends), for [`PAID_MARKER_SECONDS`] from `now`, however short the
/// grant: a map that every spend rewrites does not grow with every purchase a wallet ever made.
/// Returns whether the requests were added.
pub fn add_counted_grant(
    counts: &mut GrantCounts,
    key: &str,
    requests: u64,
    until: u64,
    paid: Option<&str>,
    now: u64,
) -> bool {
    if let Some(paid) = paid {
        let seen = format!("paid:{paid}");
        if counts.contains_key(&seen) {
            return false;
        }
        counts.insert(seen, (1, now.saturating_add(PAID_MARKER_SECONDS)));
    }
    let entry = counts.get_or_insert_with(key, || (0, until));
    entry.0 = entry.0.saturating_add(requests);
    entry.1 = entry.1.max(until);
    true
}

/// Adds a timed purchase of `seconds` to the grant `key`: it runs `seconds` past the end of the
/// time still left on it (past `now` if none is left), so that buying again before the last
/// purchase ends adds to it rather than replacing it. `paid` as for [`add_counted_grant`]: a
/// payment already counted adds nothing. Returns the grant's end. Its end is kept under its own
/// entry (`key` then `:time`), apart from any counted grant's under `key`: an offer changed from a
/// number of requests to a duration does not turn the 30 days of requests bought into 30 days of
/// access.
pub fn add_timed_grant(
    counts: &mut GrantCounts,
    key: &str,
    seconds: u64,
    paid: Option<&str>,
    now: u64,
) -> u64 {
    let key = format!("{key}:time");
    let left = counts.get(&key).map_or(now, |e| e.1.max(now));
    let until = left.saturating_add(seconds);
    if add_counted_grant(counts, &key, 0, until, paid, now) {
        until
    } else {
        left
    }
}

/// Spends one request of the counted grant under `key`: whether it had one left at `now`.
pub fn spend_counted_grant(counts: &mut GrantCounts, key: &str, now: u64) -> bool {
    match counts.get_mut(key) {
        Some((left, until)) if *left > 0 && now < *until => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

/// Gives back one request to the counted grant under `key` (its request was not served): only
/// to a grant still held, so that one revoked meanwhile, and cleared, gets nothing back.
pub fn refund_counted_grant(counts: &mut GrantCounts, key: &str, now: u64) -> bool {
    match counts.get_mut(key) {
        Some((left, until)) if now < *until => {
            *left = left.saturating_add(1);
            true
        }
        _ => false,
    }
}

/// Forgets the grants that have ended. One used up is kept until it ends, so that a request
/// given back finds it.
pub fn drop_ended_grants(counts: &mut GrantCounts, now: u64) {
    counts.retain(|_, (_, until)| *until > now);
}

/// A session token for `wallet` on `scope` until `expires_at` (unix seconds):
/// `v1.<base64url(claims)>.<base64url(HMAC-SHA256)>`, unpadded, so it is safe in a cookie and a
/// header as is. The claims are `{"sub":"0x<lowercase>","scope":…,"exp":…}`. Use a random secret
/// of at least [`MIN_SECRET_BYTES`] bytes; with a shorter one the token is still written, but
/// [`check_token`] refuses every token.
pub fn issue_token(secret: &[u8], wallet: &Address, scope: &str, expires_at: u64) -> String {
    let claims = WireClaims {
        sub: wallet.to_lower_hex(),
        scope: scope.into(),
        exp: expires_at,
    };
    // Strings and an integer always serialise.
    let json = serde_json::to_vec(&claims).unwrap_or_default();
    let mut token = String::with_capacity(json.len().saturating_mul(4) / 3 + 100);
    token.push_str(TOKEN_VERSION);
    token.push('.');
    crate::x402::codec::base64_into(&json, true, &mut token);
    let mac = mac(secret, &token).map(|m| m.finalize().into_bytes());
    token.push('.');
    if let Some(mac) = mac {
        crate::x402::codec::base64_into(&mac, true, &mut token);
    }
    token
}

/// Checks a token at `now` and returns its claims. Refuses, in this order: a weak secret, a token
/// longer than [`MAX_TOKEN_BYTES`] or not of three dot-separated parts, another version, a MAC
/// that does not match (compared in constant time), claims that do not parse, an expired token.
/// The claims are only parsed once the MAC has authenticated them.
pub fn check_token(secret: &[u8], token: &str, now: u64) -> Result<TokenClaims, TokenError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(TokenError::WeakSecret);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(version), Some(payload), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    if version != TOKEN_VERSION {
        let versioned = version
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        return Err(if versioned {
            TokenError::UnsupportedVersion
        } else {
            TokenError::Malformed("no version")
        });
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed("the MAC is not base64url"))?;
    // `signed` is `v1.<payload>`: everything before the last dot.
    let signed_len = version.len() + 1 + payload.len();
    let signed = token
        .get(..signed_len)
        .ok_or(TokenError::Malformed("not three dot-separated parts"))?;
    mac(secret, signed)
        .ok_or(TokenError::WeakSecret)?
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadMac)?;

    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("the claims are not base64url"))?;
    let claims: WireClaims = std::str::from_utf8(&json)
        .ok()
        .and_then(|text| json::parse(text).ok())
        .ok_or(TokenError::Malformed(
            "the claims are not of the expected shape",
        ))?;
    let wallet = Address::parse(&claims.sub)
        .map_err(|_| TokenError::Malformed("the wallet is not an address"))?;
    if now >= claims.exp {
        return Err(TokenError::Expired {
            expires_at: claims.exp,
        });
    }
    Ok(TokenClaims {
        wallet,
        scope: claims.scope,
        expires_at: claims.exp,
    })
}

/// An HMAC-SHA256 over the label and `signed`. `None` only if the key is refused, which HMAC never
/// does.
fn mac(secret: &[u8], signed: &str) -> Option<HmacSha256> {
    // The key's inner and outer pads are hashed once per secret, not for every token: the secret
    // is the same for every request an isolate serves.
    thread_local! {
        static KEYED: std::cell::RefCell<Option<(Vec<u8>, HmacSha256)>> =
            const { std::cell::RefCell::new(None) };
    }
    let mut m = KEYED.with(|k| {
        let mut k = k.borrow_mut();
        match k.as_ref() {
            Some((key, m)) if key == secret => Some(m.clone()),
            _ => {
                let mut m = <HmacSha256 as Mac>::new_from_slice(secret).ok()?;
                m.update(MAC_LABEL);
                *k = Some((secret.to_vec(), m.clone()));
                Some(m)
            }
        }
    })?;
    m.update(signed.as_bytes());
    Some(m)
}

// ---------------------------------------------------------------------------------------------
// Carrying the token.

/// The `Set-Cookie` value for a token of the session `offer_name` ([`SessionOffer::name`]):
/// `x402_session_<8 hex>=<token>; Path=/; Max-Age=<max_age>; HttpOnly; Secure; SameSite=Lax`,
/// the name's digits the start of the SHA-256 of `offer_name`, so that a browser keeps a cookie
/// for each session it buys rather than one that the next purchase replaces.
/// Characters that cannot appear in a token (anything but letters, digits, `-`, `_`, `.`) are
/// dropped, so the value can never add attributes.
pub fn cookie(token: &str, max_age: u64, offer_name: &str) -> String {
    let value: String = token
        .chars()
        .filter(|&c| c.is_ascii() && is_token_byte(c as u8))
        .collect();
    let name = cookie_name(offer_name);
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax")
}

/// The name of the cookie that carries the tokens of the session `offer_name`:
/// `x402_session_` and the first four bytes of the SHA-256 of the name, in hexadecimal.
pub fn cookie_name(offer_name: &str) -> String {
    let digits = hex::encode(&Sha256::digest(offer_name.as_bytes())[..4]);
    format!("{COOKIE_NAME}_{digits}")
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Whether `s` has the shape of one of our tokens (`v<n>.<…>.<…>`), so that the origin's own
/// bearer tokens (JWTs start with `eyJ`) are not taken for ours.
fn looks_like_token(s: &str) -> bool {
    // Byte by byte: read on every request that carries a bearer token, and a token is ASCII.
    // PASETO's tokens (`v4.public.…`, `v4.local.…`, which an origin may hand out) have the same
    // shape, and are told by their purpose.
    s.starts_with('v')
        && s.bytes().filter(|&b| b == b'.').count() == 2
        && s.bytes().all(is_token_byte)
        && !s
            .split_once('.')
            .is_some_and(|(_, rest)| rest.starts_with("public.") || rest.starts_with("local."))
}

/// Whether one `name=value` pair of a `Cookie` header is one of our session cookies (spaces
/// around the name allowed): `x402_session` or `x402_session_…`.
pub fn is_session_cookie(pair: &str) -> bool {
    pair.split_once('=').is_some_and(|(name, _)| {
        name.trim()
            .strip_prefix(COOKIE_NAME)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
    })
}

/// The session token of a request's `Authorization: Bearer <token>` (scheme in any case), when
/// it has the shape of ours.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, value) = authorization?.trim().split_once(' ')?;
    let value = value.trim();
    (scheme.eq_ignore_ascii_case("bearer") && looks_like_token(value)).then_some(value)
}

/// The session tokens of a request: its bearer token when it has one of ours
/// ([`bearer_token`]), else the values of the cookies named one of `names` (those of the sessions
/// that may open the page, [`cookie_name`]: a browser may hold many), then of those named
/// `x402_session`, unquoted, in order, empty ones and repeats left out, [`MOST_PER_NAME`] of each
/// name at most, so that no number of cookies can push out the one that opens the page. The
/// tokens are not checked here: see [`check_token`].
pub fn tokens_from_request<'a>(
    cookie_header: Option<&'a str>,
    authorization: Option<&'a str>,
    names: &[&str],
) -> Vec<&'a str> {
    if let Some(token) = bearer_token(authorization) {
        return vec![token];
    }
    let mut tokens = Vec::new();
    for wanted in names.iter().copied().chain([COOKIE_NAME]) {
        let mut taken = 0;
        for pair in cookie_header.unwrap_or_default().split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if name.trim() != wanted || taken == MOST_PER_NAME {
                continue;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if !value.is_empty() && !tokens.contains(&value) {
                tokens.push(value);
                taken += 1;
            }
        }
    }
    tokens
}
