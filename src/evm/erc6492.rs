//! ERC-6492: the signature of a smart wallet that is not deployed yet.
//!
//! A counterfactual wallet (an address that a factory would deploy, say a new Coinbase Smart
//! Wallet) has no contract to ask about its signatures until its first transaction. It signs
//! with an envelope instead: `abi.encode(address factory, bytes factoryCalldata, bytes signature)`
//! followed by a 32-byte magic suffix. Whoever checks it deploys the wallet in a simulation (the
//! factory call) and then asks it (ERC-1271) about the signature inside.

use super::Address;

/// The 32 bytes that end an ERC-6492 signature.
pub const SUFFIX: [u8; 32] = [
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
];

/// What an ERC-6492 signature carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The contract that deploys the wallet.
    pub factory: Address,
    /// The call to it that does.
    pub factory_calldata: &'a [u8],
    /// The wallet's signature, as its contract will judge it once deployed.
    pub signature: &'a [u8],
}

/// Whether `signature` ends with the ERC-6492 suffix.
pub fn is_wrapped(signature: &[u8]) -> bool {
    signature.ends_with(&SUFFIX)
}

/// Opens an ERC-6492 signature; `None` when it does not end with the suffix, or its envelope
/// cannot be read (an address word with high bytes, offsets or lengths that lead outside it).
pub fn open(signature: &[u8]) -> Option<Envelope<'_>> {
    let envelope = signature.strip_suffix(&SUFFIX)?;
    let word = |at: usize| envelope.get(at..at.checked_add(32)?);
    let number = |at: usize| -> Option<usize> {
        let w = word(at)?;
        // Offsets and lengths beyond four bytes are malformed here (a signature is a few KiB).
        if w[..28].iter().any(|&b| b != 0) {
            return None;
        }
        Some(u32::from_be_bytes([w[28], w[29], w[30], w[31]]) as usize)
    };
    let bytes = |offset_at: usize| -> Option<&[u8]> {
        let at = number(offset_at)?;
        let len = number(at)?;
        let start = at.checked_add(32)?;
        envelope.get(start..start.checked_add(len)?)
    };
    let first = word(0)?;
    if first[..12].iter().any(|&b| b != 0) {
        return None;
    }
    let mut factory = [0u8; 20];
    factory.copy_from_slice(&first[12..]);
    Some(Envelope {
        factory: Address(factory),
        factory_calldata: bytes(32)?,
        signature: bytes(64)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(n: usize) -> String {
        format!("{n:064x}")
    }

    // Opening a well-formed envelope is tested with the Sign-In-With-X question (tests/siwx.rs).

    #[test]
    fn refuses_what_it_cannot_read() {
        let suffix = "6492".repeat(16);
        let read = |h: String| open(&hex::decode(h).unwrap()).is_none();
        // Not wrapped at all.
        assert!(!is_wrapped(&[0x64; 40]));
        assert!(read("00".repeat(96)));
        // An offset past the end; a length past the end; an address with high bytes.
        assert!(read(format!(
            "{}{}{}{suffix}",
            word(0),
            word(0),
            word(0x1000)
        )));
        assert!(read(format!(
            "{}{}{}{}{suffix}",
            word(0),
            word(0x60),
            word(0x60),
            word(99)
        )));
        assert!(read(format!(
            "{}{}{}{}{suffix}",
            "ff".repeat(32),
            word(0x60),
            word(0x60),
            word(0)
        )));
        // Offsets beyond four bytes.
        assert!(read(format!(
            "{}{}{}{suffix}",
            word(0),
            "ff".repeat(32),
            word(0x60)
        )));
        // Only the suffix.
        assert!(read(suffix));
    }
}
