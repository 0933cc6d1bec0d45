//! The JSON shapes of x402, both generations.
//!
//! Outgoing types (terms, receipts) serialise with the field names and order of the specification,
//! so the official clients' schemas accept them. Incoming types (payments) are read leniently at
//! the framing level: unknown fields are ignored, but every field we rely on must be present and of
//! the right JSON type, and numbers that the specification writes as decimal strings must be
//! strings.

use serde::Serialize;
use serde_json::Value;

use crate::json::{self, Fields, Read};
use crate::reason::{Reason, Refusal};

/// EIP-712 domain hints carried in `extra` for the exact scheme on EVM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eip712Extra {
    pub name: String,
    pub version: String,
}

/// One way to pay (v2 `PaymentRequirements`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    pub scheme: String,
    pub network: String,
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub extra: Eip712Extra,
}

/// What is being sold (v2 `ResourceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    pub url: String,
    pub description: String,
    pub mime_type: String,
}

/// The v2 terms, sent base64-encoded in `PAYMENT-REQUIRED`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    pub x402_version: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resource: ResourceInfo,
    pub accepts: Vec<PaymentRequirements>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, Value>,
}

/// One way to pay in the v1 body (`PaymentRequirements` of x402 v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
    pub scheme: String,
    pub network: String,
    pub max_amount_required: String,
    pub resource: String,
    pub description: String,
    pub mime_type: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub asset: String,
    pub extra: Eip712Extra,
}

/// The v1 402 body, extended with our refusal fields (`reason`, `message`), which v1 clients ignore.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1<'a> {
    pub x402_version: u8,
    pub error: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub accepts: &'a [PaymentRequirementsV1],
}

/// A settlement receipt (`PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default)]
    pub transaction: String,
    #[serde(default)]
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// Unknown fields are ignored; `transaction` and `network` may be absent.
impl Read for SettleResponse {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(SettleResponse {
            success: f.get("success")?,
            error_reason: f.maybe("errorReason")?,
            error_message: f.maybe("errorMessage")?,
            transaction: f.or_default("transaction")?,
            network: f.or_default("network")?,
            payer: f.maybe("payer")?,
        })
    }
}

/// The `accepted` terms a v2 client echoes, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedTerms {
    pub scheme: String,
    pub network: String,
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub extra: Option<serde_json::Map<String, Value>>,
}

impl Read for AcceptedTerms {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(AcceptedTerms {
            scheme: f.get("scheme")?,
            network: f.get("network")?,
            amount: f.get("amount")?,
            asset: f.get("asset")?,
            pay_to: f.get("payTo")?,
            max_timeout_seconds: f.get("maxTimeoutSeconds")?,
            extra: f.maybe("extra")?,
        })
    }
}

/// The EIP-3009 authorization as written on the wire (all fields strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAuthorization {
    pub from: String,
    pub to: String,
    pub value: String,
    pub valid_after: String,
    pub valid_before: String,
    pub nonce: String,
}

impl Read for WireAuthorization {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(WireAuthorization {
            from: f.get("from")?,
            to: f.get("to")?,
            value: f.get("value")?,
            valid_after: f.get("validAfter")?,
            valid_before: f.get("validBefore")?,
            nonce: f.get("nonce")?,
        })
    }
}

/// The `payload` of an exact-scheme EVM payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactEvmPayload {
    pub signature: String,
    pub authorization: WireAuthorization,
}

impl Read for ExactEvmPayload {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(ExactEvmPayload {
            signature: f.get("signature")?,
            authorization: f.get("authorization")?,
        })
    }
}

/// A decoded payment of either generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub version: u8,
    /// v2: the terms the client chose. v1 carries only scheme and network.
    pub accepted: Option<AcceptedTerms>,
    pub scheme: String,
    pub network: String,
    pub payload: ExactEvmPayload,
    /// The whole JSON as received. The facilitator is sent what was checked, rebuilt from it (see
    /// `PaidRequest::facilitator_body`).
    pub raw: Value,
}

/// Which header a payment arrived in; the receipt goes back in the matching one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    PaymentSignature,
    XPayment,
}

fn shape(detail: impl Into<String>) -> Refusal {
    Refusal::new(Reason::InvalidShape, detail)
}

impl Payment {
    /// Reads a payment from its decoded JSON. The version decides the shape; which header carried
    /// it does not matter (clients in the wild mix them), the signature inside is what counts.
    pub fn from_json(raw: Value) -> Result<Payment, Refusal> {
        let obj = raw
            .as_object()
            .ok_or_else(|| shape("the payment must be a JSON object"))?;
        let version = match obj.get("x402Version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => 1,
            Some(Value::Number(n)) if n.as_u64() == Some(2) => 2,
            Some(other) => {
                return Err(Refusal::new(
                    Reason::UnsupportedVersion,
                    format!("x402Version {other}"),
                ))
            }
            None => {
                return Err(Refusal::new(
                    Reason::UnsupportedVersion,
                    "x402Version is missing",
                ))
            }
        };
        let inner = obj
            .get("payload")
            .ok_or_else(|| shape("missing field `payload`"))?;
        if inner.get("permit2Authorization").is_some() {
            return Err(shape(
                "Permit2 payments are not accepted here; sign an EIP-3009 authorization",
            ));
        }
        let payload =
            ExactEvmPayload::read(inner).map_err(|e| shape(e.at("payload").to_string()))?;
        let (accepted, scheme, network) = if version == 2 {
            let accepted = AcceptedTerms::read(
                obj.get("accepted")
                    .ok_or_else(|| shape("missing field `accepted`"))?,
            )
            .map_err(|e| shape(e.at("accepted").to_string()))?;
            let (s, n) = (accepted.scheme.clone(), accepted.network.clone());
            (Some(accepted), s, n)
        } else {
            let field = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| shape(format!("missing string field `{k}`")))
            };
            (None, field("scheme")?, field("network")?)
        };
        Ok(Payment {
            version,
            accepted,
            scheme,
            network,
            payload,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2() -> Value {
        json!({
            "x402Version": 2,
            "accepted": {"scheme": "exact", "network": "eip155:84532", "amount": "10000",
                "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "maxTimeoutSeconds": 60,
                "extra": {"name": "USDC", "version": "2"}},
            "payload": {"signature": "0x00", "authorization": {"from": "0x1", "to": "0x2",
                "value": "1", "validAfter": "0", "validBefore": "1", "nonce": "0x3"}}
        })
    }

    #[test]
    fn reads_both_generations() {
        let p = Payment::from_json(v2()).unwrap();
        assert_eq!((p.version, p.network.as_str()), (2, "eip155:84532"));
        let mut v1 = v2();
        v1["x402Version"] = json!(1);
        v1["scheme"] = json!("exact");
        v1["network"] = json!("base-sepolia");
        let p = Payment::from_json(v1).unwrap();
        assert_eq!((p.version, p.network.as_str()), (1, "base-sepolia"));
    }

    #[test]
    fn refuses_wrong_shapes() {
        let mut v = v2();
        v["x402Version"] = json!(3);
        assert_eq!(
            Payment::from_json(v).unwrap_err().reason,
            Reason::UnsupportedVersion
        );
        let mut v = v2();
        v["payload"]["authorization"]["value"] = json!(10000);
        assert_eq!(
            Payment::from_json(v).unwrap_err().reason,
            Reason::InvalidShape
        );
        let mut v = v2();
        v.as_object_mut().unwrap().remove("accepted");
        assert_eq!(
            Payment::from_json(v).unwrap_err().reason,
            Reason::InvalidShape
        );
        assert_eq!(
            Payment::from_json(json!([1])).unwrap_err().reason,
            Reason::InvalidShape
        );
    }
}
