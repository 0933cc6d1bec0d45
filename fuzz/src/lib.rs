//! Fixtures and input framing shared by the fuzz targets and the seed-corpus generator.
//!
//! # Input framing
//!
//! Every target reads the same simple framing, so that the generator can write seeds by hand and a
//! crash file can be read in a hex dump:
//!
//! ```text
//! [mode byte] [selector byte] field 0xFF field 0xFF field …
//! ```
//!
//! `0xFF` never occurs in UTF-8, so a field that was valid UTF-8 stays valid; fields are decoded
//! lossily otherwise. What the mode, the selector and the fields mean is documented at the top of
//! each target. Missing bytes read as zero and missing fields as absent.
//!
//! # Edits
//!
//! Targets that start from a valid value (a signed payment, a signed SIWX proof, a signed crawler
//! request) take a list of edits, one per field: `[what] [how] value…`, where `what` picks a JSON
//! path (or header) from the target's list and `how` one of the [`Edit`] kinds. That lets the
//! fuzzer change one field of a valid input at a time, which is what reaches the deep checks.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use k256::ecdsa::{RecoveryId, SigningKey};
use serde_json::{json, Map, Number, Value};
use x402_edge::config::Config;
use x402_edge::evm::{self, Address, Eip712Domain, TransferWithAuthorization, U256};

/// The field separator of the input framing.
pub const SEP: u8 = 0xFF;

/// A framed input: mode, selector and fields.
#[derive(Debug, Clone, Copy)]
pub struct Framed<'a> {
    pub mode: u8,
    pub selector: u8,
    body: &'a [u8],
}

impl<'a> Framed<'a> {
    pub fn new(data: &'a [u8]) -> Framed<'a> {
        Framed {
            mode: data.first().copied().unwrap_or(0),
            selector: data.get(1).copied().unwrap_or(0),
            body: data.get(2..).unwrap_or(&[]),
        }
    }

    /// Everything after the selector, as bytes.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Everything after the mode byte (for modes that take no selector).
    pub fn after_mode(data: &'a [u8]) -> &'a [u8] {
        data.get(1..).unwrap_or(&[])
    }

    /// The fields, split on [`SEP`]. An empty body has no fields.
    pub fn fields(&self) -> Vec<&'a [u8]> {
        if self.body.is_empty() {
            Vec::new()
        } else {
            self.body.split(|&b| b == SEP).collect()
        }
    }

    /// The fields as (lossy) strings.
    pub fn strings(&self) -> Vec<String> {
        self.fields().into_iter().map(lossy).collect()
    }
}

/// Bytes as a string: as is when valid UTF-8, with replacement characters otherwise.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes a framed input (for the generator).
pub fn frame(mode: u8, selector: u8, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode, selector];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.extend_from_slice(f);
    }
    out
}

/// Writes one edit (for the generator).
pub fn edit(what: u8, how: EditKind, value: &[u8]) -> Vec<u8> {
    let mut out = vec![what, how as u8];
    out.extend_from_slice(value);
    out
}

// ---------------------------------------------------------------------------------------------
// Edits of JSON values.

/// How an edit changes a field. The byte is taken modulo the number of kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EditKind {
    /// The value bytes as a string.
    String = 0,
    /// The field removed.
    Remove = 1,
    /// `null`.
    Null = 2,
    /// An unsigned integer (little-endian value bytes).
    Unsigned = 3,
    /// A negative integer.
    Negative = 4,
    /// A float from the value bytes (finite ones only; others give 0.5).
    Float = 5,
    /// `true` or `false`.
    Bool = 6,
    /// An array holding the current value.
    Wrap = 7,
    /// The current value read as a decimal integer, plus a signed delta, as a decimal string
    /// (times and amounts just inside and outside their bounds).
    Near = 8,
    /// `0x` and the value bytes in hex (addresses, nonces, signatures of any length).
    Hex = 9,
    /// The current string lowercased, uppercased, without `0x`, or with spaces around.
    Recase = 10,
    /// The current string with the value bytes appended.
    Append = 11,
    /// A decimal string of the value bytes' digits (numbers far past 256 bits).
    Digits = 12,
    /// The current string truncated to as many characters as the first value byte says.
    Truncate = 13,
    /// An object `{ value: current }`.
    Object = 14,
}

const EDIT_KINDS: u8 = 15;

impl EditKind {
    pub fn from_byte(b: u8) -> EditKind {
        match b % EDIT_KINDS {
            0 => EditKind::String,
            1 => EditKind::Remove,
            2 => EditKind::Null,
            3 => EditKind::Unsigned,
            4 => EditKind::Negative,
            5 => EditKind::Float,
            6 => EditKind::Bool,
            7 => EditKind::Wrap,
            8 => EditKind::Near,
            9 => EditKind::Hex,
            10 => EditKind::Recase,
            11 => EditKind::Append,
            12 => EditKind::Digits,
            13 => EditKind::Truncate,
            _ => EditKind::Object,
        }
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(a)
}

fn le_i64(b: &[u8]) -> i64 {
    le_u64(b) as i64
}

/// The new value for a field whose current value is `current` (`None` if absent). `None` means
/// "remove the field".
pub fn edited(current: Option<&Value>, how: EditKind, value: &[u8]) -> Option<Value> {
    let cur_str = current.and_then(Value::as_str).unwrap_or("");
    Some(match how {
        EditKind::String => Value::String(lossy(value)),
        EditKind::Remove => return None,
        EditKind::Null => Value::Null,
        EditKind::Unsigned => Value::from(le_u64(value)),
        EditKind::Negative => Value::from(-((le_u64(value) >> 1) as i64) - 1),
        EditKind::Float => {
            let f = f64::from_bits(le_u64(value));
            Value::Number(Number::from_f64(f).unwrap_or_else(|| Number::from_f64(0.5).unwrap()))
        }
        EditKind::Bool => Value::Bool(value.first().is_some_and(|b| b & 1 == 1)),
        EditKind::Wrap => Value::Array(vec![current.cloned().unwrap_or(Value::Null)]),
        EditKind::Near => {
            let base: i128 = match current {
                Some(Value::String(s)) => s.parse().unwrap_or(0),
                Some(Value::Number(n)) => n.as_u64().map_or(0, i128::from),
                _ => 0,
            };
            // Small deltas most of the time: a byte, then a wider one if there are more bytes.
            let delta = match value.len() {
                0 => 0,
                1 => i128::from(value[0] as i8),
                _ => i128::from(le_i64(value)),
            };
            let n = base + delta;
            match current {
                Some(Value::Number(_)) if n >= 0 => Value::from(n as u64),
                _ => Value::String(n.to_string()),
            }
        }
        EditKind::Hex => Value::String(format!("0x{}", hex::encode(value))),
        EditKind::Recase => Value::String(match value.first().copied().unwrap_or(0) % 5 {
            0 => cur_str.to_lowercase(),
            1 => cur_str.to_uppercase(),
            2 => cur_str.trim_start_matches("0x").to_string(),
            3 => format!(" {cur_str} "),
            _ => format!("0X{}", cur_str.trim_start_matches("0x")),
        }),
        EditKind::Append => Value::String(format!("{cur_str}{}", lossy(value))),
        EditKind::Digits => Value::String(
            value
                .iter()
                .map(|b| char::from(b'0' + b % 10))
                .collect::<String>(),
        ),
        EditKind::Truncate => {
            let n = usize::from(value.first().copied().unwrap_or(0));
            Value::String(cur_str.chars().take(n).collect())
        }
        EditKind::Object => {
            let mut m = Map::new();
            m.insert(lossy(value), current.cloned().unwrap_or(Value::Null));
            Value::Object(m)
        }
    })
}

/// Sets (or removes) the value at `path`, turning whatever is in the way into objects.
pub fn set_path(root: &mut Value, path: &[&str], new: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        if let Some(v) = new {
            *root = v;
        }
        return;
    };
    let mut cur = root;
    for key in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("just made an object");
        cur = obj
            .entry(key.to_string())
            .or_insert(Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    let obj = cur.as_object_mut().expect("just made an object");
    match new {
        Some(v) => {
            obj.insert(last.to_string(), v);
        }
        None => {
            obj.remove(*last);
        }
    }
}

/// The value at `path`, if any.
pub fn get_path<'v>(root: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, k| v.get(k))
}

/// Applies the edits in `fields` (each `[what] [how] value…`) to `root`, choosing paths from
/// `paths`. Returns the indices of the paths that were edited.
pub fn apply_edits(root: &mut Value, paths: &[&[&str]], fields: &[&[u8]]) -> Vec<usize> {
    let mut touched = Vec::new();
    for f in fields {
        let Some((&what, rest)) = f.split_first() else {
            continue;
        };
        let (how, value) = match rest.split_first() {
            Some((&h, v)) => (EditKind::from_byte(h), v),
            None => (EditKind::Remove, &[][..]),
        };
        let i = usize::from(what) % paths.len();
        let path = paths[i];
        let new = edited(get_path(root, path), how, value);
        set_path(root, path, new);
        touched.push(i);
    }
    touched
}

// ---------------------------------------------------------------------------------------------
// Payments.

/// The fixed clock of the payment targets: inside the validity window of both the x402
/// specification example and the generated vector (2025-02-27).
pub const SPEC_NOW: u64 = 1_740_672_100;
/// The recipient of the specification example.
pub const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
pub const BASE_SEPOLIA_USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
pub const BASE_USDC: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
/// A second token on Base Sepolia (a custom asset in the fixed configuration), so that a v1
/// payment has two candidate offers on one network.
pub const OTHER_TOKEN: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
/// Anvil / Hardhat public test key #0, the signer of the generated vectors.
pub const ANVIL0_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const ANVIL0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/// The x402 specification example (a real signature, valid at [`SPEC_NOW`] on Base Sepolia).
pub const SPEC_FROM: &str = "0x857b06519E91e3A54538791bDbb0E22373e36b66";
pub const SPEC_SIGNATURE: &str = "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c";
pub const SPEC_NONCE: &str = "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480";
/// The generated vector on Base Sepolia (Anvil key #0).
pub const GEN_SIGNATURE: &str = "0x774aa7318bc4bc19b9c848278fcafd5fe5c640e4a440552d6b8d5d2845bb512a619308be752c8491c3b5bf1ec2cb94d49e464925fd61a8d1794c88dc31f887251c";
pub const GEN_NONCE: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// The fixed configuration of the payment target, as JSON: a free route, the specification's
/// Base Sepolia route (`GET /paid/*`, 10000 atomic USDC, 65 s), a route with two tokens on Base
/// Sepolia and USDC on Base that also sells a session, and a deferred POST route.
pub fn payment_config_json() -> String {
    json!({
        "payTo": PAY_TO,
        "accepts": ["eip155:84532"],
        "facilitator": {"url": "https://facilitator.example.com"},
        "assets": [{"network": "eip155:84532", "address": OTHER_TOKEN, "name": "Other Dollar",
            "version": "1", "decimals": 6, "symbol": "ODL"}],
        "routes": [
            {"path": "/paid/free", "free": true},
            {"path": "/paid/*", "method": "GET", "price": "10000", "maxTimeoutSeconds": 65,
             "description": "A priced thing", "mimeType": "application/json"},
            {"path": "/multi/:id", "price": "$0.01", "maxTimeoutSeconds": 65,
             "session": {"scope": "/multi/*", "requests": 10},
             "accepts": ["eip155:84532", {"network": "eip155:84532", "asset": "ODL"}, "base"]},
            {"path": "/deferred/*", "method": "POST", "price": "$0.01", "settlement": "deferred"},
        ],
    })
    .to_string()
}

/// The fixed configuration, parsed once.
pub fn payment_config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::from_json(&payment_config_json()).expect("the fixed fuzz configuration is valid")
    })
}

/// The `accepted` terms of the specification example.
pub fn spec_accepted() -> Value {
    json!({
        "scheme": "exact",
        "network": "eip155:84532",
        "amount": "10000",
        "asset": BASE_SEPOLIA_USDC,
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 65,
        "extra": {"name": "USDC", "version": "2"},
    })
}

/// A valid payment: the specification example (`generated = false`) or the generated vector
/// signed by Anvil key #0, as v1 or v2.
pub fn base_payment(v1: bool, generated: bool) -> Value {
    let payload = if generated {
        json!({"signature": GEN_SIGNATURE, "authorization": {
            "from": ANVIL0, "to": PAY_TO, "value": "10000",
            "validAfter": "1740671489", "validBefore": "1740672154", "nonce": GEN_NONCE}})
    } else {
        json!({"signature": SPEC_SIGNATURE, "authorization": {
            "from": SPEC_FROM, "to": PAY_TO, "value": "10000",
            "validAfter": "1740672089", "validBefore": "1740672154", "nonce": SPEC_NONCE}})
    };
    if v1 {
        json!({"x402Version": 1, "scheme": "exact", "network": "base-sepolia", "payload": payload})
    } else {
        json!({
            "x402Version": 2,
            "resource": {"url": "https://shop.example.com/paid/weather", "description": "", "mimeType": ""},
            "accepted": spec_accepted(),
            "payload": payload,
        })
    }
}

/// The JSON paths of a payment the edits choose from.
pub const PAYMENT_PATHS: &[&[&str]] = &[
    &["x402Version"],
    &["scheme"],
    &["network"],
    &["accepted"],
    &["accepted", "scheme"],
    &["accepted", "network"],
    &["accepted", "amount"],
    &["accepted", "asset"],
    &["accepted", "payTo"],
    &["accepted", "maxTimeoutSeconds"],
    &["accepted", "extra"],
    &["accepted", "extra", "name"],
    &["accepted", "extra", "version"],
    &["accepted", "extra", "assetTransferMethod"],
    &["payload"],
    &["payload", "signature"],
    &["payload", "authorization"],
    &["payload", "authorization", "from"],
    &["payload", "authorization", "to"],
    &["payload", "authorization", "value"],
    &["payload", "authorization", "validAfter"],
    &["payload", "authorization", "validBefore"],
    &["payload", "authorization", "nonce"],
    &["payload", "permit2Authorization"],
    &["resource"],
];

/// Index of `payload.signature` in [`PAYMENT_PATHS`].
pub const PAYMENT_SIGNATURE_PATH: usize = 15;

/// The signing key of the generated vectors.
pub fn anvil0_key() -> SigningKey {
    SigningKey::from_slice(&hex::decode(ANVIL0_KEY).expect("key hex")).expect("key")
}

/// Signs a prehash as viem and ethers do: RFC 6979, low s, `v` = 27 + recovery id.
pub fn sign_prehash(key: &SigningKey, digest: &[u8; 32]) -> String {
    let (mut sig, mut recid) = key.sign_prehash_recoverable(digest).expect("sign");
    if let Some(low) = sig.normalize_s() {
        sig = low;
        recid = RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced());
    }
    let mut out = sig.to_bytes().to_vec();
    out.push(27 + recid.to_byte());
    format!("0x{}", hex::encode(out))
}

/// EIP-712 domains a re-signed payment may be signed under: the right one and three wrong ones.
pub fn signing_domain(which: u8) -> Eip712Domain<'static> {
    let addr = |s: &str| Address::parse(s).expect("domain address");
    match which % 4 {
        0 => Eip712Domain {
            name: "USDC",
            version: "2",
            chain_id: 84532,
            verifying_contract: addr(BASE_SEPOLIA_USDC),
        },
        1 => Eip712Domain {
            name: "USD Coin",
            version: "2",
            chain_id: 8453,
            verifying_contract: addr(BASE_USDC),
        },
        2 => Eip712Domain {
            name: "Other Dollar",
            version: "1",
            chain_id: 84532,
            verifying_contract: addr(OTHER_TOKEN),
        },
        _ => Eip712Domain {
            name: "USDC",
            version: "1",
            chain_id: 84532,
            verifying_contract: addr(BASE_SEPOLIA_USDC),
        },
    }
}

/// The authorization of a payment JSON as a signer would sign it. Fields that do not parse are
/// signed as zero (such a payment is refused before its signature is looked at anyway).
pub fn authorization_of(payment: &Value) -> TransferWithAuthorization {
    let s = |k: &str| {
        get_path(payment, &["payload", "authorization", k])
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let addr = |k: &str| Address::parse(s(k)).unwrap_or(Address::ZERO);
    let num = |k: &str| U256::from_dec_str(s(k)).unwrap_or(U256::ZERO);
    TransferWithAuthorization {
        from: addr("from"),
        to: addr("to"),
        value: num("value"),
        valid_after: num("validAfter"),
        valid_before: num("validBefore"),
        nonce: evm::parse_bytes32(s("nonce")).unwrap_or([0; 32]),
    }
}

/// Signs the payment's authorization again with Anvil key #0 under domain `which`.
pub fn resign_payment(payment: &mut Value, which: u8) {
    let digest = authorization_of(payment).digest(&signing_domain(which));
    let sig = sign_prehash(&anvil0_key(), &digest);
    set_path(payment, &["payload", "signature"], Some(Value::String(sig)));
}

/// A header value: standard padded base64, or URL-safe unpadded (both are read).
pub fn encode_header(json: &[u8], url_safe: bool) -> String {
    if url_safe {
        URL_SAFE_NO_PAD.encode(json)
    } else {
        STANDARD.encode(json)
    }
}

/// Recovers the signer of a 65-byte `r ‖ s ‖ v` signature over a prehash with k256 directly, as
/// an independent check of the crate's own recovery.
pub fn k256_recover(sig_hex: &str, prehash: &[u8; 32]) -> Option<Address> {
    let bytes = hex::decode(sig_hex.strip_prefix("0x").unwrap_or(sig_hex)).ok()?;
    if bytes.len() != 65 {
        return None;
    }
    let v = bytes[64];
    let recid = match v {
        27 | 28 => v - 27,
        0 | 1 => v,
        _ => return None,
    };
    let sig = k256::ecdsa::Signature::from_slice(&bytes[..64]).ok()?;
    let recid = RecoveryId::from_byte(recid)?;
    let key = k256::ecdsa::VerifyingKey::recover_from_prehash(prehash, &sig, recid).ok()?;
    let point = key.to_encoded_point(false);
    let hash = evm::keccak256(&point.as_bytes()[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&hash[12..]);
    Some(Address(a))
}

// ---------------------------------------------------------------------------------------------
// Sign-In-With-X.

/// The request URL the SIWX vectors were signed for.
pub const SIWX_URL: &str = "https://api.example.com/premium-data";
/// One minute after the vectors' `issuedAt` (2024-01-15T10:30:00Z).
pub const SIWX_NOW: u64 = 1_705_314_660;
pub const SIWE_NO_STATEMENT_SIGNATURE: &str = "0xc53e3c764e322a2a2e11f54cc942b51ef522a81240a9e00be714679b121a860d15b58b4ec0d1557a0046e35816245947844196759259a3d44eeed90c37e224a31b";
pub const SIWE_WITH_STATEMENT_SIGNATURE: &str = "0x4c261c7acf140d1a136a34d486f56f787ce8c5a25624809f0aa6382aa842b8b65dab28ceb6f8b1f92c2738e0d5e8c09a09c09b6432d1c8fd904bac587a0b35d11c";

/// The proof the official client sends for the vectors' challenge (valid at [`SIWX_NOW`]).
pub fn siwx_payload(with_statement: bool) -> Value {
    let mut v = json!({
        "domain": "api.example.com",
        "address": ANVIL0,
        "uri": SIWX_URL,
        "version": "1",
        "chainId": "eip155:8453",
        "type": "eip191",
        "nonce": "a1b2c3d4e5f67890a1b2c3d4e5f67890",
        "issuedAt": "2024-01-15T10:30:00.000Z",
        "expirationTime": "2024-01-15T10:35:00.000Z",
        "resources": [SIWX_URL],
        "signature": if with_statement { SIWE_WITH_STATEMENT_SIGNATURE } else { SIWE_NO_STATEMENT_SIGNATURE },
    });
    if with_statement {
        v["statement"] = json!("Sign in to access premium data");
    }
    v
}

/// The JSON paths of a SIWX proof the edits choose from.
pub const SIWX_PATHS: &[&[&str]] = &[
    &["domain"],
    &["address"],
    &["uri"],
    &["version"],
    &["chainId"],
    &["type"],
    &["nonce"],
    &["issuedAt"],
    &["expirationTime"],
    &["notBefore"],
    &["requestId"],
    &["resources"],
    &["statement"],
    &["signatureScheme"],
    &["signature"],
];

/// Index of `signature` in [`SIWX_PATHS`].
pub const SIWX_SIGNATURE_PATH: usize = 14;

/// `personal_sign` with Anvil key #0.
pub fn personal_sign(message: &str) -> String {
    sign_prehash(&anvil0_key(), &evm::eip191_hash(message.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Sessions.

/// The fixed session secret of the session target (32 bytes, the minimum).
pub const SESSION_SECRET: &[u8; 32] = b"x402-edge fuzz session secret!!!";
/// The fixed clock of the session target.
pub const SESSION_NOW: u64 = 1_750_000_000;
/// Domain separation label of the token MAC (see `session::mac`).
pub const SESSION_MAC_LABEL: &[u8] = b"x402-edge session token\n";

/// A token with any claims bytes, MACed with [`SESSION_SECRET`] the way `issue_token` does, so
/// that `check_token` gets past the MAC to the claims parser.
pub fn forge_token(version: &str, claims: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut token = format!("{version}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SESSION_SECRET).expect("hmac key");
    mac.update(SESSION_MAC_LABEL);
    mac.update(token.as_bytes());
    let tag = mac.finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag));
    token
}

// ---------------------------------------------------------------------------------------------
// Web Bot Auth.

/// The RFC 9421 Appendix B.1.4 Ed25519 test key (public part), which signed the vectors.
pub const WBA_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
/// Inside the vectors' validity window.
pub const WBA_NOW: u64 = 1_767_225_610;

/// The key directory the crawler target verifies against.
pub fn wba_directory_json() -> String {
    format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{WBA_X}","kid":"test-key-ed25519"}}]}}"#
    )
}
