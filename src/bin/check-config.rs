//! Checks a paywall configuration before it is deployed: reads the JSON of `[vars.X402]` on
//! standard input (`scripts/check-config` extracts it from `wrangler.toml`), validates it exactly
//! as the Worker will, and prints what each route sells, or the key that is wrong and why.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::process::ExitCode;

use x402_edge::config::{Access, Config, SettlementMode};

fn main() -> ExitCode {
    let mut json = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut json) {
        eprintln!("could not read the configuration: {e}");
        return ExitCode::from(2);
    }
    let config = match Config::from_json(&json) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ok: {} route(s); facilitator {}; origin {}",
        config.routes.len(),
        config
            .facilitator
            .as_ref()
            .map_or("none", |f| f.url.as_str()),
        config.origin.as_deref().unwrap_or("the zone's own"),
    );
    for r in &config.routes {
        let what = format!(
            "{} {}",
            r.method.as_deref().unwrap_or("*"),
            r.pattern.as_str()
        );
        if r.is_free() {
            let _ = writeln!(out, "  {what:<32} free");
            continue;
        }
        let offers: Vec<String> = r
            .offers
            .iter()
            .map(|o| {
                format!(
                    "{} {} on {}",
                    human(o.amount.to_u128().unwrap_or(0), o.asset.decimals),
                    if o.asset.symbol.is_empty() {
                        "tokens"
                    } else {
                        &o.asset.symbol
                    },
                    o.requirements.network
                )
            })
            .collect();
        let mode = match r.settlement {
            SettlementMode::Immediate => "immediate",
            SettlementMode::Deferred => "deferred",
        };
        let access = |a: Access| match a {
            Access::Allow => "allow",
            Access::Charge => "charge",
            Access::Block => "block",
        };
        let _ = writeln!(out, "  {what:<32} {} ({mode})", offers.join(" | "));
        let _ = writeln!(
            out,
            "  {:<32} humans {}, crawlers {}, agents {}{}",
            "",
            access(r.access.humans),
            access(r.access.crawlers),
            access(r.access.agents),
            if r.access.trust_browsers {
                " (browsers trusted)"
            } else {
                ""
            }
        );
        if let Some(s) = &r.session {
            let amount = match (s.seconds, s.requests) {
                (Some(sec), _) => format!("{sec} s"),
                (_, Some(n)) => format!("{n} requests"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<32} sells a session: {} for {amount}",
                "",
                s.scope.as_str()
            );
        }
    }
    // A configuration copied from a template can sell for faucet money without anyone noticing.
    let mut tests: Vec<&str> = Vec::new();
    for o in config.routes.iter().flat_map(|r| &r.offers) {
        let network = o.requirements.network.as_str();
        if is_test_network(network) && !tests.contains(&network) {
            tests.push(network);
        }
    }
    for network in tests {
        let _ = writeln!(
            out,
            "note: {network} is a test network: what it pays is faucet money, not revenue"
        );
    }
    // A deferred payment is served before it is settled: without a node to read, a settlement
    // whose answer was lost cannot be checked on chain, and a payer who cancels its authorization
    // cannot be told from one who paid, and is not held owing.
    let mut unread: Vec<&str> = Vec::new();
    for r in config
        .routes
        .iter()
        .filter(|r| r.settlement == SettlementMode::Deferred)
    {
        for o in &r.offers {
            let network = o.requirements.network.as_str();
            if config.rpc_for(o.asset.network.chain_id).is_none() && !unread.contains(&network) {
                unread.push(network);
            }
        }
    }
    for network in unread {
        let _ = writeln!(
            out,
            "note: deferred payments on {network} have no rpc URL: a settlement whose answer was \
             lost cannot be checked on chain, and a payer who cancels its authorization is not held \
             owing; set rpc.\"{network}\""
        );
    }
    // A description the Worker leaves out of what agents see (a body type on a GET route…).
    for r in &config.routes {
        if let Some((name, why)) = r.discovery.unshown(r.method.as_deref()) {
            let _ = writeln!(
                out,
                "note: routes[{}].discovery.{name} {why}; agents are never shown it",
                r.index
            );
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// A chain whose tokens are worth nothing: a local chain, a test chain known by its id, or a
/// testnet by its v1 name.
fn is_test_network(network: &str) -> bool {
    // Test chains without a v1 name: local nodes (anvil and Hardhat, Ganache), Ethereum
    // Sepolia, Arbitrum Sepolia, OP Sepolia, Unichain Sepolia, World Chain Sepolia.
    const TEST_CHAINS: [u64; 7] = [31337, 1337, 11155111, 421614, 11155420, 1301, 4801];
    x402_edge::networks::parse_network(network).is_some_and(|n| {
        TEST_CHAINS.contains(&n.chain_id)
            || n.v1_name.is_some_and(|name| {
                ["sepolia", "testnet", "amoy", "fuji"]
                    .iter()
                    .any(|t| name.contains(t))
            })
    })
}

fn human(atomic: u128, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let frac = format!("{:0width$}", atomic % scale, width = decimals as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", atomic / scale)
    } else {
        format!("{}.{frac}", atomic / scale)
    }
}
