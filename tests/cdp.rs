//! CDP API keys and the JWT each call to CDP's facilitator carries: reading both forms of key,
//! what is signed, and refusals that never quote the secret. (That the runtime's WebCrypto imports
//! the keys and CDP's checks accept the tokens is shown by the black-box suite,
//! `tests/e2e/facilitator-auth.test.mjs`.)

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use serde_json::{json, Value};
use x402_edge::cdp::{token, uri, Alg, ApiKey, TOKEN_SECONDS};

const ID: &str = "organizations/0f4e/apiKeys/9a1c";
const SETTLE: &str = "https://api.cdp.coinbase.com/platform/v2/x402/settle";
const NOW: u64 = 1_750_000_000;

/// A P-256 key in SEC 1, as CDP's ECDSA keys come (made for this test).
const EC_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEICq4grwUY9K/QGpvt7+bY1fQ66HgdfLy6EonYKfraqrtoAoGCCqGSM49
AwEHoUQDQgAEjDej22DE6JiZqdTPiOputnJuRbPghJdjziqfh76ewa1zKNnlUX1m
icxWkHzTvEoc5danDyicR/p23SZhbuZ71Q==
-----END EC PRIVATE KEY-----";

/// A secp256k1 key: an EC key, but not on CDP's curve.
const K1_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIBNtZwrxxS7ALIrbABoYKEPNauSouGEfuHRfc0QoiRcAoAcGBSuBBAAK
oUQDQgAE/392mOVp2oyFJEg1ZRcIwCYtFKGJeOfxJtGaSXfHPf5nkRKZe516FAJ6
DZKSNoATzyCRY12RmrRWELYArBp87g==
-----END EC PRIVATE KEY-----";

fn ed25519() -> (SigningKey, String) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let mut secret = key.to_bytes().to_vec();
    secret.extend_from_slice(key.verifying_key().as_bytes());
    (key, STANDARD.encode(secret))
}

fn part(token: &str, i: usize) -> Value {
    let text = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(i).unwrap())
        .unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// One DER element at the start of `der`: (tag, contents, rest).
fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (der[0], der[1] as usize);
    let (len, at) = match first {
        0..=0x7f => (first, 2),
        0x81 => (der[2] as usize, 3),
        0x82 => ((der[2] as usize) << 8 | der[3] as usize, 4),
        _ => panic!("length form"),
    };
    (tag, &der[at..at + len], &der[at + len..])
}

#[test]
fn an_ed25519_key_signs_a_token_for_one_call() {
    let (signing, secret) = ed25519();
    let key = ApiKey::parse(ID, &secret).unwrap();
    assert_eq!(key.alg, Alg::EdDsa);
    // RFC 8410's PKCS #8 around the seed: what WebCrypto imports.
    assert_eq!(key.pkcs8.len(), 48);
    assert_eq!(&key.pkcs8[16..], &signing.to_bytes());

    let nonce = [0xabu8; 16];
    let input = key.signing_input("POST", SETTLE, NOW, &nonce);
    let jwt = token(&input, &signing.sign(input.as_bytes()).to_bytes());
    assert_eq!(
        part(&jwt, 0),
        json!({"alg": "EdDSA", "kid": ID, "typ": "JWT", "nonce": "ab".repeat(16)})
    );
    assert_eq!(
        part(&jwt, 1),
        json!({
            "sub": ID, "iss": "cdp", "aud": ["cdp_service"],
            "nbf": NOW, "iat": NOW, "exp": NOW + TOKEN_SECONDS,
            "uris": ["POST api.cdp.coinbase.com/platform/v2/x402/settle"],
        })
    );
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    assert_eq!(signed, input);
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    assert!(signing
        .verifying_key()
        .verify(signed.as_bytes(), &signature)
        .is_ok());
    // Another call, another nonce: no two tokens alike.
    let other = key.signing_input("POST", SETTLE, NOW, &[1u8; 16]);
    assert_ne!(other, input);
}

#[test]
fn a_p256_key_in_sec1_is_wrapped_as_pkcs8() {
    for pem in [EC_PEM.to_string(), EC_PEM.replace('\n', "\\n")] {
        let key = ApiKey::parse(&format!("  {ID}\n"), &pem).unwrap();
        assert_eq!((key.id.as_str(), key.alg), (ID, Alg::Es256));
        // PrivateKeyInfo { 0, { id-ecPublicKey, prime256v1 }, OCTET STRING (the SEC 1 key) }
        let (tag, info, rest) = element(&key.pkcs8);
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (tag, version, info) = element(info);
        assert_eq!((tag, version), (0x02, &[0u8][..]));
        let (tag, algorithm, info) = element(info);
        assert_eq!(tag, 0x30);
        let (_, oid, _) = element(algorithm);
        assert_eq!(oid, [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
        let (tag, sec1, info) = element(info);
        assert_eq!((tag, info.len()), (0x04, 0));
        let body: String = EC_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(sec1, STANDARD.decode(body).unwrap());
    }
    let input = ApiKey::parse(ID, EC_PEM).unwrap().signing_input(
        "GET",
        "https://api.cdp.coinbase.com/platform/v2/x402/supported",
        NOW,
        &[0; 16],
    );
    assert_eq!(part(&format!("{input}.x"), 0)["alg"], "ES256");
    assert_eq!(
        part(&format!("{input}.x"), 1)["uris"],
        json!(["GET api.cdp.coinbase.com/platform/v2/x402/supported"])
    );
}

#[test]
fn what_a_token_is_for() {
    assert_eq!(
        uri("POST", SETTLE),
        "POST api.cdp.coinbase.com/platform/v2/x402/settle"
    );
    assert_eq!(
        uri("POST", "http://127.0.0.1:8402/settle"),
        "POST 127.0.0.1:8402/settle"
    );
    assert_eq!(
        uri("GET", "https://f.example/x402/supported?a=1#b"),
        "GET f.example/x402/supported"
    );
}

#[test]
fn unusable_keys_say_why_and_never_quote_the_secret() {
    let (_, secret) = ed25519();
    let short = STANDARD.encode([9u8; 32]);
    let cases = [
        ("", secret.as_str(), "id is empty"),
        (ID, short.as_str(), "64 bytes"),
        (ID, "not base64 at all!", "neither a PEM EC key nor base64"),
        (ID, K1_PEM, "not on P-256"),
        (
            ID,
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            "RSA PRIVATE KEY",
        ),
        (
            ID,
            "-----BEGIN EC PRIVATE KEY-----\n@@@@\n-----END EC PRIVATE KEY-----",
            "not base64",
        ),
    ];
    for (id, secret, why) in cases {
        let err = ApiKey::parse(id, secret).unwrap_err();
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("MHQCAQEE") && !err.contains(&short), "{err}");
    }
    // A key's debug form names it, never its private part.
    let key = ApiKey::parse(ID, &secret).unwrap();
    assert!(!format!("{key:?}").contains("pkcs8"));
}
