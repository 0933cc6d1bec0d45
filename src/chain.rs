//! Reading a payment's state from the chain, for reconciliation.
//!
//! When a settlement attempt got no usable answer, the money may or may not have moved. The token
//! itself knows: EIP-3009's `authorizationState(authorizer, nonce)` is true once an authorization
//! was used, or cancelled. Which of the two is told by the token's logs: `AuthorizationUsed` or
//! `AuthorizationCanceled`, both indexed by authorizer and nonce (and the first names the
//! transaction that paid). These are the JSON-RPC bytes for those questions and their answers.

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
    request(
        "eth_call",
        serde_json::json!([{"to": token.to_checksum(), "data": data}, "latest"]),
    )
}

/// `isValidSignature(bytes32,bytes)`, and what ERC-1271 wallets answer when they signed.
const IS_VALID_SIGNATURE_SELECTOR: &str = "1626ba7e";

/// The body of an `eth_call` asking the wallet contract at `wallet` whether `signature` is its
/// signature over `hash` (ERC-1271).
pub fn is_valid_signature_request(wallet: &Address, hash: &[u8; 32], signature: &[u8]) -> String {
    // selector ‖ hash ‖ the signature's offset (two words in) ‖ its length ‖ its bytes, padded.
    let mut words = Vec::with_capacity(96 + signature.len() + 31);
    words.extend_from_slice(hash);
    words.extend_from_slice(&[0; 31]);
    words.push(0x40);
    words.extend_from_slice(&[0; 24]);
    words.extend_from_slice(&(signature.len() as u64).to_be_bytes());
    words.extend_from_slice(signature);
    words.resize(words.len().next_multiple_of(32), 0);
    let data = ["0x", IS_VALID_SIGNATURE_SELECTOR, &hex::encode(words)].concat();
    request(
        "eth_call",
        serde_json::json!([{"to": wallet.to_checksum(), "data": data}, "latest"]),
    )
}

/// Reads the answer to [`is_valid_signature_request`]: `Some(true)` when the contract answered
/// ERC-1271's magic value, `Some(false)` when it answered anything else, nothing (an address
/// without code) or reverted, `None` when the node gave no usable answer.
pub fn read_is_valid_signature(body: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    if let Some(error) = v.get("error") {
        // Nodes report a revert as code 3 (geth) or by its message; anything else is the node's.
        let reverted = error["code"] == 3 || error["message"].as_str()?.contains("revert");
        return reverted.then_some(false);
    }
    let result = v.get("result")?.as_str()?.strip_prefix("0x")?;
    // One word at least (an address without code answers nothing), starting with the magic value.
    let magic = result
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case(IS_VALID_SIGNATURE_SELECTOR));
    Some(result.len() >= 64 && magic)
}

/// A JSON-RPC 2.0 request body.
fn request(method: &str, params: serde_json::Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

/// What the token's logs say happened to an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationEvent {
    /// `AuthorizationUsed`: it paid, in this transaction.
    Used { transaction: String },
    /// `AuthorizationCanceled`: the payer cancelled it; nothing moved.
    Cancelled,
}

/// Topic 0 of `AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)`.
fn used_topic() -> String {
    format!(
        "0x{}",
        hex::encode(crate::evm::keccak256(b"AuthorizationUsed(address,bytes32)"))
    )
}

/// Topic 0 of `AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce)`.
fn cancelled_topic() -> String {
    format!(
        "0x{}",
        hex::encode(crate::evm::keccak256(
            b"AuthorizationCanceled(address,bytes32)"
        ))
    )
}

/// The body of an `eth_blockNumber`.
pub fn block_number_request() -> String {
    request("eth_blockNumber", serde_json::json!([]))
}

/// Reads the block number an `eth_blockNumber` returned.
pub fn read_block_number(body: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let hex = v.get("result")?.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok()
}

/// How many blocks back to look for an authorization's logs when it was admitted `elapsed`
/// seconds ago: four blocks a second (the fastest chains we settle on) over that time plus ten
/// minutes, so that the range surely holds the block that used or cancelled it.
pub fn blocks_back(elapsed: u64) -> u64 {
    elapsed.saturating_add(600).saturating_mul(4)
}

/// The body of an `eth_getLogs` for the token's `AuthorizationUsed` and `AuthorizationCanceled`
/// logs of this authorizer and nonce, from `from_block` to the latest block.
pub fn authorization_logs_request(
    token: &Address,
    authorizer: &Address,
    nonce: &[u8; 32],
    from_block: u64,
) -> String {
    request(
        "eth_getLogs",
        serde_json::json!([{
            "address": token.to_checksum(),
            "fromBlock": format!("0x{from_block:x}"),
            "toBlock": "latest",
            "topics": [
                [used_topic(), cancelled_topic()],
                format!("0x{:0>64}", hex::encode(authorizer.0)),
                format!("0x{}", hex::encode(nonce)),
            ],
        }]),
    )
}

/// Reads an `eth_getLogs` answer: the first use or cancellation it shows; `None` when it shows
/// neither, or is an error or unreadable (either way, the logs did not tell).
pub fn read_authorization_logs(body: &str) -> Option<AuthorizationEvent> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let logs = v.get("result")?.as_array()?;
    let (used, cancelled) = (used_topic(), cancelled_topic());
    for log in logs {
        let topic = log
            .get("topics")
            .and_then(|t| t.get(0))
            .and_then(|t| t.as_str())
            .map(str::to_ascii_lowercase);
        if topic.as_deref() == Some(cancelled.as_str()) {
            return Some(AuthorizationEvent::Cancelled);
        }
        if topic.as_deref() == Some(used.as_str()) {
            let transaction = log
                .get("transactionHash")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            return Some(AuthorizationEvent::Used { transaction });
        }
    }
    None
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
    fn erc1271_question_and_answers() {
        let wallet = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let body = is_valid_signature_request(&wallet, &[0xab; 32], &[0xcd; 65]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["method"], "eth_call");
        assert_eq!(v["params"][0]["to"], wallet.to_checksum());
        let data = v["params"][0]["data"].as_str().unwrap();
        // selector, hash, offset 0x40, length 65, the signature padded to three words.
        assert_eq!(data.len(), 2 + 8 + 64 * 3 + 64 * 3);
        assert!(data.starts_with(&format!("0x1626ba7e{}", "ab".repeat(32))));
        assert_eq!(&data[74..138], format!("{:064x}", 0x40));
        assert_eq!(&data[138..202], format!("{:064x}", 65));
        assert!(data.ends_with(&format!("cd{}", "00".repeat(31))));
        let answer = |result: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{result}"}}"#);
        let magic = format!("0x1626ba7e{}", "0".repeat(56));
        assert_eq!(read_is_valid_signature(&answer(&magic)), Some(true));
        let other = format!("0xffffffff{}", "0".repeat(56));
        assert_eq!(read_is_valid_signature(&answer(&other)), Some(false));
        assert_eq!(
            read_is_valid_signature(&answer("0x")),
            Some(false),
            "no code"
        );
        assert_eq!(
            read_is_valid_signature(&answer("0x1626ba7e")),
            Some(false),
            "short"
        );
        let reverted =
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted"}}"#;
        assert_eq!(read_is_valid_signature(reverted), Some(false));
        let limited =
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"rate limited"}}"#;
        assert_eq!(read_is_valid_signature(limited), None);
        assert_eq!(read_is_valid_signature("<html>"), None);
    }

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

    #[test]
    fn logs_tell_use_from_cancellation() {
        // The topics FiatToken emits (keccak256 of the event signatures).
        assert_eq!(
            used_topic(),
            "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5"
        );
        assert_eq!(
            cancelled_topic(),
            "0x1cdd46ff242716cdaa72d159d339a485b3438398348d68f09d7c8c0a59353d81"
        );
        let token = Address::parse("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512").unwrap();
        let from = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let body = authorization_logs_request(&token, &from, &[0x11; 32], 0x1234);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["method"], "eth_getLogs");
        let filter = &v["params"][0];
        assert_eq!(filter["fromBlock"], "0x1234");
        assert_eq!(
            filter["topics"][1],
            "0x00000000000000000000000090f79bf6eb2c4f870365e785982e1f101e93b906"
        );
        assert_eq!(filter["topics"][2], format!("0x{}", "11".repeat(32)));
        let log = |topic: String| {
            serde_json::json!({"result": [{"topics": [topic], "transactionHash": "0xABC"}]})
                .to_string()
        };
        assert_eq!(
            read_authorization_logs(&log(used_topic())),
            Some(AuthorizationEvent::Used {
                transaction: "0xabc".into()
            })
        );
        assert_eq!(
            read_authorization_logs(&log(cancelled_topic())),
            Some(AuthorizationEvent::Cancelled)
        );
        assert_eq!(read_authorization_logs(r#"{"result":[]}"#), None);
        assert_eq!(
            read_authorization_logs(r#"{"error":{"message":"range too large"}}"#),
            None
        );
        assert_eq!(read_block_number(r#"{"result":"0x10"}"#), Some(16));
        assert_eq!(read_block_number(r#"{"result":"12"}"#), None);
        assert_eq!(blocks_back(0), 2_400);
        assert_eq!(blocks_back(u64::MAX), u64::MAX);
    }
}
