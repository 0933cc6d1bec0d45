//! Shared helpers for the integration tests: configurations, a signing client that builds x402
//! payments the way the reference clients do (EIP-712 digest from the chosen terms, RFC 6979
//! signature, low s, `v` = 27 + recovery id), and readers for the paywall's replies.

#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k256::ecdsa::{RecoveryId, SigningKey};
use serde_json::{json, Value};
use x402_edge::config::Config;
use x402_edge::evm::{
    keccak256, parse_bytes32, Address, Eip712Domain, TransferWithAuthorization, U256,
};
use x402_edge::networks;
use x402_edge::paywall::{Incoming, Reply};

/// A fixed clock for every test that does not use a vector's own time (2025-06-15).
pub const NOW: u64 = 1_750_000_000;

/// The recipient of the x402 specification example.
pub const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
/// Another recipient (Anvil account #2).
pub const OTHER_ADDRESS: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
pub const BASE_SEPOLIA_USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
pub const BASE_USDC: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
/// The first contract a fresh Anvil deploys from account #0 (a local USDC in the e2e setup).
pub const ANVIL_USDC: &str = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
pub const FACILITATOR: &str = "https://facilitator.example.com";
pub const ORIGIN: &str = "https://shop.example.com";

/// Anvil / Hardhat public test keys.
pub const ANVIL0_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const ANVIL0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
pub const ANVIL1_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub const ANVIL1: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// The secp256k1 group order n, big-endian hex.
pub const SECP256K1_N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

/// Parses and validates a configuration, panicking with the key on error.
pub fn config(v: &Value) -> Config {
    Config::from_json(&v.to_string()).unwrap_or_else(|e| panic!("config refused: {e}\n{v:#}"))
}

pub fn signing_key(hex_key: &str) -> SigningKey {
    let bytes = hex::decode(hex_key.trim_start_matches("0x")).expect("key hex");
    SigningKey::from_slice(&bytes).expect("key")
}

/// The Ethereum address of a key: the last 20 bytes of keccak256(x ‖ y).
pub fn address_of(key: &SigningKey) -> Address {
    let point = key.verifying_key().to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&hash[12..]);
    Address(a)
}

/// Signs a 32-byte prehash as viem / ethers do: RFC 6979, low s, `v` = 27 + recovery id.
pub fn sign_prehash(key: &SigningKey, digest: &[u8; 32]) -> [u8; 65] {
    let (mut sig, mut recid) = key.sign_prehash_recoverable(digest).expect("sign");
    if let Some(low) = sig.normalize_s() {
        sig = low;
        recid = RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced());
    }
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = 27 + recid.to_byte();
    out
}

pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Standard padded base64 of compact JSON, as the reference clients send headers.
pub fn b64(v: &Value) -> String {
    STANDARD.encode(v.to_string())
}

pub fn unb64(s: &str) -> Value {
    let bytes = STANDARD.decode(s).expect("standard base64");
    serde_json::from_slice(&bytes).expect("JSON inside base64")
}

/// The EIP-712 domain a signer signs over, as owned strings so tests can falsify any field.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub version: String,
    pub chain_id: u64,
    pub contract: String,
}

/// A payment being written by a client: the chosen terms, the authorization as it will appear on
/// the wire (strings, so tests can write anything), the key and the domain it signs with.
#[derive(Debug, Clone)]
pub struct Draft {
    pub version: u8,
    /// v2: the `accepted` object echoed back. v1: only used to derive the defaults.
    pub accepted: Value,
    /// v1: the network name written at the top level.
    pub v1_network: String,
    pub from: String,
    pub to: String,
    pub value: String,
    pub valid_after: String,
    pub valid_before: String,
    pub nonce: String,
    pub key: SigningKey,
    pub domain: Domain,
    /// Replaces the computed signature when set.
    pub signature: Option<String>,
}

impl Draft {
    /// What a reference v2 client writes for one entry of `accepts`: `to` = payTo, `value` =
    /// amount, `validAfter` = now − 600, `validBefore` = now + maxTimeoutSeconds, a fresh nonce,
    /// and the EIP-712 domain taken from the terms.
    pub fn v2(terms: &Value, key: &SigningKey, now: u64) -> Draft {
        let s = |k: &str| {
            terms[k]
                .as_str()
                .unwrap_or_else(|| panic!("terms.{k}"))
                .to_string()
        };
        let network = s("network");
        let chain_id = network
            .strip_prefix("eip155:")
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("terms.network {network}"));
        let max_timeout = terms["maxTimeoutSeconds"]
            .as_u64()
            .expect("maxTimeoutSeconds");
        let from = address_of(key).to_checksum();
        let nonce = keccak256(format!("{from}|{network}|{now}").as_bytes());
        Draft {
            version: 2,
            accepted: terms.clone(),
            v1_network: networks::parse_network(&network)
                .and_then(|n| n.v1_name)
                .unwrap_or("")
                .to_string(),
            from,
            to: s("payTo"),
            value: s("amount"),
            valid_after: (now - 600).to_string(),
            valid_before: (now + max_timeout).to_string(),
            nonce: hex0x(&nonce),
            key: key.clone(),
            domain: Domain {
                name: terms["extra"]["name"].as_str().expect("extra.name").into(),
                version: terms["extra"]["version"]
                    .as_str()
                    .expect("extra.version")
                    .into(),
                chain_id,
                contract: s("asset"),
            },
            signature: None,
        }
    }

    /// The same payment written by a v1 client (scheme and network at the top level).
    pub fn v1(terms: &Value, key: &SigningKey, now: u64) -> Draft {
        let d = Draft::v2(terms, key, now);
        assert!(
            !d.v1_network.is_empty(),
            "no v1 name for {}",
            terms["network"]
        );
        Draft { version: 1, ..d }
    }

    /// The authorization as signed. Fields that do not parse are signed as zero: such a payment
    /// is refused before its signature is looked at.
    pub fn authorization(&self) -> TransferWithAuthorization {
        let addr = |s: &str| Address::parse(s).unwrap_or(Address::ZERO);
        let num = |s: &str| U256::from_dec_str(s).unwrap_or(U256::ZERO);
        TransferWithAuthorization {
            from: addr(&self.from),
            to: addr(&self.to),
            value: num(&self.value),
            valid_after: num(&self.valid_after),
            valid_before: num(&self.valid_before),
            nonce: parse_bytes32(&self.nonce).unwrap_or([0; 32]),
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        let domain = Eip712Domain {
            name: &self.domain.name,
            version: &self.domain.version,
            chain_id: self.domain.chain_id,
            verifying_contract: Address::parse(&self.domain.contract).expect("domain contract"),
        };
        self.authorization().digest(&domain)
    }

    pub fn signature(&self) -> String {
        match &self.signature {
            Some(s) => s.clone(),
            None => hex0x(&sign_prehash(&self.key, &self.digest())),
        }
    }

    /// The payment payload JSON.
    pub fn json(&self) -> Value {
        let payload = json!({
            "signature": self.signature(),
            "authorization": {
                "from": self.from,
                "to": self.to,
                "value": self.value,
                "validAfter": self.valid_after,
                "validBefore": self.valid_before,
                "nonce": self.nonce,
            }
        });
        match self.version {
            1 => json!({
                "x402Version": 1,
                "scheme": "exact",
                "network": self.v1_network,
                "payload": payload,
            }),
            v => json!({
                "x402Version": v,
                "accepted": self.accepted,
                "payload": payload,
            }),
        }
    }

    /// The header value.
    pub fn header(&self) -> String {
        b64(&self.json())
    }

    /// A copy with some fields changed (and signed again, unless `signature` is set).
    pub fn with(&self, edit: impl FnOnce(&mut Draft)) -> Draft {
        let mut d = self.clone();
        edit(&mut d);
        d
    }

    /// The signed JSON, then edited: the signature no longer covers the edit.
    pub fn json_with(&self, edit: impl FnOnce(&mut Value)) -> Value {
        let mut v = self.json();
        edit(&mut v);
        v
    }
}

/// The same signature with `s` replaced by n − s and `v` flipped: the malleated twin, which
/// recovers the same signer but which USDC refuses on chain.
pub fn high_s_twin(sig: &str) -> String {
    let mut b = hex::decode(&sig[2..]).expect("signature hex");
    assert_eq!(b.len(), 65);
    let n = U256::from_be_bytes(hex::decode(SECP256K1_N).unwrap().try_into().unwrap());
    let s = U256::from_be_bytes(b[32..64].try_into().unwrap());
    let high = n.checked_sub(s).expect("s < n");
    b[32..64].copy_from_slice(&high.to_be_bytes());
    b[64] = 55 - b[64];
    hex0x(&b)
}

/// The same signature with another last byte.
pub fn with_v(sig: &str, v: u8) -> String {
    format!("{}{:02x}", &sig[..130], v)
}

/// A request as the shell would describe it.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub url: String,
    pub path: String,
    pub payment_signature: Option<String>,
    pub x_payment: Option<String>,
    pub preflight_method: Option<String>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.into(),
            url: format!("{ORIGIN}{path}"),
            path: path.into(),
            ..Req::default()
        }
    }

    pub fn get(path: &str) -> Req {
        Req::new("GET", path)
    }

    pub fn paying(mut self, payment_signature: Option<String>, x_payment: Option<String>) -> Req {
        self.payment_signature = payment_signature;
        self.x_payment = x_payment;
        self
    }

    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            method: &self.method,
            url: &self.url,
            path: &self.path,
            payment_signature: self.payment_signature.as_deref(),
            x_payment: self.x_payment.as_deref(),
            preflight_method: self.preflight_method.as_deref(),
            siwx_nonce: None,
        }
    }
}

/// A reply header, by case-insensitive name.
pub fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The JSON body of a reply.
pub fn body(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", reply.body))
}

/// The decoded v2 terms of a reply's `PAYMENT-REQUIRED` header.
pub fn payment_required(reply: &Reply) -> Value {
    unb64(header(reply, "PAYMENT-REQUIRED").expect("PAYMENT-REQUIRED header"))
}

/// Headers every reply of the paywall carries: no caching, and readable cross-origin.
pub fn check_common_headers(reply: &Reply) -> Result<(), String> {
    if header(reply, "Cache-Control") != Some("no-store") {
        return Err(format!(
            "Cache-Control is {:?}",
            header(reply, "Cache-Control")
        ));
    }
    if header(reply, "Access-Control-Allow-Origin") != Some("*") {
        return Err("Access-Control-Allow-Origin is not *".into());
    }
    let expose = header(reply, "Access-Control-Expose-Headers").unwrap_or("");
    for h in ["PAYMENT-REQUIRED", "PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"] {
        if !expose.split(',').any(|e| e.trim().eq_ignore_ascii_case(h)) {
            return Err(format!(
                "Access-Control-Expose-Headers {expose:?} lacks {h}"
            ));
        }
    }
    Ok(())
}

/// An ERC-6492 envelope, as hex without `0x`: `abi.encode(factory, factoryCalldata, signature)`
/// followed by the magic suffix. `factory` is 40 hex digits.
pub fn erc6492_envelope(factory: &str, calldata: &[u8], inner: &[u8]) -> String {
    let word = |n: usize| format!("{n:064x}");
    let padded = |b: &[u8]| {
        let pad = (32 - b.len() % 32) % 32;
        format!("{}{}", hex::encode(b), "00".repeat(pad))
    };
    let calldata_words = calldata.len().div_ceil(32) * 32;
    [
        format!("{factory:0>64}"),
        word(0x60),
        word(0x60 + 32 + calldata_words),
        word(calldata.len()),
        padded(calldata),
        word(inner.len()),
        padded(inner),
        "6492".repeat(16),
    ]
    .concat()
}
