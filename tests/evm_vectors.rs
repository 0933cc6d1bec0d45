//! The x402 EVM vectors (`tests/vectors/x402-vectors.json`, a copy of
//! `shared/vectors/x402-vectors.json`) against `x402_edge::evm`: typehashes,
//! EIP-712 domain separators, struct hashes and digests, EIP-191 hashes of
//! SIWE messages, and signer recovery for each signature.

use serde_json::Value;
use x402_edge::evm::{
    eip191_hash, keccak256, parse_bytes32, Address, Eip712Domain, Signature,
    TransferWithAuthorization, EIP712_DOMAIN_TYPEHASH, TRANSFER_WITH_AUTHORIZATION_TYPEHASH, U256,
};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/x402-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("read x402-vectors.json");
    serde_json::from_str(&text).expect("parse x402-vectors.json")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {key}"))
}

fn b32(v: &Value, key: &str) -> [u8; 32] {
    parse_bytes32(s(v, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn addr(v: &Value, key: &str) -> Address {
    Address::parse(s(v, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn u256(v: &Value, key: &str) -> U256 {
    U256::from_dec_str(s(v, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn domain(v: &Value) -> Eip712Domain<'_> {
    Eip712Domain {
        name: s(v, "name"),
        version: s(v, "version"),
        chain_id: v["chainId"].as_u64().expect("chainId"),
        verifying_contract: addr(v, "verifyingContract"),
    }
}

fn authorization(v: &Value) -> TransferWithAuthorization {
    TransferWithAuthorization {
        from: addr(v, "from"),
        to: addr(v, "to"),
        value: u256(v, "value"),
        valid_after: u256(v, "validAfter"),
        valid_before: u256(v, "validBefore"),
        nonce: b32(v, "nonce"),
    }
}

fn sig(v: &Value) -> Signature {
    Signature::parse_hex(s(v, "signature")).expect("signature")
}

#[test]
fn typehash_constants() {
    let c = &vectors()["constants"];
    assert_eq!(EIP712_DOMAIN_TYPEHASH, b32(c, "EIP712_DOMAIN_TYPEHASH"));
    assert_eq!(
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
        b32(c, "TRANSFER_WITH_AUTHORIZATION_TYPEHASH")
    );
    assert_eq!(
        keccak256(
            b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        ),
        EIP712_DOMAIN_TYPEHASH
    );
    assert_eq!(
        keccak256(b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"),
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH
    );
}

#[test]
fn spec_example() {
    let all = vectors();
    let v = &all["spec_example"];
    let d = domain(&v["domain"]);
    let auth = authorization(&v["authorization"]);
    assert_eq!(d.separator(), b32(v, "domainSeparator"));
    let digest = auth.digest(&d);
    assert_eq!(digest, b32(v, "digest"));
    let signer = addr(v, "recovers_to");
    assert_eq!(signer, auth.from);
    assert_eq!(sig(v).recover(&digest), Ok(signer));
}

#[test]
fn spec_example_wrong_domain_name_fails() {
    let all = vectors();
    let v = &all["spec_example"];
    let wrong = Eip712Domain {
        name: "USD Coin",
        ..domain(&v["domain"])
    };
    assert_eq!(wrong.chain_id, 84532);
    let digest = authorization(&v["authorization"]).digest(&wrong);
    let recovered = sig(v).recover(&digest).expect("still recovers a key");
    assert_ne!(recovered, addr(v, "recovers_to"));
    // x402-protocol.md §6.1 records this wrong-domain signer as 0xED07B31F…ad7e.
    let text = recovered.to_checksum();
    assert!(
        text.starts_with("0xED07B31F") && text.ends_with("ad7e"),
        "{text}"
    );
}

#[test]
fn generated_vectors() {
    let all = vectors();
    let g = &all["generated"];
    let signer = addr(g, "signer");
    let auth = authorization(&g["authorization"]);
    assert_eq!(auth.from, signer);
    for case in ["base-sepolia", "base"] {
        let v = &g[case];
        let d = domain(&v["domain"]);
        assert_eq!(d.separator(), b32(v, "domainSeparator"), "{case}");
        assert_eq!(auth.struct_hash(), b32(v, "structHash"), "{case}");
        let digest = auth.digest(&d);
        assert_eq!(digest, b32(v, "digest"), "{case}");
        assert_eq!(sig(v).recover(&digest), Ok(signer), "{case}");
    }
    // Cross-network replay: the Sepolia signature does not verify on Base.
    let base_digest = auth.digest(&domain(&g["base"]["domain"]));
    assert_ne!(sig(&g["base-sepolia"]).recover(&base_digest), Ok(signer));
}

#[test]
fn siwe_vectors() {
    let all = vectors();
    let g = &all["generated"];
    let signer = addr(g, "signer");
    for case in ["siwe_no_statement", "siwe_with_statement"] {
        let v = &g[case];
        let hash = eip191_hash(s(v, "message").as_bytes());
        assert_eq!(hash, b32(v, "eip191Hash"), "{case}");
        assert_eq!(sig(v).recover(&hash), Ok(signer), "{case}");
    }
}
