//! Writes the seed corpora of the fuzz targets, from the project's vectors
//! (`tests/vectors/x402-vectors.json`, `tests/vectors/web-bot-auth.json`) and `wrangler.toml`, and
//! checks first that every fixture the targets rely on is still valid (a fixture that no longer
//! verifies would silently keep the fuzzer away from the deep checks).
//!
//!     fuzz/target/<triple>/release/seed_corpora [CORPUS_DIR]    default: fuzz/corpus
//!
//! Seeds are named after what they are and overwritten on every run; whatever else the fuzzer
//! has added to a corpus directory is left alone.
//!
//! It is built by `cargo fuzz build` along with the targets, with the same instrumentation, so it
//! is shaped as one: libFuzzer's `main` calls its `init`, which writes the corpora and exits
//! before any fuzzing. (A plain `main` would not link without a sanitizer runtime, and building
//! it separately without instrumentation would compile every dependency twice.)

#![no_main]

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use x402_edge::config::Config;
use x402_edge::evm::Address;
use x402_edge::paywall::{self, Decision, Incoming};
use x402_edge::session;
use x402_edge::siwx;
use x402_edge::x402::codec;
use x402_edge_fuzz::*;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Corpus {
    dir: PathBuf,
    count: usize,
}

impl Corpus {
    fn new(base: &Path, target: &str) -> Corpus {
        let dir = base.join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Corpus { dir, count: 0 }
    }

    fn add(&mut self, name: &str, bytes: &[u8]) {
        let file = self.dir.join(format!("seed-{name}"));
        fs::write(&file, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        self.count += 1;
    }
}

fn read_json(rel: &str) -> Value {
    let path = Path::new(ROOT).join(rel);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn b64(v: &Value) -> String {
    STANDARD.encode(v.to_string())
}

libfuzzer_sys::fuzz_target!(init: finish(generate()), |_data: &[u8]| {});

/// Ends the process before libFuzzer starts fuzzing.
fn finish(code: i32) {
    std::process::exit(code);
}

/// Writes every corpus; the process exit code.
fn generate() -> i32 {
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let x402 = read_json("tests/vectors/x402-vectors.json");
    let wba = read_json("tests/vectors/web-bot-auth.json");
    let wrangler = wrangler_configs();

    if let Err(e) = check_fixtures(&x402, &wba) {
        eprintln!("seed_corpora: a fuzz fixture is broken: {e}");
        eprintln!("(update fuzz/src/lib.rs so the targets start from valid inputs again)");
        return 1;
    }

    let mut total = 0;
    for (target, write) in [
        (
            "header_decode",
            header_decode as fn(&mut Corpus, &Value, &Value, &[(String, Value)]),
        ),
        ("verify_payment", verify_payment),
        ("siwx_parse", siwx_parse),
        ("config_parse", config_parse),
        ("crawler_signature", crawler_signature),
        ("session_token", session_token),
        ("path_pattern", path_pattern),
    ] {
        let mut c = Corpus::new(&base, target);
        write(&mut c, &x402, &wba, &wrangler);
        println!("{target}: {} seeds in {}", c.count, c.dir.display());
        total += c.count;
    }
    println!("{total} seeds");
    0
}

/// The `[vars.X402]` tables of `wrangler.toml` (top level and every environment), as JSON.
fn wrangler_configs() -> Vec<(String, Value)> {
    let path = Path::new(ROOT).join("wrangler.toml");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("wrangler.toml: {e}"));
    let mut out = Vec::new();
    if let Some(v) = doc.get("vars").and_then(|v| v.get("X402")) {
        out.push((
            "wrangler".to_string(),
            serde_json::to_value(v).expect("TOML to JSON"),
        ));
    }
    if let Some(envs) = doc.get("env").and_then(toml::Value::as_table) {
        for (name, env) in envs {
            if let Some(v) = env.get("vars").and_then(|v| v.get("X402")) {
                out.push((
                    format!("wrangler-{name}"),
                    serde_json::to_value(v).expect("TOML to JSON"),
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Fixture checks.

fn check_fixtures(x402: &Value, wba: &Value) -> Result<(), String> {
    // The constants in lib.rs are the vectors'.
    let spec = &x402["spec_example"];
    let gen = &x402["generated"];
    let same = |what: &str, a: &Value, b: &str| {
        (a.as_str() == Some(b))
            .then_some(())
            .ok_or(format!("{what} differs from the vectors"))
    };
    same("spec signature", &spec["signature"], SPEC_SIGNATURE)?;
    same("spec from", &spec["authorization"]["from"], SPEC_FROM)?;
    same(
        "generated signature",
        &gen["base-sepolia"]["signature"],
        GEN_SIGNATURE,
    )?;
    same(
        "SIWE signature",
        &gen["siwe_no_statement"]["signature"],
        SIWE_NO_STATEMENT_SIGNATURE,
    )?;
    same(
        "SIWE signature",
        &gen["siwe_with_statement"]["signature"],
        SIWE_WITH_STATEMENT_SIGNATURE,
    )?;
    same("web-bot-auth key", &wba["key"]["x"], WBA_X)?;

    let config = payment_config();
    for v1 in [false, true] {
        for generated in [false, true] {
            let mut p = base_payment(v1, generated);
            expect_paid(
                config,
                &b64(&p),
                "/paid/weather",
                &format!("v1={v1} generated={generated}"),
            )?;
            expect_paid(
                config,
                &b64(&p),
                "/multi/x",
                &format!("/multi v1={v1} generated={generated}"),
            )?;
            if generated {
                resign_payment(&mut p, 0);
                expect_paid(config, &b64(&p), "/paid/weather", "re-signed")?;
            }
        }
    }

    for with_statement in [false, true] {
        let p = siwx::parse_header(&b64(&siwx_payload(with_statement)))
            .map_err(|e| format!("SIWX vector: {e}"))?;
        let vec = &gen[if with_statement {
            "siwe_with_statement"
        } else {
            "siwe_no_statement"
        }];
        if Some(siwx::message(&p).as_str()) != vec["message"].as_str() {
            return Err("the SIWX message differs from the vector's".into());
        }
        siwx::verify(&p, SIWX_URL, SIWX_NOW, siwx::DEFAULT_MAX_AGE_SECONDS)
            .map_err(|e| format!("SIWX vector does not verify: {e}"))?;
    }

    let token = forge_token(
        "v1",
        br#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/x/*","exp":1750000600}"#,
    );
    session::check_token(SESSION_SECRET, &token, SESSION_NOW).map_err(|e| {
        format!("a token MACed like issue_token does is refused ({e}): the MAC label changed?")
    })?;

    let keys = x402_edge::crawlers::parse_directory(&wba_directory_json())
        .map_err(|e| format!("the web-bot-auth directory: {}", e.message()))?;
    for r in wba["requests"].as_array().into_iter().flatten() {
        let header = |name: &str| {
            r["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        };
        let s = |k: &str| r[k].as_str().unwrap_or_default();
        let parsed = x402_edge::crawlers::parse_signature(&x402_edge::crawlers::SignedRequest {
            method: s("method"),
            authority: s("authority"),
            target_uri: s("target_uri"),
            path: s("path"),
            header: &header,
        })
        .map_err(|e| format!("web-bot-auth vector {:?}: {}", s("name"), e.message()))?
        .ok_or("a web-bot-auth vector is unsigned")?;
        x402_edge::crawlers::verify(&parsed, &keys, WBA_NOW)
            .map_err(|e| format!("web-bot-auth vector {:?}: {}", s("name"), e.message()))?;
    }
    Ok(())
}

fn expect_paid(config: &Config, header: &str, path: &str, what: &str) -> Result<(), String> {
    let url = format!("https://shop.example.com{path}");
    let req = Incoming {
        method: "GET",
        url: &url,
        path,
        payment_signature: Some(header),
        x_payment: None,
        preflight_method: None,
        siwx_nonce: None,
    };
    match paywall::decide(config, &req, SPEC_NOW) {
        Decision::Paid(_) => Ok(()),
        Decision::Reply(r) => Err(format!(
            "{what}: expected Paid, got {} {}",
            r.status, r.body
        )),
        Decision::Pass => Err(format!("{what}: expected Paid, got Pass")),
    }
}

// ---------------------------------------------------------------------------------------------
// The corpora.

/// Valid payments of every generation and origin, as JSON, with a name.
fn payments() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for v1 in [false, true] {
        for generated in [false, true] {
            let name = format!(
                "{}-{}",
                if generated { "generated" } else { "spec" },
                if v1 { "v1" } else { "v2" }
            );
            out.push((name, base_payment(v1, generated)));
        }
    }
    // A Base payment (the generated vector's Base signature), a Permit2 payload, and a smart-wallet
    // (longer than 65 bytes) signature.
    let mut base = base_payment(false, true);
    base["accepted"]["network"] = json!("eip155:8453");
    base["accepted"]["asset"] = json!(BASE_USDC);
    base["accepted"]["extra"]["name"] = json!("USD Coin");
    out.push(("generated-base-v2".into(), base));
    let mut permit2 = base_payment(false, true);
    permit2["payload"]["permit2Authorization"] = json!({"from": ANVIL0});
    out.push(("permit2".into(), permit2));
    let mut smart = base_payment(false, true);
    smart["payload"]["signature"] = json!(format!("0x{}", "ab".repeat(97)));
    out.push(("smart-wallet".into(), smart));
    out
}

/// The PAYMENT-REQUIRED header of the fixed configuration's 402.
fn terms_header() -> String {
    let req = Incoming {
        method: "GET",
        url: "https://shop.example.com/multi/x",
        path: "/multi/x",
        payment_signature: None,
        x_payment: None,
        preflight_method: None,
        siwx_nonce: None,
    };
    match paywall::decide(payment_config(), &req, SPEC_NOW) {
        Decision::Reply(r) => r
            .headers
            .iter()
            .find(|(k, _)| *k == "PAYMENT-REQUIRED")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn header_decode(c: &mut Corpus, _: &Value, _: &Value, _: &[(String, Value)]) {
    for (name, p) in payments() {
        let json = p.to_string();
        c.add(
            &format!("{name}-std"),
            &[&[0u8][..], encode_header(json.as_bytes(), false).as_bytes()].concat(),
        );
        c.add(
            &format!("{name}-urlsafe"),
            &[&[0u8][..], encode_header(json.as_bytes(), true).as_bytes()].concat(),
        );
        c.add(
            &format!("{name}-json"),
            &[&[1u8][..], json.as_bytes()].concat(),
        );
    }
    c.add("terms", &[&[0u8][..], terms_header().as_bytes()].concat());
    c.add(
        "siwx-json",
        &[&[1u8][..], siwx_payload(true).to_string().as_bytes()].concat(),
    );
    c.add(
        "receipt",
        &[
            &[0u8][..],
            codec::encode_json(
                &json!({"success": true, "transaction": "0x01", "network": "eip155:84532"}),
            )
            .as_bytes(),
        ]
        .concat(),
    );
    c.add("empty", &[0u8]);
    c.add("number-json", &[1u8, b'1', b'e', b'9']);
}

fn verify_payment(c: &mut Corpus, _: &Value, _: &Value, _: &[(String, Value)]) {
    // Requests (mode 0).
    let spec = b64(&base_payment(false, false));
    let spec_v1 = b64(&base_payment(true, false));
    let oversized = "A".repeat(codec::MAX_HEADER_BYTES + 1);
    let requests: Vec<(&str, u8, [&str; 5])> = vec![
        ("unpaid", 0, ["GET", "/paid/weather", "", "", ""]),
        ("paid-v2", 1, ["GET", "/paid/weather", &spec, "", ""]),
        (
            "paid-v1-x-payment",
            2,
            ["GET", "/paid/weather", "", &spec_v1, ""],
        ),
        (
            "both-headers",
            3,
            ["GET", "/paid/weather", &spec, &spec_v1, ""],
        ),
        ("head", 1, ["HEAD", "/paid/weather", &spec, "", ""]),
        ("free", 1, ["GET", "/paid/free", &spec, "", ""]),
        ("multi", 1, ["GET", "/multi/x", &spec, "", ""]),
        ("deferred-post", 1, ["POST", "/deferred/a", &spec, "", ""]),
        ("unpriced", 0, ["GET", "/other", "", "", ""]),
        ("preflight", 4, ["OPTIONS", "/paid/weather", "", "", "get"]),
        ("empty-header", 1, ["GET", "/PAID//%77eather", "", "", ""]),
        (
            "garbage",
            1,
            ["GET", "/paid/weather", "!!!not base64", "", ""],
        ),
        ("oversized", 1, ["GET", "/paid/weather", &oversized, "", ""]),
        ("siwx-challenge", 8, ["GET", "/multi/x", "", "", ""]),
        ("plain-options", 0, ["OPTIONS", "/paid/weather", "", "", ""]),
    ];
    for (name, sel, fields) in requests {
        let f: Vec<&[u8]> = fields.iter().map(|s| s.as_bytes()).collect();
        c.add(&format!("request-{name}"), &frame(0, sel, &f));
    }
    // Mutations (mode 1): every base payment, no edit; then targeted edits.
    for sel in 0..=255u8 {
        // The interesting selector bits: v1, generated, re-sign, domain, carrier, encoding, path.
        if sel & 0b0001_1000 != 0 && sel & 4 == 0 {
            continue;
        }
        if sel.count_ones() > 4 {
            continue;
        }
        c.add(&format!("mutate-{sel:03}"), &frame(1, sel, &[]));
    }
    let edits: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "valid-before-minus-1",
            0b110,
            edit(21, EditKind::Near, &[0xff]),
        ),
        (
            "valid-before-plus-600",
            0b110,
            edit(21, EditKind::Near, &600i64.to_le_bytes()),
        ),
        (
            "valid-after-plus-12",
            0b110,
            edit(20, EditKind::Near, &[12]),
        ),
        ("value-plus-1", 0b110, edit(19, EditKind::Near, &[1])),
        ("from-lowercase", 0b110, edit(17, EditKind::Recase, &[0])),
        ("to-uppercase", 0b110, edit(18, EditKind::Recase, &[1])),
        ("nonce-short", 0b110, edit(22, EditKind::Hex, &[1; 31])),
        ("signature-66", 0b010, edit(15, EditKind::Hex, &[7; 66])),
        ("amount-huge", 0b010, edit(6, EditKind::Digits, &[9; 90])),
        ("version-3", 0b010, edit(0, EditKind::Unsigned, &[3])),
        ("extra-name", 0b010, edit(11, EditKind::String, b"USD Coin")),
        (
            "transfer-method",
            0b010,
            edit(13, EditKind::String, b"permit2"),
        ),
        (
            "timeout-float",
            0b010,
            edit(9, EditKind::Float, &65.0f64.to_le_bytes()),
        ),
        (
            "network-v1-name",
            0b011,
            edit(2, EditKind::String, b"eip155:84532"),
        ),
        ("pay-to-other", 0b010, edit(8, EditKind::Hex, &[0x11; 20])),
        ("asset-other", 0b010, edit(7, EditKind::Hex, &[0x22; 20])),
        ("to-other", 0b110, edit(18, EditKind::Hex, &[0x33; 20])),
        (
            "valid-before-minus-50",
            0b110,
            edit(21, EditKind::Near, &(-50i64).to_le_bytes()),
        ),
        (
            "valid-before-2-pow-64",
            0b110,
            edit(21, EditKind::String, b"18446744073709551616"),
        ),
    ];
    for (name, sel, e) in edits {
        c.add(&format!("edit-{name}"), &frame(1, sel, &[&e]));
    }
}

fn siwx_parse(c: &mut Corpus, _: &Value, _: &Value, _: &[(String, Value)]) {
    for with_statement in [false, true] {
        let name = if with_statement {
            "statement"
        } else {
            "no-statement"
        };
        let json = siwx_payload(with_statement).to_string();
        c.add(
            &format!("{name}-std"),
            &frame(0, 0, &[encode_header(json.as_bytes(), false).as_bytes()]),
        );
        c.add(
            &format!("{name}-urlsafe"),
            &frame(0, 0, &[encode_header(json.as_bytes(), true).as_bytes()]),
        );
        c.add(&format!("{name}-json"), &frame(1, 0, &[json.as_bytes()]));
    }
    // A smart wallet not deployed yet: an ERC-6492 envelope around a 66-byte signature.
    let word = |n: usize| format!("{n:064x}");
    let envelope = [
        format!("{:0>64}", "fac7000000000000000000000000000000006492"),
        word(0x60),
        word(0xa0),
        word(4),
        format!("c0ffee01{}", "00".repeat(28)),
        word(66),
        format!("{}{}", "5a".repeat(66), "00".repeat(30)),
        "6492".repeat(16),
    ]
    .concat();
    let mut wrapped = siwx_payload(false);
    wrapped["signature"] = Value::String(format!("0x{envelope}"));
    c.add(
        "erc6492-json",
        &frame(1, 0, &[wrapped.to_string().as_bytes()]),
    );
    for sel in 0..8u8 {
        c.add(&format!("mutate-{sel}"), &frame(2, sel, &[]));
    }
    let edits: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "not-before",
            2,
            edit(9, EditKind::String, b"2024-01-15T10:29:59.5+00:00"),
        ),
        ("request-id", 2, edit(10, EditKind::String, b"req-1")),
        ("resources-empty", 2, edit(11, EditKind::Remove, b"")),
        ("statement-empty", 3, edit(12, EditKind::String, b"")),
        (
            "domain-port",
            2,
            edit(0, EditKind::String, b"api.example.com:443"),
        ),
        (
            "uri-other-origin",
            2,
            edit(2, EditKind::String, b"https://api.example.com.evil.io/x"),
        ),
        ("address-lower", 2, edit(1, EditKind::Recase, &[0])),
        (
            "issued-later",
            2,
            edit(7, EditKind::String, b"2024-01-15T10:31:59.999999999Z"),
        ),
        (
            "solana",
            0,
            edit(
                4,
                EditKind::String,
                b"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
            ),
        ),
        ("smart-wallet", 0, edit(14, EditKind::Hex, &[1; 100])),
        ("scheme-hint", 2, edit(13, EditKind::String, b"eip1271")),
        (
            "stale",
            2,
            edit(7, EditKind::String, b"2024-01-15T10:24:00.000Z"),
        ),
        (
            "expired",
            2,
            edit(8, EditKind::String, b"2024-01-15T10:30:59.999Z"),
        ),
        (
            "issued-in-future",
            2,
            edit(7, EditKind::String, b"2024-01-15T10:33:00Z"),
        ),
    ];
    for (name, sel, e) in edits {
        c.add(&format!("edit-{name}"), &frame(2, sel, &[&e]));
    }
    for s in [
        "2024-01-15T10:30:00.000Z",
        "2024-02-29T23:59:59.123456789123-23:59",
        "1970-01-01T00:00:00z",
        "9999-12-31T23:59:59+00:00",
        "https://api.example.com:8443/premium-data?x=1#f",
        "http://user@[::1]:80/",
        "HTTPS://API.EXAMPLE.COM",
    ] {
        c.add(
            &format!("parsers-{}", c.count),
            &frame(3, 0, &[s.as_bytes()]),
        );
    }
}

fn config_parse(c: &mut Corpus, _: &Value, _: &Value, wrangler: &[(String, Value)]) {
    for (name, v) in wrangler {
        c.add(name, &[&[0u8][..], v.to_string().as_bytes()].concat());
    }
    c.add(
        "payment-config",
        &[&[0u8][..], payment_config_json().as_bytes()].concat(),
    );
    let more = [
        json!({"payTo": PAY_TO, "accepts": ["base", "eip155:84532", {"network": "eip155:137", "asset": "USDC"}],
               "facilitator": {"url": "http://127.0.0.1:4021/", "timeoutMs": 5000},
               "maxTimeoutSeconds": 120, "settlement": "deferred",
               "deferred": {"creditLimit": "$2.50", "batchSeconds": 5, "safetyMarginSeconds": 30, "overCredit": "refuse"},
               "rpc": {"eip155:84532": "https://sepolia.base.org"},
               "routes": [{"path": "/a/*", "price": "$0.01"}, {"path": "/b", "price": 7, "method": "get"},
                          {"path": "/users/[id]/posts", "price": "5000", "payTo": BASE_USDC},
                          {"path": "/open", "free": true}]}),
        json!({"payTo": PAY_TO, "facilitator": {"url": "https://f.example"},
               "assets": [{"network": "eip155:31337", "address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
                           "name": "USD Coin", "version": "2", "decimals": 18, "symbol": "USDC"}],
               "accepts": ["eip155:31337", "eip155:84532"],
               "routes": [{"path": "/x", "price": "$0.000000000000000001"}]}),
        json!({"routes": [{"path": "/x", "prce": "$1"}]}),
    ];
    for (i, v) in more.iter().enumerate() {
        c.add(
            &format!("config-{i}"),
            &[&[0u8][..], v.to_string().as_bytes()].concat(),
        );
    }
    // The builder (mode 1) needs no seeds, but a few starting points help.
    c.add(
        "builder-zeros",
        &[1u8; 1]
            .iter()
            .chain([0u8; 64].iter())
            .copied()
            .collect::<Vec<_>>(),
    );
    c.add(
        "builder-ones",
        &[1u8; 1]
            .iter()
            .chain([0xffu8; 64].iter())
            .copied()
            .collect::<Vec<_>>(),
    );
    c.add(
        "builder-ramp",
        &std::iter::once(1u8).chain(0..=200u8).collect::<Vec<_>>(),
    );
}

fn crawler_signature(c: &mut Corpus, _: &Value, wba: &Value, _: &[(String, Value)]) {
    let mut n = 0;
    for list in ["requests", "cloudflare_rust_crate"] {
        for r in wba[list].as_array().into_iter().flatten() {
            let s = |k: &str| r[k].as_str().unwrap_or_default().as_bytes().to_vec();
            let mut fields = vec![s("method"), s("authority"), s("target_uri"), s("path")];
            for (k, v) in r["headers"].as_object().into_iter().flatten() {
                fields.push(k.as_bytes().to_vec());
                fields.push(v.as_str().unwrap_or_default().as_bytes().to_vec());
            }
            let f: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            c.add(&format!("request-{n}"), &frame(0, 0, &f));
            n += 1;
        }
    }
    for sel in 0..7u8 {
        c.add(&format!("mutate-{sel}"), &frame(1, sel, &[]));
        c.add(&format!("mutate-resign-{sel}"), &frame(1, sel | 128, &[]));
    }
    c.add(
        "edit-authority",
        &frame(1, 128, &[&edit(1, EditKind::String, b"EXAMPLE.COM:443")]),
    );
    c.add(
        "edit-agent",
        &frame(
            1,
            128,
            &[&edit(
                6,
                EditKind::String,
                b"agent1=\"https://a.example\";type=jwks_uri",
            )],
        ),
    );
    c.add(
        "edit-price",
        &frame(1, 131, &[&edit(7, EditKind::String, b"USD 0.02")]),
    );
    c.add(
        "directory",
        &frame(2, 0, &[wba_directory_json().as_bytes()]),
    );
    for (i, p) in [
        "USD 0.01",
        "USD 1",
        "USD 12.500",
        " USD 0.000001\t",
        "USD 1e3",
    ]
    .iter()
    .enumerate()
    {
        c.add(&format!("price-{i}"), &frame(3, 6, &[p.as_bytes()]));
    }
}

fn session_token(c: &mut Corpus, _: &Value, _: &Value, _: &[(String, Value)]) {
    let wallet = Address::parse(ANVIL0).expect("address");
    let valid = session::issue_token(SESSION_SECRET, &wallet, "/articles/*", SESSION_NOW + 3600);
    let expired = session::issue_token(SESSION_SECRET, &wallet, "/articles/*", SESSION_NOW - 1);
    c.add("valid", &frame(0, 0, &[valid.as_bytes()]));
    c.add("expired", &frame(0, 0, &[expired.as_bytes()]));
    c.add(
        "other-version",
        &frame(0, 0, &[valid.replacen("v1.", "v2.", 1).as_bytes()]),
    );
    c.add(
        "issue",
        &frame(
            1,
            3,
            &[&wallet.0, b"/articles/*", b"1750003600", b"1750000000"],
        ),
    );
    c.add(
        "issue-at-expiry",
        &frame(1, 9, &[&wallet.0, b"/", b"1750000000", b"1750000000"]),
    );
    c.add(
        "claims",
        &frame(2, 0, &[br#"{"sub":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","scope":"/x/*","exp":1750000600}"#]),
    );
    c.add("claims-escaped-scope", &frame(2, 0, &[br#"{"sub":"0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266","scope":"\/x\u002f*","exp":18446744073709551615}"#]));
    let cookie = format!("a=b; {}=\"{valid}\"; c=d", session::COOKIE_NAME);
    let bearer = format!("Bearer {valid}");
    let grant = json!({"wallet": ANVIL0, "scope": "/articles/*", "expiresAt": SESSION_NOW + 60, "requests": 3}).to_string();
    c.add(
        "request",
        &frame(
            3,
            3,
            &[
                cookie.as_bytes(),
                bearer.as_bytes(),
                grant.as_bytes(),
                b"/articles/1",
            ],
        ),
    );
    c.add(
        "request-cookie",
        &frame(
            3,
            1,
            &[
                cookie.as_bytes(),
                b"bearer eyJhbGciOi.x.y",
                grant.as_bytes(),
                b"/Articles//x",
            ],
        ),
    );
    // A browser's jar of session cookies named after their sessions, the first one's name read as
    // the page's session, repeated, beside the name of earlier versions.
    let named = session::cookie_name("/articles/*\n* /articles/*");
    let jar = format!(
        "{named}={valid}; {named}=v1.a.b; {named}=v1.c.d; {}=v1.e.f; {}_00000000=x",
        session::COOKIE_NAME,
        session::COOKIE_NAME
    );
    c.add(
        "request-named-cookies",
        &frame(
            3,
            1,
            &[jar.as_bytes(), b"", grant.as_bytes(), b"/articles/2"],
        ),
    );
}

fn path_pattern(c: &mut Corpus, _: &Value, _: &Value, wrangler: &[(String, Value)]) {
    let mut pairs: Vec<(String, String)> = vec![
        ("/api/weather".into(), "/api/weather/".into()),
        ("/api/weather".into(), "/api/Weather.json".into()),
        ("/articles/*".into(), "/%61rticles//x".into()),
        ("/users/:id/posts".into(), "/users/7/posts".into()),
        ("/users/[id]/posts".into(), "/USERS/7/posts".into()),
        ("/a/*/c".into(), "/a/b/c".into()),
        ("/".into(), "/".into()),
        ("/*".into(), "/x/y".into()),
        ("/%C3%A4/x".into(), "/\u{c4}/X".into()),
        ("/x".into(), "/%".into()),
        ("/x".into(), "/%4".into()),
    ];
    for (_, v) in wrangler {
        for r in v["routes"].as_array().into_iter().flatten() {
            if let Some(p) = r["path"].as_str() {
                pairs.push((p.into(), format!("{}/x", p.trim_end_matches("/*"))));
            }
        }
    }
    for (i, (p, path)) in pairs.iter().enumerate() {
        c.add(
            &format!("{i}"),
            &frame(0, 0, &[p.as_bytes(), path.as_bytes()]),
        );
    }
}
