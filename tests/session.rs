//! Session offers, grants, their store keys, and session tokens: round trips and every refusal.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use x402_edge::config::{Config, ConfigError};
use x402_edge::evm::Address;
use x402_edge::pattern::PathPattern;
use x402_edge::session::{
    add_counted_grant, add_timed_grant, check_token, cookie, cookie_name, drop_ended_grants,
    grant_key, is_session_cookie, issue_token, refund_counted_grant, spend_counted_grant,
    tokens_from_request, Grant, GrantCounts, SessionOffer, TokenClaims, TokenError,
    COUNTED_GRANT_MAX_SECONDS, MAX_TOKEN_BYTES, MIN_SECRET_BYTES, MOST_PER_NAME,
    PAID_MARKER_SECONDS,
};

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
const ANVIL0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const ANVIL1: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const NOW: u64 = 1_705_314_600;

fn wallet() -> Address {
    Address::parse(ANVIL0).unwrap()
}

fn token() -> String {
    issue_token(SECRET, &wallet(), "/premium/*", NOW + 3600)
}

fn parts(t: &str) -> (String, String, String) {
    let v: Vec<&str> = t.split('.').collect();
    assert_eq!(v.len(), 3, "{t}");
    (v[0].into(), v[1].into(), v[2].into())
}

/// A token whose MAC is right for `payload` as written (the MAC covers the label, then
/// `v1.<payload>`).
fn forge_raw(secret: &[u8], payload: &str) -> String {
    let signed = format!("v1.{payload}");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(b"x402-edge session token\n");
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A token whose MAC is right for `claims_json`.
fn forge_with_secret(secret: &[u8], claims_json: &str) -> String {
    forge_raw(secret, &URL_SAFE_NO_PAD.encode(claims_json))
}

// ---------------------------------------------------------------------------------------------
// Tokens.

#[test]
fn round_trip() {
    let t = token();
    let claims = check_token(SECRET, &t, NOW).unwrap();
    assert_eq!(
        claims,
        TokenClaims {
            wallet: wallet(),
            scope: "/premium/*".into(),
            expires_at: NOW + 3600,
        }
    );
    assert!(claims.covers("/premium/article/1"));
    assert!(claims.covers("/PREMIUM/x"));
    assert!(!claims.covers("/free"));
    // Deterministic, compact, versioned, cookie-safe.
    assert_eq!(t, token());
    assert!(t.starts_with("v1."));
    assert!(t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'));
    let (_, payload, mac) = parts(&t);
    assert_eq!(URL_SAFE_NO_PAD.decode(&mac).unwrap().len(), 32);
    assert_eq!(
        String::from_utf8(URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap(),
        r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/premium/*","exp":1705318200}"#
    );
    // Scopes with characters JSON escapes survive the trip.
    let odd = "/a/\"quoted\"/\\/é/*";
    let t = issue_token(SECRET, &wallet(), odd, NOW + 1);
    assert_eq!(check_token(SECRET, &t, NOW).unwrap().scope, odd);
}

#[test]
fn the_forging_helper_matches_the_real_format() {
    // Keeps the tests below honest: a forged token with the real secret is a real token.
    let json = r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/premium/*","exp":1705318200}"#;
    assert_eq!(forge_with_secret(SECRET, json), token());
}

#[test]
fn tampered_claims() {
    let (v, _, mac) = parts(&token());
    for claims in [
        // Another wallet.
        r#"{"sub":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8","scope":"/premium/*","exp":1705318200}"#,
        // A wider scope.
        r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/*","exp":1705318200}"#,
        // A longer life.
        r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/premium/*","exp":9999999999}"#,
    ] {
        let forged = format!("{v}.{}.{mac}", URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(
            check_token(SECRET, &forged, NOW),
            Err(TokenError::BadMac),
            "{claims}"
        );
    }
}

#[test]
fn tampered_mac() {
    let t = token();
    let (v, payload, mac) = parts(&t);
    // Flip each character of the MAC in turn.
    for i in 0..mac.len() {
        let mut bytes = mac.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = format!("{v}.{payload}.{}", String::from_utf8(bytes).unwrap());
        let err = check_token(SECRET, &forged, NOW).unwrap_err();
        // The last character carries only 4 bits of the MAC; changing them is either another
        // MAC or non-canonical base64.
        assert!(
            matches!(err, TokenError::BadMac | TokenError::Malformed(_)),
            "{i}: {err:?}"
        );
    }
    // A truncated, lengthened, empty or all-zero MAC.
    let raw = URL_SAFE_NO_PAD.decode(&mac).unwrap();
    let mut longer = raw.clone();
    longer.push(0);
    for bad_mac in [
        URL_SAFE_NO_PAD.encode(&raw[..31]),
        URL_SAFE_NO_PAD.encode(&raw[..16]),
        URL_SAFE_NO_PAD.encode(&longer),
        String::new(),
        URL_SAFE_NO_PAD.encode([0u8; 32]),
    ] {
        let forged = format!("{v}.{payload}.{bad_mac}");
        assert_eq!(
            check_token(SECRET, &forged, NOW),
            Err(TokenError::BadMac),
            "{bad_mac:?}"
        );
    }
}

#[test]
fn expired() {
    let t = token();
    assert!(check_token(SECRET, &t, NOW + 3599).is_ok());
    assert_eq!(
        check_token(SECRET, &t, NOW + 3600),
        Err(TokenError::Expired {
            expires_at: NOW + 3600
        })
    );
    assert!(check_token(SECRET, &t, u64::MAX).is_err());
    let zero = issue_token(SECRET, &wallet(), "/premium/*", 0);
    assert_eq!(
        check_token(SECRET, &zero, 0),
        Err(TokenError::Expired { expires_at: 0 })
    );
}

#[test]
fn another_secret() {
    assert_eq!(
        check_token(OTHER_SECRET, &token(), NOW),
        Err(TokenError::BadMac)
    );
    let mut longer = SECRET.to_vec();
    longer.push(b'x');
    assert_eq!(check_token(&longer, &token(), NOW), Err(TokenError::BadMac));
    let mut last = *SECRET;
    last[31] ^= 1;
    assert_eq!(check_token(&last, &token(), NOW), Err(TokenError::BadMac));
    // (HMAC pads short keys with zero bytes, so `SECRET` and `SECRET ‖ 0x00` are the same key: a
    // property of HMAC, harmless with random secrets.)
}

#[test]
fn weak_secret_fails_closed() {
    // Even a token made with the same short secret does not check out.
    for secret in [&b""[..], b"short", &SECRET[..MIN_SECRET_BYTES - 1]] {
        let t = issue_token(secret, &wallet(), "/premium/*", NOW + 60);
        assert_eq!(check_token(secret, &t, NOW), Err(TokenError::WeakSecret));
    }
}

#[test]
fn malformed_inputs() {
    let huge = format!("v1.{}.x", "A".repeat(MAX_TOKEN_BYTES));
    let cases: Vec<(&str, TokenError)> = vec![
        ("", TokenError::Malformed("not three dot-separated parts")),
        (
            "garbage",
            TokenError::Malformed("not three dot-separated parts"),
        ),
        ("v1", TokenError::Malformed("not three dot-separated parts")),
        (
            "v1.",
            TokenError::Malformed("not three dot-separated parts"),
        ),
        (
            "v1.a.b.c",
            TokenError::Malformed("not three dot-separated parts"),
        ),
        ("..", TokenError::Malformed("no version")),
        ("x1.a.b", TokenError::Malformed("no version")),
        ("v.a.b", TokenError::Malformed("no version")),
        ("V1.a.b", TokenError::Malformed("no version")),
        (
            "v1.!!!.???",
            TokenError::Malformed("the MAC is not base64url"),
        ),
        (
            "v1.abc.a+b/",
            TokenError::Malformed("the MAC is not base64url"),
        ),
        (
            "v1.abc.AAAA====",
            TokenError::Malformed("the MAC is not base64url"),
        ),
        (&huge, TokenError::Malformed("too long")),
    ];
    for (t, want) in cases {
        assert_eq!(
            check_token(SECRET, t, NOW),
            Err(want),
            "{:?}",
            &t[..t.len().min(20)]
        );
    }
    // Wrong versions are told apart from junk.
    let (_, payload, mac) = parts(&token());
    for v in ["v0", "v2", "v10"] {
        assert_eq!(
            check_token(SECRET, &format!("{v}.{payload}.{mac}"), NOW),
            Err(TokenError::UnsupportedVersion)
        );
    }
    // Non-ASCII anywhere is junk, never a panic.
    for t in ["v1.é.é", "é.a.b", "v1.a.\u{1F600}"] {
        assert!(check_token(SECRET, t, NOW).is_err(), "{t}");
    }
}

#[test]
fn authenticated_but_malformed_claims() {
    // Only reachable with the secret: the MAC is checked before the claims are read.
    for claims in [
        "not json",
        "{}",
        r#"{"sub":"0x12","scope":"/x","exp":1}"#,
        r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/x","exp":-1}"#,
        r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/x","exp":"1"}"#,
        r#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/x","exp":1,"admin":true}"#,
    ] {
        let t = forge_with_secret(SECRET, claims);
        assert!(
            matches!(check_token(SECRET, &t, 0), Err(TokenError::Malformed(_))),
            "{claims}"
        );
        // Without the secret the same token is simply not ours.
        assert_eq!(check_token(OTHER_SECRET, &t, 0), Err(TokenError::BadMac));
    }
    // Bad base64 in the payload of an authenticated token.
    for payload in ["!!", "", "AAAA===="] {
        let t = forge_raw(SECRET, payload);
        assert!(
            matches!(check_token(SECRET, &t, 0), Err(TokenError::Malformed(_))),
            "{payload:?}"
        );
    }
}

#[test]
fn error_codes_and_sentences() {
    let all = [
        TokenError::Malformed("x"),
        TokenError::UnsupportedVersion,
        TokenError::BadMac,
        TokenError::Expired { expires_at: 1 },
        TokenError::WeakSecret,
    ];
    let codes: Vec<&str> = all.iter().map(TokenError::code).collect();
    assert_eq!(codes, TokenError::CODES);
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());
    for e in all {
        assert!(e.to_string().ends_with('.'), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Cookies and headers.

#[test]
fn cookie_shape() {
    let t = token();
    // Named after the session sold: the first four bytes of the SHA-256 of its name.
    let named = |name: &str| hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    let a = named("/articles/*\nGET /articles/*");
    assert_eq!(
        cookie(&t, 3600, "/articles/*\nGET /articles/*"),
        format!("x402_session_{a}={t}; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax")
    );
    assert_ne!(a, named("/api/*\nGET /api/*"), "one cookie per session");
    // Nothing can be smuggled into the attributes, nor into the name.
    let b = named("x; Domain=evil.com");
    assert_eq!(
        cookie("abc; Domain=evil.com\r\nX: y", 1, "x; Domain=evil.com"),
        format!("x402_session_{b}=abcDomainevil.comXy; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax")
    );
}

#[test]
fn tokens_from_bearer_or_cookies() {
    let t = token();
    let (a, b) = (cookie_name("/a/*\n* /a/*"), cookie_name("/b/*\n* /b/*"));
    assert_eq!(
        a,
        format!(
            "x402_session_{}",
            hex::encode(&Sha256::digest(b"/a/*\n* /a/*")[..4])
        )
    );
    let names = [a.as_str(), b.as_str()];
    let read = |cookie: Option<&str>, auth: Option<&str>| -> Vec<String> {
        tokens_from_request(cookie, auth, &names)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let bearer = format!("Bearer {t}");
    let jar = format!("theme=dark; {a}={t}; other=1");
    let one = vec![t.clone()];
    let none: Vec<String> = Vec::new();
    assert_eq!(read(None, Some(&bearer)), one);
    assert_eq!(read(None, Some(&format!("  bearer   {t}  "))), one);
    assert_eq!(read(Some(&jar), None), one);
    // Bearer alone, when there is one.
    assert_eq!(read(Some(&format!("{b}=v1.c.c")), Some(&bearer)), one);
    // The origin's own bearer tokens (a JWT, Basic auth) are not ours: the cookies are read.
    let jwt = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
    assert_eq!(read(Some(&jar), Some(jwt)), one);
    assert_eq!(read(None, Some(jwt)), none);
    assert_eq!(read(None, Some("Basic dXNlcjpwdw==")), none);
    // Nor are its PASETO tokens, shaped like ours but for their purpose; a token of another
    // version of ours still is one (refused as such by `check_token`).
    for paseto in ["Bearer v4.public.eyJzdWIiOiIxIn0", "Bearer v2.local.c2l0ZQ"] {
        assert_eq!(read(None, Some(paseto)), none, "{paseto}");
        assert_eq!(read(Some(&jar), Some(paseto)), one);
    }
    assert_eq!(
        read(None, Some("Bearer v2.eyJzdWIiOiIxIn0.c2ln")),
        vec!["v2.eyJzdWIiOiIxIn0.c2ln"]
    );
    // The cookies of the sessions named, in the order named, then the one name of earlier
    // versions; quoted ones unquoted; empty ones, repeats and cookies of other sessions or names
    // left out.
    assert_eq!(
        read(
            Some(&format!(
                "x402_sessionx=a; x402_session_ffffffff=other; x402_session = \"{t}\"; {b}=; {b}=third; {a}=first; {a}=first"
            )),
            None
        ),
        vec!["first".to_string(), "third".to_string(), t.clone()]
    );
    assert_eq!(read(Some("x402_session="), None), none);
    assert_eq!(read(Some("x402_session=\"\""), None), none);
    assert_eq!(read(Some("x402_sessionx=a; nope"), None), none);
    assert_eq!(read(Some(""), Some("")), none);
    assert_eq!(read(None, None), none);
    assert_eq!(read(Some(";;;=;"), Some("Bearer")), none);
    // However many cookies a browser holds, those of the sessions covering the page are read.
    let mut many: Vec<String> = (0..40)
        .map(|i| format!("x402_session_{i:08x}=v1.{i}.x"))
        .collect();
    many.push(format!("{b}=mine"));
    assert_eq!(read(Some(&many.join("; ")), None), vec!["mine".to_string()]);
    // A few of one name at most, sent again and again, which cannot push out another name's.
    let mut repeated: Vec<String> = (0..20).map(|i| format!("x402_session=v1.{i}.x")).collect();
    repeated.extend((0..20).map(|i| format!("{a}=v1.a{i}.x")));
    repeated.push(format!("{b}=mine"));
    let got = read(Some(&repeated.join("; ")), None);
    assert_eq!(got.len(), 3 * MOST_PER_NAME - 1, "{got:?}");
    assert!(got.contains(&"mine".to_string()));
    // Which pairs are ours, to be kept from the origin: every session cookie, read or not.
    for ours in [
        "x402_session=a",
        " x402_session_12345678 =b",
        "x402_session_=c",
    ] {
        assert!(is_session_cookie(ours), "{ours}");
    }
    for theirs in [
        "x402_sessions=a",
        "x402_session-1=a",
        "session=a",
        "x402_session",
    ] {
        assert!(!is_session_cookie(theirs), "{theirs}");
    }
}

// ---------------------------------------------------------------------------------------------
// Offers, grants and keys.

fn pattern(p: &str) -> PathPattern {
    PathPattern::parse(p).unwrap()
}

#[test]
fn offers_need_exactly_one_positive_limit() {
    assert!(SessionOffer::new(pattern("/p/*"), Some(3600), None).is_ok());
    assert!(SessionOffer::new(pattern("/p/*"), None, Some(10)).is_ok());
    for (s, r) in [
        (None, None),
        (Some(1), Some(1)),
        (Some(0), None),
        (None, Some(0)),
    ] {
        let err = SessionOffer::new(pattern("/p/*"), s, r).unwrap_err();
        assert!(err.contains("/p/*"), "{err}");
    }
}

#[test]
fn offers_make_grants() {
    let timed = SessionOffer::new(pattern("/p/*"), Some(3600), None).unwrap();
    assert_eq!(
        timed.grant(wallet(), NOW),
        Grant {
            wallet: wallet(),
            scope: "/p/*".into(),
            expires_at: NOW + 3600,
            requests: None,
            chain: None,
        }
    );
    let counted = SessionOffer::new(pattern("/p/*"), None, Some(5)).unwrap();
    let g = counted.grant(wallet(), NOW);
    assert_eq!(g.requests, Some(5));
    assert_eq!(g.expires_at, NOW + COUNTED_GRANT_MAX_SECONDS);
    // No overflow at the end of time.
    assert_eq!(timed.grant(wallet(), u64::MAX).expires_at, u64::MAX);
}

#[test]
fn grant_coverage_and_expiry() {
    let g = Grant {
        wallet: wallet(),
        scope: "/premium/*".into(),
        expires_at: NOW + 60,
        requests: None,
        chain: None,
    };
    assert!(g.covers("/premium/a", NOW));
    assert!(g.covers("/premium/a/b", NOW + 59));
    assert!(g.covers("/%70remium//a", NOW));
    assert!(!g.covers("/premium/a", NOW + 60));
    assert!(!g.covers("/premium", NOW));
    assert!(!g.covers("/free/a", NOW));
    assert_eq!(g.ttl(NOW), 60);
    assert_eq!(g.ttl(NOW + 100), 0);
    assert_eq!(g.spend("/premium/a", NOW), Some(g.clone()));
    assert_eq!(g.spend("/free", NOW), None);

    // A scope that does not parse covers nothing.
    let broken = Grant {
        scope: "no-slash".into(),
        ..g.clone()
    };
    assert!(!broken.covers("/no-slash", NOW));

    // A scope covers its paths with a format suffix, as the route that sold it prices them.
    let exact = Grant {
        scope: "/api/weather".into(),
        ..g.clone()
    };
    assert!(exact.covers("/api/weather.json", NOW));
    assert!(!exact.covers("/api/weathers.json", NOW));
}

#[test]
fn counted_grants() {
    let mut g = Grant {
        wallet: wallet(),
        scope: "/api/*".into(),
        expires_at: NOW + 60,
        requests: Some(2),
        chain: None,
    };
    for left in [1, 0] {
        g = g.spend("/api/x", NOW).unwrap();
        assert_eq!(g.requests, Some(left));
    }
    assert!(!g.covers("/api/x", NOW));
    assert_eq!(g.spend("/api/x", NOW), None);
}

#[test]
fn grant_json_is_compact_and_round_trips() {
    let timed = Grant {
        wallet: wallet(),
        scope: "/premium/*".into(),
        expires_at: NOW,
        requests: None,
        chain: None,
    };
    assert_eq!(
        timed.to_json(),
        r#"{"wallet":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","scope":"/premium/*","expiresAt":1705314600}"#
    );
    assert_eq!(Grant::from_json(&timed.to_json()), Ok(timed.clone()));
    let counted = Grant {
        requests: Some(3),
        ..timed.clone()
    };
    assert!(counted.to_json().ends_with(r#","requests":3}"#));
    assert_eq!(Grant::from_json(&counted.to_json()), Ok(counted.clone()));
    // The chain the session was paid on, where known (a smart wallet signs in on it only).
    let paid_on = Grant {
        chain: Some(8453),
        ..counted
    };
    assert!(paid_on
        .to_json()
        .ends_with(r#","requests":3,"chain":8453}"#));
    assert_eq!(Grant::from_json(&paid_on.to_json()), Ok(paid_on));
    // Unknown fields (a later version) are ignored; bad ones are errors, not panics.
    let later = r#"{"wallet":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/premium/*","expiresAt":1705314600,"tier":"gold"}"#;
    assert_eq!(Grant::from_json(later), Ok(timed));
    for bad in [
        "",
        "{}",
        "null",
        r#"{"wallet":"0x12","scope":"/x","expiresAt":1}"#,
        r#"{"wallet":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/x","expiresAt":-1}"#,
    ] {
        assert!(Grant::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn grant_key_shape() {
    let k = grant_key(&wallet(), "/premium/*");
    let (prefix, rest) = k.split_at(6);
    assert_eq!(prefix, "grant:");
    let (addr, hash) = rest.split_once(':').unwrap();
    assert_eq!(addr, "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    assert_eq!(hash.len(), 32);
    assert!(hash
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(k.len(), 81);
    // SHA-256("/premium/*"), first 16 bytes.
    assert_eq!(hash, &sha256_hex("/premium/*")[..32]);

    // The address's spelling does not matter; the wallet and the scope do.
    let lower = Address::parse(&ANVIL0.to_ascii_lowercase()).unwrap();
    assert_eq!(grant_key(&lower, "/premium/*"), k);
    assert_ne!(grant_key(&Address::parse(ANVIL1).unwrap(), "/premium/*"), k);
    assert_ne!(grant_key(&wallet(), "/premium/**"), k);
    // Any scope, however long or odd, gives a key of the same shape.
    let odd = format!("/{}\u{e9}\n:*", "x".repeat(10_000));
    assert_eq!(grant_key(&wallet(), &odd).len(), 81);
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A configuration selling `routes` (a JSON array of route tables), everything else minimal.
fn config_with_routes(routes: serde_json::Value) -> Config {
    try_config_with_routes(routes).expect("config")
}

/// The same, or why it is refused.
fn try_config_with_routes(routes: serde_json::Value) -> Result<Config, ConfigError> {
    Config::from_json(
        &serde_json::json!({
            "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            "accepts": ["eip155:84532"],
            "facilitator": {"url": "https://facilitator.example"},
            "routes": routes,
        })
        .to_string(),
    )
}

/// A session opens the paths its scope covers, but never a page dearer than the one that sold
/// it: a dearer route listed first (which prices its paths) or another method's dearer rule under
/// the same scope stays paid.
#[test]
fn a_session_never_opens_a_dearer_route() {
    let config = config_with_routes(serde_json::json!([
        {"path": "/articles/premium/*", "price": "$5"},
        {"method": "POST", "path": "/articles/*", "price": "$1"},
        {"method": "GET", "path": "/articles/*", "price": "$0.01", "session": {"seconds": 86400}},
        {"path": "/guides/*", "price": "$0.01"},
        {"path": "/pass", "price": "$0.50", "session": {"scope": "/*", "seconds": 86400}},
    ]));
    let route = |method: &str, path: &str| {
        x402_edge::paywall::priced_route(&config, method, path).expect("priced")
    };
    let scopes = |method: &str, path: &str| -> Vec<String> {
        config
            .sessions_for(route(method, path), path)
            .map(|o| o.scope.as_str().to_string())
            .collect()
    };
    // The $0.01 article session: its own pages, not the $5 ones nor the $1 POSTs.
    assert_eq!(scopes("GET", "/articles/a"), ["/articles/*", "/*"]);
    assert_eq!(scopes("GET", "/articles/premium/a"), Vec::<String>::new());
    assert_eq!(scopes("POST", "/articles/a"), Vec::<String>::new());
    // The $0.50 site pass opens every page of $0.50 or less, its scope says so; not the $5 ones
    // nor the $1 POSTs.
    assert_eq!(scopes("GET", "/guides/a"), ["/*"]);
    assert_eq!(scopes("GET", "/pass"), ["/*"]);
}

/// A session is paid to its route's payee: it never opens a page whose payments go to someone
/// else, however the scopes and prices line up (a partner's section inside a site pass's scope).
#[test]
fn a_session_never_opens_another_payees_route() {
    let partner = "0x1111111111111111111111111111111111111111";
    let config = config_with_routes(serde_json::json!([
        {"path": "/premium/partner/*", "price": "$0.01", "payTo": partner},
        {"path": "/premium/*", "price": "$0.01", "session": {"seconds": 3600}},
        {"path": "/partner-pass", "price": "$0.50", "payTo": partner, "session": {"scope": "/premium/partner/*", "seconds": 3600}},
    ]));
    let scopes = |path: &str| -> Vec<String> {
        let route = x402_edge::paywall::priced_route(&config, "GET", path).expect("priced");
        config
            .sessions_for(route, path)
            .map(|o| o.scope.as_str().to_string())
            .collect()
    };
    assert_eq!(scopes("/premium/a"), ["/premium/*"]);
    // The publisher's session covers the partner's path by its scope, and costs as much, but was
    // paid to the publisher: it does not open the partner's pages.
    // The partner's own pass opens it.
    assert_eq!(scopes("/premium/partner/a"), ["/premium/partner/*"]);
}

/// Two routes selling sessions under the same scope text sell two things: each offer has its own
/// name, which its grants are stored and its tokens signed under, so the cheap one never stands
/// for the dear one and buying one never replaces the other's grant. A name is made of its own
/// route only: removing the cheap route leaves the dear one's name as it was, so grants the cheap
/// one sold never open the dear one.
#[test]
fn sessions_with_the_same_scope_text_have_names_of_their_own() {
    let cheap = serde_json::json!({"method": "GET", "path": "/api/*", "price": "$0.01", "session": {"seconds": 60}});
    let dear = serde_json::json!({"method": "POST", "path": "/api/*", "price": "$5", "session": {"seconds": 60}});
    let docs = serde_json::json!({"path": "/docs/*", "price": "$0.01", "session": {"requests": 3}});
    let names = |config: &Config| -> Vec<String> {
        config
            .routes
            .iter()
            .map(|r| r.session.as_ref().unwrap().name.clone())
            .collect()
    };
    let config = config_with_routes(serde_json::json!([cheap, dear, docs]));
    assert_eq!(
        names(&config),
        [
            "/api/*\nGET /api/*",
            "/api/*\nPOST /api/*",
            "/docs/*\n* /docs/*"
        ]
    );
    let post = x402_edge::paywall::priced_route(&config, "POST", "/api/x").unwrap();
    let offered: Vec<&str> = config
        .sessions_for(post, "/api/x")
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(offered, ["/api/*\nPOST /api/*"]);
    let wallet = wallet();
    let get = x402_edge::paywall::priced_route(&config, "GET", "/api/x").unwrap();
    let grant = get.session.as_ref().unwrap().grant(wallet, 100);
    assert_eq!(grant.scope, "/api/*\nGET /api/*");
    assert!(
        grant.covers("/api/x", 101),
        "the grant's scope is read from its name"
    );
    assert_ne!(
        grant_key(&wallet, &grant.scope),
        grant_key(&wallet, offered[0]),
        "the two are stored apart"
    );
    // Without the cheap route, or with the two in the other order, the dear one keeps its name.
    for routes in [
        serde_json::json!([dear, docs]),
        serde_json::json!([docs, dear, cheap]),
    ] {
        let config = config_with_routes(routes);
        let names = names(&config);
        assert!(names.contains(&"/api/*\nPOST /api/*".to_string()));
        assert_eq!(
            names.contains(&grant.scope),
            names.len() == 3,
            "the cheap grant's name is sold only by the cheap route: {names:?}"
        );
        let post = x402_edge::paywall::priced_route(&config, "POST", "/api/x").unwrap();
        assert_eq!(post.session.as_ref().unwrap().name, "/api/*\nPOST /api/*");
    }
}

/// A route that repeats an earlier one's method and path would never price anything (the first
/// prices every request both cover), and its session would be sold under the same name: refused.
#[test]
fn a_route_repeating_another_s_method_and_path_is_refused() {
    let route = |method: Option<&str>, price: &str| {
        let mut r =
            serde_json::json!({"path": "/api/*", "price": price, "session": {"seconds": 60}});
        if let Some(m) = method {
            r["method"] = m.into();
        }
        r
    };
    let err = try_config_with_routes(serde_json::json!([
        route(Some("post"), "$5"),
        route(Some("POST"), "$9")
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("routes[1]") && err.contains("routes[0]"),
        "{err}"
    );
    assert!(
        try_config_with_routes(serde_json::json!([route(None, "$5"), route(None, "$9")])).is_err()
    );
    // Different methods, or one for any method after one for POST, are different routes.
    assert!(try_config_with_routes(serde_json::json!([
        route(Some("POST"), "$5"),
        route(None, "$9")
    ]))
    .is_ok());
}

/// Every token carries its session's name: a scope and path too long to fit in a token are
/// refused with the configuration, not found out when the tokens issued for them are refused.
#[test]
fn a_session_too_long_to_name_in_a_token_is_refused() {
    let route = |n: usize| {
        let path = format!("/{}/*", "a".repeat(n));
        serde_json::json!([{"path": path, "price": "$0.01", "session": {"seconds": 60}}])
    };
    let config = config_with_routes(route(500));
    let name = &config.routes[0].session.as_ref().unwrap().name;
    assert!(name.len() > 1000 && name.len() <= 1024, "{}", name.len());
    let secret = [7u8; 32];
    let token = issue_token(&secret, &wallet(), name, NOW + 60);
    assert!(token.len() <= MAX_TOKEN_BYTES, "the longest name fits");
    assert!(check_token(&secret, &token, NOW).is_ok());
    let err = try_config_with_routes(route(520)).unwrap_err();
    assert_eq!(err.key, "routes[0].session", "{err}");
}

#[test]
fn a_counted_grant_bought_once_is_counted_once_however_often_it_is_recorded() {
    let mut counts = GrantCounts::new();
    let key = grant_key(&wallet(), "premium");
    let paid = format!(
        "84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e:{}",
        "ab".repeat(32)
    );
    assert!(add_counted_grant(
        &mut counts,
        &key,
        3,
        NOW + 60,
        Some(&paid),
        NOW
    ));
    // The same command again (its first answer lost on the way back): nothing more.
    assert!(!add_counted_grant(
        &mut counts,
        &key,
        3,
        NOW + 60,
        Some(&paid),
        NOW
    ));
    assert_eq!(counts.get(&key), Some(&(3, NOW + 60)));
    // Another payment adds its requests, and the longer time.
    // The same nonce in another token is another payment.
    let again = format!(
        "84532:0x0000000000000000000000000000000000000001:{}",
        "ab".repeat(32)
    );
    assert!(add_counted_grant(
        &mut counts,
        &key,
        3,
        NOW + 90,
        Some(&again),
        NOW
    ));
    assert_eq!(counts.get(&key), Some(&(6, NOW + 90)));
    // A command from a Worker of an earlier version, which names no payment, always adds.
    assert!(add_counted_grant(&mut counts, &key, 1, NOW + 90, None, NOW));
    assert!(add_counted_grant(&mut counts, &key, 1, NOW + 90, None, NOW));
    assert_eq!(counts.get(&key), Some(&(8, NOW + 90)));
    // What a payment is remembered by is no grant's key.
    let other = grant_key(&wallet(), "other");
    assert!(!add_counted_grant(
        &mut counts,
        &other,
        2,
        NOW + 60,
        Some(&paid),
        NOW
    ));
    assert_eq!(counts.get(&other), None);
}

/// A timed grant bought again while time is left on it runs on from the end of that time, not
/// from now; once it has ended, from now. The same payment recorded twice adds its time once.
#[test]
fn a_timed_grant_bought_again_adds_to_the_time_left() {
    let mut counts = GrantCounts::new();
    let key = grant_key(&wallet(), "day");
    let paid = |n: u8| format!("84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e:{n:064x}");
    assert_eq!(
        add_timed_grant(&mut counts, &key, 3600, Some(&paid(1)), NOW),
        NOW + 3600
    );
    // Bought again 10 minutes later: the 50 minutes left are kept, an hour is added.
    let later = NOW + 600;
    assert_eq!(
        add_timed_grant(&mut counts, &key, 3600, Some(&paid(2)), later),
        NOW + 7200
    );
    // The second command sent again after its answer was lost: the end stays.
    assert_eq!(
        add_timed_grant(&mut counts, &key, 3600, Some(&paid(2)), later + 1),
        NOW + 7200
    );
    // Nothing spends a timed grant.
    assert!(!spend_counted_grant(&mut counts, &key, later));
    // The offer changed from a duration to a number of requests, or back: the two kinds of
    // purchase under one grant key stay apart, neither lengthening the other.
    assert!(add_counted_grant(
        &mut counts,
        &key,
        5,
        NOW + 30 * 86_400,
        Some(&paid(9)),
        later
    ));
    assert_eq!(counts.get(&key), Some(&(5, NOW + 30 * 86_400)));
    assert_eq!(
        add_timed_grant(&mut counts, &key, 60, Some(&paid(10)), later),
        NOW + 7260
    );
    assert!(spend_counted_grant(&mut counts, &key, later));
    // Once it has ended (and been dropped, or not yet), a purchase runs from its own time.
    let past = NOW + 9000;
    assert_eq!(
        add_timed_grant(&mut counts, &key, 60, Some(&paid(3)), past),
        past + 60
    );
    drop_ended_grants(&mut counts, past + 61);
    assert_eq!(
        add_timed_grant(&mut counts, &key, 60, Some(&paid(4)), past + 100),
        past + 160
    );
}

/// A counted grant is spent to nothing and given back one request at a time while it lasts; one
/// used up is kept until it ends, so a request given back finds it; one revoked (the counts
/// cleared) gets nothing back, so a request in flight during a revocation cannot bring it back.
#[test]
fn a_counted_grant_is_spent_and_given_back_only_while_held() {
    let mut counts = GrantCounts::new();
    let key = grant_key(&wallet(), "bundle");
    assert!(add_counted_grant(&mut counts, &key, 2, NOW + 60, None, NOW));
    assert!(spend_counted_grant(&mut counts, &key, NOW));
    assert!(spend_counted_grant(&mut counts, &key, NOW));
    assert!(!spend_counted_grant(&mut counts, &key, NOW), "used up");
    drop_ended_grants(&mut counts, NOW + 1);
    assert_eq!(counts.get(&key), Some(&(0, NOW + 60)), "kept until it ends");
    assert!(refund_counted_grant(&mut counts, &key, NOW + 1));
    assert!(
        spend_counted_grant(&mut counts, &key, NOW + 1),
        "the request given back"
    );
    assert!(!refund_counted_grant(&mut counts, &key, NOW + 60), "ended");
    drop_ended_grants(&mut counts, NOW + 60);
    assert_eq!(counts.get(&key), None);
    // Revoked: the counts cleared while a request was in flight; its refund brings nothing back.
    assert!(add_counted_grant(&mut counts, &key, 2, NOW + 60, None, NOW));
    assert!(spend_counted_grant(&mut counts, &key, NOW));
    counts = GrantCounts::new();
    assert!(!refund_counted_grant(&mut counts, &key, NOW + 1));
    assert_eq!(counts.get(&key), None);
    assert!(!spend_counted_grant(&mut counts, &key, NOW + 1));
}

/// A purchase is remembered by its payment for minutes, however short or long its grant: the
/// map of counts, rewritten on every spend, does not grow with each purchase of a long grant.
#[test]
fn a_purchase_is_remembered_by_its_payment_for_minutes() {
    let mut counts = GrantCounts::new();
    let key = grant_key(&wallet(), "premium");
    let day = NOW + 86_400;
    assert!(add_counted_grant(&mut counts, &key, 5, day, Some("a"), NOW));
    assert_eq!(counts.get(&key), Some(&(5, day)));
    assert_eq!(counts.get("paid:a"), Some(&(1, NOW + PAID_MARKER_SECONDS)));
    // Sent again within those minutes: nothing more.
    assert!(!add_counted_grant(
        &mut counts,
        &key,
        5,
        day,
        Some("a"),
        NOW + 30
    ));
    // A grant shorter than that keeps its marker as long: a payment owed its content, served by
    // a repeat minutes later, records its grant again, and must not add it twice.
    assert!(add_counted_grant(
        &mut counts,
        &key,
        1,
        NOW + 60,
        Some("b"),
        NOW
    ));
    assert_eq!(counts.get("paid:b"), Some(&(1, NOW + PAID_MARKER_SECONDS)));
    assert!(!add_counted_grant(
        &mut counts,
        &key,
        1,
        NOW + 400,
        Some("b"),
        NOW + 300
    ));
    assert_eq!(counts.get(&key), Some(&(6, day)));
}

/// Revocation deletes a wallet's grants by name, one per session the configuration sells: the
/// keys its sales write, whatever a lagging listing of the store says.
#[test]
fn a_revocation_names_every_grant_the_configuration_can_sell() {
    let config = config_with_routes(serde_json::json!([
        {"path": "/articles/*", "price": "$0.01", "session": {"seconds": 3600}},
        {"path": "/guides/*", "price": "$0.01"},
        {"path": "/api/*", "price": "$0.05", "session": {"scope": "/api/*", "requests": 10}},
    ]));
    let w = wallet();
    // The names a sale stores its grant under: the scope, then the method and path of the route
    // that sells it (the key format itself is checked by `grant_key_shape`).
    let sold = vec![
        grant_key(&w, "/articles/*\n* /articles/*"),
        grant_key(&w, "/api/*\n* /api/*"),
    ];
    assert_eq!(config.grant_keys(&w), sold);
    let prefix = format!("grant:{}:", w.to_lower_hex());
    assert!(config.grant_keys(&w).iter().all(|k| k.starts_with(&prefix)));
    // Another wallet's keys are its own.
    let other = Address::parse("0x209693Bc6afc0C5328bA36FaF03C514EF312287C").unwrap();
    assert!(config
        .grant_keys(&other)
        .iter()
        .all(|k| !config.grant_keys(&w).contains(k)));
    // Nothing sold, nothing to name.
    let unsold = config_with_routes(serde_json::json!([{"path": "/guides/*", "price": "$0.01"}]));
    assert!(unsold.grant_keys(&w).is_empty());
}
