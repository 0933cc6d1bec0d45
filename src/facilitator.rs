//! What the facilitator's answers mean, as they really arrive.
//!
//! Facilitators answer `200` with `success:false` for a refused settlement, sometimes `400` with the
//! same result body, sometimes `400`/`5xx` with something else entirely, and sometimes nothing at
//! all. A refusal is a fact about the payment; everything else is a fact about the facilitator and
//! says nothing about whether money moved. So a timeout or a garbled answer is [`Unknown`], never
//! "failed": the payment may have been broadcast.
//!
//! [`Unknown`]: SettleOutcome::Unknown

use serde_json::Value;

use crate::json::{self, Fields, Read};
use crate::x402::SettleResponse;

/// The body of `/verify` and `/settle` requests.
pub fn request_body(version: u8, payload: Value, requirements: Value) -> String {
    serde_json::json!({
        "x402Version": version,
        "paymentPayload": payload,
        "paymentRequirements": requirements,
    })
    .to_string()
}

/// How a settlement attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Settled on chain.
    Settled(SettleResponse),
    /// The facilitator looked at the payment and refused it; nothing moved.
    Refused { reason: String, message: String },
    /// No usable answer: the payment may or may not have moved.
    Unknown(String),
}

/// How a verification attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Valid { payer: Option<String> },
    Invalid { reason: String, message: String },
    Unknown(String),
}

struct VerifyBody {
    is_valid: bool,
    invalid_reason: Option<String>,
    invalid_message: Option<String>,
    payer: Option<String>,
}

impl Read for VerifyBody {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(VerifyBody {
            is_valid: f.get("isValid")?,
            invalid_reason: f.maybe("invalidReason")?,
            invalid_message: f.maybe("invalidMessage")?,
            payer: f.maybe("payer")?,
        })
    }
}

/// Reads a `/settle` answer. `status` is `None` when no HTTP answer came (timeout, refused).
pub fn read_settle(status: Option<u16>, body: &str) -> SettleOutcome {
    let Some(status) = status else {
        return SettleOutcome::Unknown(non_empty(body, "no answer from the facilitator"));
    };
    if status >= 500 {
        return SettleOutcome::Unknown(format!("facilitator answered {status}"));
    }
    let value = serde_json::from_str::<Value>(body).ok();
    match value.as_ref().map(SettleResponse::read) {
        // Settled means a transaction: a success that names none (a misconfigured URL answering
        // `{"success":true}`, a proxy) is not taken for money received.
        Some(Ok(r)) if r.success && (200..300).contains(&status) && is_tx_hash(&r.transaction) => {
            SettleOutcome::Settled(r)
        }
        Some(Ok(r)) if r.success => SettleOutcome::Unknown(format!(
            "facilitator answered {status}, success without a transaction hash: {}",
            short(body)
        )),
        // A refusal that names a transaction may follow one that was mined (the official
        // facilitator's `invalid_exact_evm_transfer_event_mismatch`, say): the money may have
        // moved, so it is read on chain, not taken for "nothing sent".
        Some(Ok(r)) if !r.transaction.is_empty() => SettleOutcome::Unknown(format!(
            "facilitator refused ({}) naming transaction {}",
            r.error_reason.as_deref().unwrap_or_default(),
            short(&r.transaction)
        )),
        Some(Ok(r)) => SettleOutcome::Refused {
            reason: r
                .error_reason
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unexpected_settle_error".into()),
            message: r.error_message.unwrap_or_default(),
        },
        _ if matches!(&value, Some(Value::Object(m)) if !m.contains_key("success"))
            && status == 400 =>
        {
            SettleOutcome::Refused {
                reason: "invalid_request".into(),
                message: short(body),
            }
        }
        _ => SettleOutcome::Unknown(format!(
            "facilitator answered {status} with an unreadable body: {}",
            short(body)
        )),
    }
}

/// `0x` and 32 bytes in hex: what a transaction hash is.
fn is_tx_hash(s: &str) -> bool {
    s.len() == 66 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a `/verify` answer.
pub fn read_verify(status: Option<u16>, body: &str) -> VerifyOutcome {
    let Some(status) = status else {
        return VerifyOutcome::Unknown(non_empty(body, "no answer from the facilitator"));
    };
    if status >= 500 {
        return VerifyOutcome::Unknown(format!("facilitator answered {status}"));
    }
    match json::parse::<VerifyBody>(body) {
        Ok(v) if v.is_valid && (200..300).contains(&status) => {
            VerifyOutcome::Valid { payer: v.payer }
        }
        Ok(v) if !v.is_valid => VerifyOutcome::Invalid {
            reason: v.invalid_reason.unwrap_or_else(|| "invalid_payload".into()),
            message: v.invalid_message.unwrap_or_default(),
        },
        _ => VerifyOutcome::Unknown(format!(
            "facilitator answered {status} with an unreadable body: {}",
            short(body)
        )),
    }
}

fn non_empty(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.into()
    } else {
        s.into()
    }
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_answers() {
        let tx = format!("0x{}", "ab".repeat(32));
        let ok = format!(
            r#"{{"success":true,"transaction":"{tx}","network":"eip155:1","payer":"0x1"}}"#
        );
        assert!(
            matches!(read_settle(Some(200), &ok), SettleOutcome::Settled(r) if r.transaction == tx)
        );
        // A success naming no transaction, or something else, is not money received.
        for odd in [
            r#"{"success":true}"#,
            r#"{"success":true,"transaction":""}"#,
            r#"{"success":true,"transaction":null}"#,
            r#"{"success":true,"transaction":"0xabc"}"#,
        ] {
            assert!(
                matches!(read_settle(Some(200), odd), SettleOutcome::Unknown(_)),
                "{odd}"
            );
        }
        // A refusal naming a transaction may follow a transfer: unknown, read on chain.
        let mined = format!(
            r#"{{"success":false,"errorReason":"invalid_exact_evm_transfer_event_mismatch","transaction":"{tx}"}}"#
        );
        assert!(matches!(
            read_settle(Some(200), &mined),
            SettleOutcome::Unknown(m) if m.contains("transfer_event_mismatch")
        ));
        let refused = r#"{"success":false,"errorReason":"invalid_exact_evm_insufficient_balance","transaction":"","network":"eip155:1"}"#;
        for status in [200, 400] {
            assert_eq!(
                read_settle(Some(status), refused),
                SettleOutcome::Refused {
                    reason: "invalid_exact_evm_insufficient_balance".into(),
                    message: String::new()
                }
            );
        }
        assert!(matches!(
            read_settle(Some(400), r#"{"errorType":"invalid_request"}"#),
            SettleOutcome::Refused { .. }
        ));
        assert!(matches!(
            read_settle(Some(500), refused),
            SettleOutcome::Unknown(_)
        ));
        assert!(matches!(
            read_settle(Some(200), "<html>"),
            SettleOutcome::Unknown(_)
        ));
        assert!(matches!(
            read_settle(Some(200), "{}"),
            SettleOutcome::Unknown(_)
        ));
        assert!(matches!(read_settle(None, ""), SettleOutcome::Unknown(_)));
    }

    #[test]
    fn verify_answers() {
        assert_eq!(
            read_verify(Some(200), r#"{"isValid":true,"payer":"0x1"}"#),
            VerifyOutcome::Valid {
                payer: Some("0x1".into())
            }
        );
        assert!(matches!(
            read_verify(
                Some(400),
                r#"{"isValid":false,"invalidReason":"invalid_payload"}"#
            ),
            VerifyOutcome::Invalid { .. }
        ));
        assert!(matches!(
            read_verify(Some(502), ""),
            VerifyOutcome::Unknown(_)
        ));
        assert!(matches!(
            read_verify(Some(200), "[]"),
            VerifyOutcome::Unknown(_)
        ));
    }
}

/// What a facilitator says it can settle (`GET /supported`): pairs of x402 version and network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Supported {
    kinds: Vec<(u8, String)>,
}

impl Supported {
    /// Reads a `/supported` answer; `None` if it is not one.
    pub fn parse(body: &str) -> Option<Supported> {
        struct Kind {
            x402_version: u8,
            scheme: String,
            network: String,
        }
        impl Read for Kind {
            fn read(value: &Value) -> Result<Self, json::Error> {
                let f = Fields::new(value)?;
                let version: u64 = f.get("x402Version")?;
                Ok(Kind {
                    x402_version: u8::try_from(version)
                        .map_err(|_| json::Error::new("too large").at("x402Version"))?,
                    scheme: f.get("scheme")?,
                    network: f.get("network")?,
                })
            }
        }
        let value: Value = serde_json::from_str(body).ok()?;
        let kinds: Vec<Kind> = Fields::new(&value).ok()?.get("kinds").ok()?;
        Some(Supported {
            kinds: kinds
                .into_iter()
                .filter(|k| k.scheme == "exact")
                .map(|k| (k.x402_version, k.network))
                .collect(),
        })
    }

    /// Whether the facilitator settles the exact scheme on this network in this version. A v1 kind
    /// names the network by its v1 name, a v2 kind by CAIP-2.
    pub fn settles(&self, version: u8, network: &crate::networks::Network) -> bool {
        let name = match version {
            1 => match network.v1_name {
                Some(n) => n.to_string(),
                None => return false,
            },
            _ => network.caip2(),
        };
        self.kinds
            .iter()
            .any(|(v, n)| *v == version && (*n == name || n == "eip155:*"))
    }
}

/// The configuration with every offer the facilitator cannot settle (in v2) removed, so that we
/// never advertise, nor accept, a payment that cannot be settled. A priced route whose offers
/// would all disappear keeps them: it must never become free because the facilitator is confused;
/// such routes are returned by name so the shell can log them.
pub fn restrict(
    config: &crate::config::Config,
    supported: &Supported,
) -> (crate::config::Config, Vec<String>) {
    let mut out = config.clone();
    let mut unsettleable = Vec::new();
    for route in out.routes.iter_mut().filter(|r| !r.is_free()) {
        let kept: Vec<_> = route
            .offers
            .iter()
            .filter(|o| supported.settles(2, &o.asset.network))
            .cloned()
            .collect();
        if kept.is_empty() {
            unsettleable.push(route.pattern.as_str().to_string());
        } else {
            route.offers = kept;
        }
        for offer in route.offers.iter_mut() {
            offer.v1_enabled = supported.settles(1, &offer.asset.network);
        }
        // The terms a 402 carries are rendered from the offers: render them again.
        route.rendered = crate::paywall::Rendered::of(route);
    }
    (out, unsettleable)
}

#[cfg(test)]
mod supported_tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn offers_the_facilitator_cannot_settle_are_dropped_but_never_all() {
        let config = Config::from_json(
            r#"{"payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","accepts":["base","base-sepolia"],
               "facilitator":{"url":"http://f"},"routes":[{"path":"/a","price":"$1"},
               {"path":"/b","price":"$1","accepts":["polygon"]}]}"#,
        )
        .unwrap();
        let supported = Supported::parse(
            r#"{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:84532"},
               {"x402Version":1,"scheme":"exact","network":"base-sepolia"}],"extensions":[],"signers":{}}"#,
        )
        .unwrap();
        let (restricted, unsettleable) = restrict(&config, &supported);
        let nets: Vec<_> = restricted.routes[0]
            .offers
            .iter()
            .map(|o| o.requirements.network.clone())
            .collect();
        assert_eq!(nets, ["eip155:84532"]);
        assert_eq!(restricted.routes[1].offers.len(), 1, "never made free");
        assert_eq!(unsettleable, ["/b"]);
        assert!(Supported::parse("garbage").is_none());
    }
}
