//! The networks and tokens the paywall knows without being told.
//!
//! A wrong EIP-712 `name` is the most reported settlement failure in x402: the client signs over a
//! domain the token does not have, verification may still pass, and the on-chain call reverts. So
//! the USDC deployments are written down here once, with the exact name and version each contract
//! reports (note Base Sepolia and Polygon Amoy say "USDC" while the mainnets say "USD Coin").
//! Publishers add other EIP-3009 tokens (or a local chain's USDC) in configuration.

/// An EVM network: its CAIP-2 id, chain id and the name v1 clients use for it, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub chain_id: u64,
    /// The x402 v1 network name, when one exists in the legacy clients' list.
    pub v1_name: Option<&'static str>,
}

/// A built-in EIP-3009 token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownAsset {
    pub chain_id: u64,
    pub address: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    pub decimals: u8,
    pub symbol: &'static str,
}

/// USDC where x402 clients and facilitators expect it.
pub const KNOWN_ASSETS: &[KnownAsset] = &[
    usdc(
        8453,
        "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        "USD Coin",
    ),
    usdc(84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"),
    usdc(
        137,
        "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
        "USD Coin",
    ),
    usdc(80002, "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", "USDC"),
    usdc(
        42161,
        "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
        "USD Coin",
    ),
    usdc(
        421614,
        "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d",
        "USD Coin",
    ),
];

const fn usdc(chain_id: u64, address: &'static str, name: &'static str) -> KnownAsset {
    KnownAsset {
        chain_id,
        address,
        name,
        version: "2",
        decimals: 6,
        symbol: "USDC",
    }
}

/// x402 v1 network names and their chain ids. Only names the legacy clients accept are here, so
/// that a v1 body never carries an entry they would choke on.
const V1_NAMES: &[(&str, u64)] = &[
    ("base", 8453),
    ("base-sepolia", 84532),
    ("polygon", 137),
    ("polygon-amoy", 80002),
    ("avalanche", 43114),
    ("avalanche-fuji", 43113),
    ("abstract", 2741),
    ("abstract-testnet", 11124),
    ("iotex", 4689),
    ("sei", 1329),
    ("sei-testnet", 1328),
    ("peaq", 3338),
    ("story", 1514),
    ("educhain", 41923),
    ("skale-base-sepolia", 324705682),
];

/// Reads a network written as CAIP-2 (`eip155:8453`) or as a v1 name (`base`).
pub fn parse_network(s: &str) -> Option<Network> {
    let chain_id = if let Some(id) = s.strip_prefix("eip155:") {
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if id.len() > 1 && id.starts_with('0') {
            return None;
        }
        id.parse().ok()?
    } else {
        V1_NAMES.iter().find(|(n, _)| *n == s)?.1
    };
    Some(network_of(chain_id))
}

/// The network of a chain id.
pub fn network_of(chain_id: u64) -> Network {
    Network {
        chain_id,
        v1_name: V1_NAMES
            .iter()
            .find(|(_, id)| *id == chain_id)
            .map(|(n, _)| *n),
    }
}

impl Network {
    /// The CAIP-2 id, as v2 writes it.
    pub fn caip2(&self) -> String {
        format!("eip155:{}", self.chain_id)
    }
}

/// The built-in USDC of a chain, if any.
pub fn usdc_of(chain_id: u64) -> Option<&'static KnownAsset> {
    KNOWN_ASSETS.iter().find(|a| a.chain_id == chain_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_caip2() {
        assert_eq!(parse_network("base").unwrap().chain_id, 8453);
        assert_eq!(
            parse_network("eip155:84532").unwrap().v1_name,
            Some("base-sepolia")
        );
        assert_eq!(parse_network("eip155:31337").unwrap().v1_name, None);
        for bad in [
            "eip155:",
            "eip155:01",
            "eip155:x",
            "solana",
            "eip155:99999999999999999999",
        ] {
            assert!(parse_network(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn usdc_domains_are_the_ones_on_chain() {
        assert_eq!(usdc_of(8453).unwrap().name, "USD Coin");
        assert_eq!(usdc_of(84532).unwrap().name, "USDC");
        assert!(usdc_of(1).is_none());
    }
}
