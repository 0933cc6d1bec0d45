//! Reading a payment's state from the chain, for reconciliation.
//!
//! When a settlement attempt got no usable answer, the money may or may not have moved. The token
//! itself knows: EIP-3009's `authorizationState(authorizer, nonce)` is true once an authorization
//! was used (or cancelled). These are the JSON-RPC bytes for that question and for its answer.

use crate::evm::Address;

/// `authorizationState(address,bytes32)`.
const AUTHORIZATION_STATE_SELECTOR: &str = "e94a0102";

/// The body of an `eth_call` asking `token.authorizationState(authorizer, nonce)`.
pub fn authorization_state_request(
    token: &Address,
    authorizer: &Address,
    nonce: &[u8; 32],
) -> String {
    let data = format!(
        "0x{AUTHORIZATION_STATE_SELECTOR}{:0>64}{}",
        hex::encode(authorizer.0),
        hex::encode(nonce)
    );
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"to": token.to_checksum(), "data": data}, "latest"],
    })
    .to_string()
}

/// Reads the boolean an `eth_call` returned; `None` for an error or anything else.
pub fn read_bool_result(body: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let result = v.get("result")?.as_str()?.strip_prefix("0x")?;
    if result.len() != 64 || !result.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (zeros, last) = result.split_at(63);
    if zeros.bytes().any(|b| b != b'0') {
        return None;
    }
    match last {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answers() {
        let token = Address::parse("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512").unwrap();
        let from = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let body = authorization_state_request(&token, &from, &[0x11; 32]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let data = v["params"][0]["data"].as_str().unwrap();
        assert_eq!(data.len(), 2 + 8 + 64 + 64);
        assert!(data.starts_with("0xe94a010200000000000000000000000090f79bf6"));
        let one = format!("{{\"result\":\"0x{:0>64}\"}}", "1");
        let zero = format!("{{\"result\":\"0x{:0>64}\"}}", "0");
        assert_eq!(read_bool_result(&one), Some(true));
        assert_eq!(read_bool_result(&zero), Some(false));
        assert_eq!(read_bool_result(r#"{"error":{"code":-32000}}"#), None);
        assert_eq!(read_bool_result("garbage"), None);
    }
}
