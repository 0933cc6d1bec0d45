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

/// The body of an `eth_call` asking `token.authorizationState(authorizer, nonce)` as of block
/// `at` (`"latest"`, or a number in hex).
pub fn authorization_state_request(
    token: &Address,
    authorizer: &Address,
    nonce: &[u8; 32],
    at: &str,
) -> String {
    let data = format!(
        "0x{AUTHORIZATION_STATE_SELECTOR}{:0>64}{}",
        hex::encode(authorizer.0),
        hex::encode(nonce)
    );
    request(
        "eth_call",
        serde_json::json!([{"to": token.to_checksum(), "data": data}, at]),
    )
}

/// `isValidSignature(bytes32,bytes)`, and what ERC-1271 wallets answer when they signed.
const IS_VALID_SIGNATURE_SELECTOR: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];

/// The body of an `eth_call` asking the wallet contract at `wallet` whether `signature` is its
/// signature over `hash` (ERC-1271).
pub fn is_valid_signature_request(wallet: &Address, hash: &[u8; 32], signature: &[u8]) -> String {
    let data = [
        "0x",
        &hex::encode(is_valid_signature_calldata(hash, signature)),
    ]
    .concat();
    request(
        "eth_call",
        serde_json::json!([{"to": wallet.to_checksum(), "data": data, "gas": CHECK_GAS}, "latest"]),
    )
}

/// The gas a wallet's signature check may burn in the node's simulation (its deployment, for an
/// ERC-6492 wallet, included): far more than any wallet's check takes (a passkey verified in
/// Solidity, a Safe deployed first: well under a million), far less than the node's own cap, so
/// that a made-up factory cannot have the node run a long loop on every proof.
const CHECK_GAS: &str = "0x4c4b40";

/// `isValidSignature(hash, signature)`, ABI-encoded.
fn is_valid_signature_calldata(hash: &[u8; 32], signature: &[u8]) -> Vec<u8> {
    // selector ‖ hash ‖ the signature's offset (two words in) ‖ its length ‖ its bytes, padded.
    let mut data = Vec::with_capacity(4 + 96 + signature.len() + 31);
    data.extend_from_slice(&IS_VALID_SIGNATURE_SELECTOR);
    data.extend_from_slice(hash);
    data.extend_from_slice(&[0; 31]);
    data.push(0x40);
    data.extend_from_slice(&[0; 24]);
    data.extend_from_slice(&(signature.len() as u64).to_be_bytes());
    data.extend_from_slice(signature);
    data.resize(4 + (data.len() - 4).next_multiple_of(32), 0);
    data
}

/// The body of an `eth_call` asking a wallet that may not be deployed yet (ERC-6492) whether
/// `signature` is its signature over `hash`: a call without `to`, whose code runs once and
/// answers what a deployed wallet would. Where `wallet` has no code, it first makes the factory
/// call (`factory`, `factory_calldata`) that deploys it, in the simulation only; then it asks the
/// wallet ERC-1271's question and returns its 32-byte answer, or 32 zero bytes when the question
/// failed, so that [`read_is_valid_signature`] reads it as for [`is_valid_signature_request`].
/// `None` when the calls are too long to be carried (more than 49,152 bytes of code in all).
pub fn deployless_is_valid_signature_request(
    wallet: &Address,
    factory: &Address,
    factory_calldata: &[u8],
    hash: &[u8; 32],
    signature: &[u8],
) -> Option<String> {
    let question = is_valid_signature_calldata(hash, signature);
    let code = deployless_check(wallet, factory, factory_calldata, &question)?;
    let data = ["0x", &hex::encode(code)].concat();
    Some(request(
        "eth_call",
        serde_json::json!([{"data": data, "gas": CHECK_GAS}, "latest"]),
    ))
}

/// The creation code of [`deployless_is_valid_signature_request`]: the program, then the
/// factory's calldata and the question's, which it copies into memory from its own code.
fn deployless_check(
    wallet: &Address,
    factory: &Address,
    factory_calldata: &[u8],
    question: &[u8],
) -> Option<Vec<u8>> {
    const PUSH1: u8 = 0x60;
    const PUSH2: u8 = 0x61;
    const PUSH20: u8 = 0x73;
    let f = u16::try_from(factory_calldata.len()).ok()?.to_be_bytes();
    let q = u16::try_from(question.len()).ok()?.to_be_bytes();
    // Built twice: the first time to learn the program's length, which places the data after it.
    let build = |len: u16| -> Option<Vec<u8>> {
        let at_factory = len.to_be_bytes();
        let at_question = len.checked_add(u16::from_be_bytes(f))?.to_be_bytes();
        let mut p = Vec::with_capacity(160);
        // if extcodesize(wallet) != 0, skip the factory call (its destination patched below).
        p.push(PUSH20);
        p.extend_from_slice(&wallet.0);
        p.extend_from_slice(&[0x3b, PUSH2, 0, 0, 0x57]);
        let skip_at = p.len() - 3;
        // codecopy(0x40, at_factory, f); call(gas, factory, 0, 0x40, f, 0, 0); pop
        p.extend_from_slice(&[PUSH2, f[0], f[1], PUSH2, at_factory[0], at_factory[1]]);
        p.extend_from_slice(&[PUSH1, 0x40, 0x39]);
        p.extend_from_slice(&[PUSH1, 0, PUSH1, 0, PUSH2, f[0], f[1], PUSH1, 0x40, PUSH1, 0]);
        p.push(PUSH20);
        p.extend_from_slice(&factory.0);
        p.extend_from_slice(&[0x5a, 0xf1, 0x50]);
        let skip = u16::try_from(p.len()).ok()?.to_be_bytes();
        p[skip_at..skip_at + 2].copy_from_slice(&skip);
        p.push(0x5b);
        // codecopy(0x40, at_question, q); ok = staticcall(gas, wallet, 0x40, q, 0, 0x20)
        p.extend_from_slice(&[PUSH2, q[0], q[1], PUSH2, at_question[0], at_question[1]]);
        p.extend_from_slice(&[PUSH1, 0x40, 0x39]);
        p.extend_from_slice(&[PUSH1, 0x20, PUSH1, 0, PUSH2, q[0], q[1], PUSH1, 0x40]);
        p.push(PUSH20);
        p.extend_from_slice(&wallet.0);
        p.extend_from_slice(&[0x5a, 0xfa]);
        // mstore(0, ok * mload(0)); return(0, 0x20): memory 0 is zero unless the wallet answered.
        p.extend_from_slice(&[PUSH1, 0, 0x51, 0x02, PUSH1, 0, 0x52]);
        p.extend_from_slice(&[PUSH1, 0x20, PUSH1, 0, 0xf3]);
        Some(p)
    };
    let len = u16::try_from(build(0)?.len()).ok()?;
    let mut code = build(len)?;
    code.extend_from_slice(factory_calldata);
    code.extend_from_slice(question);
    // Creation code is limited to 49,152 bytes (EIP-3860), in a call as in a transaction.
    (code.len() <= 49_152).then_some(code)
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
    // The first word must be the magic value and nothing else (`bytes4` padded with zeros), as
    // USDC's `SignatureChecker` reads it: an address without code answers nothing, and one that
    // echoes its input (the identity precompile at 0x…04) answers the selector followed by the
    // hash, which must not pass for a yes.
    let magic = result.as_bytes().get(..64).is_some_and(|w| {
        w[..8].eq_ignore_ascii_case(hex::encode(IS_VALID_SIGNATURE_SELECTOR).as_bytes())
            && w[8..].iter().all(|&b| b == b'0')
    });
    Some(magic)
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

/// Topic 0 of the event with this signature.
fn event_topic(signature: &[u8]) -> String {
    format!("0x{}", hex::encode(crate::evm::keccak256(signature)))
}

/// An address as an indexed event argument (a topic): left-padded to 32 bytes.
fn address_topic(address: &Address) -> String {
    format!("0x{:0>64}", hex::encode(address.0))
}

/// Topic 0 of `AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)`.
fn used_topic() -> String {
    event_topic(b"AuthorizationUsed(address,bytes32)")
}

/// Topic 0 of `AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce)`.
fn cancelled_topic() -> String {
    event_topic(b"AuthorizationCanceled(address,bytes32)")
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

/// The body of an `eth_getBlockByNumber` for block `number`, without its transactions.
pub fn block_request(number: u64) -> String {
    request(
        "eth_getBlockByNumber",
        serde_json::json!([format!("0x{number:x}"), false]),
    )
}

/// Reads the timestamp (unix seconds) of the block an `eth_getBlockByNumber` returned.
pub fn read_block_timestamp(body: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let hex = v
        .get("result")?
        .get("timestamp")?
        .as_str()?
        .strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok()
}

/// How many blocks back to look for an authorization's logs when it was admitted `elapsed`
/// seconds ago: four blocks a second (the fastest chains we settle on) over that time plus ten
/// minutes, so that the range surely holds the block that used or cancelled it.
pub fn blocks_back(elapsed: u64) -> u64 {
    elapsed.saturating_add(600).saturating_mul(4)
}

/// The body of an `eth_getLogs` for the token's `AuthorizationUsed` and `AuthorizationCanceled`
/// logs of this authorizer and nonce, in blocks `from_block..=to_block`.
pub fn authorization_logs_request(
    token: &Address,
    authorizer: &Address,
    nonce: &[u8; 32],
    from_block: u64,
    to_block: u64,
) -> String {
    request(
        "eth_getLogs",
        serde_json::json!([{
            "address": token.to_checksum(),
            "fromBlock": format!("0x{from_block:x}"),
            "toBlock": format!("0x{to_block:x}"),
            "topics": [
                [used_topic(), cancelled_topic()],
                address_topic(authorizer),
                format!("0x{}", hex::encode(nonce)),
            ],
        }]),
    )
}

/// Reads an `eth_getLogs` answer: the first use or cancellation of `authorizer`'s `nonce` on
/// `token` that it shows, `Some(None)` when it shows neither; `None` for an error or anything
/// unreadable (a node refusing the range, say). Each log is checked whole, not trusted to match
/// the query: a node that ignored the filter, or a log since removed by a reorganisation, must not
/// turn a paid authorization into a cancelled one or a use elsewhere.
pub fn read_authorization_logs(
    body: &str,
    token: &Address,
    authorizer: &Address,
    nonce: &[u8; 32],
) -> Option<Option<AuthorizationEvent>> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let logs = v.get("result")?.as_array()?;
    let token = format!("0x{}", hex::encode(token.0));
    let nonce = format!("0x{}", hex::encode(nonce));
    let used = [used_topic(), address_topic(authorizer), nonce.clone()];
    let cancelled = [cancelled_topic(), address_topic(authorizer), nonce];
    Some(logs.iter().find_map(|log| {
        if log_is(log, &token, &cancelled, None) {
            return Some(AuthorizationEvent::Cancelled);
        }
        log_is(log, &token, &used, None).then(|| AuthorizationEvent::Used {
            transaction: log["transactionHash"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        })
    }))
}

/// Whether `log` was emitted by `token` (lowercase hex, `0x`-prefixed) with exactly the topics
/// `want` (and the data `data`, if given), and was not removed by a reorganisation.
fn log_is(log: &serde_json::Value, token: &str, want: &[String; 3], data: Option<&str>) -> bool {
    let is = |v: &serde_json::Value, want: &str| {
        v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(want))
    };
    let topics = log["topics"].as_array().map_or(&[][..], Vec::as_slice);
    is(&log["address"], token)
        && topics.len() == 3
        && topics.iter().zip(want).all(|(t, w)| is(t, w))
        && data.is_none_or(|d| is(&log["data"], d))
        && log["removed"] != true
}

/// The body of an `eth_getTransactionReceipt` for `transaction` (`0x` and 64 hex digits).
pub fn receipt_request(transaction: &str) -> String {
    request(
        "eth_getTransactionReceipt",
        serde_json::json!([transaction]),
    )
}

/// Topic 0 of `Transfer(address indexed from, address indexed to, uint256 value)`.
fn transfer_topic() -> String {
    event_topic(b"Transfer(address,address,uint256)")
}

/// Reads a transaction receipt: whether the transaction succeeded and its use of this
/// authorization (`from`'s `nonce`) moved `value` of `token` from `from` to `to`. `None` when the
/// answer is an error, is unreadable, or has no receipt (yet). A payer can use an authorization's
/// nonce in a transfer of its own to anyone: its `AuthorizationUsed` log alone does not say who
/// was paid. Nor does any `Transfer` in the same transaction: one transaction can carry many
/// authorizations (a multicall), one paying us and the others, under the nonces of payments we
/// served, moving nothing. FiatToken logs each use, then its transfer: the log right after this
/// nonce's `AuthorizationUsed` must be the transfer to us.
pub fn read_receipt_pays(
    body: &str,
    token: &Address,
    from: &Address,
    nonce: &[u8; 32],
    to: &Address,
    value: u128,
) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let receipt = v.get("result")?.as_object()?;
    if receipt.get("status")?.as_str()? != "0x1" {
        return Some(false);
    }
    let used = [
        used_topic(),
        address_topic(from),
        format!("0x{}", hex::encode(nonce)),
    ];
    let transfer = [transfer_topic(), address_topic(from), address_topic(to)];
    let amount = format!("0x{value:064x}");
    let token = format!("0x{}", hex::encode(token.0));
    let is = |log: &serde_json::Value, want: &[String; 3], data: Option<&str>| {
        log_is(log, &token, want, data)
    };
    let logs = receipt.get("logs")?.as_array()?;
    Some(
        logs.windows(2)
            .any(|w| is(&w[0], &used, None) && is(&w[1], &transfer, Some(&amount))),
    )
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
    fn a_receipt_pays_only_with_a_transfer_of_the_amount_to_the_payee() {
        let token = Address::parse("0x036CbD53842c5426634e7929541eC2318f3dCF7e").unwrap();
        let from = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let payee = Address::parse("0x209693Bc6afc0C5328bA36FaF03C514EF312287C").unwrap();
        let other = Address::parse("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65").unwrap();
        let nonce = [0xaa; 32];
        let used = |nonce: &[u8; 32]| {
            serde_json::json!({"address": token.to_checksum(), "topics": [
                "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5", address_topic(&from),
                format!("0x{}", hex::encode(nonce))], "data": "0x"})
        };
        let transfer = |to: &Address, value: u128| {
            serde_json::json!({"address": token.to_checksum(), "topics": [
                "0xDDF252AD1BE2C89B69C2B068FC378DAA952BA7F163C4A11628F55A4DF523B3EF", address_topic(&from), address_topic(to)],
                "data": format!("0x{value:064x}")})
        };
        let with_logs = |status: &str, logs: Vec<serde_json::Value>| {
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"status": status, "logs": logs}})
                .to_string()
        };
        let receipt = |status: &str, to: &Address, value: u128| {
            with_logs(status, vec![used(&nonce), transfer(to, value)])
        };
        let pays = |body: &str| read_receipt_pays(body, &token, &from, &nonce, &payee, 10_000);
        // One transaction using many authorizations (a multicall): ours moved nothing, another
        // paid us. Each served payment must be paid by its own transfer.
        let batch = with_logs(
            "0x1",
            vec![
                used(&nonce),
                transfer(&from, 0),
                used(&[0xbb; 32]),
                transfer(&payee, 10_000),
            ],
        );
        assert_eq!(
            pays(&batch),
            Some(false),
            "another authorization's transfer"
        );
        let reordered = with_logs("0x1", vec![transfer(&payee, 10_000), used(&nonce)]);
        assert_eq!(pays(&reordered), Some(false), "a transfer before the use");
        let batch = with_logs(
            "0x1",
            vec![
                used(&[0xbb; 32]),
                transfer(&from, 0),
                used(&nonce),
                transfer(&payee, 10_000),
            ],
        );
        assert_eq!(pays(&batch), Some(true), "its own transfer, among others");
        assert_eq!(pays(&receipt("0x1", &payee, 10_000)), Some(true));
        assert_eq!(
            pays(&receipt("0x1", &other, 10_000)),
            Some(false),
            "paid someone else"
        );
        assert_eq!(
            pays(&receipt("0x1", &payee, 9_999)),
            Some(false),
            "another amount"
        );
        assert_eq!(
            pays(&receipt("0x0", &payee, 10_000)),
            Some(false),
            "reverted"
        );
        let elsewhere =
            receipt("0x1", &payee, 10_000).replace(&token.to_checksum(), &other.to_checksum());
        assert_eq!(pays(&elsewhere), Some(false), "another token's log");
        assert_eq!(
            pays(r#"{"jsonrpc":"2.0","id":1,"result":null}"#),
            None,
            "no receipt yet"
        );
        assert_eq!(
            pays(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000}}"#),
            None
        );
        assert_eq!(pays("garbage"), None);
        assert!(receipt_request("0xab").contains("eth_getTransactionReceipt"));
    }

    #[test]
    fn a_wallet_not_deployed_yet_is_asked_by_code_that_carries_both_calls() {
        let wallet = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let factory = Address::parse("0xca11ab1e00000000000000000000000000000001").unwrap();
        let calldata = [0x77; 100];
        let body = deployless_is_valid_signature_request(
            &wallet,
            &factory,
            &calldata,
            &[0xab; 32],
            &[0xcd; 70],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["method"], "eth_call");
        assert!(v["params"][0].get("to").is_none(), "a call that creates");
        assert_eq!(
            v["params"][0]["gas"], "0x4c4b40",
            "five million gas at most"
        );
        let code = hex::decode(
            v["params"][0]["data"]
                .as_str()
                .unwrap()
                .strip_prefix("0x")
                .unwrap(),
        )
        .unwrap();
        let question = is_valid_signature_calldata(&[0xab; 32], &[0xcd; 70]);
        assert_eq!(question.len(), 4 + 32 * 3 + 96);
        // The program, then the factory's calldata, then the question, each where the program's
        // CODECOPYs (PUSH2 size, PUSH2 offset, PUSH1 0x40, CODECOPY) read them.
        let program = code.len() - calldata.len() - question.len();
        assert_eq!(&code[program..program + calldata.len()], &calldata);
        assert_eq!(&code[program + calldata.len()..], &question[..]);
        let copies: Vec<(usize, usize)> = code[..program]
            .windows(9)
            .filter(|w| w[0] == 0x61 && w[3] == 0x61 && w[6..] == [0x60, 0x40, 0x39])
            .map(|w| {
                (
                    u16::from_be_bytes([w[1], w[2]]) as usize,
                    u16::from_be_bytes([w[4], w[5]]) as usize,
                )
            })
            .collect();
        assert_eq!(
            copies,
            [
                (calldata.len(), program),
                (question.len(), program + calldata.len())
            ]
        );
        // It asks the wallet's code size first and jumps to a JUMPDEST past the factory call.
        assert_eq!(code[0], 0x73);
        assert_eq!(&code[1..21], &wallet.0);
        assert_eq!(code[21], 0x3b);
        let skip = u16::from_be_bytes([code[23], code[24]]) as usize;
        assert_eq!(code[skip], 0x5b);
        assert_eq!(
            &code[skip - 2..skip],
            &[0xf1, 0x50],
            "the factory's CALL comes before it"
        );
        // Too long to be creation code: nothing to ask.
        assert!(deployless_is_valid_signature_request(
            &wallet,
            &factory,
            &[0; 50_000],
            &[0; 32],
            &[0; 65]
        )
        .is_none());
    }

    #[test]
    fn erc1271_question_and_answers() {
        let wallet = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let body = is_valid_signature_request(&wallet, &[0xab; 32], &[0xcd; 65]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["method"], "eth_call");
        assert_eq!(v["params"][0]["to"], wallet.to_checksum());
        assert_eq!(
            v["params"][0]["gas"], "0x4c4b40",
            "five million gas at most"
        );
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
        // What the identity precompile (0x…04) answers: the question itself, selector first.
        let echo = format!("0x1626ba7e{}{}", "ab".repeat(32), "0".repeat(56));
        assert_eq!(
            read_is_valid_signature(&answer(&echo)),
            Some(false),
            "an echo"
        );
        let padded_wrong = format!("0x1626ba7e{}1", "0".repeat(55));
        assert_eq!(read_is_valid_signature(&answer(&padded_wrong)), Some(false));
        let longer = format!("0x1626ba7e{}{}", "0".repeat(56), "f".repeat(64));
        assert_eq!(
            read_is_valid_signature(&answer(&longer)),
            Some(true),
            "one word read"
        );
        let upper = format!("0x1626BA7E{}", "0".repeat(56));
        assert_eq!(read_is_valid_signature(&answer(&upper)), Some(true));
        let wide = format!("0x1626ba7é{}", "0".repeat(56));
        assert_eq!(
            read_is_valid_signature(&answer(&wide)),
            Some(false),
            "not hex"
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
    fn block_timestamps() {
        let v: serde_json::Value = serde_json::from_str(&block_request(255)).unwrap();
        assert_eq!(v["method"], "eth_getBlockByNumber");
        assert_eq!(v["params"], serde_json::json!(["0xff", false]));
        let block =
            r#"{"jsonrpc":"2.0","id":1,"result":{"number":"0xff","timestamp":"0x6745a1b0"}}"#;
        assert_eq!(read_block_timestamp(block), Some(0x6745a1b0));
        assert_eq!(read_block_timestamp(r#"{"result":null}"#), None);
        assert_eq!(read_block_timestamp(r#"{"error":{"code":-32000}}"#), None);
        assert_eq!(
            read_block_timestamp(r#"{"result":{"timestamp":"12"}}"#),
            None
        );
    }

    #[test]
    fn request_and_answers() {
        let token = Address::parse("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512").unwrap();
        let from = Address::parse("0x90F79bf6EB2c4f870365E785982E1f101E93b906").unwrap();
        let body = authorization_state_request(&token, &from, &[0x11; 32], "latest");
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
        let body = authorization_logs_request(&token, &from, &[0x11; 32], 0x1234, 0x1300);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["method"], "eth_getLogs");
        let filter = &v["params"][0];
        assert_eq!(filter["fromBlock"], "0x1234");
        assert_eq!(filter["toBlock"], "0x1300");
        assert_eq!(
            filter["topics"][1],
            "0x00000000000000000000000090f79bf6eb2c4f870365e785982e1f101e93b906"
        );
        assert_eq!(filter["topics"][2], format!("0x{}", "11".repeat(32)));
        let nonce = [0x11; 32];
        let read = |body: &str| read_authorization_logs(body, &token, &from, &nonce);
        let entry = |topic: String| {
            serde_json::json!({"address": token.to_checksum(), "topics": [topic,
                address_topic(&from), format!("0x{}", hex::encode(nonce))],
                "transactionHash": "0xABC", "removed": false})
        };
        let of = |logs: Vec<serde_json::Value>| serde_json::json!({ "result": logs }).to_string();
        assert_eq!(
            read(&of(vec![entry(used_topic())])),
            Some(Some(AuthorizationEvent::Used {
                transaction: "0xabc".into()
            }))
        );
        assert_eq!(
            read(&of(vec![entry(cancelled_topic())])),
            Some(Some(AuthorizationEvent::Cancelled))
        );
        // A node that ignored the filter, or logs since removed: none of these is about this
        // authorization, and the paid one after them is found.
        let other_token = {
            let mut l = entry(cancelled_topic());
            l["address"] = serde_json::json!("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
            l
        };
        let other_nonce = {
            let mut l = entry(cancelled_topic());
            l["topics"][2] = serde_json::json!(format!("0x{}", "22".repeat(32)));
            l
        };
        let other_payer = {
            let mut l = entry(cancelled_topic());
            l["topics"][1] = serde_json::json!(address_topic(&token));
            l
        };
        let removed = {
            let mut l = entry(cancelled_topic());
            l["removed"] = serde_json::json!(true);
            l
        };
        let short = {
            let mut l = entry(cancelled_topic());
            l["topics"].as_array_mut().unwrap().pop();
            l
        };
        let strays = vec![other_token, other_nonce, other_payer, removed, short];
        for stray in &strays {
            assert_eq!(read(&of(vec![stray.clone()])), Some(None), "{stray}");
        }
        let mut then_paid = strays;
        then_paid.push(entry(used_topic()));
        assert_eq!(
            read(&of(then_paid)),
            Some(Some(AuthorizationEvent::Used {
                transaction: "0xabc".into()
            }))
        );
        assert_eq!(read(r#"{"result":[]}"#), Some(None));
        assert_eq!(read(r#"{"error":{"message":"range too large"}}"#), None);
        assert_eq!(read_block_number(r#"{"result":"0x10"}"#), Some(16));
        assert_eq!(read_block_number(r#"{"result":"12"}"#), None);
        assert_eq!(blocks_back(0), 2_400);
        assert_eq!(blocks_back(u64::MAX), u64::MAX);
    }
}
