//! Session tokens: `session::check_token` on any token, on tokens we issue for any claims, and on
//! tokens whose MAC is right but whose claims are any bytes (so the claims parser is reached);
//! plus `tokens_from_request`, `Grant::from_json` and the scope check.
//!
//! Input: `[mode] [selector] fields…`, mode (mod 4), with the fixed `SESSION_SECRET` and clock
//! `SESSION_NOW`:
//! - 0: field 0 is the token;
//! - 1: issue then check: fields `wallet` (20 bytes; shorter is zero-padded), `scope`,
//!   `expires_at` and `now` (decimal, or 8 little-endian bytes);
//! - 2: field 0 is the claims JSON, MACed with the secret (field 1, if any, is the version part);
//! - 3: fields `cookie`, `authorization` for `tokens_from_request` (the first cookie's name read
//!   as a session's), field 2 for
//!   `Grant::from_json`, field 3 a path for the scope checks.
//!
//! Invariants besides "no panic": a token we issue checks out with exactly its claims before its
//! expiry and as expired from then on; a checked token was issued for a 20-byte wallet and
//! expires after `now`; a one-byte change to a valid token is refused; whatever
//! each token `tokens_from_request` returns is a non-empty part of the headers; grants round-trip through JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use x402_edge::evm::Address;
use x402_edge::session::{self, Grant, TokenError};
use x402_edge_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let input = Framed::new(data);
    let fields = input.fields();
    let bytes = |i: usize| fields.get(i).copied().unwrap_or(&[]);
    let text = |i: usize| lossy(bytes(i));
    match input.mode % 4 {
        0 => check(&text(0), SESSION_NOW),
        1 => {
            let mut w = [0u8; 20];
            for (d, s) in w.iter_mut().zip(bytes(0)) {
                *d = *s;
            }
            let wallet = Address(w);
            let scope = text(1);
            let exp = number(bytes(2));
            let now = number(bytes(3));
            let token = session::issue_token(SESSION_SECRET, &wallet, &scope, exp);
            match session::check_token(SESSION_SECRET, &token, now) {
                Ok(c) => {
                    assert!(now < exp, "a token checked out at {now}, expiring at {exp}");
                    assert_eq!(
                        (c.wallet, c.scope.as_str(), c.expires_at),
                        (wallet, scope.as_str(), exp)
                    );
                    let _ = c.covers("/");
                }
                Err(TokenError::Expired { expires_at }) => {
                    assert!(now >= exp && expires_at == exp)
                }
                // Only a token over the length limit may be refused otherwise.
                Err(TokenError::Malformed(_)) if token.len() > session::MAX_TOKEN_BYTES => {}
                Err(e) => panic!("our own token refused: {e:?} ({token})"),
            }
            // Flipping any one character of a good token breaks it.
            if token.len() <= session::MAX_TOKEN_BYTES && now < exp {
                let i = usize::from(input.selector) % token.len();
                let mut tampered = token.clone().into_bytes();
                tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
                let tampered = String::from_utf8(tampered).expect("tokens are ASCII");
                if tampered != token {
                    // Base64url's last character may carry unused bits; a change there that
                    // decodes the same is not a forgery.
                    if let Ok(c) = session::check_token(SESSION_SECRET, &tampered, now) {
                        assert_eq!(
                            (c.wallet, c.scope, c.expires_at),
                            (wallet, scope, exp),
                            "{tampered}"
                        );
                    }
                }
            }
            // The weak-secret rule.
            assert_eq!(
                session::check_token(&SESSION_SECRET[..31], &token, now),
                Err(TokenError::WeakSecret)
            );
        }
        2 => {
            let version = if fields.len() > 1 {
                text(1)
            } else {
                "v1".to_string()
            };
            check(&forge_token(&version, bytes(0)), SESSION_NOW);
        }
        _ => {
            let (cookie, auth) = (text(0), text(1));
            let has = |i: usize| input.selector & (1 << i) != 0;
            // The first cookie's name is read as a session's, so that named cookies are reached.
            let first = cookie.split(';').next().and_then(|p| p.split_once('='));
            let names: Vec<&str> = first.map(|(n, _)| n.trim()).into_iter().collect();
            let got = session::tokens_from_request(
                has(0).then_some(cookie.as_str()),
                has(1).then_some(auth.as_str()),
                &names,
            );
            assert!(got.len() <= 2 * session::MOST_PER_NAME);
            for t in got {
                assert!(!t.is_empty());
                assert!(cookie.contains(t) || auth.contains(t));
                check(t, SESSION_NOW);
            }
            if let Ok(g) = Grant::from_json(&text(2)) {
                assert_eq!(Grant::from_json(&g.to_json()).as_ref(), Ok(&g));
                let path = text(3);
                let _ = g.covers(&path, SESSION_NOW);
                if let Some(next) = g.spend(&path, SESSION_NOW) {
                    assert!(g.covers(&path, SESSION_NOW));
                    assert_eq!(next.requests, g.requests.map(|n| n - 1));
                }
                let _ = g.ttl(SESSION_NOW);
                let _ = session::grant_key(&g.wallet, &g.scope);
            }
        }
    }
});

fn number(b: &[u8]) -> u64 {
    match std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()) {
        Some(n) => n,
        None => {
            let mut a = [0u8; 8];
            for (d, s) in a.iter_mut().zip(b) {
                *d = *s;
            }
            u64::from_le_bytes(a)
        }
    }
}

fn check(token: &str, now: u64) {
    match session::check_token(SESSION_SECRET, token, now) {
        Ok(c) => {
            assert!(now < c.expires_at);
            assert!(token.len() <= session::MAX_TOKEN_BYTES);
            let _ = c.covers("/");
            let _ = session::cookie(token, 60, &c.scope);
        }
        Err(e) => {
            assert!(session::TokenError::CODES.contains(&e.code()));
            assert!(!e.to_string().is_empty());
        }
    }
}
