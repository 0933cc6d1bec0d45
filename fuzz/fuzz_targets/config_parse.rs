//! Configuration parsing: `config::Config::from_json` on any string, and on JSON built from the
//! fuzz bytes out of the configuration's own vocabulary (which reaches validation far more often
//! than random text does).
//!
//! Input: `[mode] body…`, mode (mod 2):
//! - 0: the body is the JSON text (seeds: the `[vars.X402]` tables of `wrangler.toml` and the
//!   tests' configurations);
//! - 1: the body drives a builder (`arbitrary::Unstructured`) that writes a configuration from
//!   known keys, networks, addresses, prices and patterns, with fuzz strings mixed in.
//!
//! Invariants besides "no panic": parsing is deterministic; an error names a key and says what is
//! wrong; an accepted configuration has a facilitator if anything is priced, offers whose
//! precomputed terms match their values exactly, timeouts and deferred settings in their ranges;
//! every route covers its own pattern text; the 402 of every priced route renders.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use x402_edge::config::Config;
use x402_edge::evm::Address;
use x402_edge::networks;
use x402_edge::paywall::{self, SiwxChallenge};
use x402_edge::reason::Reason;
use x402_edge_fuzz::lossy;

fuzz_target!(|data: &[u8]| {
    let mode = data.first().copied().unwrap_or(0) % 2;
    let body = data.get(1..).unwrap_or(&[]);
    let text = match mode {
        0 => lossy(body),
        _ => match build(&mut Unstructured::new(body)) {
            Ok(v) => v.to_string(),
            Err(_) => return,
        },
    };
    check(&text);
});

fn check(text: &str) {
    let parsed = Config::from_json(text);
    assert_eq!(
        parsed,
        Config::from_json(text),
        "parsing is not deterministic"
    );
    let config = match parsed {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.problem.is_empty(), "an error without a problem: {e:?}");
            // "X402.<key>: …", or "X402: …" when the whole document is at fault.
            let shown = e.to_string();
            assert!(
                shown.starts_with(if e.key.is_empty() { "X402: " } else { "X402." }),
                "{shown}"
            );
            return;
        }
    };
    let d = &config.deferred;
    assert!((1..=3600).contains(&d.batch_seconds));
    assert!((10..=3600).contains(&d.safety_margin_seconds));
    for (_, url) in &config.rpc {
        assert!(url.starts_with("http://") || url.starts_with("https://"));
    }
    if let Some(f) = &config.facilitator {
        assert!(!f.url.ends_with('/') && f.timeout_ms > 0);
    }
    for route in &config.routes {
        if let Some(m) = &route.method {
            assert_eq!(*m, m.to_ascii_uppercase());
        }
        // A route covers the text of its own pattern.
        let method = route.method.as_deref().unwrap_or("GET");
        assert!(
            route.covers(method, route.pattern.as_str()),
            "route {} does not cover its own pattern {:?}",
            route.index,
            route.pattern.as_str()
        );
        assert!(config.route_for(method, route.pattern.as_str()).is_some());
        if route.is_free() {
            continue;
        }
        assert!(
            config.facilitator.is_some(),
            "a priced route without a facilitator"
        );
        for offer in &route.offers {
            let r = &offer.requirements;
            assert!(!offer.amount.is_zero(), "a zero price");
            assert_eq!(r.amount, offer.amount.to_string());
            assert_eq!(r.pay_to, offer.pay_to.to_checksum());
            assert_eq!(Address::parse(&r.pay_to).ok(), Some(offer.pay_to));
            assert_eq!(Address::parse(&r.asset).ok(), Some(offer.asset.address));
            assert_ne!(offer.pay_to, Address::ZERO);
            assert_eq!(
                networks::parse_network(&r.network).map(|n| n.chain_id),
                Some(offer.asset.network.chain_id)
            );
            assert!((30..=86_400).contains(&offer.max_timeout_seconds));
            assert_eq!(r.max_timeout_seconds, offer.max_timeout_seconds);
            assert_eq!(
                (&r.extra.name, &r.extra.version),
                (&offer.asset.name, &offer.asset.version)
            );
            let _ = paywall::micro_usd(offer);
            let _ = offer.v1("https://x.example/a", &route.description, &route.mime_type);
        }
        if let Some(session) = &route.session {
            assert!(session.seconds.is_some() != session.requests.is_some());
            assert!(session.scope.matches(session.scope.as_str()));
        }
        for siwx in [
            None,
            Some(SiwxChallenge {
                nonce: [7; 16],
                now: 1_750_000_000,
            }),
        ] {
            let reply = paywall::challenge(
                route,
                "https://x.example/a",
                &Reason::PaymentRequired.into(),
                siwx.as_ref(),
            );
            assert_eq!(reply.status, 402);
            serde_json::from_str::<Value>(&reply.body).expect("the 402 body is JSON");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The builder.

const NETWORKS: &[&str] = &[
    "eip155:84532",
    "eip155:8453",
    "base",
    "base-sepolia",
    "eip155:137",
    "polygon",
    "eip155:42161",
    "eip155:31337",
    "eip155:1",
    "eip155:",
    "eip155:0",
    "eip155:18446744073709551615",
    "eip155:99999999999999999999",
    "solana:mainnet",
    "EIP155:8453",
    "",
];
const ADDRESSES: &[&str] = &[
    "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "0x209693bc6afc0c5328ba36faf03c514ef312287c",
    "0x209693BC6AFC0C5328BA36FAF03C514EF312287C",
    "0x209693Bc6afc0C5328bA36FaF03C514EF312287c",
    "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "0x0000000000000000000000000000000000000000",
    "0x1234",
    "209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "0X209693Bc6afc0C5328bA36FaF03C514EF312287C",
];
const PRICES: &[&str] = &[
    "$0.01",
    "$1",
    "$0",
    "$0.0000001",
    "$1.",
    "$.5",
    "$-1",
    "$1e3",
    "$99999999999999999999999999999999999999999999999999999999999999999999999999999999",
    "10000",
    "0",
    "1.5",
    "-1",
    "",
    "$",
    "115792089237316195423570985008687907853269984665640564039457584007913129639935",
    "115792089237316195423570985008687907853269984665640564039457584007913129639936",
    "USDC 1",
];
const PATHS: &[&str] = &[
    "/",
    "/*",
    "/articles/*",
    "/a/*/c",
    "/users/:id",
    "/users/[id]/posts",
    "/%61rticles/x",
    "/a*",
    "articles",
    "/a b",
    "/%",
    "/%zz/*",
    "//x//",
    "/Ä/ß",
    "/x?y#z",
];
const METHODS: &[&str] = &[
    "GET",
    "get",
    "Post",
    "HEAD",
    "OPTIONS",
    "DELETE",
    "FETCH",
    "",
    "G\u{130}T",
];
const URLS: &[&str] = &[
    "https://facilitator.example.com",
    "http://127.0.0.1:4021/",
    "https://",
    "ftp://x",
    "http:// x",
    "https://x.example///",
    "http://",
    "https://a.example/path?q",
];

fn pick(u: &mut Unstructured<'_>, list: &[&str]) -> Result<String> {
    // Now and then a fuzz string instead of a known value.
    if u.ratio(1, 8)? {
        return Ok(u.arbitrary::<&str>()?.to_string());
    }
    Ok(u.choose(list)?.to_string())
}

/// Sets `key` half of the time, to what `f` makes.
fn maybe<'a>(
    u: &mut Unstructured<'a>,
    obj: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Unstructured<'a>) -> Result<Value>,
) -> Result<()> {
    if u.arbitrary()? {
        let v = f(u)?;
        obj.insert(key.into(), v);
    }
    Ok(())
}

fn string(u: &mut Unstructured<'_>, list: &[&str]) -> Result<Value> {
    Ok(Value::String(pick(u, list)?))
}

fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=5)? {
        0 => json!(u.int_in_range(0u64..=100_000)?),
        1 => json!(u.arbitrary::<u64>()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => json!(u.arbitrary::<f64>()?),
        4 => json!(u.int_in_range(25u64..=100)?),
        _ => json!(pick(u, &["30", "1", "x"])?),
    })
}

fn accepts(u: &mut Unstructured<'_>) -> Result<Value> {
    let n = u.int_in_range(0..=3)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(if u.ratio(1, 3)? {
            json!({"network": pick(u, NETWORKS)?, "asset": pick(u, &["USDC", "ODL", "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", "usdc", ""])?})
        } else {
            Value::String(pick(u, NETWORKS)?)
        });
    }
    Ok(Value::Array(out))
}

/// Who pays (`payers`, per-class access and `trustBrowsers`) and whether the origin reads
/// `_method` (`methodParameter`), at the top level or on a route.
fn access(u: &mut Unstructured<'_>, obj: &mut Map<String, Value>) -> Result<()> {
    if u.ratio(1, 3)? {
        maybe(u, obj, "payers", |u| {
            string(u, &["everyone", "bots", "agents", "nobody"])
        })?;
        for class in ["humans", "crawlers", "agents"] {
            maybe(u, obj, class, |u| {
                string(u, &["allow", "charge", "block", "Allow"])
            })?;
        }
        maybe(u, obj, "trustBrowsers", |u| Ok(Value::Bool(u.arbitrary()?)))?;
        maybe(u, obj, "methodParameter", |u| {
            Ok(Value::Bool(u.arbitrary()?))
        })?;
    }
    Ok(())
}

fn build(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut top = Map::new();
    maybe(u, &mut top, "payTo", |u| {
        Ok(Value::String(pick(u, ADDRESSES)?))
    })?;
    if u.arbitrary()? {
        top.insert("accepts".into(), accepts(u)?);
    }
    maybe(u, &mut top, "origin", |u| Ok(Value::String(pick(u, URLS)?)))?;
    if u.ratio(7, 8)? {
        let mut f = Map::new();
        f.insert("url".into(), Value::String(pick(u, URLS)?));
        maybe(u, &mut f, "timeoutMs", number)?;
        top.insert("facilitator".into(), Value::Object(f));
    }
    if u.arbitrary()? {
        let n = u.int_in_range(0..=2)?;
        let mut assets = Vec::new();
        for _ in 0..n {
            let mut a = Map::new();
            a.insert("network".into(), Value::String(pick(u, NETWORKS)?));
            a.insert("address".into(), Value::String(pick(u, ADDRESSES)?));
            a.insert(
                "name".into(),
                Value::String(pick(u, &["USD Coin", "USDC", "Other Dollar", ""])?),
            );
            a.insert("version".into(), Value::String(pick(u, &["2", "1", ""])?));
            a.insert(
                "decimals".into(),
                json!(u.choose(&[6u64, 18, 0, 2, 36, 37, 255, 256])?),
            );
            maybe(u, &mut a, "symbol", |u| {
                Ok(Value::String(pick(u, &["USDC", "ODL", "usdc"])?))
            })?;
            assets.push(Value::Object(a));
        }
        top.insert("assets".into(), Value::Array(assets));
    }
    maybe(u, &mut top, "maxTimeoutSeconds", number)?;
    maybe(u, &mut top, "settlement", |u| {
        Ok(Value::String(pick(
            u,
            &["immediate", "deferred", "Deferred", "later"],
        )?))
    })?;
    if u.arbitrary()? {
        let mut d = Map::new();
        maybe(u, &mut d, "creditLimit", |u| {
            Ok(Value::String(pick(u, PRICES)?))
        })?;
        maybe(u, &mut d, "batchSeconds", number)?;
        maybe(u, &mut d, "safetyMarginSeconds", number)?;
        maybe(u, &mut d, "overCredit", |u| {
            Ok(Value::String(pick(u, &["immediate", "refuse", "never"])?))
        })?;
        top.insert("deferred".into(), Value::Object(d));
    }
    access(u, &mut top)?;
    if u.ratio(1, 4)? {
        let mut rpc = Map::new();
        rpc.insert(pick(u, NETWORKS)?, Value::String(pick(u, URLS)?));
        top.insert("rpc".into(), Value::Object(rpc));
    }
    let n = u.int_in_range(0..=4)?;
    let mut routes = Vec::new();
    for _ in 0..n {
        let mut r = Map::new();
        r.insert("path".into(), Value::String(pick(u, PATHS)?));
        maybe(u, &mut r, "method", |u| {
            Ok(Value::String(pick(u, METHODS)?))
        })?;
        if u.ratio(1, 5)? {
            r.insert("free".into(), Value::Bool(u.arbitrary()?));
        }
        if u.ratio(7, 8)? {
            let price = if u.ratio(1, 4)? {
                number(u)?
            } else {
                Value::String(pick(u, PRICES)?)
            };
            r.insert("price".into(), price);
        }
        maybe(u, &mut r, "payTo", |u| {
            Ok(Value::String(pick(u, ADDRESSES)?))
        })?;
        if u.ratio(1, 3)? {
            r.insert("accepts".into(), accepts(u)?);
        }
        maybe(u, &mut r, "description", |u| {
            Ok(Value::String(u.arbitrary::<&str>()?.into()))
        })?;
        maybe(u, &mut r, "mimeType", |u| {
            Ok(Value::String(pick(u, &["text/html", "application/json"])?))
        })?;
        maybe(u, &mut r, "maxTimeoutSeconds", number)?;
        maybe(u, &mut r, "settlement", |u| {
            Ok(Value::String(pick(u, &["immediate", "deferred"])?))
        })?;
        access(u, &mut r)?;
        if u.ratio(1, 4)? {
            let mut sess = Map::new();
            maybe(u, &mut sess, "scope", |u| string(u, PATHS))?;
            maybe(u, &mut sess, "seconds", number)?;
            maybe(u, &mut sess, "requests", number)?;
            r.insert("session".into(), Value::Object(sess));
        }
        if u.ratio(1, 4)? {
            let mut d = Map::new();
            maybe(u, &mut d, "discoverable", |u| {
                Ok(Value::Bool(u.arbitrary()?))
            })?;
            maybe(u, &mut d, "input", |_| Ok(json!({"city": "Paris"})))?;
            maybe(u, &mut d, "inputSchema", |_| Ok(json!({"type": "object"})))?;
            maybe(u, &mut d, "bodyType", |u| {
                string(u, &["json", "form-data", "text", "xml"])
            })?;
            maybe(u, &mut d, "output", |u| {
                Ok(Value::String(u.arbitrary::<&str>()?.into()))
            })?;
            maybe(u, &mut d, "outputSchema", |_| Ok(json!(true)))?;
            r.insert("discovery".into(), Value::Object(d));
        }
        if u.ratio(1, 16)? {
            r.insert(u.arbitrary::<&str>()?.into(), Value::Null);
        }
        routes.push(Value::Object(r));
    }
    top.insert("routes".into(), Value::Array(routes));
    Ok(Value::Object(top))
}
