//! `x402_edge::crawlers`: Web Bot Auth verification (against requests signed here with
//! ed25519-dalek, and against `tests/vectors/web-bot-auth.json`, made by the independent
//! `web-bot-auth` npm library and Cloudflare's Rust crate), classification, and Pay Per Crawl headers.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde_json::Value;
use x402_edge::crawlers::*;

// RFC 9421 Appendix B.1.4 test key (cloudflare/web-bot-auth examples/rfc9421-keys/ed25519.json).
const X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
const D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
const KEYID: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";

const NOW: u64 = 1_767_225_610;
const CREATED: u64 = 1_767_225_600;
const EXPIRES: u64 = CREATED + 300;
const NONCE: &str =
    "ZO3/XMEZjrvSnLtAP9M7jK0WGQf3J+pbmQRUpKDhF9/jsNCWqUh2sq+TH4WTX3/GpNoSZUa8eNWMKqxWp2/c2g==";
const AGENT: &str = "\"https://signature-agent.test\"";

/// A request as the shell would describe it.
#[derive(Clone)]
struct Req {
    method: String,
    authority: String,
    target_uri: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn get(url_authority: &str, path: &str) -> Req {
        Req {
            method: "GET".into(),
            authority: url_authority.into(),
            target_uri: format!("https://{url_authority}{path}"),
            path: path.split('?').next().unwrap_or(path).into(),
            headers: vec![],
        }
    }

    fn with(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn parse(&self) -> Result<Option<ParsedSignature>, WbaError> {
        let lookup = |name: &str| self.header(name);
        parse_signature(&SignedRequest {
            method: &self.method,
            authority: &self.authority,
            target_uri: &self.target_uri,
            path: &self.path,
            header: &lookup,
        })
    }

    fn verify_at(&self, keys: &Jwks, now: u64) -> Result<VerifiedAgent, WbaError> {
        let parsed = self.parse()?.expect("request is signed");
        verify(&parsed, keys, now)
    }
}

fn signing_key() -> SigningKey {
    let d: [u8; 32] = URL_SAFE_NO_PAD
        .decode(D)
        .expect("d is base64url")
        .try_into()
        .expect("32 bytes");
    SigningKey::from_bytes(&d)
}

fn keys() -> Jwks {
    parse_directory(&format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{X}","kid":"test-key-ed25519"}}]}}"#
    ))
    .expect("directory parses")
}

/// The parameters web-bot-auth@0.1.3 writes, in its order.
fn params(created: u64, expires: u64, keyid: &str, extra: &str) -> String {
    format!(
        r#";created={created};keyid="{keyid}";alg="ed25519";expires={expires};nonce="{NONCE}"{extra}"#
    )
}

fn wba_params() -> String {
    params(CREATED, EXPIRES, KEYID, r#";tag="web-bot-auth""#)
}

/// Signs like web-bot-auth does: one `id: value` line per component, then `@signature-params`.
/// Returns the request with `Signature-Input` and `Signature` set, and the base that was signed.
fn sign(req: Req, components: &[(&str, &str)], params: &str) -> (Req, String) {
    let ids: Vec<&str> = components.iter().map(|(id, _)| *id).collect();
    let inner = format!("({}){params}", ids.join(" "));
    let mut base = String::new();
    for (id, value) in components {
        base.push_str(&format!("{id}: {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {inner}"));
    let sig = signing_key().sign(base.as_bytes());
    let req = req.with("signature-input", &format!("sig1={inner}")).with(
        "signature",
        &format!("sig1=:{}:", STANDARD.encode(sig.to_bytes())),
    );
    (req, base)
}

/// The default: `Signature-Agent` legacy form, covering `@authority` and `signature-agent`.
fn signed_default() -> (Req, String) {
    let req = Req::get("example.com", "/articles/1?page=2").with("signature-agent", AGENT);
    sign(
        req,
        &[
            ("\"@authority\"", "example.com"),
            ("\"signature-agent\"", AGENT),
        ],
        &wba_params(),
    )
}

fn code(r: Result<impl std::fmt::Debug, WbaError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            assert!(!e.message().is_empty());
            e.code()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and directories
// ---------------------------------------------------------------------------------------------

#[test]
fn thumbprint_of_the_rfc9421_test_key() {
    assert_eq!(jwk_thumbprint(X), KEYID);
    let jwk = Jwk::ed25519(X, None).expect("valid key");
    assert_eq!(jwk.thumbprint, KEYID);
    assert_eq!(
        jwk.public_key(),
        signing_key().verifying_key().as_bytes(),
        "x is the public half of d"
    );
}

#[test]
fn directory_parsing() {
    let jwks = parse_directory(&format!(
        r#"{{"keys":[
            {{"kty":"RSA","n":"abc","e":"AQAB","alg":"PS512"}},
            {{"kty":"OKP","crv":"X25519","x":"{X}"}},
            {{"kty":"OKP","crv":"Ed25519","x":"not base64!"}},
            {{"kty":"OKP","crv":"Ed25519","x":"AAAA"}},
            {{"kty":"OKP","crv":"Ed25519","x":"{X}","kid":"mine","nbf":1743465600000}}
        ],"purpose":"rag"}}"#
    ))
    .expect("one usable key");
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(
        jwks.find(KEYID).map(|k| k.kid.as_deref()),
        Some(Some("mine"))
    );
    assert_eq!(
        jwks.find("mine").map(|k| k.thumbprint.as_str()),
        Some(KEYID)
    );
    assert!(jwks.find("other").is_none());

    assert_eq!(code(parse_directory("not json")), "malformed_directory");
    assert_eq!(code(parse_directory("[]")), "malformed_directory");
    assert_eq!(
        code(parse_directory(r#"{"keys":{}}"#)),
        "malformed_directory"
    );
    assert_eq!(
        code(parse_directory(r#"{"keys":[]}"#)),
        "directory_without_keys"
    );
    assert_eq!(
        code(parse_directory(
            r#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}"#
        )),
        "directory_without_keys"
    );
    let huge = format!(r#"{{"keys":[],"pad":"{}"}}"#, "a".repeat(70_000));
    assert_eq!(code(parse_directory(&huge)), "malformed_directory");
}

#[test]
fn only_signers_the_publisher_trusts_count() {
    let trusted: Vec<String> = [
        "crawler.example.com",
        "127.0.0.1:8790",
        "*.bot.test",
        "https://Keys.example/crawler/jwks.json",
    ]
    .map(String::from)
    .to_vec();
    for (agent, expected) in [
        ("crawler.example.com", true),
        ("CRAWLER.Example.com", true),
        ("crawler.example.com:8443", true),
        // A host covers itself only: its subdomains may be anyone's.
        ("eu.crawler.example.com", false),
        ("127.0.0.1:8790", true),
        // `*.bot.test` covers the subdomains, at any depth, and not the host itself.
        ("eu.bot.test", true),
        ("a.b.bot.test", true),
        ("bot.test", false),
        // Not the trusted host: a look-alike, a parent, a suffix that is not a subdomain.
        ("evilcrawler.example.com", false),
        ("example.com", false),
        ("crawler.example.com.evil.test", false),
        ("notbot.test", false),
        // A trusted host:port covers that port only.
        ("127.0.0.1:8791", false),
        ("127.0.0.1", false),
        // A key set URL's host is not trusted as a directory host.
        ("keys.example", false),
        ("", false),
    ] {
        assert_eq!(signer_trusted(agent, None, &trusted), expected, "{agent}");
    }
    // A key set named by URL (type=jwks_uri): only a URL listed as such, whatever its host.
    for (url, expected) in [
        ("https://keys.example/crawler/jwks.json", true),
        ("https://KEYS.EXAMPLE/crawler/jwks.json", true),
        ("https://keys.example/Crawler/jwks.json", false),
        ("https://keys.example/uploads/jwks.json", false),
        ("https://keys.example/crawler/jwks.json?x", false),
        ("https://crawler.example.com/jwks.json", false),
        (
            "https://crawler.example.com/.well-known/http-message-signatures-directory",
            false,
        ),
    ] {
        let agent = url.split('/').nth(2).unwrap();
        assert_eq!(
            signer_trusted(agent, Some(url), &trusted),
            expected,
            "{url}"
        );
    }
    assert!(
        !signer_trusted("crawler.example.com", None, &[]),
        "nobody is trusted by default"
    );
    assert_eq!(
        WbaError::UntrustedSigner("x.test".into()).code(),
        "untrusted_signer"
    );
}

#[test]
fn directory_urls() {
    let well_known = "/.well-known/http-message-signatures-directory";
    for (agent, expected) in [
        (
            "https://signature-agent.test",
            Some("https://signature-agent.test"),
        ),
        (
            "https://Signature-Agent.TEST/some/path?x#y",
            Some("https://signature-agent.test"),
        ),
        ("https://agent.example:443", Some("https://agent.example")),
        (
            "https://agent.example:8443/",
            Some("https://agent.example:8443"),
        ),
        ("HTTPS://agent.example", Some("https://agent.example")),
        ("http://127.0.0.1:8788", Some("http://127.0.0.1:8788")),
        ("http://localhost", Some("http://localhost")),
        ("http://[::1]:9000", Some("http://[::1]:9000")),
        ("http://agent.example", None),
        ("http://127.0.0.1.evil.example", None),
        ("ftp://agent.example", None),
        ("https://user@agent.example", None),
        ("https://", None),
        ("https://agent.example:99999", None),
        ("https://agent.example:", None),
        ("https://agent example", None),
        (
            "data:application/http-message-signatures-directory+json;base64,e30=",
            None,
        ),
        ("agent.example", None),
        ("", None),
    ] {
        assert_eq!(
            directory_url(agent),
            expected.map(|o| format!("{o}{well_known}")),
            "{agent}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Web Bot Auth: signed here
// ---------------------------------------------------------------------------------------------

#[test]
fn signed_request_verifies() {
    let (req, base) = signed_default();
    let parsed = req.parse().expect("parses").expect("signed");
    assert_eq!(parsed.signature_base, base);
    assert_eq!(parsed.keyid, KEYID);
    assert_eq!(parsed.label, "sig1");
    assert_eq!((parsed.created, parsed.expires), (CREATED, EXPIRES));
    assert_eq!(parsed.nonce.as_deref(), Some(NONCE));
    assert_eq!(parsed.component_names(), ["@authority", "signature-agent"]);
    assert!(parsed.covers("signature-agent"));
    assert_eq!(
        parsed.agent_uri.as_deref(),
        Some("https://signature-agent.test")
    );
    assert_eq!(parsed.agent_link, Some(AgentLink::Directory));
    assert_eq!(
        parsed.agent_url.as_deref(),
        Some("https://signature-agent.test/.well-known/http-message-signatures-directory")
    );
    assert_eq!(parsed.agent.as_deref(), Some("signature-agent.test"));

    let agent = verify(&parsed, &keys(), NOW).expect("verifies");
    assert_eq!(agent.agent, "signature-agent.test");
    assert_eq!(agent.keyid, KEYID);
    assert_eq!(agent.kid.as_deref(), Some("test-key-ed25519"));
    assert_eq!(agent.nonce.as_deref(), Some(NONCE));
    assert!(!agent.covers("crawler-exact-price"));
}

#[test]
fn the_signature_base_has_the_rfc9421_shape() {
    let (req, _) = signed_default();
    let parsed = req.parse().unwrap().unwrap();
    let expected = format!(
        "\"@authority\": example.com\n\"signature-agent\": \"https://signature-agent.test\"\n\"@signature-params\": (\"@authority\" \"signature-agent\"){}",
        wba_params()
    );
    assert_eq!(parsed.signature_base, expected);
}

#[test]
fn dictionary_signature_agent_with_key() {
    let req = Req::get("example.com", "/").with(
        "signature-agent",
        r#"agent1="https://agent.example";type=directory, agent2="https://other.example""#,
    );
    let (req, base) = sign(
        req,
        &[
            ("\"@authority\"", "example.com"),
            (
                "\"signature-agent\";key=\"agent1\"",
                "\"https://agent.example\";type=directory",
            ),
        ],
        &wba_params(),
    );
    let parsed = req.parse().unwrap().unwrap();
    assert_eq!(parsed.signature_base, base);
    assert_eq!(parsed.agent.as_deref(), Some("agent.example"));
    assert_eq!(parsed.components[1].key.as_deref(), Some("agent1"));
    assert!(
        !parsed.covers("signature-agent"),
        "only a member is covered"
    );
    assert_eq!(
        verify(&parsed, &keys(), NOW).unwrap().agent,
        "agent.example"
    );

    // The member must exist.
    let (bad, _) = sign(
        Req::get("example.com", "/").with("signature-agent", r#"agent1="https://agent.example""#),
        &[
            ("\"@authority\"", "example.com"),
            ("\"signature-agent\";key=\"agent9\"", "x"),
        ],
        &wba_params(),
    );
    assert_eq!(code(bad.parse()), "missing_component");
}

#[test]
fn dictionary_signature_agent_covered_whole_and_jwks_uri() {
    // One member, covered as the whole field (what web-bot-auth@0.1.3 does).
    let value = r#"agent1="https://agent.example""#;
    let (req, _) = sign(
        Req::get("example.com", "/").with("signature-agent", value),
        &[
            ("\"@authority\"", "example.com"),
            ("\"signature-agent\"", value),
        ],
        &wba_params(),
    );
    let parsed = req.parse().unwrap().unwrap();
    assert_eq!(parsed.agent.as_deref(), Some("agent.example"));
    // Keys from a directory, named by its host: no key set URL to list the signer by.
    assert_eq!(verify(&parsed, &keys(), NOW).unwrap().key_set_url, None);

    // Two members, covered whole: which one holds the key is unknowable.
    let value = r#"agent1="https://a.example", agent2="https://b.example""#;
    let (req, _) = sign(
        Req::get("example.com", "/").with("signature-agent", value),
        &[
            ("\"@authority\"", "example.com"),
            ("\"signature-agent\"", value),
        ],
        &wba_params(),
    );
    assert_eq!(code(req.parse()), "ambiguous_signature_agent");

    // type=jwks_uri: the URL itself is fetched.
    let value = r#"a="https://keys.example/jwks.json";type=jwks_uri"#;
    let (req, _) = sign(
        Req::get("example.com", "/").with("signature-agent", value),
        &[
            ("\"@authority\"", "example.com"),
            (
                "\"signature-agent\";key=\"a\"",
                "\"https://keys.example/jwks.json\";type=jwks_uri",
            ),
        ],
        &wba_params(),
    );
    let parsed = req.parse().unwrap().unwrap();
    assert_eq!(parsed.agent_link, Some(AgentLink::JwksUri));
    assert_eq!(
        parsed.agent_url.as_deref(),
        Some("https://keys.example/jwks.json")
    );
    let verified = verify(&parsed, &keys(), NOW).unwrap();
    assert_eq!(
        verified.key_set_url.as_deref(),
        Some("https://keys.example/jwks.json")
    );

    // type=cimd is not supported.
    let value = r#"a="https://keys.example/card";type=cimd"#;
    let (req, _) = sign(
        Req::get("example.com", "/").with("signature-agent", value),
        &[
            ("\"@authority\"", "example.com"),
            ("\"signature-agent\";key=\"a\"", "x"),
        ],
        &wba_params(),
    );
    assert_eq!(code(req.parse()), "unsupported_signature_agent");
}

#[test]
fn signature_agent_forms_that_are_refused() {
    for (value, expected) in [
        (
            "\"data:application/http-message-signatures-directory+json;base64,eyJrZXlzIjpbXX0=\"",
            "unsupported_signature_agent",
        ),
        ("\"http://agent.example\"", "unsupported_signature_agent"),
        ("\"ftp://agent.example\"", "unsupported_signature_agent"),
        ("agent1=1", "malformed_signature_agent"),
        ("\"unterminated", "malformed_signature_agent"),
        ("((", "malformed_signature_agent"),
        (
            "data:application/jwk-set+json",
            "unsupported_signature_agent",
        ),
    ] {
        let (req, _) = sign(
            Req::get("example.com", "/").with("signature-agent", value),
            &[
                ("\"@authority\"", "example.com"),
                ("\"signature-agent\"", value),
            ],
            &wba_params(),
        );
        assert_eq!(code(req.parse()), expected, "{value}");
    }
    // Loopback over http is allowed, for local tests.
    let value = "\"http://127.0.0.1:8788\"";
    let (req, _) = sign(
        Req::get("127.0.0.1:8787", "/").with("signature-agent", value),
        &[
            ("\"@authority\"", "127.0.0.1:8787"),
            ("\"signature-agent\"", value),
        ],
        &wba_params(),
    );
    assert_eq!(req.verify_at(&keys(), NOW).unwrap().agent, "127.0.0.1:8788");
    // A bare host (seen in Cloudflare's batch-settlement doc) is read as https://host.
    let value = "crawler.example";
    let (req, _) = sign(
        Req::get("example.com", "/").with("signature-agent", value),
        &[
            ("\"@authority\"", "example.com"),
            ("\"signature-agent\"", value),
        ],
        &wba_params(),
    );
    assert_eq!(
        req.parse().unwrap().unwrap().agent_url.as_deref(),
        Some("https://crawler.example/.well-known/http-message-signatures-directory")
    );
}

#[test]
fn tampered_authority_is_refused() {
    let (mut req, _) = signed_default();
    req.authority = "attacker.example".into();
    req.target_uri = "https://attacker.example/articles/1?page=2".into();
    assert_eq!(code(req.verify_at(&keys(), NOW)), "invalid_signature");
}

#[test]
fn tampered_signature_agent_is_refused() {
    // Someone mirrors the agent's public key in their own directory and swaps Signature-Agent:
    // the covered header changes, so the signature no longer verifies.
    let (req, _) = signed_default();
    let req = req.with("signature-agent", "\"https://mirror.example\"");
    let parsed = req.parse().unwrap().unwrap();
    assert_eq!(parsed.agent.as_deref(), Some("mirror.example"));
    assert_eq!(code(verify(&parsed, &keys(), NOW)), "invalid_signature");
}

#[test]
fn tampered_signature_bytes_are_refused() {
    let (req, _) = signed_default();
    let sig = req.header("signature").unwrap();
    let mut bytes = STANDARD
        .decode(sig.trim_start_matches("sig1=:").trim_end_matches(':'))
        .unwrap();
    bytes[0] ^= 1;
    let flipped = req
        .clone()
        .with("signature", &format!("sig1=:{}:", STANDARD.encode(&bytes)));
    assert_eq!(code(flipped.verify_at(&keys(), NOW)), "invalid_signature");
    let short = req.clone().with("signature", "sig1=:AAAA:");
    assert_eq!(code(short.parse()), "malformed_signature");
    let token = req.clone().with("signature", "sig1=abc");
    assert_eq!(code(token.parse()), "malformed_signature");
    let other_label = req.with("signature", &sig.replace("sig1=", "sig2="));
    assert_eq!(code(other_label.parse()), "signature_label_missing");
}

#[test]
fn timing_checks() {
    let keys = keys();
    let (req, _) = signed_default();
    assert_eq!(code(req.verify_at(&keys, EXPIRES)), "signature_expired");
    assert_eq!(
        code(req.verify_at(&keys, EXPIRES + 1000)),
        "signature_expired"
    );
    assert!(req.verify_at(&keys, EXPIRES - 1).is_ok());
    // created may be up to 60 s ahead of our clock.
    assert!(req.verify_at(&keys, CREATED - 60).is_ok());
    assert_eq!(
        code(req.verify_at(&keys, CREATED - 61)),
        "signature_created_in_future"
    );

    let sign_window = |created: u64, expires: u64| {
        sign(
            Req::get("example.com", "/"),
            &[("\"@authority\"", "example.com")],
            &params(created, expires, KEYID, r#";tag="web-bot-auth""#),
        )
        .0
    };
    let too_long = sign_window(CREATED, CREATED + 24 * 3600 + 1);
    assert_eq!(
        code(too_long.verify_at(&keys, NOW)),
        "invalid_validity_window"
    );
    assert!(sign_window(CREATED, CREATED + 24 * 3600)
        .verify_at(&keys, NOW)
        .is_ok());
    let backwards = sign_window(NOW + 30, NOW + 10);
    assert_eq!(
        code(backwards.verify_at(&keys, NOW)),
        "invalid_validity_window"
    );
}

#[test]
fn unknown_keyid_is_refused() {
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &[("\"@authority\"", "example.com")],
        &params(CREATED, EXPIRES, "some-other-key", r#";tag="web-bot-auth""#),
    );
    assert_eq!(code(req.verify_at(&keys(), NOW)), "unknown_key");
    // ...but a kid match is accepted.
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &[("\"@authority\"", "example.com")],
        &params(
            CREATED,
            EXPIRES,
            "test-key-ed25519",
            r#";tag="web-bot-auth""#,
        ),
    );
    let agent = req.verify_at(&keys(), NOW).expect("kid matches");
    assert_eq!(agent.agent, "keyid:test-key-ed25519");
    assert_eq!(agent.key_set_url, None);
}

#[test]
fn tag_is_required_and_must_be_web_bot_auth() {
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &[("\"@authority\"", "example.com")],
        &params(CREATED, EXPIRES, KEYID, ""),
    );
    assert_eq!(code(req.parse()), "missing_tag");
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &[("\"@authority\"", "example.com")],
        &params(CREATED, EXPIRES, KEYID, r#";tag="not-web-bot-auth""#),
    );
    assert_eq!(code(req.parse()), "wrong_tag");
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &[("\"@authority\"", "example.com")],
        &params(CREATED, EXPIRES, KEYID, ";tag=web-bot-auth"),
    );
    assert_eq!(code(req.parse()), "wrong_tag", "a token is not the string");
}

#[test]
fn picks_the_web_bot_auth_signature_among_several() {
    let (signed, _) = signed_default();
    let input = signed
        .header("signature-input")
        .unwrap()
        .replace("sig1=", "wba=");
    let sig = signed.header("signature").unwrap().replace("sig1=", "wba=");
    let req = signed
        .with(
            "signature-input",
            &format!(r#"other=("@method");created=1;keyid="x";tag="something-else", {input}"#),
        )
        .with("signature", &format!("other=:AAAA:, {sig}"));
    let parsed = req.parse().unwrap().unwrap();
    assert_eq!(parsed.label, "wba");
    assert!(verify(&parsed, &keys(), NOW).is_ok());
}

#[test]
fn coverage_requirements() {
    // Neither @authority nor @target-uri.
    let (req, _) = sign(
        Req::get("example.com", "/").with("signature-agent", AGENT),
        &[("\"@path\"", "/"), ("\"signature-agent\"", AGENT)],
        &wba_params(),
    );
    assert_eq!(code(req.parse()), "authority_not_covered");

    // @target-uri instead of @authority is enough.
    let (req, _) = sign(
        Req::get("example.com", "/x?y=1").with("signature-agent", AGENT),
        &[
            ("\"@target-uri\"", "https://example.com/x?y=1"),
            ("\"signature-agent\"", AGENT),
        ],
        &wba_params(),
    );
    assert!(req.verify_at(&keys(), NOW).is_ok());

    // Signature-Agent present but not covered.
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &[("\"@authority\"", "example.com")],
        &wba_params(),
    );
    assert!(
        req.verify_at(&keys(), NOW).is_ok(),
        "fine without the header"
    );
    let req = req.with("signature-agent", AGENT);
    assert_eq!(code(req.parse()), "signature_agent_not_covered");

    // Covered but absent.
    let (req, _) = signed_default();
    assert_eq!(
        code(req.without("signature-agent").parse()),
        "missing_component"
    );
}

#[test]
fn required_parameters() {
    let comps = [("\"@authority\"", "example.com")];
    for (params, expected) in [
        (
            format!(r#";created={CREATED};expires={EXPIRES};tag="web-bot-auth""#),
            "missing_signature_parameter",
        ),
        (
            format!(r#";keyid="{KEYID}";expires={EXPIRES};tag="web-bot-auth""#),
            "missing_signature_parameter",
        ),
        (
            format!(r#";keyid="{KEYID}";created={CREATED};tag="web-bot-auth""#),
            "missing_signature_parameter",
        ),
        (
            format!(r#";keyid={KEYID};created={CREATED};expires={EXPIRES};tag="web-bot-auth""#),
            "invalid_signature_parameter", // a token, not a string
        ),
        (
            format!(r#";keyid="{KEYID}";created="{CREATED}";expires={EXPIRES};tag="web-bot-auth""#),
            "invalid_signature_parameter",
        ),
        (
            format!(r#";keyid="{KEYID}";created=-1;expires={EXPIRES};tag="web-bot-auth""#),
            "invalid_signature_parameter",
        ),
        (
            format!(r#";keyid="{KEYID}";created={CREATED}.5;expires={EXPIRES};tag="web-bot-auth""#),
            "invalid_signature_parameter",
        ),
        (
            params(
                CREATED,
                EXPIRES,
                KEYID,
                r#";tag="web-bot-auth";alg="rsa-pss-sha512""#,
            ),
            "unsupported_algorithm",
        ),
    ] {
        let (req, _) = sign(Req::get("example.com", "/"), &comps, &params);
        assert_eq!(code(req.parse()), expected, "{params}");
    }
    // Without alg and nonce, with an unknown extra parameter: fine.
    let (req, _) = sign(
        Req::get("example.com", "/"),
        &comps,
        &format!(r#";keyid="{KEYID}";created={CREATED};expires={EXPIRES};tag="web-bot-auth";x=?1"#),
    );
    assert!(req.verify_at(&keys(), NOW).is_ok());
}

#[test]
fn unsigned_and_half_signed_requests() {
    let req = Req::get("example.com", "/");
    assert_eq!(req.parse(), Ok(None));
    assert_eq!(req.clone().with("signature-agent", AGENT).parse(), Ok(None));
    let (signed, _) = signed_default();
    assert_eq!(
        code(signed.clone().without("signature").parse()),
        "missing_signature_header"
    );
    assert_eq!(
        code(signed.clone().without("signature-input").parse()),
        "missing_signature_header"
    );
    let long = "a".repeat(MAX_HEADER_BYTES + 1);
    assert_eq!(
        code(signed.with("signature-input", &long).parse()),
        "signature_header_too_large"
    );
}

#[test]
fn components_we_cannot_or_will_not_build() {
    for (id, expected) in [
        ("\"@status\"", "unsupported_component"),
        ("\"@query-param\";name=\"a\"", "unsupported_component"),
        ("\"@signature-params\"", "unsupported_component"),
        ("\"@authority\";req", "unsupported_component"),
        ("\"content-type\";sf", "unsupported_component"),
        ("\"content-type\";bs", "unsupported_component"),
        ("\"Content-Type\"", "unsupported_component"),
        ("\"x-missing\"", "missing_component"),
        ("\"@authority\"", "duplicate_component"),
    ] {
        let (req, _) = sign(
            Req::get("example.com", "/"),
            &[("\"@authority\"", "example.com"), (id, "v")],
            &wba_params(),
        );
        assert_eq!(code(req.parse()), expected, "{id}");
    }
    let (req, _) = sign(
        Req::get("example.com", "/").with("x-note", "caf\u{e9}"),
        &[("\"@authority\"", "example.com"), ("\"x-note\"", "cafe")],
        &wba_params(),
    );
    assert_eq!(code(req.parse()), "non_ascii_component");
    let (req, _) = sign(
        Req::get("example.com", "/").with("x-dict", "not a dictionary"),
        &[
            ("\"@authority\"", "example.com"),
            ("\"x-dict\";key=\"a\"", "v"),
        ],
        &wba_params(),
    );
    assert_eq!(code(req.parse()), "malformed_component");
    let many: Vec<(String, &str)> = (0..40).map(|i| (format!("\"x-{i}\""), "v")).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let (req, _) = sign(Req::get("example.com", "/"), &many, &wba_params());
    assert_eq!(code(req.parse()), "too_many_components");
}

#[test]
fn derived_components() {
    let mut req =
        Req::get("Shop.Example.com:443", "/p/9?q=a%20b").with("crawler-exact-price", "  USD 0.01 ");
    req.method = "post".into();
    req.target_uri = "https://shop.example.com/p/9?q=a%20b".into();
    let (req, base) = sign(
        req,
        &[
            ("\"@authority\"", "shop.example.com"),
            ("\"@method\"", "POST"),
            ("\"@scheme\"", "https"),
            ("\"@path\"", "/p/9"),
            ("\"@query\"", "?q=a%20b"),
            ("\"@request-target\"", "/p/9?q=a%20b"),
            ("\"@target-uri\"", "https://shop.example.com/p/9?q=a%20b"),
            ("\"crawler-exact-price\"", "USD 0.01"),
        ],
        &wba_params(),
    );
    let parsed = req.parse().unwrap().unwrap();
    assert_eq!(parsed.signature_base, base);
    let agent = verify(&parsed, &keys(), NOW).unwrap();
    assert!(agent.covers("crawler-exact-price"));
    assert_eq!(require_signed_intent(Some(&agent), false, true), Ok(()));
    assert_eq!(
        require_signed_intent(Some(&agent), true, false),
        Err(CrawlerError::InvalidSignature)
    );

    // No query: @query is "?" (RFC 9421 section 2.2.7).
    let (req, _) = sign(
        Req::get("example.com", "/a"),
        &[("\"@authority\"", "example.com"), ("\"@query\"", "?")],
        &wba_params(),
    );
    assert!(req.verify_at(&keys(), NOW).is_ok());
    assert_eq!(
        normalize_authority("EXAMPLE.com:80", Some("http")),
        "example.com"
    );
    assert_eq!(
        normalize_authority("example.com:80", Some("https")),
        "example.com:80"
    );
    assert_eq!(
        normalize_authority("example.com:8443", None),
        "example.com:8443"
    );
}

#[test]
fn garbage_never_panics() {
    let (signed, _) = signed_default();
    let input = signed.header("signature-input").unwrap();
    let sig = signed.header("signature").unwrap();
    let samples = [
        "",
        " ",
        ",",
        "=",
        "sig1",
        "sig1=",
        "sig1=(",
        "sig1=()",
        "sig1=();tag=\"web-bot-auth\"",
        "sig1=(\"@authority\");tag=\"web-bot-auth\";created=99999999999999999999",
        "sig1=:",
        "sig1=::",
        "sig1=:====:",
        "\u{0}",
        "sig1=(\"\u{e9}\")",
        "a=(1 2 3);x=?1, b=?0",
        "sig1=(\"@authority\" \"@authority\")",
        "sig1=(((",
        "*=1",
        "sig1=1.2345",
        "sig1=-",
    ];
    let mut checked = 0;
    for a in samples {
        for b in samples {
            let reqs = [
                signed
                    .clone()
                    .with("signature-input", a)
                    .with("signature", b),
                signed
                    .clone()
                    .with("signature-input", &input)
                    .with("signature", a),
                signed
                    .clone()
                    .with("signature", &sig)
                    .with("signature-agent", a),
                signed
                    .clone()
                    .with("signature-input", &format!("{input}{a}")),
            ];
            for req in reqs {
                if let Ok(Some(parsed)) = req.parse() {
                    let _ = verify(&parsed, &keys(), NOW);
                }
                checked += 1;
            }
        }
    }
    // Truncations of a valid header at every byte.
    for i in 0..=input.len() {
        if let Some(prefix) = input.get(..i) {
            let _ = signed.clone().with("signature-input", prefix).parse();
            checked += 1;
        }
    }
    assert!(checked > 1000);
    let _ = directory_url("https://[");
    let _ = directory_url("https://[]:1");
    let _ = directory_url("https://\u{e9}.example");
    let _ = parse_directory(r#"{"keys":[null,1,"x",{"kty":"OKP","crv":"Ed25519","x":5}]}"#);
}

// ---------------------------------------------------------------------------------------------
// Web Bot Auth: independent signers (tests/vectors/web-bot-auth.json)
// ---------------------------------------------------------------------------------------------

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/web-bot-auth.json"
    );
    let text = std::fs::read_to_string(path).expect("read web-bot-auth.json");
    serde_json::from_str(&text).expect("parse web-bot-auth.json")
}

fn vector_request(v: &Value) -> Req {
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    Req {
        method: s("method"),
        authority: s("authority"),
        target_uri: s("target_uri"),
        path: s("path"),
        headers: v["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("header value").to_owned()))
            .collect(),
    }
}

#[test]
fn requests_signed_by_the_web_bot_auth_npm_library_verify() {
    let v = vectors();
    let key = &v["key"];
    assert_eq!(key["x"], X);
    assert_eq!(key["keyid"], KEYID);
    let directory = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}}]}}"#,
        key["x"].as_str().unwrap()
    );
    let keys = parse_directory(&directory).unwrap();
    let now = v["now"].as_u64().unwrap();
    let requests = v["requests"].as_array().unwrap();
    assert!(requests.len() >= 5);
    for r in requests {
        let name = r["name"].as_str().unwrap();
        let req = vector_request(r);
        let parsed = req
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .expect(name);
        assert_eq!(
            parsed.signature_base,
            r["signature_base"].as_str().unwrap(),
            "{name}: same signature base as the library"
        );
        let agent = verify(&parsed, &keys, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(agent.keyid, KEYID);
        if req.header("signature-agent").is_some() {
            assert!(parsed.agent_url.is_some(), "{name}");
        }
        if req.header("crawler-exact-price").is_some() {
            assert!(agent.covers("crawler-exact-price"), "{name}");
        }
        // And each one fails once the authority is changed.
        let mut moved = req.clone();
        moved.authority = "elsewhere.example".into();
        moved.target_uri = moved
            .target_uri
            .replace(&req.authority, "elsewhere.example");
        assert_eq!(
            code(moved.verify_at(&keys, now)),
            "invalid_signature",
            "{name}"
        );
    }
    let local = requests
        .iter()
        .map(vector_request)
        .find(|r| r.authority.starts_with("127.0.0.1"))
        .expect("a local vector");
    assert_eq!(
        local.parse().unwrap().unwrap().agent_url.as_deref(),
        Some("http://127.0.0.1:8788/.well-known/http-message-signatures-directory")
    );
}

#[test]
fn signatures_from_cloudflares_rust_crate_verify() {
    let v = vectors();
    let vectors = v["cloudflare_rust_crate"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for r in vectors {
        let name = r["name"].as_str().unwrap();
        let now = r["now"].as_u64().unwrap();
        let req = vector_request(r);
        let agent = req
            .verify_at(&keys(), now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(agent.keyid, KEYID, "{name}");
        // They are long expired.
        assert_eq!(
            code(req.verify_at(&keys(), NOW)),
            "signature_expired",
            "{name}"
        );
        // The keyed one was signed over the whole Signature-Agent field, not the RFC 9421
        // member value: it verifies only through the legacy base.
        let parsed = req.parse().unwrap().unwrap();
        let rfc_base_verifies = signing_key()
            .verifying_key()
            .verify_strict(
                parsed.signature_base.as_bytes(),
                &Signature::from_bytes(parsed.signature()),
            )
            .is_ok();
        let keyed = parsed.components.iter().any(|c| c.key.is_some());
        assert_eq!(rfc_base_verifies, !keyed, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn verified(agent: &str) -> VerifiedAgent {
    VerifiedAgent {
        agent: agent.into(),
        key_set_url: None,
        keyid: KEYID.into(),
        kid: None,
        created: CREATED,
        expires: EXPIRES,
        nonce: None,
        components: vec![],
    }
}

fn cf(verified_bot: bool, category: Option<&str>, score: Option<u8>) -> CloudflareBot {
    CloudflareBot {
        verified_bot,
        verified_bot_category: category.map(str::to_owned),
        score,
    }
}

#[test]
fn classification_table() {
    let crawler = verified("crawler.example");
    let chatgpt = verified("chatgpt.com");
    let chatgpt_sub = verified("agent.chatgpt.com");
    let not_chatgpt = verified("notchatgpt.com");
    let cf_ai_crawler = cf(true, Some("AI Crawler"), Some(1));
    let cf_assistant = cf(true, Some("AI Assistant"), None);
    let cf_search = cf(true, Some("AI Search"), None);
    let cf_preview = cf(true, Some("Page Preview"), None);
    let cf_signed_agent = cf(true, Some("Signed Agent"), None);
    let cf_unverified = cf(false, Some("AI Assistant"), Some(90));
    let cf_low_score = cf(false, None, Some(5));
    let cf_high_score = cf(false, None, Some(80));
    let cf_no_category = cf(true, None, None);

    use Class::*;
    let wba = |a: &str| Evidence::WebBotAuth { agent: a.into() };
    let cfv = |c: &str| Evidence::CloudflareVerifiedBot {
        category: Some(c.into()),
    };
    let ua = |n: &'static str| Evidence::DeclaredUserAgent { name: n };

    type Row<'a> = (
        Option<&'a VerifiedAgent>,
        Option<&'a CloudflareBot>,
        Option<&'a str>,
        Option<&'a str>,
        Class,
        Evidence,
    );
    let table: Vec<Row> = vec![
        // Verified Web Bot Auth first, whatever the UA says.
        (Some(&crawler), None, Some(CHROME), Some(HTML), Crawler, wba("crawler.example")),
        (Some(&crawler), None, Some("ChatGPT-User/1.0"), None, Crawler, wba("crawler.example")),
        (Some(&chatgpt), None, Some("GPTBot/1.0"), None, Agent, wba("chatgpt.com")),
        (Some(&chatgpt_sub), None, None, None, Agent, wba("agent.chatgpt.com")),
        (Some(&not_chatgpt), None, None, None, Crawler, wba("notchatgpt.com")),
        (Some(&crawler), Some(&cf_assistant), None, None, Agent, wba("crawler.example")),
        (Some(&crawler), Some(&cf_ai_crawler), None, None, Crawler, wba("crawler.example")),
        // Cloudflare verified bots.
        (None, Some(&cf_ai_crawler), Some("GPTBot/1.1"), None, Crawler, cfv("AI Crawler")),
        (None, Some(&cf_assistant), Some("ChatGPT-User/1.0"), None, Agent, cfv("AI Assistant")),
        (None, Some(&cf_search), None, None, Crawler, cfv("AI Search")),
        (None, Some(&cf_preview), None, None, Agent, cfv("Page Preview")),
        (None, Some(&cf_signed_agent), None, None, Agent, cfv("Signed Agent")),
        (
            None,
            Some(&cf_no_category),
            Some(CHROME),
            Some(HTML),
            Crawler,
            Evidence::CloudflareVerifiedBot { category: None },
        ),
        // Not verified: the category is ignored, the UA decides.
        (None, Some(&cf_unverified), Some("GPTBot/1.1"), None, Crawler, ua("GPTBot")),
        // Declared AI crawlers and fetchers.
        (None, None, Some("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.1; +https://openai.com/gptbot)"), Some(HTML), Crawler, ua("GPTBot")),
        (None, None, Some("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot"), Some(HTML), Agent, ua("ChatGPT-User")),
        (None, None, Some("Mozilla/5.0 (compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot)"), None, Crawler, ua("OAI-SearchBot")),
        (None, None, Some("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"), None, Crawler, ua("ClaudeBot")),
        (None, None, Some("Claude-User/1.0"), None, Agent, ua("Claude-User")),
        (None, None, Some("anthropic-ai"), None, Crawler, ua("anthropic-ai")),
        (None, None, Some("CCBot/2.0 (https://commoncrawl.org/faq/)"), None, Crawler, ua("CCBot")),
        (None, None, Some("Mozilla/5.0 (compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)"), None, Crawler, ua("PerplexityBot")),
        (None, None, Some("Mozilla/5.0 (compatible; Perplexity-User/1.0; +https://perplexity.ai/perplexity-user)"), Some(HTML), Agent, ua("Perplexity-User")),
        (None, None, Some("Google-Extended"), None, Crawler, ua("Google-Extended")),
        (None, None, Some("Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)"), Some(HTML), Crawler, ua("Bytespider")),
        (None, None, Some("Mozilla/5.0 (compatible; Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot)"), None, Crawler, ua("Amazonbot")),
        (None, None, Some("Applebot-Extended/0.1"), None, Crawler, ua("Applebot-Extended")),
        (None, None, Some("meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)"), None, Crawler, ua("meta-externalagent")),
        (None, None, Some("cohere-ai"), None, Crawler, ua("cohere-ai")),
        (None, None, Some("Mozilla/5.0 (compatible; Diffbot/3.0; +http://www.diffbot.com)"), None, Crawler, ua("Diffbot")),
        (None, None, Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"), Some(HTML), Crawler, ua("Googlebot")),
        (None, None, Some("SomeNewThing-bot/0.3"), None, Crawler, ua("generic-bot")),
        (None, None, Some("Mozilla/5.0 (compatible; ExampleCrawler)"), Some(HTML), Crawler, ua("generic-bot")),
        // Scripts.
        (None, None, Some("curl/8.5.0"), Some("*/*"), Agent, ua("curl")),
        (None, None, Some("python-requests/2.32.3"), None, Agent, ua("python-requests")),
        (None, None, Some("node"), Some("*/*"), Agent, ua("node")),
        (None, None, Some("undici"), None, Agent, ua("undici")),
        (None, None, Some("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"), None, Agent, ua("node-fetch")),
        (None, None, Some("Go-http-client/2.0"), None, Agent, ua("Go-http-client")),
        (None, None, Some("axios/1.7.2"), None, Agent, ua("axios")),
        (None, None, Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36"), Some(HTML), Agent, ua("HeadlessChrome")),
        // Browsers.
        (None, None, Some(CHROME), Some(HTML), Human, Evidence::BrowserHeuristic),
        (None, Some(&cf_high_score), Some(CHROME), Some(HTML), Human, Evidence::BrowserHeuristic),
        (None, Some(&cf_low_score), Some(CHROME), Some(HTML), Agent, Evidence::None),
        (None, None, Some(CHROME), Some("application/json"), Agent, Evidence::None),
        (None, None, Some(CHROME), None, Agent, Evidence::None),
        // Nothing.
        (None, None, None, None, Agent, Evidence::None),
        (None, None, Some("   "), Some(HTML), Agent, Evidence::None),
        (None, None, Some("MyApp/1.0"), Some(HTML), Agent, Evidence::None),
        // A phone whose model name ends in "bot" is still a browser.
        (None, None, Some("Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"), Some(HTML), Human, Evidence::BrowserHeuristic),
    ];
    for (wba_agent, cloudflare, user_agent, accept, class, evidence) in table {
        let input = ClassifyInput {
            web_bot_auth: wba_agent,
            cloudflare,
            user_agent,
            accept,
            agent_signers: &[],
        };
        assert_eq!(
            classify(&input),
            (class, evidence),
            "{user_agent:?} {cloudflare:?} {:?}",
            wba_agent.map(|a| &a.agent)
        );
    }
}

#[test]
fn signers_the_publisher_lists_as_agents_are_agents() {
    use Class::{Agent, Crawler};
    let jwks_signer = VerifiedAgent {
        key_set_url: Some("https://keys.example.net/agent/jwks.json".into()),
        ..verified("keys.example.net")
    };
    for (agent, listed, class) in [
        (
            verified("assistant.example.com"),
            "assistant.example.com",
            Agent,
        ),
        (
            verified("assistant.example.com:8443"),
            "assistant.example.com",
            Agent,
        ),
        (
            verified("eu.assistant.example.com"),
            "*.assistant.example.com",
            Agent,
        ),
        // A host covers itself only, as in trustSigners.
        (
            verified("eu.assistant.example.com"),
            "assistant.example.com",
            Crawler,
        ),
        (
            verified("crawler.example.org"),
            "assistant.example.com",
            Crawler,
        ),
        (
            jwks_signer.clone(),
            "https://keys.example.net/agent/jwks.json",
            Agent,
        ),
        (
            jwks_signer.clone(),
            "https://keys.example.net/other/jwks.json",
            Crawler,
        ),
        // A host entry never names a key set named by URL, as in trustSigners.
        (jwks_signer, "keys.example.net", Crawler),
    ] {
        let agent_signers = [listed.to_string()];
        let input = ClassifyInput {
            web_bot_auth: Some(&agent),
            cloudflare: None,
            user_agent: Some("GPTBot/1.1"),
            accept: None,
            agent_signers: &agent_signers,
        };
        let evidence = Evidence::WebBotAuth {
            agent: agent.agent.clone(),
        };
        assert_eq!(
            classify(&input),
            (class, evidence),
            "{} by {listed}",
            agent.agent
        );
    }
}

#[test]
fn strong_and_weak_evidence() {
    assert!(is_strong(&Evidence::WebBotAuth { agent: "a".into() }));
    assert!(is_strong(&Evidence::CloudflareVerifiedBot {
        category: None
    }));
    assert!(!is_strong(&Evidence::DeclaredUserAgent { name: "GPTBot" }));
    assert!(!is_strong(&Evidence::BrowserHeuristic));
    assert!(!is_strong(&Evidence::None));
}

// ---------------------------------------------------------------------------------------------
// Pay Per Crawl headers
// ---------------------------------------------------------------------------------------------

#[test]
fn crawler_price_format() {
    for (amount, decimals, expected) in [
        (10_000u128, 6u8, "USD 0.01"),
        (1, 6, "USD 0.000001"),
        (0, 6, "USD 0.00"),
        (1_500_000, 6, "USD 1.50"),
        (1_234_567, 6, "USD 1.234567"),
        (10_000_000, 6, "USD 10.00"),
        (120_000, 6, "USD 0.12"),
        (125_000, 6, "USD 0.125"),
        (5, 0, "USD 5.00"),
        (5, 1, "USD 0.50"),
        (1, 18, "USD 0.000000000000000001"),
        (u128::MAX, 6, "USD 340282366920938463463374607431768.211455"),
        (7, 40, "USD 0.0000000000000000000000000000000000000007"),
    ] {
        assert_eq!(
            crawler_price(amount, decimals),
            expected,
            "{amount} {decimals}"
        );
        assert_eq!(
            parse_crawler_price(expected, decimals),
            Ok(amount),
            "{expected}"
        );
    }
}

#[test]
fn crawler_price_parsing_is_strict() {
    for (value, expected) in [
        ("USD 0.01", Some(10_000u128)),
        ("USD 1", Some(1_000_000)),
        ("USD 01.5", Some(1_500_000)),
        ("USD 0.0100000", Some(10_000)),
        (" USD 0.01\t", Some(10_000)),
        ("USD 0.0000001", None),
        ("USD 0.01 ", Some(10_000)),
        ("USD  0.01", None),
        ("usd 0.01", None),
        ("EUR 0.01", None),
        ("USD0.01", None),
        ("USD -0.01", None),
        ("USD +0.01", None),
        ("USD .5", None),
        ("USD 5.", None),
        ("USD 1e3", None),
        ("USD 1,00", None),
        ("USD 0.01.2", None),
        ("USD ", None),
        ("USD", None),
        ("", None),
        ("USD 999999999999999999999999999999999999999999", None),
        ("USD ١", None),
    ] {
        let got = parse_crawler_price(value, 6);
        match expected {
            Some(amount) => assert_eq!(got, Ok(amount), "{value:?}"),
            None => assert_eq!(
                got,
                Err(CrawlerError::InvalidCrawlerPriceValue),
                "{value:?}"
            ),
        }
    }
}

#[test]
fn crawler_intent() {
    let price = 10_000; // USD 0.01
    let check = |max, exact| check_crawler_intent(max, exact, price, 6);
    assert_eq!(check(None, None), Ok(None));
    assert_eq!(
        check(Some("USD 0.05"), None),
        Ok(Some(price)),
        "charged the price, not the max"
    );
    assert_eq!(check(Some("USD 0.01"), None), Ok(Some(price)));
    assert_eq!(
        check(Some("USD 0.009"), None),
        Err(CrawlerError::InvalidCrawlerMaxPrice)
    );
    assert_eq!(check(None, Some("USD 0.01")), Ok(Some(price)));
    assert_eq!(check(None, Some("USD 0.010")), Ok(Some(price)));
    assert_eq!(
        check(None, Some("USD 0.02")),
        Err(CrawlerError::InvalidCrawlerExactPrice)
    );
    assert_eq!(
        check(None, Some("USD 0.001")),
        Err(CrawlerError::InvalidCrawlerExactPrice)
    );
    assert_eq!(
        check(Some("USD 0.05"), Some("USD 0.01")),
        Err(CrawlerError::ConflictingPriceHeaders)
    );
    assert_eq!(
        check(Some("garbage"), Some("garbage")),
        Err(CrawlerError::ConflictingPriceHeaders)
    );
    assert_eq!(
        check(Some("0.05"), None),
        Err(CrawlerError::InvalidCrawlerPriceValue)
    );
    assert_eq!(
        check(None, Some("USD x")),
        Err(CrawlerError::InvalidCrawlerPriceValue)
    );
}

#[test]
fn crawler_error_codes_and_statuses() {
    let table = [
        (CrawlerError::CrawlerForbidden, "CrawlerForbidden", 403),
        (CrawlerError::StrongAuthRequired, "StrongAuthRequired", 400),
        (CrawlerError::InvalidSignature, "InvalidSignature", 400),
        (
            CrawlerError::InvalidCrawlerPriceValue,
            "InvalidCrawlerPriceValue",
            400,
        ),
        (
            CrawlerError::MissingCrawlerPrice,
            "MissingCrawlerPrice",
            402,
        ),
        (CrawlerError::PaymentFailed, "PaymentFailed", 403),
        (
            CrawlerError::InvalidCrawlerExactPrice,
            "InvalidCrawlerExactPrice",
            402,
        ),
        (
            CrawlerError::InvalidCrawlerMaxPrice,
            "InvalidCrawlerMaxPrice",
            402,
        ),
        (
            CrawlerError::ConflictingPriceHeaders,
            "ConflictingPriceHeaders",
            400,
        ),
        (
            CrawlerError::InvalidContentPrice,
            "InvalidContentPrice",
            502,
        ),
        (CrawlerError::InternalError, "InternalError", 500),
    ];
    assert_eq!(table.len(), CrawlerError::ALL.len());
    for ((err, code, status), listed) in table.iter().zip(CrawlerError::ALL) {
        assert_eq!(*err, listed);
        assert_eq!(err.code(), *code);
        assert_eq!(err.status(), *status);
        assert!(!err.message().is_empty());
        assert_eq!(err.retryable(), *err == CrawlerError::InternalError);
    }
    assert_eq!(CRAWLER_PRICE, "crawler-price");
    assert_eq!(CRAWLER_ERROR, "crawler-error");
    assert_eq!(
        WbaError::SignatureIsExpired.crawler_error(),
        CrawlerError::InvalidSignature
    );
}

#[test]
fn price_intent_needs_a_covering_signature() {
    assert_eq!(require_signed_intent(None, false, false), Ok(()));
    assert_eq!(
        require_signed_intent(None, true, false),
        Err(CrawlerError::StrongAuthRequired)
    );
    let (req, _) = signed_default();
    let agent = req.verify_at(&keys(), NOW).unwrap();
    assert_eq!(
        require_signed_intent(Some(&agent), false, true),
        Err(CrawlerError::InvalidSignature)
    );
}

/// Every directory can be cached in KV: a URL that would make a key longer than KV's 512 bytes
/// is cached under its hash, distinct per URL.
#[test]
fn directory_cache_keys_fit_kv() {
    let short = "https://bot.example/.well-known/http-message-signatures-directory";
    assert_eq!(directory_key(short), format!("wba-directory:{short}"));
    let long = |c: char| format!("https://bot.example/{}", c.to_string().repeat(600));
    let (a, b) = (directory_key(&long('a')), directory_key(&long('b')));
    assert!(
        a.len() <= 512 && a.starts_with("wba-directory:sha256:"),
        "{a}"
    );
    assert_ne!(a, b);
    let edge = format!("https://bot.example/{}", "x".repeat(512 - 14 - 20));
    assert_eq!(directory_key(&edge).len(), 512, "the longest plain key");
}

/// A header of a thousand bare keys, with 31 of its members covered, costs one parse of it, not
/// 31: any client can send it, and it is read before the signer is known. The members' values are
/// those of the header as sent, and a repeated key takes the later value in the first one's place.
/// The parser's bounds (1024 members, 256 parameters, as RFC 9651 asks at least) refuse more.
#[test]
fn many_covered_members_of_one_large_header() {
    let names: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let mut header = names.join(", ");
    header.push_str(", k5=7");
    assert!(header.len() <= 8 * 1024, "{}", header.len());
    let covered: Vec<String> = (0..31)
        .map(|i| format!("\"x-a\";key=\"k{}\"", i * 33 + 5))
        .collect();
    let input = format!(
        "s=(\"@authority\" {});created={NOW};expires={};keyid=\"x\";tag=\"web-bot-auth\"",
        covered.join(" "),
        NOW + 60
    );
    let req = Req::get("example.com", "/articles/x")
        .with("x-a", &header)
        .with("signature-input", &input)
        .with("signature", &format!("s=:{}==:", "A".repeat(86)));
    let started = std::time::Instant::now();
    let parsed = req.parse().expect("parses").expect("signed");
    eprintln!(
        "31 members of a {} B header: {:?}",
        header.len(),
        started.elapsed()
    );
    assert_eq!(parsed.components.len(), 32);
    let base = &parsed.signature_base;
    assert!(
        base.contains("\"x-a\";key=\"k5\": 7\n"),
        "the later k5 wins"
    );
    assert!(base.contains("\"x-a\";key=\"k38\": ?1\n"));
    assert_eq!(
        base.lines()
            .filter(|l| l.starts_with("\"x-a\";key="))
            .count(),
        31
    );
    let over = Req::get("example.com", "/x")
        .with(
            "x-a",
            &(0..1025)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .with("signature-input", &input)
        .with("signature", &format!("s=:{}==:", "A".repeat(86)));
    assert!(over.parse().is_err());
    let many = (0..257).map(|i| format!(";p{i}")).collect::<String>();
    let bad = Req::get("example.com", "/x")
        .with("x-b", &format!("m=1{many}"))
        .with(
            "signature-input",
            &format!("s=(\"@authority\" \"x-b\";key=\"m\");created={NOW};expires={};keyid=\"x\";tag=\"web-bot-auth\"", NOW + 60),
        )
        .with("signature", &format!("s=:{}==:", "A".repeat(86)));
    assert!(bad.parse().is_err());
}
