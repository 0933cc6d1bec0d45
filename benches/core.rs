//! `cargo bench`: what the paywall's core costs natively, operation by operation, with no I/O.
//!
//! Each operation runs in rounds (a warm-up round, then `ROUNDS` timed ones) and is reported as
//! the median time per call, with the quickest and the slowest round beside it: on a shared
//! machine one round can land on a busy moment, and the spread says how far to trust the median.
//! Every call's result is checked, so a figure is never that of an operation that failed early.
//!
//! The Worker's own figures, in wasm and in workerd, are `scripts/bench`'s (docs/benchmarks.md);
//! these are for finding which part of the core a change made slower or faster. `cargo bench`
//! builds with the release profile (`opt-level = "z"`, LTO), as the Worker is built.

#[path = "../bench/verify-case.rs"]
mod verify_case;

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};
use x402_edge::config::Config;
use x402_edge::evm::{eip191_hash, Address, Signature};
use x402_edge::paywall::{self, Decision, Incoming};
use x402_edge::{session, siwx};

const ROUNDS: usize = 15;

fn main() {
    let vectors: Value = serde_json::from_str(include_str!("../tests/vectors/x402-vectors.json"))
        .expect("tests/vectors/x402-vectors.json is JSON");
    let case = verify_case::case();
    // `cargo bench --bench core -- WORDS`: only the operations whose name contains WORDS.
    let only = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut bench = Bench {
        only,
        rows: Vec::new(),
    };

    // The path every client without a payment takes: the terms, as the 402 carries them; on a
    // route where a session could let the request in, with a fresh Sign-In-With-X challenge.
    //
    // Then hostile paths, as long as Cloudflare lets through (a URL of 32 KB; past it the edge
    // answers 414 itself): every reading of them is linear in their length. A name of 16,000
    // dots (each a name before an extension tried) and 32,000 empty segments before a script's
    // name (each asked whether only separators follow) cost time in the square of their length
    // when every try copied or rescanned the rest of the path.
    let dots = format!("/paid/{}", "a.".repeat(16_000));
    let slashes = format!("/paid/{}run.php/x", "/".repeat(32_000));
    for (name, path, nonce, per_round) in [
        (
            "402 with its terms (decide, no payment)",
            "/paid/weather",
            None,
            20_000,
        ),
        (
            "402 with its terms and a sign-in challenge",
            "/paid/weather",
            Some([7; 16]),
            20_000,
        ),
        ("402 on a 32 KB name of dots", &dots, None, 20),
        (
            "402 on 32 KB of slashes before a script",
            &slashes,
            None,
            20,
        ),
    ] {
        let url = format!("https://shop.example.com{path}");
        let incoming = Incoming {
            method: "GET",
            url: &url,
            path,
            payment_signature: None,
            x_payment: None,
            preflight_method: None,
            siwx_nonce: nonce,
        };
        bench.run(name, per_round, || {
            matches!(paywall::decide(&case.config, black_box(&incoming), verify_case::NOW),
                Decision::Reply(reply) if reply.status == 402)
        });
    }

    // A paid request before any I/O: header decoding, terms and clock checks, the EIP-712 digest
    // and the signer's recovery (what scripts/bench times in wasm).
    bench.run(
        "payment verified (decide, the spec's example)",
        2_000,
        || verify_case::verify_once(black_box(&case)),
    );

    // The recovery alone, on the generated vector's digest and signature.
    let base = &vectors["generated"]["base"];
    let digest: [u8; 32] = hex::decode(&base["digest"].as_str().expect("digest")[2..])
        .expect("hex digest")
        .try_into()
        .expect("32 bytes");
    let signature =
        Signature::parse_hex(base["signature"].as_str().expect("signature")).expect("signature");
    let signer = Address::parse(vectors["generated"]["signer"].as_str().expect("signer"))
        .expect("signer address");
    bench.run("secp256k1 recovery alone", 2_000, || {
        signature.recover(black_box(&digest)).ok() == Some(signer)
    });

    // A request on a session: the token's MAC and claims.
    let secret = [0x5a_u8; 32];
    let token = session::issue_token(&secret, &signer, "/articles/*", verify_case::NOW + 3600);
    bench.run("session token checked", 50_000, || {
        session::check_token(&secret, black_box(&token), verify_case::NOW).is_ok()
    });

    // A wallet signing in: the proof's header parsed, its message rebuilt, its signature recovered.
    let (proof_header, siwx_url, siwx_now) = signed_in_proof(&vectors);
    bench.run("Sign-In-With-X proof parsed and verified", 2_000, || {
        siwx::parse_header(black_box(&proof_header))
            .is_ok_and(|p| siwx::verify(&p, siwx_url, siwx_now, 300).is_ok_and(|a| a == signer))
    });

    // Once per isolate: the configuration, as a deployment with a few routes writes it.
    let config = json!({
        "payTo": vectors["generated"]["authorization"]["to"],
        "accepts": ["eip155:8453", "eip155:84532"],
        "facilitator": {"url": "https://facilitator.example.com"},
        "routes": [
            {"path": "/articles/*", "price": "$0.01", "description": "One article"},
            {"path": "/api/v1/*", "method": "POST", "price": "$0.002", "settlement": "deferred"},
            {"path": "/archive/*", "price": "$0.05",
             "session": {"scope": "/archive/*", "seconds": 3600}},
        ],
    })
    .to_string();
    bench.run("configuration parsed (three routes)", 2_000, || {
        Config::from_json(black_box(&config)).is_ok_and(|c| c.routes.len() == 3)
    });

    bench.print();
}

/// The operations measured so far, and which to measure (`cargo bench --bench core -- WORDS`).
struct Bench {
    only: String,
    rows: Vec<(&'static str, f64, f64, f64)>,
}

impl Bench {
    fn run(&mut self, name: &'static str, per_round: u32, f: impl FnMut() -> bool) {
        if name.contains(&self.only) {
            self.rows.push(measure(name, per_round, f));
        }
    }

    fn print(&self) {
        let width = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        println!(
            "\n{:width$}  {:>10}  {:>24}",
            "operation", "median", "quickest – slowest round"
        );
        println!("{}", "-".repeat(width + 38));
        for (name, median, quickest, slowest) in &self.rows {
            println!(
                "{name:width$}  {:>10}  {:>24}",
                human(*median),
                format!("{} – {}", human(*quickest), human(*slowest))
            );
        }
        println!("\n{ROUNDS} rounds each after one unmeasured; native, release profile");
    }
}

/// Times `f` in rounds of `per_round` calls: the median, quickest and slowest time per call (ns).
/// Panics if any call returns false: a figure must be that of the operation succeeding.
fn measure(
    name: &'static str,
    per_round: u32,
    mut f: impl FnMut() -> bool,
) -> (&'static str, f64, f64, f64) {
    let mut round = || {
        let started = Instant::now();
        for _ in 0..per_round {
            assert!(black_box(f()), "{name}: the operation failed");
        }
        started.elapsed().as_nanos() as f64 / f64::from(per_round)
    };
    round();
    let mut times: Vec<f64> = (0..ROUNDS).map(|_| round()).collect();
    times.sort_by(f64::total_cmp);
    (name, times[ROUNDS / 2], times[0], times[ROUNDS - 1])
}

fn human(ns: f64) -> String {
    match ns {
        n if n >= 1_000_000.0 => format!("{:.2} ms", n / 1_000_000.0),
        n if n >= 1_000.0 => format!("{:.1} µs", n / 1_000.0),
        n => format!("{n:.0} ns"),
    }
}

/// A Sign-In-With-X proof as the official client sends it, signed here by the vectors' signer over
/// the message the paywall rebuilds: its header, the URL it was made for, and a moment it is valid.
fn signed_in_proof(vectors: &Value) -> (String, &'static str, u64) {
    const URL: &str = "https://news.example.com/archive/1999";
    const ISSUED: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    let key_hex = vectors["generated"]["signer_private_key"]
        .as_str()
        .expect("signer_private_key");
    let key = SigningKey::from_slice(&hex::decode(&key_hex[2..]).expect("hex key")).expect("key");
    let mut proof = json!({
        "domain": "news.example.com",
        "address": vectors["generated"]["signer"],
        "uri": URL,
        "version": "1",
        "chainId": "eip155:8453",
        "type": "eip191",
        "nonce": "0f1e2d3c4b5a69780f1e2d3c4b5a6978",
        "issuedAt": "2026-01-01T00:00:00.000Z",
        "resources": [URL],
        "signature": "0x",
    });
    let encode = |v: &Value| STANDARD.encode(v.to_string());
    let unsigned = siwx::parse_header(&encode(&proof)).expect("the unsigned proof parses");
    let (sig, recid) = key
        .sign_prehash_recoverable(&eip191_hash(siwx::message(&unsigned).as_bytes()))
        .expect("signs");
    let mut raw = sig.to_bytes().to_vec();
    raw.push(27 + recid.to_byte());
    proof["signature"] = json!(format!("0x{}", hex::encode(raw)));
    (encode(&proof), URL, ISSUED + 60)
}
