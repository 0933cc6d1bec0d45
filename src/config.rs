//! The publisher's configuration: parsed once, validated completely, then read-only.
//!
//! It arrives as the JSON of the `X402` table in `wrangler.toml` (`[vars.X402]`). Every problem is
//! reported with the exact key (`routes[2].price`) and what is wrong, because the person reading the
//! message is a publisher, not the author of this code. Everything the request path needs is
//! precomputed here: each route's offers, down to the exact `PaymentRequirements` JSON, so that the
//! terms in a 402 and the terms checked on the paid retry are byte-for-byte the same.

use serde_json::Value;

use crate::evm::{Address, U256};
use crate::json;
use crate::networks::{self, Network};
use crate::pattern::PathPattern;
use crate::session::SessionOffer;
use crate::x402::{Eip712Extra, PaymentRequirements, PaymentRequirementsV1};

/// Default `maxTimeoutSeconds`: how long a signed payment stays valid, which bounds how late we
/// may settle it. Same as the reference middleware.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u64 = 300;
/// Default time we give the facilitator to answer.
pub const DEFAULT_FACILITATOR_TIMEOUT_MS: u64 = 10_000;

/// A configuration problem: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "X402: {}", self.problem)
        } else {
            write!(f, "X402.{}: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug)]
struct RawConfig {
    pay_to: Option<String>,
    accepts: Vec<Value>,
    origin: Option<String>,
    facilitator: Option<Value>,
    assets: Vec<Value>,
    routes: Vec<Value>,
    max_timeout_seconds: Option<u64>,
    settlement: Option<SettlementMode>,
    payment_identifier: Option<PaymentIds>,
    deferred: Option<Value>,
    payers: Option<Payers>,
    humans: Option<Access>,
    crawlers: Option<Access>,
    agents: Option<Access>,
    trust_browsers: Option<bool>,
    method_parameter: Option<bool>,
    rpc: Vec<(String, String)>,
    log: Option<String>,
    origin_timeout_seconds: Option<u64>,
    trust_signers: Vec<String>,
    agent_signers: Vec<String>,
}

#[derive(Debug)]
struct RawDeferred {
    credit_limit: Option<String>,
    batch_seconds: Option<u64>,
    safety_margin_seconds: Option<u64>,
    over_credit: Option<OverCredit>,
    credit: Option<Credit>,
}

/// When a payment is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementMode {
    /// Settled through the facilitator before the response leaves; nothing is served unsettled.
    Immediate,
    /// Served as soon as it is verified locally; settled later from the wallet's ledger.
    Deferred,
}

/// Whether a route's terms offer the `payment-identifier` extension (an idempotency key a client
/// puts in its payment), and whether a payment must carry one. A payment sent again with the same
/// identifier, to the same URL, is answered with the answer it bought the first time instead of
/// being refused as a replay: a client whose first answer was lost gets it without paying twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PaymentIds {
    /// Not offered; an identifier sent all the same is ignored.
    Off,
    /// Offered; a payment may carry one.
    #[default]
    Optional,
    /// Offered; a payment without one is refused (400).
    Required,
}

/// Which decisions get a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogLevel {
    /// Every decision that matters: payments, sessions bought or refused, crawlers classified,
    /// blocks, refused credentials. Not the routine, high-volume ones: terms sent to a request that
    /// carried nothing, a person let through free, a request served on a session.
    #[default]
    Decisions,
    /// Those too: a line for every request to a priced route.
    All,
}

/// What a deferred route does when a wallet has run up its credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCredit {
    /// Settle this payment before answering, as an immediate route would.
    Immediate,
    /// Answer 402 until the wallet's earlier payments have settled.
    Refuse,
}

/// How much a wallet is trusted with before its payments settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    /// No more than the wallet has already paid in settled payments (up to the limit): a new
    /// wallet's first payment is settled before it is served, and a wallet that cannot pay costs
    /// the publisher at most what it paid before.
    Earned,
    /// The whole limit from the first payment, for callers known some other way: every new key
    /// can run the limit up unpaid.
    Full,
}

/// The rules of deferred settlement, shared by every deferred route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredPolicy {
    /// Unsettled total a wallet may run up, in micro-USD (6 decimals).
    pub credit_limit_micro_usd: u128,
    /// How long a payment waits for others to settle with it.
    pub batch_seconds: u64,
    /// How long before `validBefore` settlement must be done.
    pub safety_margin_seconds: u64,
    pub over_credit: OverCredit,
    pub credit: Credit,
}

impl Default for DeferredPolicy {
    fn default() -> Self {
        DeferredPolicy {
            credit_limit_micro_usd: 1_000_000,
            batch_seconds: 10,
            safety_margin_seconds: 30,
            over_credit: OverCredit::Immediate,
            credit: Credit::Earned,
        }
    }
}

/// One way to pay as written: a network name, or `{ network, asset }`.
#[derive(Debug)]
struct RawAccept {
    network: String,
    asset: Option<String>,
}

#[derive(Debug)]
struct RawFacilitator {
    url: String,
    timeout_ms: Option<u64>,
}

#[derive(Debug)]
struct RawAsset {
    network: String,
    address: String,
    name: String,
    version: String,
    decimals: u8,
    symbol: Option<String>,
}

#[derive(Debug)]
struct RawRoute {
    path: String,
    method: Option<String>,
    price: Option<Value>,
    free: bool,
    pay_to: Option<String>,
    accepts: Option<Vec<Value>>,
    description: Option<String>,
    mime_type: Option<String>,
    max_timeout_seconds: Option<u64>,
    settlement: Option<SettlementMode>,
    payment_identifier: Option<PaymentIds>,
    session: Option<Value>,
    discovery: Option<Value>,
    payers: Option<Payers>,
    humans: Option<Access>,
    crawlers: Option<Access>,
    agents: Option<Access>,
    trust_browsers: Option<bool>,
    method_parameter: Option<bool>,
}

/// What a route tells agents about itself (the `bazaar` extension and `/.well-known/x402`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// Listed in `/.well-known/x402` and described in the 402 (default true).
    pub discoverable: bool,
    /// Example query parameters (GET, HEAD, DELETE) or body (POST, PUT, PATCH).
    pub input: Option<Value>,
    /// JSON Schema of the input.
    pub input_schema: Option<Value>,
    /// `json`, `form-data` or `text`, for body methods.
    pub body_type: Option<String>,
    /// An example of what the route returns.
    pub output: Option<Value>,
    /// JSON Schema of the output.
    pub output_schema: Option<Value>,
}

/// Who pays, per class of client. A route (or the top level) may say `payers` for the usual
/// combinations, or set each class.
#[derive(Debug, Default)]
struct RawAccess {
    payers: Option<Payers>,
    humans: Option<Access>,
    crawlers: Option<Access>,
    agents: Option<Access>,
    trust_browsers: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payers {
    /// Everyone pays.
    Everyone,
    /// Crawlers and agents pay; people read free.
    Bots,
    /// Agents pay; people and crawlers are let through.
    Agents,
}

/// What happens to one class of client on a priced route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Let through without payment.
    Allow,
    /// Ask for payment (402).
    Charge,
    /// Refuse (403).
    Block,
}

/// The per-class policy of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessPolicy {
    pub humans: Access,
    pub crawlers: Access,
    pub agents: Access,
    /// Whether a browser-looking request (User-Agent and Accept only, no Cloudflare verdict) is
    /// treated as a person. Off by default: anyone can claim to be a browser.
    pub trust_browsers: bool,
}

impl AccessPolicy {
    /// Whether every class of client pays here: then who is asking changes nothing about access.
    pub fn charges_everyone(&self) -> bool {
        [self.humans, self.crawlers, self.agents]
            .iter()
            .all(|a| *a == Access::Charge)
    }
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            humans: Access::Charge,
            crawlers: Access::Charge,
            agents: Access::Charge,
            trust_browsers: false,
        }
    }
}

impl RawAccess {
    fn resolve(&self, base: AccessPolicy) -> AccessPolicy {
        // `payers` names who pays; whether a browser is taken at its word is inherited whatever
        // it names (it matters again as soon as `humans` allows them).
        let (humans, crawlers, agents) = match self.payers {
            None => (base.humans, base.crawlers, base.agents),
            Some(Payers::Everyone) => (Access::Charge, Access::Charge, Access::Charge),
            Some(Payers::Bots) => (Access::Allow, Access::Charge, Access::Charge),
            Some(Payers::Agents) => (Access::Allow, Access::Allow, Access::Charge),
        };
        let mut p = AccessPolicy {
            humans,
            crawlers,
            agents,
            trust_browsers: self.trust_browsers.unwrap_or(base.trust_browsers),
        };
        if let Some(a) = self.humans {
            p.humans = a;
        }
        if let Some(a) = self.crawlers {
            p.crawlers = a;
        }
        if let Some(a) = self.agents {
            p.agents = a;
        }
        p
    }
}

#[derive(Debug)]
struct RawSession {
    scope: Option<String>,
    seconds: Option<u64>,
    requests: Option<u64>,
}

/// An EIP-3009 token, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub network: Network,
    pub address: Address,
    pub name: String,
    pub version: String,
    pub decimals: u8,
    pub symbol: String,
}

/// One way to pay for a route: a token on a network, a recipient, an exact amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub asset: Asset,
    pub pay_to: Address,
    pub amount: U256,
    pub max_timeout_seconds: u64,
    /// The v2 terms exactly as sent and as expected back.
    pub requirements: PaymentRequirements,
    /// Whether v1 clients may pay this offer: its network has a v1 name and the facilitator
    /// settles v1 payments there.
    pub v1_enabled: bool,
    /// The token's EIP-712 domain separator, which every payment's digest starts from: four
    /// Keccak permutations worked out once, when the configuration is read, not per payment.
    pub domain_separator: [u8; 32],
}

impl Offer {
    /// The v1 form of this offer, if v1 clients know its network.
    pub fn v1(
        &self,
        resource: &str,
        description: &str,
        mime_type: &str,
    ) -> Option<PaymentRequirementsV1> {
        let name = self.asset.network.v1_name.filter(|_| self.v1_enabled)?;
        Some(PaymentRequirementsV1 {
            scheme: "exact".into(),
            network: name.into(),
            max_amount_required: self.requirements.amount.clone(),
            resource: resource.into(),
            description: description.into(),
            mime_type: mime_type.into(),
            pay_to: self.requirements.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            asset: self.requirements.asset.clone(),
            extra: self.requirements.extra.clone(),
        })
    }
}

/// A route rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Position in `routes`, for messages and logs.
    pub index: usize,
    /// Upper-case method, or `None` for any method.
    pub method: Option<String>,
    pub pattern: PathPattern,
    pub description: String,
    pub mime_type: String,
    /// Empty for a free route (`free = true`), which passes through.
    pub offers: Vec<Offer>,
    pub settlement: SettlementMode,
    /// Whether the terms offer `payment-identifier`, and whether a payment must carry one.
    pub payment_ids: PaymentIds,
    /// Whether the origin may serve a `POST` here as the method a `_method` parameter names
    /// (Rails, Laravel and Symfony do): if so, a `POST` naming this route's method is refused
    /// where this route prices it and `POST` is not priced with it (see
    /// [`crate::paywall::method_override`]).
    pub method_parameter: bool,
    /// What a payment here buys beyond this request, if anything.
    pub session: Option<SessionOffer>,
    /// Who pays here, per class of client.
    pub access: AccessPolicy,
    pub discovery: Discovery,
    /// The `bazaar` extension of this route's 402s, built once (see [`crate::discovery::bazaar`]).
    pub bazaar: Option<Value>,
    /// This route's terms as JSON text, rendered once (see [`crate::paywall::Rendered`]).
    pub rendered: crate::paywall::Rendered,
    /// Its name in the publisher's statistics: its pattern, after its method where another
    /// priced rule has the same pattern (`GET /news/*` and `POST /news/*` counted apart).
    pub stats_name: String,
}

impl Route {
    pub fn is_free(&self) -> bool {
        self.offers.is_empty()
    }

    /// The most one request here costs, in micro-USD, over its offers (0 when free).
    pub fn dearest_micro_usd(&self) -> u128 {
        self.offers
            .iter()
            .map(crate::paywall::micro_usd)
            .max()
            .unwrap_or(0)
    }

    /// The least one request here costs, in micro-USD, over its offers (0 when free).
    pub fn cheapest_micro_usd(&self) -> u128 {
        self.offers
            .iter()
            .map(crate::paywall::micro_usd)
            .min()
            .unwrap_or(0)
    }

    /// Whether this rule covers the method and path. A rule for GET also covers HEAD (a GET
    /// without the body must not be a free look at what a GET would sell) and methods outside
    /// HTTP's standard set (PROPFIND, PURGE…), which some origins answer as if they were GET (and
    /// a plain OPTIONS that no rule names: [`Config::route_for`]).
    /// A priced rule also covers its paths with a format suffix
    /// ([`PathPattern::matches_formatted`]).
    pub fn covers(&self, method: &str, path: &str) -> bool {
        const STANDARD: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
        ];
        let method_ok = match &self.method {
            None => true,
            Some(m) => {
                m == method || (m == "GET" && (method == "HEAD" || !STANDARD.contains(&method)))
            }
        };
        method_ok
            && if self.is_free() {
                self.pattern.matches(path)
            } else {
                self.pattern.matches_formatted(path)
            }
    }
}

/// The facilitator we settle through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilitatorConfig {
    /// Base URL without a trailing slash.
    pub url: String,
    pub timeout_ms: u64,
}

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub routes: Vec<Route>,
    pub facilitator: Option<FacilitatorConfig>,
    /// Where passed requests go; `None` means on to the zone's own origin.
    pub origin: Option<String>,
    pub deferred: DeferredPolicy,
    /// JSON-RPC endpoints by chain id, to read a payment's state on chain when the facilitator's
    /// answer was lost.
    pub rpc: Vec<(u64, String)>,
    pub log: LogLevel,
    /// How long a paid (or session) request waits for the origin's answer before it is refused
    /// with `origin_unavailable` and nothing is charged.
    pub origin_timeout_seconds: u64,
    /// Web Bot Auth signers whose word is taken on who they are: `host` or `host:port` of their
    /// `Signature-Agent`, `*.host` for a host's subdomains (lowercase), or the URL of a key set
    /// named with `type=jwks_uri`. Anyone can host a key
    /// directory, so a signature from anyone else proves nothing this site should act on; its
    /// directory is not even fetched. See [`crate::crawlers::signer_trusted`].
    pub trust_signers: Vec<String>,
    /// Signers, written as in `trust_signers` and trusted as those are, whose verified requests
    /// are classed as agents acting for a person rather than as crawlers (`agentSigners`).
    pub agent_signers: Vec<String>,
}

/// Cloudflare's own proxy gives up on an origin after 100 s (HTTP 524); a deferred payment is
/// held for [`crate::settlement::HOLD_SECONDS`] while the origin answers, so the wait must end
/// well before the hold does.
pub const DEFAULT_ORIGIN_TIMEOUT_SECONDS: u64 = 100;

impl Config {
    /// The session offers that let a request priced by `route` in, on `path`: what a wallet may
    /// already have bought. A session opens the paths its scope covers, but never a page dearer
    /// than the one that sold it: a scope that also covers a dearer route (which comes first,
    /// so prices its paths) or another method's dearer rule does not open those. Nor a page
    /// whose payments go to someone the selling route's do not: a session paid to one payee
    /// never stands for a payment to another (a partner's section under the same scope).
    pub fn sessions_for<'a>(
        &'a self,
        route: &'a Route,
        path: &'a str,
    ) -> impl Iterator<Item = &'a SessionOffer> + 'a {
        let asked = route.dearest_micro_usd();
        self.routes.iter().filter_map(move |seller| {
            let offer = seller.session.as_ref()?;
            let same_payees = || {
                let paid = |o: &Offer| seller.offers.iter().any(|s| s.pay_to == o.pay_to);
                route.offers.iter().all(paid)
            };
            let sold_here = seller.index == route.index;
            let opens = sold_here || (asked <= seller.cheapest_micro_usd() && same_payees());
            (opens && offer.scope.matches_formatted(path)).then_some(offer)
        })
    }

    /// The store key of every grant `wallet` may hold under this configuration: one per session
    /// offer. Revocation deletes these by name, since a listing of the store lags its writes.
    pub fn grant_keys(&self, wallet: &crate::evm::Address) -> Vec<String> {
        self.routes
            .iter()
            .filter_map(|r| r.session.as_ref())
            .map(|offer| crate::session::grant_key(wallet, &offer.name))
            .collect()
    }

    /// The JSON-RPC endpoint of a chain, if configured.
    pub fn rpc_for(&self, chain_id: u64) -> Option<&str> {
        self.rpc
            .iter()
            .find(|(c, _)| *c == chain_id)
            .map(|(_, u)| u.as_str())
    }
}

impl Config {
    /// Parses and validates the JSON of `[vars.X402]`.
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(json).map_err(|e| err("", e.to_string()))?;
        RawConfig::read(&value)?.resolve()
    }

    /// The first route that covers this request, if any.
    pub fn route_for(&self, method: &str, path: &str) -> Option<&Route> {
        let covering = |method| self.routes.iter().find(|r| r.covers(method, path));
        // A plain OPTIONS (a CORS preflight is answered before any rule is asked) that no rule
        // names is priced where GET is: origins that do not look at the method (a PHP script, a
        // Go handler) answer it with what a GET would sell.
        covering(method).or_else(|| (method == "OPTIONS").then(|| covering("GET")).flatten())
    }
}

fn parse_address(key: &str, s: &str) -> Result<Address, ConfigError> {
    let a = Address::parse(s).map_err(|e| err(key, format!("{s:?} is not an address: {e}")))?;
    if a == Address::ZERO {
        return Err(err(key, "the zero address cannot be paid"));
    }
    Ok(a)
}

fn check_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| err(key, format!("{url:?} must start with http:// or https://")))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(err(key, format!("{url:?} is not a URL")));
    }
    Ok(trimmed.to_string())
}

impl RawConfig {
    fn resolve(self) -> Result<Config, ConfigError> {
        let mut assets = Vec::with_capacity(self.assets.len());
        for (i, a) in self.assets.iter().enumerate() {
            let key = format!("assets[{i}]");
            let a = RawAsset::read(a, &key)?;
            let network = networks::parse_network(&a.network).ok_or_else(|| {
                err(
                    format!("{key}.network"),
                    format!(
                        "{:?} is not an EVM network (write eip155:<chain id>)",
                        a.network
                    ),
                )
            })?;
            if a.name.is_empty() || a.version.is_empty() {
                return Err(err(
                    key,
                    "name and version are the token's EIP-712 domain and cannot be empty",
                ));
            }
            if a.decimals > 36 {
                return Err(err(format!("{key}.decimals"), "at most 36"));
            }
            assets.push(Asset {
                network,
                address: parse_address(&format!("{key}.address"), &a.address)?,
                name: a.name.clone(),
                version: a.version.clone(),
                decimals: a.decimals,
                symbol: a.symbol.clone().unwrap_or_default(),
            });
        }

        let default_pay_to = self
            .pay_to
            .as_deref()
            .map(|s| parse_address("payTo", s))
            .transpose()?;
        let default_timeout = self
            .max_timeout_seconds
            .unwrap_or(DEFAULT_MAX_TIMEOUT_SECONDS);
        check_timeout("maxTimeoutSeconds", default_timeout)?;
        let default_accepts = resolve_accepts("accepts", &self.accepts, &assets)?;

        let facilitator = match &self.facilitator {
            None => None,
            Some(f) => Some(RawFacilitator::read(f)?),
        };
        let facilitator = match &facilitator {
            None => None,
            Some(f) => Some(FacilitatorConfig {
                url: check_url("facilitator.url", &f.url)?,
                timeout_ms: match f.timeout_ms {
                    Some(0) => return Err(err("facilitator.timeoutMs", "must be more than 0")),
                    Some(t) => t,
                    None => DEFAULT_FACILITATOR_TIMEOUT_MS,
                },
            }),
        };
        let origin = self
            .origin
            .as_deref()
            .map(|o| check_url("origin", o))
            .transpose()?;
        let origin_timeout_seconds = self
            .origin_timeout_seconds
            .unwrap_or(DEFAULT_ORIGIN_TIMEOUT_SECONDS);
        if !(1..=DEFAULT_ORIGIN_TIMEOUT_SECONDS).contains(&origin_timeout_seconds) {
            return Err(err(
                "originTimeoutSeconds",
                format!(
                    "{origin_timeout_seconds} is outside 1..={DEFAULT_ORIGIN_TIMEOUT_SECONDS} (a deferred payment is held {} s while the origin answers)",
                    crate::settlement::HOLD_SECONDS
                ),
            ));
        }
        // A payment settled after the origin answers is leased to its request for
        // `IN_FLIGHT_LEASE` seconds: the origin's time and the settlement's must fit in it, or the
        // ledger would take the attempt for unanswered while it is still under way.
        let lease_ms = crate::settlement::IN_FLIGHT_LEASE * 1000;
        if let Some(f) = &facilitator {
            if (origin_timeout_seconds * 1000 + 5000).saturating_add(f.timeout_ms) > lease_ms {
                return Err(err(
                    "facilitator.timeoutMs",
                    format!(
                        "{} ms after an origin given {origin_timeout_seconds} s leaves no time for the ledger: keep originTimeoutSeconds × 1000 + timeoutMs at most {}",
                        f.timeout_ms,
                        lease_ms - 5000
                    ),
                ));
            }
        }
        let signers = |key: &str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(i, host)| check_signer_host(&format!("{key}[{i}]"), host))
                .collect::<Result<Vec<_>, _>>()
        };
        let agent_signers = signers("agentSigners", &self.agent_signers)?;
        let mut trust_signers = signers("trustSigners", &self.trust_signers)?;
        trust_signers.extend(agent_signers.iter().cloned());
        let deferred = match &self.deferred {
            Some(d) => resolve_deferred(Some(&RawDeferred::read(d)?))?,
            None => resolve_deferred(None)?,
        };
        let default_settlement = self.settlement.unwrap_or(SettlementMode::Immediate);
        let default_payment_ids = self.payment_identifier.unwrap_or_default();
        let default_access = RawAccess {
            payers: self.payers,
            humans: self.humans,
            crawlers: self.crawlers,
            agents: self.agents,
            trust_browsers: self.trust_browsers,
        }
        .resolve(AccessPolicy::default());
        let mut rpc = Vec::with_capacity(self.rpc.len());
        for (net, url) in &self.rpc {
            let key = format!("rpc.{net:?}");
            let network = networks::parse_network(net)
                .ok_or_else(|| err(&key, format!("{net:?} is not an EVM network")))?;
            rpc.push((network.chain_id, check_url(&key, url)?));
        }

        let mut routes = Vec::with_capacity(self.routes.len());
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            let r = RawRoute::read(r, &key)?;
            let pattern = PathPattern::parse(&r.path).map_err(|p| err(format!("{key}.path"), p))?;
            let method = match &r.method {
                None => None,
                Some(m) => {
                    let up = m.to_ascii_uppercase();
                    if !matches!(
                        up.as_str(),
                        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
                    ) {
                        return Err(err(
                            format!("{key}.method"),
                            format!("{m:?} is not an HTTP method"),
                        ));
                    }
                    Some(up)
                }
            };
            // A rule of literal segments that an earlier rule covers, for the same methods, would
            // never be reached: a free page under a priced catch-all, or a dearer page whose path
            // an earlier priced rule covers with a format suffix ([`Route::covers`]).
            if let Some(earlier) = routes.iter().find(|e: &&Route| {
                (e.method == method && e.pattern.as_str() == pattern.as_str())
                    || (pattern.is_literal()
                        && match (&e.method, &method) {
                            (None, _) => e.covers("GET", pattern.as_str()),
                            (Some(_), Some(m)) => e.covers(m, pattern.as_str()),
                            (Some(_), None) => false,
                        })
            }) {
                return Err(err(
                    key,
                    format!(
                        "routes[{}] comes first and takes every request this one would (a priced rule covers its path.json too): remove one, or put this one first",
                        earlier.index
                    ),
                ));
            }
            let description = r.description.clone().unwrap_or_default();
            let mime_type = r.mime_type.clone().unwrap_or_default();
            if r.free {
                if r.price.is_some() {
                    return Err(err(key, "a route cannot have both free = true and a price"));
                }
                let ignored = [
                    ("payTo", r.pay_to.is_some()),
                    ("accepts", r.accepts.is_some()),
                    ("maxTimeoutSeconds", r.max_timeout_seconds.is_some()),
                    ("settlement", r.settlement.is_some()),
                    ("paymentIdentifier", r.payment_identifier.is_some()),
                    ("session", r.session.is_some()),
                    ("discovery", r.discovery.is_some()),
                    ("payers", r.payers.is_some()),
                    ("humans", r.humans.is_some()),
                    ("crawlers", r.crawlers.is_some()),
                    ("agents", r.agents.is_some()),
                    ("trustBrowsers", r.trust_browsers.is_some()),
                    ("methodParameter", r.method_parameter.is_some()),
                ]
                .into_iter()
                .find(|(_, set)| *set);
                if let Some((name, _)) = ignored {
                    return Err(err(
                        format!("{key}.{name}"),
                        "would do nothing on a free route (it passes every request as it is); to close free pages to some clients, price the route and allow the others",
                    ));
                }
                routes.push(Route {
                    index: i,
                    method,
                    pattern,
                    description,
                    mime_type,
                    offers: Vec::new(),
                    settlement: SettlementMode::Immediate,
                    payment_ids: PaymentIds::Off,
                    method_parameter: false,
                    session: None,
                    access: AccessPolicy::default(),
                    discovery: Discovery::default(),
                    bazaar: None,
                    rendered: Default::default(),
                    stats_name: String::new(),
                });
                continue;
            }
            let price = r.price.as_ref().ok_or_else(|| {
                err(
                    format!("{key}.price"),
                    "missing: give a price (\"$0.01\" or atomic units) or free = true",
                )
            })?;
            let pay_to = match &r.pay_to {
                Some(s) => parse_address(&format!("{key}.payTo"), s)?,
                None => default_pay_to.ok_or_else(|| {
                    err(
                        format!("{key}.payTo"),
                        "no payTo here and none at the top level",
                    )
                })?,
            };
            let accepts = match &r.accepts {
                Some(a) => resolve_accepts(&format!("{key}.accepts"), a, &assets)?,
                None => default_accepts.clone(),
            };
            if accepts.is_empty() {
                return Err(err(
                    format!("{key}.accepts"),
                    "no way to pay: list at least one network here or at the top level",
                ));
            }
            let timeout = r.max_timeout_seconds.unwrap_or(default_timeout);
            check_timeout(&format!("{key}.maxTimeoutSeconds"), timeout)?;
            let mut offers = Vec::with_capacity(accepts.len());
            for asset in accepts {
                let amount = parse_price(&format!("{key}.price"), price, &asset)?;
                offers.push(make_offer(asset, pay_to, amount, timeout));
            }
            check_atomic_price_is_unambiguous(&format!("{key}.price"), price, &offers)?;
            let settlement = r.settlement.unwrap_or(default_settlement);
            if settlement == SettlementMode::Deferred {
                // The client signs for maxTimeoutSeconds; the batch and the margin must fit inside.
                let needed = deferred.batch_seconds + deferred.safety_margin_seconds + 30;
                if timeout < needed {
                    // Named where it was set: the route, or the top level it inherits.
                    let (at, whose) = match r.max_timeout_seconds {
                        Some(_) => (format!("{key}.maxTimeoutSeconds"), String::new()),
                        None => (
                            "maxTimeoutSeconds".into(),
                            format!(
                                ", {}which {key} inherits,",
                                if self.max_timeout_seconds.is_none() {
                                    "the default, "
                                } else {
                                    ""
                                }
                            ),
                        ),
                    };
                    return Err(err(
                        at,
                        format!("{timeout} s{whose} is too short for deferred settlement: deferred.batchSeconds and deferred.safetyMarginSeconds, with 30 s to settle, need at least {needed} s"),
                    ));
                }
                // One payment over the whole credit would be refused every time.
                let over = offers.iter().map(crate::paywall::micro_usd).max();
                if deferred.over_credit == OverCredit::Refuse
                    && over.is_some_and(|m| m > deferred.credit_limit_micro_usd)
                {
                    return Err(err(
                        format!("{key}.price"),
                        "more than deferred.creditLimit, and overCredit = \"refuse\" refuses every payment over it",
                    ));
                }
            }
            if self.facilitator.is_none() {
                return Err(err(
                    "facilitator.url",
                    "priced routes need a facilitator to settle payments",
                ));
            }
            let session = match &r.session {
                None => None,
                Some(raw) => {
                    let raw = RawSession::read(raw, &format!("{key}.session"))?;
                    let scope_src = raw.scope.as_deref().unwrap_or(&r.path);
                    let scope = PathPattern::parse(scope_src)
                        .map_err(|p| err(format!("{key}.session.scope"), p))?;
                    Some(
                        SessionOffer::new(scope, raw.seconds, raw.requests)
                            .map_err(|p| err(format!("{key}.session"), p))?,
                    )
                }
            };
            let discovery = match &r.discovery {
                Some(d) => Discovery::read(d, &format!("{key}.discovery"))?,
                None => Discovery {
                    discoverable: true,
                    ..Discovery::default()
                },
            };
            if let Some(bt) = &discovery.body_type {
                if !matches!(bt.as_str(), "json" | "form-data" | "text") {
                    return Err(err(
                        format!("{key}.discovery.bodyType"),
                        format!("{bt:?} is not json, form-data or text"),
                    ));
                }
            }
            routes.push(Route {
                index: i,
                method,
                pattern,
                description,
                mime_type,
                offers,
                settlement,
                payment_ids: r.payment_identifier.unwrap_or(default_payment_ids),
                method_parameter: r.method_parameter.or(self.method_parameter).unwrap_or(true),
                session,
                access: RawAccess {
                    payers: r.payers,
                    humans: r.humans,
                    crawlers: r.crawlers,
                    agents: r.agents,
                    trust_browsers: r.trust_browsers,
                }
                .resolve(default_access),
                discovery,
                bazaar: None,
                rendered: Default::default(),
                stats_name: String::new(),
            });
            if let Some(route) = routes.last_mut() {
                route.bazaar = crate::discovery::bazaar(route);
                route.rendered = crate::paywall::Rendered::of(route);
                // A sign-in challenge's statement names the session's scope.
                let scope = route.session.as_ref().map_or(0, |s| s.scope.as_str().len());
                let echoed = route.rendered.echoed_len() + scope;
                if echoed > crate::paywall::MAX_ECHOED_TERMS {
                    return Err(err(
                        key,
                        format!(
                            "its terms take {echoed} bytes of JSON, over the {} a payment header can repeat: shorten the description, discovery, scope or networks",
                            crate::paywall::MAX_ECHOED_TERMS
                        ),
                    ));
                }
            }
        }
        name_sessions(&mut routes)?;
        let names: Vec<String> = routes
            .iter()
            .map(|r| {
                let shared = routes.iter().any(|o| {
                    o.index != r.index && !o.is_free() && o.pattern.as_str() == r.pattern.as_str()
                });
                match &r.method {
                    Some(m) if shared => format!("{m} {}", r.pattern.as_str()),
                    _ => r.pattern.as_str().to_string(),
                }
            })
            .collect();
        for (r, name) in routes.iter_mut().zip(names) {
            r.stats_name = name;
        }
        Ok(Config {
            routes,
            facilitator,
            origin,
            deferred,
            rpc,
            origin_timeout_seconds,
            trust_signers,
            agent_signers,
            log: match self.log.as_deref() {
                None | Some("decisions") => LogLevel::Decisions,
                Some("all") => LogLevel::All,
                Some(other) => {
                    return Err(err(
                        "log",
                        format!(
                            "{other:?} is not a log level: \"decisions\" (the default) or \"all\""
                        ),
                    ))
                }
            },
        })
    }
}

/// Gives each session offer a name of its own ([`SessionOffer::name`]): its scope as written, then
/// the method and path of the route that sells it. Grants are stored and tokens signed under it.
/// A name depends only on its own route, never on the order or the presence of others: removing a
/// cheap route that sold a session with the same scope text as a dear one leaves the dear one's
/// name as it was, so the cheap grants never open it. (Routes repeating another's method and path
/// are refused when the configuration is read, so no two offers share a name.)
fn name_sessions(routes: &mut [Route]) -> Result<(), ConfigError> {
    for route in routes.iter_mut() {
        let (method, path) = (route.method.clone(), route.pattern.as_str().to_string());
        if let Some(session) = route.session.as_mut() {
            session.name = session_name(session.scope.as_str(), method.as_deref(), &path);
            session.cookie = crate::session::cookie_name(&session.name);
            // Every token carries the name, and a token has at most `MAX_TOKEN_BYTES`.
            if session.name.len() > 1024 {
                return Err(err(
                    format!("routes[{}].session", route.index),
                    "the scope and the route's path are too long to name in a session token \
                     (1024 characters together at most)",
                ));
            }
        }
    }
    Ok(())
}

/// The name of the session sold by the route `method path` over `scope` (see [`name_sessions`]).
/// A line break cannot be part of a path pattern, so no name reads as another's.
pub fn session_name(scope: &str, method: Option<&str>, path: &str) -> String {
    format!("{scope}\n{} {path}", method.unwrap_or("*"))
}

/// A trusted signer as written: a host name (`crawler.example.com`, or `https://` and the host,
/// as its `Signature-Agent` header writes it) or `host:port`, lowercased; `*.host` for its
/// subdomains; or the URL of a key set its `Signature-Agent` names with `type=jwks_uri` (see
/// [`crate::crawlers::signer_trusted`]).
fn check_signer_host(key: &str, host: &str) -> Result<String, ConfigError> {
    let host = host.trim();
    // `https://host`, as a `Signature-Agent` header writes its signer, is the host: a key set has
    // a path.
    let host = match host.strip_prefix("https://") {
        Some(bare) if !bare.trim_end_matches('/').contains('/') => bare.trim_end_matches('/'),
        _ => host,
    };
    if host.contains("://") {
        return crate::crawlers::jwks_url(host)
            .ok_or_else(|| err(key, format!("{host:?} is not an https URL")));
    }
    // A signer's host is read with https's default port dropped, as a URL writes it.
    let lower = host.to_ascii_lowercase();
    let lower = lower.strip_suffix(":443").unwrap_or(&lower).to_string();
    let (wildcard, lower) = match lower.strip_prefix("*.") {
        Some(parent) => ("*.", parent.to_string()),
        None => ("", lower),
    };
    let (name, port) = match lower.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (lower.as_str(), None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !name_ok || !port_ok {
        return Err(err(
            key,
            format!(
                "{host:?} is not a host name: write the signer's host as its Signature-Agent \
                 names it (\"crawler.example.com\", \"*.example.com\"), or a key set's URL"
            ),
        ));
    }
    Ok(format!("{wildcard}{lower}"))
}

fn resolve_deferred(raw: Option<&RawDeferred>) -> Result<DeferredPolicy, ConfigError> {
    let mut p = DeferredPolicy::default();
    let Some(raw) = raw else { return Ok(p) };
    if let Some(limit) = &raw.credit_limit {
        let usd = Asset {
            network: networks::network_of(0),
            address: Address::ZERO,
            name: String::new(),
            version: String::new(),
            decimals: 6,
            symbol: "USD".into(),
        };
        let amount = parse_price("deferred.creditLimit", &Value::String(limit.clone()), &usd)?;
        if !limit.starts_with('$') {
            return Err(err(
                "deferred.creditLimit",
                "write the credit limit in dollars, like \"$1.00\"",
            ));
        }
        p.credit_limit_micro_usd = amount.to_u128().unwrap_or(u128::MAX);
    }
    if let Some(b) = raw.batch_seconds {
        if !(1..=3600).contains(&b) {
            return Err(err(
                "deferred.batchSeconds",
                format!("{b} is outside 1..=3600"),
            ));
        }
        p.batch_seconds = b;
    }
    if let Some(m) = raw.safety_margin_seconds {
        if !(10..=3600).contains(&m) {
            return Err(err(
                "deferred.safetyMarginSeconds",
                format!("{m} is outside 10..=3600 (the facilitator refuses within 6 s of expiry)"),
            ));
        }
        p.safety_margin_seconds = m;
    }
    if let Some(o) = raw.over_credit {
        p.over_credit = o;
    }
    if let Some(c) = raw.credit {
        p.credit = c;
    }
    Ok(p)
}

/// One JSON object of the configuration, read field by field by [`json::Fields`], knowing its
/// place in the configuration: every problem names its full key (`routes[0].price`), and a field
/// that is not known is refused (a misspelt key must not be silently ignored).
struct Fields<'a> {
    fields: json::Fields<'a>,
    key: &'a str,
}

/// A reader's problem, named from the top of the configuration (`key` is where the reader was).
fn placed(e: json::Error, key: &str) -> ConfigError {
    let e = if key.is_empty() { e } else { e.at(key) };
    err(e.key, e.problem)
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, key: &'a str, known: &[&str]) -> Result<Fields<'a>, ConfigError> {
        let fields = json::Fields::new(value)
            .and_then(|f| f.only(known))
            .map_err(|e| placed(e, key))?;
        Ok(Fields { fields, key })
    }

    fn wrong(&self, name: &str, expected: &str, found: &Value) -> ConfigError {
        placed(json::Error::expected(expected, found).at(name), self.key)
    }

    /// The field's value; a missing field and `null` are both absent.
    fn value(&self, name: &str) -> Option<&'a Value> {
        self.fields.value(name)
    }

    fn maybe<T: json::Read>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        self.fields.maybe(name).map_err(|e| placed(e, self.key))
    }

    fn get<T: json::Read>(&self, name: &str) -> Result<T, ConfigError> {
        self.fields.get(name).map_err(|e| placed(e, self.key))
    }

    /// One of a few words.
    fn choice<T: Copy>(&self, name: &str, words: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
        self.fields
            .choice(name, words)
            .map_err(|e| placed(e, self.key))
    }

    fn access(&self, name: &str) -> Result<Option<Access>, ConfigError> {
        self.choice(
            name,
            &[
                ("allow", Access::Allow),
                ("charge", Access::Charge),
                ("block", Access::Block),
            ],
        )
    }

    fn payers(&self) -> Result<Option<Payers>, ConfigError> {
        self.choice(
            "payers",
            &[
                ("everyone", Payers::Everyone),
                ("bots", Payers::Bots),
                ("agents", Payers::Agents),
            ],
        )
    }

    fn payment_identifier(&self) -> Result<Option<PaymentIds>, ConfigError> {
        self.choice(
            "paymentIdentifier",
            &[
                ("off", PaymentIds::Off),
                ("optional", PaymentIds::Optional),
                ("required", PaymentIds::Required),
            ],
        )
    }

    fn settlement(&self) -> Result<Option<SettlementMode>, ConfigError> {
        self.choice(
            "settlement",
            &[
                ("immediate", SettlementMode::Immediate),
                ("deferred", SettlementMode::Deferred),
            ],
        )
    }
}

impl RawConfig {
    fn read(value: &Value) -> Result<RawConfig, ConfigError> {
        let f = Fields::new(
            value,
            "",
            &[
                "payTo",
                "accepts",
                "origin",
                "facilitator",
                "assets",
                "routes",
                "maxTimeoutSeconds",
                "settlement",
                "paymentIdentifier",
                "deferred",
                "payers",
                "humans",
                "crawlers",
                "agents",
                "trustBrowsers",
                "methodParameter",
                "rpc",
                "log",
                "originTimeoutSeconds",
                "trustSigners",
                "agentSigners",
            ],
        )?;
        let mut rpc = Vec::new();
        if let Some(table) = f.value("rpc") {
            let table = table
                .as_object()
                .ok_or_else(|| f.wrong("rpc", "a table of network = URL", table))?;
            for (net, url) in table {
                let url = url
                    .as_str()
                    .ok_or_else(|| f.wrong(&format!("rpc.{net:?}"), "a URL", url))?;
                rpc.push((net.clone(), url.to_string()));
            }
        }
        Ok(RawConfig {
            pay_to: f.maybe("payTo")?,
            accepts: f.maybe("accepts")?.unwrap_or_default(),
            origin: f.maybe("origin")?,
            facilitator: f.value("facilitator").cloned(),
            assets: f.maybe("assets")?.unwrap_or_default(),
            routes: f.maybe("routes")?.unwrap_or_default(),
            max_timeout_seconds: f.maybe("maxTimeoutSeconds")?,
            settlement: f.settlement()?,
            payment_identifier: f.payment_identifier()?,
            deferred: f.value("deferred").cloned(),
            payers: f.payers()?,
            humans: f.access("humans")?,
            crawlers: f.access("crawlers")?,
            agents: f.access("agents")?,
            trust_browsers: f.maybe("trustBrowsers")?,
            method_parameter: f.maybe("methodParameter")?,
            rpc,
            log: f.maybe("log")?,
            origin_timeout_seconds: f.maybe("originTimeoutSeconds")?,
            trust_signers: f.maybe("trustSigners")?.unwrap_or_default(),
            agent_signers: f.maybe("agentSigners")?.unwrap_or_default(),
        })
    }
}

impl RawDeferred {
    fn read(value: &Value) -> Result<RawDeferred, ConfigError> {
        let f = Fields::new(
            value,
            "deferred",
            &[
                "creditLimit",
                "batchSeconds",
                "safetyMarginSeconds",
                "overCredit",
                "credit",
            ],
        )?;
        Ok(RawDeferred {
            credit_limit: f.maybe("creditLimit")?,
            batch_seconds: f.maybe("batchSeconds")?,
            safety_margin_seconds: f.maybe("safetyMarginSeconds")?,
            over_credit: f.choice(
                "overCredit",
                &[
                    ("immediate", OverCredit::Immediate),
                    ("refuse", OverCredit::Refuse),
                ],
            )?,
            credit: f.choice(
                "credit",
                &[("earned", Credit::Earned), ("full", Credit::Full)],
            )?,
        })
    }
}

impl RawAccept {
    fn read(value: &Value, key: &str) -> Result<RawAccept, ConfigError> {
        let f = Fields::new(value, key, &["network", "asset"])?;
        Ok(RawAccept {
            network: f.get("network")?,
            asset: f.maybe("asset")?,
        })
    }
}

impl RawFacilitator {
    fn read(value: &Value) -> Result<RawFacilitator, ConfigError> {
        let f = Fields::new(value, "facilitator", &["url", "timeoutMs"])?;
        Ok(RawFacilitator {
            url: f.get("url")?,
            timeout_ms: f.maybe("timeoutMs")?,
        })
    }
}

impl RawAsset {
    fn read(value: &Value, key: &str) -> Result<RawAsset, ConfigError> {
        let f = Fields::new(
            value,
            key,
            &[
                "network", "address", "name", "version", "decimals", "symbol",
            ],
        )?;
        let decimals: u64 = f.get("decimals")?;
        Ok(RawAsset {
            network: f.get("network")?,
            address: f.get("address")?,
            name: f.get("name")?,
            version: f.get("version")?,
            decimals: u8::try_from(decimals).unwrap_or(u8::MAX),
            symbol: f.maybe("symbol")?,
        })
    }
}

impl RawRoute {
    fn read(value: &Value, key: &str) -> Result<RawRoute, ConfigError> {
        let f = Fields::new(
            value,
            key,
            &[
                "path",
                "method",
                "price",
                "free",
                "payTo",
                "accepts",
                "description",
                "mimeType",
                "maxTimeoutSeconds",
                "settlement",
                "paymentIdentifier",
                "session",
                "discovery",
                "payers",
                "humans",
                "crawlers",
                "agents",
                "trustBrowsers",
                "methodParameter",
            ],
        )?;
        Ok(RawRoute {
            path: f.get("path")?,
            method: f.maybe("method")?,
            price: f.value("price").cloned(),
            free: f.maybe("free")?.unwrap_or(false),
            pay_to: f.maybe("payTo")?,
            accepts: f.maybe("accepts")?,
            description: f.maybe("description")?,
            mime_type: f.maybe("mimeType")?,
            max_timeout_seconds: f.maybe("maxTimeoutSeconds")?,
            settlement: f.settlement()?,
            payment_identifier: f.payment_identifier()?,
            session: f.value("session").cloned(),
            discovery: f.value("discovery").cloned(),
            payers: f.payers()?,
            humans: f.access("humans")?,
            crawlers: f.access("crawlers")?,
            agents: f.access("agents")?,
            trust_browsers: f.maybe("trustBrowsers")?,
            method_parameter: f.maybe("methodParameter")?,
        })
    }
}

impl RawSession {
    fn read(value: &Value, key: &str) -> Result<RawSession, ConfigError> {
        let f = Fields::new(value, key, &["scope", "seconds", "requests"])?;
        Ok(RawSession {
            scope: f.maybe("scope")?,
            seconds: f.maybe("seconds")?,
            requests: f.maybe("requests")?,
        })
    }
}

impl Discovery {
    /// What of this description agents are never shown (the bazaar leaves it out), with why:
    /// `check-config` points it out. Not refused at load, where a deployed Worker would stop
    /// serving over a description.
    pub fn unshown(&self, method: Option<&str>) -> Option<(&'static str, &'static str)> {
        let body = crate::discovery::describes_body(method);
        let not_object = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_object());
        let said = self.input.is_some()
            || self.input_schema.is_some()
            || self.body_type.is_some()
            || self.output.is_some()
            || self.output_schema.is_some();
        [
            (
                "discoverable",
                !self.discoverable && said,
                "is false, so nothing else under discovery is shown to anyone",
            ),
            (
                "bodyType",
                self.body_type.is_some() && !body,
                "describes a request body, which only a route with method POST, PUT or PATCH is described with",
            ),
            (
                "input",
                !body && not_object(&self.input),
                "is this route's example query parameters, so an object of names and values",
            ),
            (
                "inputSchema",
                !body && not_object(&self.input_schema),
                "describes this route's query parameters, so it is a JSON Schema object",
            ),
            (
                "outputSchema",
                not_object(&self.output_schema),
                "is not a JSON Schema object",
            ),
            (
                "outputSchema",
                self.output_schema.is_some() && self.output.is_none(),
                "describes the output, which is shown only with an example: add output",
            ),
        ]
        .into_iter()
        .find(|(_, unshown, _)| *unshown)
        .map(|(name, _, why)| (name, why))
    }

    fn read(value: &Value, key: &str) -> Result<Discovery, ConfigError> {
        let f = Fields::new(
            value,
            key,
            &[
                "discoverable",
                "input",
                "inputSchema",
                "bodyType",
                "output",
                "outputSchema",
            ],
        )?;
        Ok(Discovery {
            discoverable: f.maybe("discoverable")?.unwrap_or(true),
            input: f.value("input").cloned(),
            input_schema: f.value("inputSchema").cloned(),
            body_type: f.maybe("bodyType")?,
            output: f.value("output").cloned(),
            output_schema: f.value("outputSchema").cloned(),
        })
    }
}

fn check_timeout(key: &str, t: u64) -> Result<(), ConfigError> {
    if !(30..=86_400).contains(&t) {
        return Err(err(key, format!("{t} is outside 30..=86400 seconds")));
    }
    Ok(())
}

fn make_offer(asset: Asset, pay_to: Address, amount: U256, max_timeout_seconds: u64) -> Offer {
    let requirements = PaymentRequirements {
        scheme: "exact".into(),
        network: asset.network.caip2(),
        amount: amount.to_string(),
        asset: asset.address.to_checksum(),
        pay_to: pay_to.to_checksum(),
        max_timeout_seconds,
        extra: Eip712Extra {
            name: asset.name.clone(),
            version: asset.version.clone(),
        },
    };
    let domain_separator = crate::evm::Eip712Domain {
        name: &asset.name,
        version: &asset.version,
        chain_id: asset.network.chain_id,
        verifying_contract: asset.address,
    }
    .separator();
    Offer {
        asset,
        pay_to,
        amount,
        max_timeout_seconds,
        requirements,
        v1_enabled: true,
        domain_separator,
    }
}

fn resolve_accepts(key: &str, raw: &[Value], custom: &[Asset]) -> Result<Vec<Asset>, ConfigError> {
    let mut out: Vec<Asset> = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let a: RawAccept = match a {
            Value::String(network) => RawAccept {
                network: network.clone(),
                asset: None,
            },
            other => RawAccept::read(other, &key)?,
        };
        let (net_s, asset_s) = (a.network.as_str(), a.asset.as_deref());
        let network = networks::parse_network(net_s).ok_or_else(|| {
            err(&key, format!("{net_s:?} is not an EVM network (write eip155:<chain id> or a v1 name like base-sepolia)"))
        })?;
        let asset = find_asset(network, asset_s, custom).ok_or_else(|| {
            err(
                &key,
                match asset_s {
                    Some(s) => format!(
                        "no token {s:?} is known on {}; add it under [[vars.X402.assets]]",
                        network.caip2()
                    ),
                    None => format!(
                        "no USDC is built in for {}: add it under [[vars.X402.assets]] with symbol = \"USDC\", or name another token as {{ network, asset }}",
                        network.caip2()
                    ),
                },
            )
        })?;
        if out
            .iter()
            .any(|o| o.network == asset.network && o.address == asset.address)
        {
            return Err(err(&key, "listed twice"));
        }
        out.push(asset);
    }
    Ok(out)
}

fn find_asset(network: Network, which: Option<&str>, custom: &[Asset]) -> Option<Asset> {
    let on_chain = |a: &&Asset| a.network.chain_id == network.chain_id;
    let known = networks::usdc_of(network.chain_id).and_then(|k| {
        Some(Asset {
            network,
            address: Address::parse(k.address).ok()?,
            name: k.name.into(),
            version: k.version.into(),
            decimals: k.decimals,
            symbol: k.symbol.into(),
        })
    });
    let Some(which) = which else {
        // A network alone means its USDC. A custom entry overrides the built-in one when it is the
        // same contract or its symbol is USDC; on a chain without built-in USDC (a local chain)
        // it must call itself USDC, by its symbol or, without one, by the EIP-712 name of
        // Circle's contract. Any other token must be named: a network alone never means a
        // token that prices in dollars would charge in something else.
        let is_usdc = |a: &&Asset| {
            let usdc = |s: &str| s.eq_ignore_ascii_case("USDC");
            match &known {
                Some(k) => usdc(&a.symbol) || k.address == a.address,
                None => {
                    usdc(&a.symbol)
                        || (a.symbol.is_empty() && (usdc(&a.name) || a.name == "USD Coin"))
                }
            }
        };
        return custom
            .iter()
            .filter(on_chain)
            .find(is_usdc)
            .cloned()
            .or(known);
    };
    let pick = |a: &Asset| match Address::parse(which) {
        Ok(addr) => a.address == addr,
        Err(_) => a.symbol.eq_ignore_ascii_case(which),
    };
    custom
        .iter()
        .filter(on_chain)
        .find(|a| pick(a))
        .cloned()
        .or_else(|| known.filter(pick))
}

/// Reads a price: `"$1.25"` in dollars (converted exactly by the token's decimals), or atomic units
/// as a decimal string or integer.
fn parse_price(key: &str, price: &Value, asset: &Asset) -> Result<U256, ConfigError> {
    let bad = |why: &str| err(key, format!("{price} {why}"));
    let amount = match price {
        Value::Number(n) => {
            let v = n
                .as_u64()
                .ok_or_else(|| bad("is not a whole number of atomic units"))?;
            U256::from_u64(v)
        }
        Value::String(s) => {
            if let Some(d) = s.strip_prefix('$') {
                dollars_to_atomic(d, asset.decimals).map_err(|w| bad(&w))?
            } else {
                U256::from_dec_str(s).map_err(|_| {
                    bad("is not a price: write dollars as \"$0.01\" or atomic units as \"10000\"")
                })?
            }
        }
        _ => {
            return Err(bad(
                "is not a price: write dollars as \"$0.01\" or atomic units as \"10000\"",
            ))
        }
    };
    if amount.is_zero() {
        return Err(bad("is zero: use free = true for a free route"));
    }
    // Credit limits, statistics and crawler prices count amounts in 128 bits: above that no
    // dollar stablecoin has a price anyone would charge (2^128 atomic units of a 36-decimal
    // token is $340), so it is refused rather than counted wrong.
    if amount.to_u128().is_none() {
        return Err(bad("is too large for this token's decimals"));
    }
    Ok(amount)
}

fn dollars_to_atomic(d: &str, decimals: u8) -> Result<U256, String> {
    let (whole, frac) = d.split_once('.').unwrap_or((d, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (d.contains('.') && frac.is_empty()) {
        return Err("is not a dollar amount like \"$0.01\"".into());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals as usize {
        return Err(format!(
            "has more decimal places than the token's {decimals}, so it cannot be charged exactly"
        ));
    }
    let mut atomic = String::with_capacity(whole.len() + decimals as usize);
    atomic.push_str(whole);
    atomic.push_str(frac);
    atomic.extend(std::iter::repeat_n('0', decimals as usize - frac.len()));
    U256::from_dec_str(atomic.trim_start_matches('0').max("0"))
        .map_err(|_| "is too large".to_string())
}

fn check_atomic_price_is_unambiguous(
    key: &str,
    price: &Value,
    offers: &[Offer],
) -> Result<(), ConfigError> {
    let atomic = !matches!(price, Value::String(s) if s.starts_with('$'));
    if atomic {
        if let Some(first) = offers.first() {
            if offers
                .iter()
                .any(|o| o.asset.decimals != first.asset.decimals)
            {
                return Err(err(
                    key,
                    "an atomic price means different amounts for tokens with different decimals; write it in dollars",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

    fn base(routes: Value) -> Value {
        json!({
            "payTo": PAY_TO,
            "accepts": ["eip155:84532"],
            "facilitator": {"url": "http://127.0.0.1:4021/"},
            "routes": routes,
        })
    }

    fn load(v: Value) -> Result<Config, ConfigError> {
        Config::from_json(&v.to_string())
    }

    #[test]
    fn dollar_and_atomic_prices() {
        let c = load(base(json!([
            {"path": "/a/*", "price": "$0.01"},
            {"path": "/b", "price": "5000", "method": "get"},
            {"path": "/c", "price": 7},
            {"path": "/d", "price": "$12"},
        ])))
        .unwrap();
        let amounts: Vec<String> = c
            .routes
            .iter()
            .map(|r| r.offers[0].requirements.amount.clone())
            .collect();
        assert_eq!(amounts, ["10000", "5000", "7", "12000000"]);
        let r = &c.routes[0].offers[0].requirements;
        assert_eq!(r.extra.name, "USDC");
        assert_eq!(r.network, "eip155:84532");
        assert_eq!(r.pay_to, PAY_TO);
        assert_eq!(c.facilitator.unwrap().url, "http://127.0.0.1:4021");
        assert_eq!(c.routes[1].method.as_deref(), Some("GET"));
    }

    #[test]
    fn payers_name_who_pays_and_leave_trust_in_browsers_inherited() {
        let mut v = base(json!([
            {"path": "/a", "price": "$0.01", "payers": "everyone", "humans": "allow"},
            {"path": "/b", "price": "$0.01", "payers": "bots"},
            {"path": "/c", "price": "$0.01", "payers": "agents", "trustBrowsers": false},
            {"path": "/d", "price": "$0.01", "crawlers": "block"},
        ]));
        v["trustBrowsers"] = json!(true);
        v["humans"] = json!("allow");
        let c = load(v).unwrap();
        let access: Vec<_> = c.routes.iter().map(|r| r.access).collect();
        let policy = |humans, crawlers, agents, trust_browsers| AccessPolicy {
            humans,
            crawlers,
            agents,
            trust_browsers,
        };
        use Access::*;
        assert_eq!(
            access,
            [
                policy(Allow, Charge, Charge, true),
                policy(Allow, Charge, Charge, true),
                policy(Allow, Allow, Charge, false),
                policy(Allow, Block, Charge, true),
            ]
        );
    }

    #[test]
    fn statistics_name_a_route_by_its_pattern_and_its_method_only_where_needed() {
        let c = load(base(json!([
            {"path": "/news/free", "free": true},
            {"path": "/news/*", "price": "$0.02", "method": "post"},
            {"path": "/news/*", "price": "$0.01", "method": "GET"},
            {"path": "/data/*", "price": "$0.01", "method": "GET"},
            {"path": "/all/*", "price": "$0.01"},
        ])))
        .unwrap();
        let names: Vec<&str> = c.routes.iter().map(|r| r.stats_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "/news/free",
                "POST /news/*",
                "GET /news/*",
                "/data/*",
                "/all/*"
            ]
        );
    }

    #[test]
    fn route_selection_first_match_and_head() {
        let c = load(base(json!([
            {"path": "/articles/free-*", "free": true},
            {"path": "/articles/open", "free": true},
            {"path": "/articles/*", "price": "$0.01", "method": "GET"},
        ])))
        .unwrap_err();
        assert_eq!(c.key, "routes[0].path");
        let c = load(base(json!([
            {"path": "/articles/open", "free": true},
            {"path": "/articles/*", "price": "$0.01", "method": "GET"},
        ])))
        .unwrap();
        assert!(c.route_for("GET", "/articles/open").unwrap().is_free());
        assert!(!c.route_for("HEAD", "/articles/x").unwrap().is_free());
        assert!(c.route_for("POST", "/articles/x").is_none());
        assert!(c.route_for("GET", "/other").is_none());
        // A plain OPTIONS no rule names is priced where GET is; a rule naming it comes first,
        // wherever it is listed.
        assert!(!c.route_for("OPTIONS", "/articles/x").unwrap().is_free());
        assert!(c.route_for("OPTIONS", "/articles/open").unwrap().is_free());
        let c = load(base(json!([
            {"path": "/api/*", "price": "$0.01", "method": "GET"},
            {"path": "/api/*", "method": "OPTIONS", "free": true},
        ])))
        .unwrap();
        assert!(c.route_for("OPTIONS", "/api/x").unwrap().is_free());
        assert!(!c.route_for("GET", "/api/x").unwrap().is_free());
    }

    #[test]
    fn a_priced_rule_covers_its_paths_with_a_format_suffix_and_a_free_one_does_not() {
        let c = load(base(json!([
            {"path": "/feed.xml", "free": true},
            {"path": "/v1/status", "free": true},
            {"path": "/v1/weather", "price": "$0.01"},
            {"path": "/v1/*", "price": "$0.001"},
        ])))
        .unwrap();
        let price = |path: &str| c.route_for("GET", path).map(|r| r.dearest_micro_usd());
        // Rails serves /v1/weather.json as /v1/weather: it costs what /v1/weather costs.
        assert_eq!(price("/v1/weather.json"), Some(10_000));
        assert_eq!(price("/v1/WEATHER.xml"), Some(10_000));
        assert_eq!(price("/v1/other.json"), Some(1_000));
        // A free rule covers only what it names: /v1/status.json may be something /v1/* sells.
        assert_eq!(price("/v1/status"), Some(0));
        assert_eq!(price("/v1/status.json"), Some(1_000));
        // A free rule that names the suffixed path comes first and keeps it free.
        assert_eq!(price("/feed.xml"), Some(0));
        assert_eq!(price("/feed.json"), None);
        // After the priced rule it would never be reached: refused, saying what to do. So is a
        // dearer page the cheaper rule would price, and any rule of literal segments an earlier
        // rule takes whole.
        for (first, then) in [
            (
                json!({"path": "/feed", "method": "GET", "price": "$0.01"}),
                json!({"path": "/feed.xml", "method": "GET", "free": true}),
            ),
            (
                json!({"path": "/feed", "price": "$0.01"}),
                json!({"path": "/feed.xml", "free": true}),
            ),
            (
                json!({"path": "/reports/annual", "price": "$0.10"}),
                json!({"path": "/reports/annual.pdf", "price": "$5"}),
            ),
            (
                json!({"path": "/articles/*", "price": "$0.01"}),
                json!({"path": "/articles/open", "free": true}),
            ),
            (
                json!({"path": "/articles/*", "free": true}),
                json!({"path": "/articles/best", "price": "$1"}),
            ),
            (
                json!({"path": "/a", "method": "GET", "price": "$0.01"}),
                json!({"path": "/a.json", "method": "HEAD", "free": true}),
            ),
            (
                json!({"path": "/a", "price": "$0.01"}),
                json!({"path": "/a/index.html", "free": true}),
            ),
        ] {
            let e = load(base(json!([first, then]))).unwrap_err();
            assert_eq!(e.key, "routes[1]", "{then}");
            assert!(e.problem.contains("routes[0] comes first"), "{}", e.problem);
            assert!(e.problem.contains("put this one first"), "{}", e.problem);
        }
        // Unless the two never meet, or meet for some methods only: another method, another
        // path, a rule for every method after one for GET, or a pattern the first covers in part.
        for (first, then) in [
            (
                json!({"path": "/feed", "method": "GET", "price": "$0.01"}),
                json!({"path": "/feed.xml", "method": "POST", "free": true}),
            ),
            (
                json!({"path": "/feed", "method": "GET", "price": "$0.01"}),
                json!({"path": "/feeds.xml", "method": "GET", "free": true}),
            ),
            (
                json!({"path": "/feed", "method": "GET", "price": "$0.01"}),
                json!({"path": "/feed.xml", "free": true}),
            ),
            (
                json!({"path": "/x", "method": "GET", "price": "$0.01"}),
                json!({"path": "/x", "free": true}),
            ),
            (
                json!({"path": "/a/:id", "price": "$0.01"}),
                json!({"path": "/a/*", "free": true}),
            ),
        ] {
            load(base(json!([first, then]))).unwrap();
        }
    }

    #[test]
    fn terms_too_long_to_repeat_in_a_payment_header_are_refused() {
        let long = "a".repeat(5000);
        let c = load(base(
            json!([{"path": "/x", "price": "$0.01", "description": long}]),
        ))
        .unwrap();
        assert!(c.routes[0].rendered.echoed_len() > 5000);
        let e = load(base(json!([
            {"path": "/ok", "price": "$0.01"},
            {"path": "/x", "price": "$0.01", "description": "a".repeat(9000)},
        ])))
        .unwrap_err();
        assert_eq!(e.key, "routes[1]");
        assert!(e.problem.contains("over the 8192"), "{}", e.problem);
        // Discovery examples count too: they are repeated in the bazaar extension.
        let e = load(base(json!([{"path": "/x", "price": "$0.01",
            "discovery": {"output": {"text": "b".repeat(8200)}}}])))
        .unwrap_err();
        assert!(
            e.problem.contains("shorten the description, discovery"),
            "{}",
            e.problem
        );
    }

    #[test]
    fn a_free_route_refuses_what_it_would_ignore() {
        let e = load(base(json!([
            {"path": "/archive/*", "free": true, "crawlers": "block", "settlement": "deferred"},
        ])))
        .unwrap_err();
        assert_eq!(e.key, "routes[0].settlement");
        assert!(
            e.problem.contains("would do nothing on a free route"),
            "{}",
            e.problem
        );
        assert!(e.problem.contains("price the route"), "{}", e.problem);
        let c = load(base(json!([
            {"path": "/archive/*", "free": true, "method": "GET", "description": "the archive"},
        ])))
        .unwrap();
        assert!(c.route_for("GET", "/archive/x").unwrap().is_free());
    }

    #[test]
    fn several_networks_in_preference_order() {
        let c = load(base(json!([{"path": "/x", "price": "$0.5",
            "accepts": ["base", "eip155:84532", {"network": "eip155:137", "asset": "USDC"}]}])))
        .unwrap();
        let nets: Vec<&str> = c.routes[0]
            .offers
            .iter()
            .map(|o| o.requirements.network.as_str())
            .collect();
        assert_eq!(nets, ["eip155:8453", "eip155:84532", "eip155:137"]);
        assert_eq!(c.routes[0].offers[0].requirements.extra.name, "USD Coin");
        assert_eq!(c.routes[0].offers[0].amount, U256::from_u64(500_000));
    }

    #[test]
    fn custom_tokens() {
        let mut v = base(json!([{"path": "/x", "price": "$1", "accepts": ["eip155:31337"]}]));
        v["assets"] = json!([{"network": "eip155:31337", "address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
            "name": "USD Coin", "version": "2", "decimals": 6, "symbol": "USDC"}]);
        let c = load(v.clone()).unwrap();
        assert_eq!(
            c.routes[0].offers[0].requirements.asset,
            "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
        );
        // A network alone means USDC: on a chain without it built in, a token that calls itself
        // something else is not taken for it (its "$1" would be one of that token), but may be
        // named.
        v["assets"][0]["symbol"] = json!("WETH");
        v["assets"][0]["decimals"] = json!(18);
        let e = load(v.clone()).unwrap_err();
        assert_eq!(e.key, "routes[0].accepts[0]");
        assert!(e.problem.contains("symbol = \"USDC\""), "{}", e.problem);
        v["routes"][0]["accepts"] = json!([{"network": "eip155:31337", "asset": "WETH"}]);
        let c = load(v).unwrap();
        assert_eq!(
            c.routes[0].offers[0].amount,
            U256::from_dec_str("1000000000000000000").unwrap()
        );
    }

    #[test]
    fn discovery_that_agents_would_never_be_shown_is_pointed_out() {
        let unshown = |method: &str, discovery: Value| {
            let c = load(base(
                json!([{"path": "/x", "price": "$1", "method": method, "discovery": discovery}]),
            ))
            .unwrap();
            let r = &c.routes[0];
            r.discovery
                .unshown(r.method.as_deref())
                .map(|(name, _)| name)
        };
        assert_eq!(
            unshown("GET", json!({"bodyType": "json"})),
            Some("bodyType")
        );
        assert_eq!(unshown("post", json!({"bodyType": "json"})), None);
        assert_eq!(
            unshown("GET", json!({"input": "city=Paris"})),
            Some("input")
        );
        assert_eq!(unshown("POST", json!({"input": "some text"})), None);
        assert_eq!(
            unshown("GET", json!({"inputSchema": true})),
            Some("inputSchema")
        );
        assert_eq!(
            unshown("GET", json!({"outputSchema": {"type": "object"}})),
            Some("outputSchema")
        );
        assert_eq!(
            unshown("GET", json!({"output": {}, "outputSchema": "object"})),
            Some("outputSchema")
        );
        assert_eq!(
            unshown(
                "GET",
                json!({"output": {"t": 1}, "outputSchema": {"required": ["t"]}})
            ),
            None
        );
        assert_eq!(
            unshown(
                "GET",
                json!({"discoverable": false, "input": {"city": "Paris"}})
            ),
            Some("discoverable")
        );
        assert_eq!(unshown("GET", json!({"discoverable": false})), None);
    }

    #[test]
    fn log_level() {
        let with = |log: Value| {
            let mut v = base(json!([{"path": "/x", "price": "$1"}]));
            v["log"] = log;
            Config::from_json(&v.to_string())
        };
        let plain = Config::from_json(&base(json!([{"path": "/x", "price": "$1"}])).to_string());
        assert_eq!(plain.unwrap().log, LogLevel::Decisions);
        assert_eq!(with(json!("decisions")).unwrap().log, LogLevel::Decisions);
        assert_eq!(with(json!("all")).unwrap().log, LogLevel::All);
        let e = with(json!("verbose")).unwrap_err();
        assert_eq!(e.key, "log");
        assert!(e.problem.contains("\"all\""), "{}", e.problem);
        assert!(with(json!(true)).is_err());
    }

    #[test]
    fn each_field_is_checked_by_its_full_key() {
        let route = |extra: Value| {
            let mut r = json!({"path": "/x", "price": "$1"});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            load(base(json!([r]))).unwrap_err()
        };
        let e = route(json!({"prce": "$1"}));
        assert_eq!(e.key, "routes[0].prce");
        assert!(
            e.problem.contains("unknown key") && e.problem.contains("price"),
            "{e}"
        );
        let e = route(json!({"maxTimeoutSeconds": "60"}));
        assert_eq!(e.key, "routes[0].maxTimeoutSeconds");
        assert!(e.problem.contains("found a string"), "{e}");
        let e = route(json!({"maxTimeoutSeconds": -1}));
        assert_eq!(e.key, "routes[0].maxTimeoutSeconds");
        let e = route(json!({"settlement": "later"}));
        assert_eq!(e.key, "routes[0].settlement");
        assert!(e.problem.contains("\"deferred\""), "{e}");
        let e = route(json!({"humans": "maybe"}));
        assert_eq!(e.key, "routes[0].humans");
        let e = route(json!({"session": {"seconds": 60, "scop": "/x"}}));
        assert_eq!(e.key, "routes[0].session.scop");
        let e = route(json!({"discovery": {"discoverable": "yes"}}));
        assert_eq!(e.key, "routes[0].discovery.discoverable");
        let mut v = base(json!([{"path": "/x", "price": "$1"}]));
        v["routes"] = json!({"path": "/x"});
        assert_eq!(load(v).unwrap_err().key, "routes");
        let e = load(base(json!(["/x"]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "X402.routes[0]: expected an object, found a string"
        );
        let mut v = base(json!([{"path": "/x", "price": "$1"}]));
        v["facilitator"] = json!({"url": "http://f.example", "timeout": 5});
        assert_eq!(load(v).unwrap_err().key, "facilitator.timeout");
        // null is the same as absent.
        let mut v = base(json!([{"path": "/x", "price": "$1", "method": null}]));
        v["deferred"] = Value::Null;
        assert!(load(v).is_ok());
    }

    #[test]
    fn trusted_signers_are_host_names() {
        let with = |t: Value| {
            let mut v = base(json!([{"path": "/x", "price": "$1"}]));
            v["trustSigners"] = t;
            load(v)
        };
        let plain = load(base(json!([{"path": "/x", "price": "$1"}]))).unwrap();
        assert!(plain.trust_signers.is_empty(), "nobody by default");
        let ok = with(json!([
            "Crawler.Example.com:443",
            "127.0.0.1:8790",
            "*.Bots.example",
            "https://Keys.example/Crawler/jwks.json",
            // As a `Signature-Agent` header names its signer: the host.
            "https://ChatGPT.com",
            "https://signer.example:8443/"
        ]))
        .unwrap();
        assert_eq!(
            ok.trust_signers,
            [
                "crawler.example.com",
                "127.0.0.1:8790",
                "*.bots.example",
                "https://keys.example/Crawler/jwks.json",
                "chatgpt.com",
                "signer.example:8443"
            ]
        );
        for (bad, key) in [
            (json!(["ftp://crawler.example.com/keys"]), "trustSigners[0]"),
            (
                json!(["http://crawler.example.com/keys"]),
                "trustSigners[0]",
            ),
            (json!(["*.*.example.com"]), "trustSigners[0]"),
            (json!(["*example.com"]), "trustSigners[0]"),
            (
                json!(["ok.test", "crawler.example.com/keys"]),
                "trustSigners[1]",
            ),
            (json!([""]), "trustSigners[0]"),
            (json!(["a..b"]), "trustSigners[0]"),
            (json!(["host:0"]), "trustSigners[0]"),
            (json!(["host:99999"]), "trustSigners[0]"),
            (json!(["bad host"]), "trustSigners[0]"),
        ] {
            assert_eq!(with(bad.clone()).unwrap_err().key, key, "{bad}");
        }
        assert_eq!(
            with(json!("crawler.example.com")).unwrap_err().key,
            "trustSigners"
        );
    }

    #[test]
    fn agent_signers_are_checked_as_trusted_signers_are_and_trusted_too() {
        let mut v = base(json!([{"path": "/x", "price": "$1"}]));
        v["trustSigners"] = json!(["crawler.example.com"]);
        v["agentSigners"] = json!(["Assistant.Example.com", "*.agents.example"]);
        let c = load(v.clone()).unwrap();
        assert_eq!(
            c.agent_signers,
            ["assistant.example.com", "*.agents.example"]
        );
        assert_eq!(
            c.trust_signers,
            [
                "crawler.example.com",
                "assistant.example.com",
                "*.agents.example"
            ],
            "an agent signer is trusted without being listed twice"
        );
        v["agentSigners"] = json!(["ok.test", "bad host"]);
        assert_eq!(load(v).unwrap_err().key, "agentSigners[1]");
    }

    #[test]
    fn origin_timeout() {
        let with = |t: Value| {
            let mut v = base(json!([{"path": "/x", "price": "$1"}]));
            v["originTimeoutSeconds"] = t;
            Config::from_json(&v.to_string())
        };
        let plain = Config::from_json(&base(json!([{"path": "/x", "price": "$1"}])).to_string());
        assert_eq!(plain.unwrap().origin_timeout_seconds, 100);
        assert_eq!(with(json!(5)).unwrap().origin_timeout_seconds, 5);
        for bad in [json!(0), json!(101), json!(3600)] {
            assert_eq!(with(bad).unwrap_err().key, "originTimeoutSeconds");
        }
        // The origin's time and the facilitator's together fit in the ledger's lease on an
        // attempt in flight (120 s, less 5 s).
        let both = |origin: u64, facilitator: u64| {
            let mut v = base(json!([{"path": "/x", "price": "$1"}]));
            v["originTimeoutSeconds"] = json!(origin);
            v["facilitator"]["timeoutMs"] = json!(facilitator);
            Config::from_json(&v.to_string())
        };
        assert!(both(100, 15_000).is_ok());
        assert!(both(60, 55_000).is_ok());
        assert_eq!(both(100, 15_001).unwrap_err().key, "facilitator.timeoutMs");
        assert_eq!(both(90, 30_000).unwrap_err().key, "facilitator.timeoutMs");
        assert_eq!(both(1, u64::MAX).unwrap_err().key, "facilitator.timeoutMs");
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(Value, &str)> = vec![
            (
                base(json!([{"path": "/x", "price": "$0.0000001"}])),
                "routes[0].price",
            ),
            (
                base(json!([{"path": "/x", "price": "1.5"}])),
                "routes[0].price",
            ),
            (
                base(json!([{"path": "/x", "price": "$-1"}])),
                "routes[0].price",
            ),
            (
                base(json!([{"path": "/x", "price": "$0"}])),
                "routes[0].price",
            ),
            (
                base(json!([{"path": "x", "price": "$1"}])),
                "routes[0].path",
            ),
            (
                base(json!([{"path": "/x", "price": "$1", "method": "FETCH"}])),
                "routes[0].method",
            ),
            (base(json!([{"path": "/x", "prce": "$1"}])), "routes[0]"),
            (base(json!([{"path": "/x"}])), "routes[0].price"),
            (
                base(json!([{"path": "/x", "price": "$1", "accepts": ["eip155:1"]}])),
                "routes[0].accepts[0]",
            ),
            (
                base(json!([{"path": "/x", "price": "$1", "payTo": "0x1234"}])),
                "routes[0].payTo",
            ),
            (
                base(json!([{"path": "/x", "price": "$1", "maxTimeoutSeconds": 5}])),
                "routes[0].maxTimeoutSeconds",
            ),
        ];
        for (v, key) in cases {
            let e = load(v.clone()).unwrap_err();
            assert!(e.key.starts_with(key), "{v}: got {e}");
        }
        let mut v = base(json!([{"path": "/x", "price": "$1"}]));
        v["facilitator"] = json!({"url": "ftp://x"});
        assert_eq!(load(v).unwrap_err().key, "facilitator.url");
        let mut v = base(json!([{"path": "/x", "price": "$1"}]));
        v["payTo"] = json!("0xnothex");
        assert_eq!(load(v).unwrap_err().key, "payTo");
        assert!(Config::from_json("{").is_err());
        // A deferred route dearer than the whole credit, where payments over credit are refused.
        let mut c = base(json!([{"path": "/a", "price": "$2", "settlement": "deferred"}]));
        c["deferred"] = json!({"creditLimit": "$1.00", "overCredit": "refuse"});
        let e = load(c.clone()).unwrap_err();
        assert_eq!(e.key, "routes[0].price");
        assert!(e.problem.contains("more than deferred.creditLimit"), "{e}");
        c["deferred"]["overCredit"] = json!("immediate");
        load(c.clone()).unwrap();
        c["deferred"] = json!({"creditLimit": "$2.00", "overCredit": "refuse"});
        load(c).unwrap();
        // A deferred route's validity too short for the batch: named where it was set.
        let mut v = base(json!([{"path": "/x", "price": "$1", "settlement": "deferred"}]));
        v["maxTimeoutSeconds"] = json!(40);
        let e = load(v.clone()).unwrap_err();
        assert_eq!(e.key, "maxTimeoutSeconds");
        assert!(e.problem.contains("which routes[0] inherits"), "{e}");
        v["routes"][0]["maxTimeoutSeconds"] = json!(45);
        assert_eq!(load(v).unwrap_err().key, "routes[0].maxTimeoutSeconds");
    }
}
