//! Web Bot Auth (RFC 9421 HTTP message signatures of crawlers): `crawlers::parse_signature` with
//! any `Signature-Input`, `Signature` and `Signature-Agent`, then `crawlers::verify` against the
//! vectors' key; plus the key directory and price header parsers.
//!
//! Input: `[mode] [selector] fields…`, mode (mod 4):
//! - 0: a request: fields `method`, `authority`, `target-uri`, `path`, then header name / value
//!   pairs (names matched case-insensitively, repeated fields joined with ", ");
//! - 1: a request of `tests/vectors/web-bot-auth.json` (selector mod 7; the last two are the
//!   Cloudflare crate's) with one edit per field (`[what] [how] value…`, `what` mod 9: method,
//!   authority, target-uri, path, signature-input, signature, signature-agent,
//!   crawler-exact-price, crawler-max-price). Selector bit 7: sign the edited request's base again
//!   with the vectors' key (unless the signature itself was edited);
//! - 2: the body is a key directory for `parse_directory`;
//! - 3: the body is a `crawler-price` value for `parse_crawler_price` (decimals: the selector
//!   mod 40), and an authority / agent URI for `normalize_authority` and `directory_url`.
//!
//! Invariants besides "no panic": the signature base has exactly one line per covered
//! component plus the `@signature-params` line (no header value can add a line to what is
//! signed), and covers the authority; a verified signature is inside its validity window and was
//! made by the key it names; `crawler_price` output parses back to the same amount.

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use x402_edge::crawlers::{self, Jwks, SignedRequest, CREATED_SKEW_SECONDS, MAX_VALIDITY_SECONDS};
use x402_edge_fuzz::*;

/// A request: method, authority, target URI, path, headers.
#[derive(Debug, Clone, Default)]
struct Req {
    method: String,
    authority: String,
    target_uri: String,
    path: String,
    headers: Vec<(String, String)>,
    now: u64,
}

impl Req {
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn set(&mut self, name: &str, value: Option<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            self.headers.push((name.to_string(), v));
        }
    }

    fn parse(&self) -> Result<Option<crawlers::ParsedSignature>, crawlers::WbaError> {
        let lookup = |name: &str| self.header(name);
        crawlers::parse_signature(&SignedRequest {
            method: &self.method,
            authority: &self.authority,
            target_uri: &self.target_uri,
            path: &self.path,
            header: &lookup,
        })
    }
}

struct Fixtures {
    requests: Vec<Req>,
    keys: Jwks,
    signer: ed25519_dalek::SigningKey,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(include_str!("../../tests/vectors/web-bot-auth.json"))
                .expect("web-bot-auth vectors");
        let vector_now = doc["now"].as_u64().expect("now");
        let mut requests = Vec::new();
        for (list, default_now) in [
            ("requests", Some(vector_now)),
            ("cloudflare_rust_crate", None),
        ] {
            for r in doc[list].as_array().expect("vector list") {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                requests.push(Req {
                    method: s("method"),
                    authority: s("authority"),
                    target_uri: s("target_uri"),
                    path: s("path"),
                    headers: r["headers"]
                        .as_object()
                        .expect("headers")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    now: default_now.or(r["now"].as_u64()).expect("a vector's now"),
                });
            }
        }
        let d: [u8; 32] = URL_SAFE_NO_PAD
            .decode(doc["key"]["d"].as_str().expect("key d"))
            .expect("d is base64url")
            .try_into()
            .expect("32 bytes");
        Fixtures {
            requests,
            keys: crawlers::parse_directory(&wba_directory_json()).expect("directory"),
            signer: ed25519_dalek::SigningKey::from_bytes(&d),
        }
    })
}

const EDITABLE: [&str; 9] = [
    "method",
    "authority",
    "target-uri",
    "path",
    "signature-input",
    "signature",
    "signature-agent",
    "crawler-exact-price",
    "crawler-max-price",
];

fuzz_target!(|data: &[u8]| {
    let input = Framed::new(data);
    match input.mode % 4 {
        0 => {
            let f = input.strings();
            let field = |i: usize| f.get(i).cloned().unwrap_or_default();
            let mut req = Req {
                method: field(0),
                authority: field(1),
                target_uri: field(2),
                path: field(3),
                now: WBA_NOW,
                ..Req::default()
            };
            for pair in f.get(4..).unwrap_or(&[]).chunks(2) {
                req.headers
                    .push((pair[0].clone(), pair.get(1).cloned().unwrap_or_default()));
            }
            check(&req);
        }
        1 => mutated(&input),
        2 => directory(&lossy(input.body())),
        _ => prices(&input),
    }
});

fn mutated(input: &Framed<'_>) {
    let f = fixtures();
    let mut req = f.requests[usize::from(input.selector % 7) % f.requests.len()].clone();
    let mut signature_edited = false;
    for field in input.fields() {
        let Some((&what, rest)) = field.split_first() else {
            continue;
        };
        let (how, value) = match rest.split_first() {
            Some((&h, v)) => (EditKind::from_byte(h), v),
            None => (EditKind::Remove, &[][..]),
        };
        let which = usize::from(what) % EDITABLE.len();
        let current = match which {
            0 => Some(req.method.clone()),
            1 => Some(req.authority.clone()),
            2 => Some(req.target_uri.clone()),
            3 => Some(req.path.clone()),
            _ => req.header(EDITABLE[which]),
        };
        let new = edited(current.map(Value::String).as_ref(), how, value).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        });
        // Non-string edits are written as JSON text; repeated, they double the value's length
        // each time (escaping). Past twice the header limit, the value proves nothing more.
        if new
            .as_ref()
            .is_some_and(|n| n.len() > 2 * crawlers::MAX_HEADER_BYTES)
        {
            continue;
        }
        match which {
            0 => req.method = new.unwrap_or_default(),
            1 => req.authority = new.unwrap_or_default(),
            2 => req.target_uri = new.unwrap_or_default(),
            3 => req.path = new.unwrap_or_default(),
            _ => req.set(EDITABLE[which], new),
        }
        signature_edited |= which == 5;
    }
    if input.selector & 128 != 0 && !signature_edited {
        if let Ok(Some(parsed)) = req.parse() {
            let sig = f.signer.sign(parsed.signature_base.as_bytes());
            let value = format!("{}=:{}:", parsed.label, STANDARD.encode(sig.to_bytes()));
            req.set("signature", Some(value));
        }
    }
    check(&req);
}

fn check(req: &Req) {
    let parsed = match req.parse() {
        Ok(Some(p)) => p,
        Ok(None) => {
            assert!(req.header("signature-input").is_none() && req.header("signature").is_none());
            return;
        }
        Err(e) => {
            assert!(!e.code().is_empty() && !e.message().is_empty());
            let _ = e.crawler_error();
            return;
        }
    };
    let base = &parsed.signature_base;
    assert_eq!(
        base.matches('\n').count(),
        parsed.components.len(),
        "a line was added to the signature base: {base:?}"
    );
    assert!(base
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("\"@signature-params\": (")));
    assert!(parsed.covers("@authority") || parsed.covers("@target-uri"));
    // Printable ASCII; a tab inside a header value is legal HTTP (and signed as is).
    assert!(
        base.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) || b == b'\n' || b == b'\t'),
        "{base:?}"
    );
    if let Some(url) = &parsed.agent_url {
        assert!(url.starts_with("https://") || url.starts_with("http://"));
        assert!(parsed.agent.is_some());
    }
    let f = fixtures();
    match crawlers::verify(&parsed, &f.keys, req.now) {
        Ok(agent) => {
            assert!(parsed.created <= req.now + CREATED_SKEW_SECONDS);
            assert!(parsed.expires > req.now && parsed.expires > parsed.created);
            assert!(parsed.expires - parsed.created <= MAX_VALIDITY_SECONDS);
            assert!(f.keys.find(&agent.keyid).is_some());
            assert_eq!(agent.components, parsed.components);
        }
        Err(e) => assert!(!e.code().is_empty()),
    }
}

fn directory(body: &str) {
    if let Ok(keys) = crawlers::parse_directory(body) {
        assert!(!keys.keys.is_empty() && keys.keys.len() <= crawlers::MAX_DIRECTORY_KEYS);
        for k in &keys.keys {
            assert_eq!(k.thumbprint, crawlers::jwk_thumbprint(&k.x));
            assert!(keys.find(&k.thumbprint).is_some());
        }
    }
}

fn prices(input: &Framed<'_>) {
    let decimals = input.selector % 40;
    let s = lossy(input.body());
    if let Ok(amount) = crawlers::parse_crawler_price(&s, decimals) {
        if let Ok(again) =
            crawlers::parse_crawler_price(&crawlers::crawler_price(amount, decimals), decimals)
        {
            assert_eq!(again, amount, "{s:?}");
        }
    }
    let mut n = [0u8; 16];
    for (d, b) in n.iter_mut().zip(input.body()) {
        *d = *b;
    }
    let amount = u128::from_le_bytes(n);
    let text = crawlers::crawler_price(amount, decimals);
    if let Ok(back) = crawlers::parse_crawler_price(&text, decimals) {
        assert_eq!(back, amount, "{text}");
    }
    let _ = crawlers::check_crawler_intent(Some(&s), None, amount, decimals);
    let _ = crawlers::check_crawler_intent(None, Some(&s), amount, decimals);
    let _ = crawlers::normalize_authority(&s, Some("https"));
    if let Some(url) = crawlers::directory_url(&s) {
        assert!(url.ends_with(crawlers::DIRECTORY_PATH));
    }
}
