//! EIP-191 version 0x45 (`personal_sign`) hashing, used by SIWE / SIWX
//! wallet proofs.
//!
//! The hash covers `"\x19Ethereum Signed Message:\n"`, the message length
//! in bytes as ASCII decimal, then the message bytes. The length is of the
//! UTF-8 bytes, not characters: that is what viem's `verifyMessage` does
//! for a string message. Streamed into Keccak; nothing is allocated.

use super::keccak256_concat;

const PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

/// The prehash a wallet signs for `personal_sign(message)`.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut len_buf = [0u8; 20];
    let len = decimal(message.len(), &mut len_buf);
    keccak256_concat(&[PREFIX, len, message])
}

/// Writes `n` in decimal at the end of `buf` (20 digits hold any u64/usize).
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = 0;
    for (i, slot) in buf.iter_mut().enumerate().rev() {
        // n % 10 < 10, so the cast keeps the value.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            start = i;
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evm::keccak256;

    #[test]
    fn decimal_lengths() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(7, &mut b), b"7");
        assert_eq!(decimal(10, &mut b), b"10");
        assert_eq!(decimal(304, &mut b), b"304");
        assert_eq!(
            decimal(usize::MAX, &mut b),
            usize::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn matches_naive_concatenation() {
        for msg in ["", "hello", "héllo wörld", &"x".repeat(1000)] {
            let naive = format!("\x19Ethereum Signed Message:\n{}{}", msg.len(), msg);
            assert_eq!(eip191_hash(msg.as_bytes()), keccak256(naive.as_bytes()));
        }
    }

    #[test]
    fn known_hello_world() {
        // ethers.js `hashMessage("hello world")`.
        assert_eq!(
            hex::encode(eip191_hash(b"hello world")),
            "d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"
        );
    }
}
