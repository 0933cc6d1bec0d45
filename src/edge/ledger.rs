//! The wallet ledger as a Durable Object: one object per paying wallet, named by its lowercase
//! address, so it scales with the number of payers.
//!
//! Why a Durable Object and not KV: KV is eventually consistent, so it cannot say "this nonce was
//! never used" or "this wallet owes less than its limit" across the edge; a Durable Object is one
//! single-threaded, strongly consistent owner of exactly that state. The state machine itself is
//! [`crate::settlement::Ledger`]; this file stores it (as rows: an admission writes one entry, one
//! nonce and the counters, however long the batch), drives it from requests and
//! alarms, performs the I/O it asks for (facilitator `/settle`, an optional chain read) and mirrors
//! two facts into KV where every edge location can read them fast: the delinquent-wallet blocklist
//! and the index of wallets the cron sweep and the admin view walk.
//!
//! A ledger is never held across a network call: every change is modify → write its rows, with
//! only storage operations in between, which the Durable Object's input gate makes atomic, so an
//! admission arriving while an alarm waits on the facilitator can never be lost or doubled. The
//! object keeps the ledger in memory between commands (it is its only writer); a failed write
//! drops that copy, and the next command reads storage again.

use std::cell::{Cell, RefCell};

use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use worker::{Env, Request, Response, Result, State};

use super::js;

use crate::chain::AuthorizationEvent;
use crate::config::{Config, Credit};
use crate::evm::{decimal, Address};
use crate::json::{self, Read};
use crate::settlement::{
    refused_by_limit, Action, AdminError, Admission, AdmitError, Attempt, Effect, Ledger as Book,
    LedgerPolicy, Outcome, Row, StorageCall,
};

/// Where ledgers were stored whole, as one JSON value, before rows: read once, then rewritten.
const LEDGER_KEY: &str = "ledger";
const WALLET_KEY: &str = "wallet";
const OPEN_KEY: &str = "open-in-kv";
/// Set while KV's blocklist, which sessions read, may not say what the ledger says (its write
/// failed after a settlement changed the wallet's standing): written again by the alarm.
const STALE_KEY: &str = "blocklist-stale";
/// How soon a blocklist write that failed is tried again.
const BLOCKLIST_RETRY_SECONDS: u64 = 30;
/// After the wallet's name in storage while its `wallet:` listing in KV is still to be written.
const UNLISTED: &str = " unlisted";
/// KV key prefixes.
pub const DELINQUENT_PREFIX: &str = "delinquent:";
pub const WALLET_PREFIX: &str = "wallet:";
pub const OPEN_PREFIX: &str = "open:";

/// What the Worker asks of a ledger.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Admit {
        wallet: String,
        admission: Admission,
    },
    /// What the ledger knows of a payment that carries an identifier
    /// ([`Book::repeated`](crate::settlement::Ledger::repeated)), asked before a call out to judge
    /// it (the facilitator's `/verify`, which refuses the same payment once it is settled).
    /// Changes nothing; answers as an admission would have, `{"ok": true}` for nothing known.
    Repeated {
        admission: Admission,
    },
    /// The outcome of an immediate settlement the Worker made itself.
    ///
    /// `ticket`, here and below, is the admitting request's
    /// [`Admission::ticket`](crate::settlement::Admission::ticket): what only that request may do
    /// is refused to any other ([`Book::owns`]). Absent from a Worker of an earlier version.
    Record {
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
        outcome: WireOutcome,
    },
    /// An admitted payment that will not be collected (the origin failed: nobody pays for that).
    Withdraw {
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
    /// A payment admitted held may be collected: the origin answered and it was served.
    Release {
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
    /// [`Command::Release`] for several payments at once (what a Worker sends): `(id, ticket)`.
    ReleaseAll {
        ids: Vec<(String, String)>,
    },
    View,
    /// Settle whatever is due now (the cron sweep's nudge).
    Sweep,
    Revoke {
        id: String,
    },
    MarkPaid {
        id: String,
        transaction: String,
    },
    Forgive,
    /// Sessions: a counted grant bought (its requests are counted here, exactly). `paid` names
    /// the payment (its chain, token and authorization's nonce), so that the command sent again after a lost
    /// answer adds its requests once; absent from a Worker of an earlier version.
    SetGrant {
        key: String,
        requests: u64,
        until: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        paid: Option<String>,
        /// A timed grant's purchase: its seconds are added to the time left on the grant
        /// (`requests` is 0); the answer's `until` is the grant's new end.
        #[serde(skip_serializing_if = "Option::is_none")]
        seconds: Option<u64>,
    },
    /// Sessions: spend one request of a counted grant; answers `{"spent": bool}`.
    SpendGrant {
        key: String,
        now: u64,
    },
    /// Sessions: give back the request a spend took, when the origin failed to answer it (nobody
    /// pays for an error, on a session either). `until` is the grant's end, should its last
    /// request have been the one spent (a used-up count is forgotten).
    RefundGrant {
        key: String,
        until: u64,
    },
    /// Sessions: forget every counted grant (revocation).
    ClearGrants,
    /// Sign-In-With-X: use a nonce once; answers `{"fresh": bool}`.
    UseNonce {
        key: String,
        until: u64,
    },
    /// The Rust floor's one write, in a `bench-floor` build only (see `Cargo.toml`): a row under
    /// `key`, then `{"ok": true}`.
    #[cfg(feature = "bench-floor")]
    Floor {
        key: String,
    },
}

/// Counted grants: requests left and expiry, by grant key.
type Counts = crate::session::GrantCounts;
/// Sign-In-With-X nonces seen, by replay key, with how long to remember them.
type Nonces = crate::sorted::SortedMap<u64>;
const COUNTS_KEY: &str = "grant-counts";
/// How many of one wallet's settlements run side by side: enough that a wallet paying several
/// times per `/settle` round trip (seconds on a real chain) is kept up with, few enough not to
/// flood the facilitator when a large batch comes due.
const SETTLE_AT_ONCE: usize = 8;
const NONCES_KEY: &str = "siwx-nonces";

/// An outcome as it travels from the Worker to the ledger.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WireOutcome {
    Settled { transaction: String },
    Refused { reason: String, message: String },
    Unknown { why: String },
}

impl From<WireOutcome> for Outcome {
    fn from(w: WireOutcome) -> Self {
        match w {
            WireOutcome::Settled { transaction } => Outcome::Settled { transaction },
            WireOutcome::Refused { reason, message } => Outcome::Refused { reason, message },
            WireOutcome::Unknown { why } => Outcome::Unknown { why },
        }
    }
}

/// The ledger's answer to an admission.
#[derive(Debug, Serialize)]
pub struct AdmitAnswer {
    pub ok: bool,
    pub error: Option<String>,
    /// What goes with the error: what a delinquent wallet owes (micro-USD), the transaction that
    /// settled a payment not yet served.
    pub detail: Option<String>,
}

impl Read for Command {
    fn read(value: &Value) -> Result<Self, json::Error> {
        #[cfg(feature = "bench-floor")]
        if let Some(key) = value.pointer("/floor/key").and_then(Value::as_str) {
            return Ok(Command::Floor { key: key.into() });
        }
        const KNOWN: &[&str] = &[
            "admit",
            "repeated",
            "record",
            "withdraw",
            "release",
            "release_all",
            "view",
            "sweep",
            "revoke",
            "mark_paid",
            "forgive",
            "set_grant",
            "spend_grant",
            "clear_grants",
            "use_nonce",
            "refund_grant",
        ];
        json::read_variant(value, KNOWN, |name, f| {
            Ok(match name {
                "admit" => Command::Admit {
                    wallet: f.get("wallet")?,
                    admission: f.get("admission")?,
                },
                "repeated" => Command::Repeated {
                    admission: f.get("admission")?,
                },
                "record" => Command::Record {
                    id: f.get("id")?,
                    ticket: f.maybe("ticket")?,
                    outcome: f.get("outcome")?,
                },
                "withdraw" => Command::Withdraw {
                    id: f.get("id")?,
                    ticket: f.maybe("ticket")?,
                },
                "release" => Command::Release {
                    id: f.get("id")?,
                    ticket: f.maybe("ticket")?,
                },
                "release_all" => Command::ReleaseAll { ids: f.get("ids")? },
                "view" => Command::View,
                "sweep" => Command::Sweep,
                "revoke" => Command::Revoke { id: f.get("id")? },
                "mark_paid" => Command::MarkPaid {
                    id: f.get("id")?,
                    transaction: f.get("transaction")?,
                },
                "forgive" => Command::Forgive,
                "set_grant" => Command::SetGrant {
                    key: f.get("key")?,
                    requests: f.get("requests")?,
                    until: f.get("until")?,
                    paid: f.maybe("paid")?,
                    seconds: f.maybe("seconds")?,
                },
                "spend_grant" => Command::SpendGrant {
                    key: f.get("key")?,
                    now: f.get("now")?,
                },
                "clear_grants" => Command::ClearGrants,
                "refund_grant" => Command::RefundGrant {
                    key: f.get("key")?,
                    until: f.get("until")?,
                },
                _ => Command::UseNonce {
                    key: f.get("key")?,
                    until: f.get("until")?,
                },
            })
        })
    }
}

impl Read for WireOutcome {
    fn read(value: &Value) -> Result<Self, json::Error> {
        json::read_variant(value, &["settled", "refused", "unknown"], |name, f| {
            Ok(match name {
                "settled" => WireOutcome::Settled {
                    transaction: f.get("transaction")?,
                },
                "refused" => WireOutcome::Refused {
                    reason: f.get("reason")?,
                    message: f.get("message")?,
                },
                _ => WireOutcome::Unknown { why: f.get("why")? },
            })
        })
    }
}

impl AdmitAnswer {
    /// The answer to an admission refused with `refused`, or made (`None`).
    fn of(refused: Option<AdmitError>) -> AdmitAnswer {
        AdmitAnswer {
            ok: refused.is_none(),
            error: refused.as_ref().map(|e| e.code().to_string()),
            detail: match refused {
                Some(AdmitError::Delinquent { owed_micro_usd, .. }) => {
                    Some(decimal(owed_micro_usd))
                }
                Some(AdmitError::Unserved { transaction }) => Some(transaction),
                _ => None,
            },
        }
    }
}

impl Read for AdmitAnswer {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = json::Fields::new(value)?;
        Ok(AdmitAnswer {
            ok: f.get("ok")?,
            error: f.maybe("error")?,
            detail: f.maybe("detail")?,
        })
    }
}

/// What a request given a payment owed its content may take beyond its origin's time to say that
/// it served it: the release's gathering and its trip to the ledger, with room to spare.
const SERVE_MARGIN_SECONDS: u64 = 15;

pub fn policy(config: &Config) -> LedgerPolicy {
    LedgerPolicy {
        credit_limit: config.deferred.credit_limit_micro_usd,
        batch_window: config.deferred.batch_seconds,
        safety_margin: config.deferred.safety_margin_seconds,
        earned_credit: config.deferred.credit == Credit::Earned,
        // A request given a payment owed its content serves it within its origin's time, then
        // releases it (gathered, a moment later).
        serve_within: config.origin_timeout_seconds + SERVE_MARGIN_SECONDS,
        ..LedgerPolicy::default()
    }
}

/// Exported to JavaScript by hand rather than by the SDK's `#[durable_object]`, whose glue turns
/// an error into a JavaScript one through the SDK's chain printer (see [`super::answered`]).
#[wasm_bindgen]
pub struct Ledger {
    state: State,
    env: Env,
    /// What this object last read or wrote, so that an admission costs one write and no reads.
    /// Storage stays the truth: the object is its only writer, every write goes through here, and
    /// a failed write forgets what it was writing.
    memory: RefCell<Memory>,
}

/// Why a command got no answer.
enum Failed {
    /// Not a command this ledger knows (the sender's fault).
    Command(String),
    /// The configuration does not parse.
    Config,
    /// Carrying it out failed (a storage call, most often): what was not written did not happen.
    Storage(worker::Error),
}

const CONFIG_INVALID: &str = "the paywall configuration is invalid";

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl Ledger {
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, env: Env) -> Ledger {
        Ledger {
            state: State::from(state),
            env,
            memory: RefCell::new(Memory::default()),
        }
    }

    /// A command sent as an HTTP request, as a Worker of an earlier version sends it (the Worker
    /// now calls [`Ledger::command`] by RPC).
    pub async fn fetch(&self, req: web_sys::Request) -> std::result::Result<JsValue, JsValue> {
        super::answered(self.fetch_command(req.into()).await)
    }

    pub async fn alarm(&self) -> std::result::Result<JsValue, JsValue> {
        super::answered(self.settle_alarm().await)
    }

    /// A command called by RPC, as the Worker sends them: its JSON text in, the answer's JSON
    /// text out (what [`Ledger::fetch`] would answer, without an HTTP request and response
    /// around it); a command that got no answer throws. Reached through the class that
    /// `src/entry.mjs` declares as a `DurableObject`, which is what opens an object to RPC.
    pub async fn command(&self, text: String) -> std::result::Result<String, String> {
        self.run(&text).await.map_err(|e| match e {
            Failed::Command(why) => why,
            Failed::Config => CONFIG_INVALID.to_string(),
            Failed::Storage(e) => e.to_string(),
        })
    }
}

impl Ledger {
    /// Reads a command and carries it out.
    async fn run(&self, text: &str) -> std::result::Result<String, Failed> {
        let command: Command =
            json::parse(text).map_err(|e| Failed::Command(format!("bad ledger command: {e}")))?;
        let config = super::config_of(&self.env).ok_or(Failed::Config)?;
        self.execute(command, &config)
            .await
            .map_err(Failed::Storage)
    }

    /// Carries out a command: the answer's JSON text.
    async fn execute(&self, command: Command, config: &Config) -> Result<String> {
        let now = super::now_seconds();
        let policy = policy(config);
        let answer = match command {
            #[cfg(feature = "bench-floor")]
            Command::Floor { key } => {
                self.write(vec![(format!("floor/{key}"), Some(now.to_string()))])
                    .await?;
                return Ok(r#"{"ok":true}"#.into());
            }
            Command::Admit { wallet, admission } => {
                // The first admission names the object's wallet, and lists it in KV (the index
                // the admin view walks); later ones need no write for it, unless that listing
                // failed: the name is then stored with UNLISTED after it, and the next admission
                // lists it again.
                let storage = self.state.storage();
                let first = self.wallet().await.is_none();
                if first {
                    js::store(storage.as_raw(), WALLET_KEY, wallet.as_str().into()).await?;
                    self.memory.borrow_mut().wallet = Some(wallet.clone());
                }
                let result = self
                    .change(|book| {
                        book.prune(now);
                        book.admit(admission, &policy, now)
                    })
                    .await?;
                if first || self.memory.borrow().unlisted {
                    let listed = self
                        .kv_put(&format!("{WALLET_PREFIX}{wallet}"), &now.to_string())
                        .await;
                    if listed != first {
                        let name = match listed {
                            true => wallet.clone(),
                            false => format!("{wallet}{UNLISTED}"),
                        };
                        js::store(storage.as_raw(), WALLET_KEY, name.into()).await?;
                    }
                    self.memory.borrow_mut().unlisted = !listed;
                }
                self.after_change(now).await?;
                return Ok(serde_json::to_string(&AdmitAnswer::of(result.err()))?);
            }
            Command::Repeated { admission } => {
                let known = self.book(|b| b.repeated(&admission, now)).await?;
                return Ok(serde_json::to_string(&AdmitAnswer::of(known))?);
            }
            Command::Record {
                id,
                ticket,
                outcome,
            } => {
                let effect = self
                    .change(|book| {
                        book.record_from(ticket.as_deref(), &id, outcome.into(), &policy, now)
                    })
                    .await?;
                self.effects(effect).await;
                self.after_change(now).await?;
                serde_json::json!({"ok": true})
            }
            // The admitting request gives up a payment it never settled (the origin failed).
            // Another request carrying the same payment may not (it is a replay).
            Command::Withdraw { id, ticket } => {
                self.remove_entry(now, |book| book.withdraw_from(ticket.as_deref(), &id))
                    .await?
            }
            // The admitting requests served them: settle them with their batch (the alarm is
            // re-armed); or payments owed their content were served to the requests given them.
            // One id alone is what a Worker of an earlier version sends for a batch.
            Command::Release { id, ticket } => self.release(&[(id, ticket)], now).await?,
            Command::ReleaseAll { ids } => {
                let ids: Vec<_> = ids.into_iter().map(|(id, t)| (id, Some(t))).collect();
                self.release(&ids, now).await?
            }
            Command::Revoke { id } => self.remove_entry(now, |book| book.revoke(&id)).await?,
            Command::MarkPaid { id, transaction } => {
                let result = self
                    .change(|book| {
                        let result = book.mark_paid(&id, transaction, now);
                        book.trim(policy.settled_history, now);
                        result
                    })
                    .await?;
                let cleared = self.sync_delinquency().await;
                answer(result, cleared)
            }
            // Whether KV's blocklist, which sessions read, was cleared too: if not, the admin
            // sends it again (so for a revocation or a payment marked paid).
            Command::Forgive => {
                let forgiven = self.change(Book::clear_delinquency).await?;
                let cleared = self.sync_delinquency().await;
                serde_json::json!({"ok": true, "forgivenMicroUsd": decimal(forgiven), "blocklistCleared": cleared})
            }
            Command::View => {
                let (view, credit) = self.book(|b| (b.view(), b.credit(&policy))).await?;
                let wallet = self.wallet().await;
                let mut v = serde_json::to_value(view)?;
                v["wallet"] = serde_json::Value::from(wallet);
                // What the wallet may leave unsettled now: the limit, or what it has earned.
                v["credit_micro_usd"] = serde_json::Value::from(decimal(credit));
                v
            }
            // The requests left on counted grants: read, changed and written back in one turn.
            grant @ (Command::SetGrant { .. }
            | Command::SpendGrant { .. }
            | Command::RefundGrant { .. }
            | Command::ClearGrants) => {
                // A clear needs nothing read: it writes the empty map.
                let mut counts = match grant {
                    Command::ClearGrants => Counts::new(),
                    _ => self.counts(now).await?,
                };
                let answer = change_grants(&mut counts, grant, now);
                put_json(&self.state.storage(), COUNTS_KEY, &counts).await?;
                answer
            }
            Command::UseNonce { key, until } => {
                let storage = self.state.storage();
                let mut nonces: Nonces = get_json(&storage, NONCES_KEY).await?;
                nonces.retain(|_, u| *u > now);
                let fresh = !nonces.contains_key(&key);
                if fresh {
                    nonces.insert(key, until);
                }
                put_json(&storage, NONCES_KEY, &nonces).await?;
                serde_json::json!({"fresh": fresh})
            }
            Command::Sweep => {
                self.settle_due(config, &policy).await?;
                serde_json::json!({"ok": true})
            }
        };
        Ok(answer.to_string())
    }
}

/// A grant command's change to the requests left on the wallet's counted grants, and its answer.
fn change_grants(counts: &mut Counts, grant: Command, now: u64) -> Value {
    match grant {
        Command::SetGrant {
            key,
            requests,
            until,
            paid,
            seconds,
        } => {
            let paid = paid.as_deref();
            let until = match seconds {
                Some(s) => crate::session::add_timed_grant(counts, &key, s, paid, now),
                None => {
                    crate::session::add_counted_grant(counts, &key, requests, until, paid, now);
                    counts.get(&key).map_or(until, |e| e.1)
                }
            };
            serde_json::json!({"ok": true, "until": until})
        }
        Command::SpendGrant { key, now } => {
            serde_json::json!({"spent": crate::session::spend_counted_grant(counts, &key, now)})
        }
        Command::RefundGrant { key, until: _ } => {
            let refunded = crate::session::refund_counted_grant(counts, &key, now);
            serde_json::json!({"refunded": refunded})
        }
        _ => {
            *counts = Counts::new();
            serde_json::json!({"ok": true})
        }
    }
}

/// The object's storage as it was last seen; `None`: not known, read it.
#[derive(Default)]
struct Memory {
    book: Option<Book>,
    wallet: Option<String>,
    /// The alarm's time in ms (`Some(None)`: no alarm).
    alarm_ms: Option<Option<i64>>,
    open_in_kv: Option<bool>,
    /// The wallet is not listed in KV yet (its first listing failed).
    unlisted: bool,
    /// Whether [`STALE_KEY`] is set (`None`: not read yet).
    stale: Option<bool>,
    /// How many blocklist writes have failed in this object's life: a retry that began before
    /// another failed does not clear the flag.
    stale_marks: u32,
    /// Settlement attempts made side by side, fewer after a run whose first round the
    /// platform's limit on calls cut short (0: [`SETTLE_AT_ONCE`]).
    at_once: usize,
}

impl Ledger {
    async fn fetch_command(&self, req: Request) -> Result<Response> {
        // As text, parsed by serde_json: the SDK's `Request::json` walks a JavaScript object
        // field by field across the wasm boundary.
        let text = super::body_text(req.inner().text())
            .await
            .unwrap_or_default();
        match self.run(&text).await {
            // Its sender reads the text whatever the type says.
            Ok(answer) => Response::ok(answer),
            Err(Failed::Command(e)) => Response::error(e, 400),
            Err(Failed::Config) => Response::error(CONFIG_INVALID, 500),
            Err(Failed::Storage(e)) => Err(e),
        }
    }

    async fn settle_alarm(&self) -> Result<Response> {
        // A fired alarm is gone: read it again before deciding to set one.
        self.memory.borrow_mut().alarm_ms = None;
        if self.stale().await? {
            let marks = self.memory.borrow().stale_marks;
            let written = self.sync_delinquency().await;
            if written && self.memory.borrow().stale_marks == marks {
                self.set_stale(false).await?;
            }
        }
        match super::config_of(&self.env) {
            Some(config) => self.settle_due(&config, &policy(&config)).await?,
            // A configuration that does not load (a bad deploy) leaves nothing to settle with:
            // looked at again in a minute, so that its payments are not left to the cron sweep.
            None => {
                let storage = self.state.storage();
                let at = js_sys::Date::now() as i64 + CONFIG_RETRY_MS;
                js::set_alarm(storage.as_raw(), at).await?;
            }
        }
        Response::ok("")
    }
}

/// How soon a ledger whose alarm found no configuration to settle with looks again.
const CONFIG_RETRY_MS: i64 = 60_000;

/// An admin action's answer: whether it was done, why not, and whether KV's blocklist says what
/// the ledger now says.
fn answer<T>(result: std::result::Result<T, AdminError>, cleared: bool) -> serde_json::Value {
    serde_json::json!({"ok": result.is_ok(), "error": result.err().map(|e| e.to_string()), "blocklistCleared": cleared})
}

impl Ledger {
    /// Releases served payments to their batch; answers how many of them the ledger holds.
    async fn release(
        &self,
        ids: &[(String, Option<String>)],
        now: u64,
    ) -> Result<serde_json::Value> {
        let released = self
            .change(|book| {
                ids.iter()
                    .filter(|(id, ticket)| book.release_from(ticket.as_deref(), id, now).is_ok())
                    .count()
            })
            .await?;
        self.after_change(now).await?;
        Ok(serde_json::json!({"ok": true, "released": released}))
    }

    /// Withdraws or revokes one entry, and keeps the alarm, the open index and the blocklist in step.
    async fn remove_entry(
        &self,
        now: u64,
        remove: impl FnOnce(&mut Book) -> std::result::Result<u128, AdminError>,
    ) -> Result<serde_json::Value> {
        let result = self.change(remove).await?;
        self.after_change(now).await?;
        let cleared = self.sync_delinquency().await;
        Ok(answer(result, cleared))
    }

    async fn counts(&self, now: u64) -> Result<Counts> {
        let mut counts: Counts = get_json(&self.state.storage(), COUNTS_KEY).await?;
        crate::session::drop_ended_grants(&mut counts, now);
        Ok(counts)
    }

    /// Reads the ledger into memory if this object does not hold it yet: its rows, or a ledger
    /// stored whole before rows, which is rewritten as rows on the spot.
    async fn ensure_loaded(&self) -> Result<()> {
        if self.memory.borrow().book.is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        // Everything the object stores (a few small values besides the ledger's rows, which
        // `from_rows` picks out): one read, on the object's first command.
        let mut rows: Vec<(String, String)> = Vec::new();
        storage.list().await?.for_each(&mut |value, key| {
            if let (Some(k), Some(v)) = (key.as_string(), value.as_string()) {
                rows.push((k, v));
            }
        });
        let mut book = Book::from_rows(rows);
        let whole = js::stored_text(storage.as_raw(), LEDGER_KEY)
            .await
            .ok()
            .flatten();
        if let Some(text) = whole {
            book = json::parse(&text).map_err(|e| worker::Error::RustError(e.to_string()))?;
            book.mark_all();
            let mut rows = book.take_rows();
            rows.push((LEDGER_KEY.to_string(), None));
            self.write(rows).await?;
        }
        self.memory.borrow_mut().book = Some(book);
        Ok(())
    }

    /// Changes the ledger and writes the rows the change touched. Storage stays the truth: if the
    /// write fails, the copy in memory is dropped and the next command reads storage again.
    async fn change<R>(&self, f: impl FnOnce(&mut Book) -> R) -> Result<R> {
        self.ensure_loaded().await?;
        let (result, rows) = {
            let mut memory = self.memory.borrow_mut();
            let Some(book) = memory.book.as_mut() else {
                return Err(worker::Error::RustError("the ledger is not loaded".into()));
            };
            let result = f(book);
            (result, book.take_rows())
        };
        if let Err(e) = self.write(rows).await {
            self.memory.borrow_mut().book = None;
            return Err(e);
        }
        Ok(result)
    }

    /// Reads from the ledger.
    async fn book<R>(&self, f: impl FnOnce(&Book) -> R) -> Result<R> {
        self.ensure_loaded().await?;
        match self.memory.borrow().book.as_ref() {
            Some(book) => Ok(f(book)),
            None => Err(worker::Error::RustError("the ledger is not loaded".into())),
        }
    }

    /// Writes rows (JSON text; `None` deletes) in one transaction: every storage call is made
    /// before any is awaited, which the runtime commits together. A call takes at most
    /// [`crate::settlement::KEYS_PER_CALL`] keys (a prune after a long burst of payments deletes
    /// more): more are split over several calls ([`crate::settlement::storage_calls`]).
    async fn write(&self, rows: Vec<Row>) -> Result<()> {
        let calls = js_sys::Array::new();
        for call in crate::settlement::storage_calls(rows) {
            let call: JsValue = match call {
                StorageCall::Put(pairs) => {
                    let object = js_sys::Object::new();
                    for (key, value) in pairs {
                        js_sys::Reflect::set(&object, &key.into(), &value.into())?;
                    }
                    object.into()
                }
                StorageCall::Delete(keys) => keys
                    .into_iter()
                    .map(JsValue::from)
                    .collect::<js_sys::Array>()
                    .into(),
            };
            calls.push(&call);
        }
        js::write(self.state.storage().as_raw(), &calls).await?;
        Ok(())
    }

    /// The wallet this object keeps the ledger of, once its first admission has named it.
    async fn wallet(&self) -> Option<String> {
        if let Some(w) = self.memory.borrow().wallet.clone() {
            return Some(w);
        }
        let storage = self.state.storage();
        let w = js::stored_text(storage.as_raw(), WALLET_KEY)
            .await
            .ok()
            .flatten();
        let w = w.map(|w| match w.strip_suffix(UNLISTED) {
            Some(name) => {
                self.memory.borrow_mut().unlisted = true;
                name.to_string()
            }
            None => w,
        });
        self.memory.borrow_mut().wallet = w.clone();
        w
    }

    /// Keeps the alarm on the earliest due entry, and the KV index of wallets with open entries
    /// (what the cron sweep walks) in step.
    async fn after_change(&self, now: u64) -> Result<()> {
        let storage = self.state.storage();
        let known_alarm = self.memory.borrow().alarm_ms;
        let next_alarm = self.book(Book::next_alarm).await?;
        // A blocklist still to be written keeps an alarm too.
        let retry = now + BLOCKLIST_RETRY_SECONDS;
        let wake = match self.stale().await? {
            true => Some(next_alarm.map_or(retry, |at| at.min(retry))),
            false => next_alarm,
        };
        match wake {
            Some(at) => {
                let at_ms = (at.max(now) * 1000) as i64;
                let current = match known_alarm {
                    Some(known) => known,
                    None => js::alarm(storage.as_raw()).await.ok().flatten(),
                };
                if current.is_none_or(|c| c > at_ms) {
                    self.memory.borrow_mut().alarm_ms = None;
                    js::set_alarm(storage.as_raw(), at_ms).await?;
                    self.memory.borrow_mut().alarm_ms = Some(Some(at_ms));
                } else {
                    self.memory.borrow_mut().alarm_ms = Some(current);
                }
            }
            None if known_alarm == Some(None) => {}
            None => {
                self.memory.borrow_mut().alarm_ms = None;
                if js::delete_alarm(storage.as_raw()).await.is_ok() {
                    self.memory.borrow_mut().alarm_ms = Some(None);
                }
            }
        }
        // Open entries are exactly those that keep an alarm (no need to build the whole view).
        let open = next_alarm.is_some();
        let known_open = self.memory.borrow().open_in_kv;
        let marked = match known_open {
            Some(m) => m,
            None => {
                let m = js::stored_bool(storage.as_raw(), OPEN_KEY)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(false);
                self.memory.borrow_mut().open_in_kv = Some(m);
                m
            }
        };
        if open != marked {
            if let Some(wallet) = self.wallet().await {
                let key = format!("{OPEN_PREFIX}{wallet}");
                let written = if open {
                    self.kv_put(&key, "1").await
                } else {
                    self.kv_delete(&key).await
                };
                self.memory.borrow_mut().open_in_kv = None;
                // Not marked as it is in KV unless it is: the next change writes it again, so that
                // one failed write cannot keep the wallet from the cron sweep for good.
                if !written {
                    return Ok(());
                }
                js::store(storage.as_raw(), OPEN_KEY, open.into()).await?;
                self.memory.borrow_mut().open_in_kv = Some(open);
            }
        }
        Ok(())
    }

    /// Settles everything due, [`SETTLE_AT_ONCE`] attempts at a time (the one that can wait least
    /// first), never holding the ledger across a call. One at a time, a wallet paying faster than
    /// one `/settle` round trip per payment would fall behind for good, and its oldest payments
    /// would reach their `validBefore` unsettled; the authorizations are independent (each has
    /// its own nonce), so their settlements may run side by side.
    async fn settle_due(&self, config: &Config, policy: &LedgerPolicy) -> Result<()> {
        let client =
            super::facilitator::Client::new(config, super::facilitator::Auth::of(&self.env));
        let wallet = self.wallet().await;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let now = super::now_seconds();
            let at_once = match self.memory.borrow().at_once {
                0 => SETTLE_AT_ONCE,
                n => n,
            };
            let attempts = self
                .change(|book| {
                    book.prune(now);
                    let mut attempts = Vec::new();
                    // A safety valve: the alarm comes back for the rest (at once: a new run).
                    if rounds > 200 {
                        return attempts;
                    }
                    // An entry that cannot be begun (given up) is closed by trying, so every
                    // try makes progress; the bound only keeps one round short.
                    for _ in 0..SETTLE_AT_ONCE * 4 {
                        let Some(due) = book.first_due(now) else {
                            break;
                        };
                        if let Some(attempt) = book.begin(&due, policy, now) {
                            attempts.push(attempt);
                            if attempts.len() >= at_once {
                                break;
                            }
                        }
                    }
                    attempts
                })
                .await?;
            if attempts.is_empty() {
                self.after_change(now).await?;
                return Ok(());
            }
            // The platform limits the calls one invocation makes (50 on the Workers Free plan).
            // An attempt whose calls it refused (each call says so) is due again at once, for the
            // next run, which the alarm starts with a fresh allowance: nothing it did not send is
            // taken for unanswered. A run whose first round meets the limit halves the attempts
            // made side by side (see below), so that one attempt's calls (16 at most) come to fit
            // in a run's first round, and every run makes progress.
            let calls = attempts.iter().map(|attempt| async {
                let refused = Cell::new(true);
                let outcome = match attempt.action {
                    Action::Settle => {
                        // A refused call's error carries `LIMIT_MARK` into the outcome.
                        let outcome =
                            Outcome::from(client.settle(&attempt.payload.to_string()).await);
                        match &outcome {
                            // Someone may have sent this very authorization to the token (the
                            // payer itself, say): then we were paid, and the chain shows it.
                            Outcome::Refused { reason, message }
                                if crate::settlement::classify_refusal(reason, message)
                                    == crate::settlement::RefusalKind::NonceUsed =>
                            {
                                // What the chain shows decides; where it cannot say, the refusal
                                // is recorded, and the ledger reads the chain again.
                                let quiet = Cell::new(false);
                                match reconcile(config, wallet.as_deref(), attempt, &quiet).await {
                                    shown @ (Outcome::Settled { .. }
                                    | Outcome::OnChainCancelled
                                    | Outcome::OnChainUsedElsewhere { .. }) => shown,
                                    _ => outcome,
                                }
                            }
                            _ => outcome,
                        }
                    }
                    Action::Reconcile => {
                        refused.set(false);
                        reconcile(config, wallet.as_deref(), attempt, &refused).await
                    }
                };
                match refused_by_limit(attempt.action, &outcome, refused.get()) {
                    true => Outcome::NotSent {
                        action: attempt.action,
                    },
                    false => outcome,
                }
            });
            let outcomes = side_by_side(calls.collect()).await;
            let limited = outcomes
                .iter()
                .any(|o| matches!(o, Outcome::NotSent { .. }));
            let now = super::now_seconds();
            let effects = self
                .change(|book| {
                    attempts
                        .iter()
                        .zip(outcomes)
                        .map(|(attempt, outcome)| {
                            let effect = book.record(&attempt.id, outcome, policy, now);
                            let unserved =
                                effect == Effect::Settled && book.owes_content(&attempt.id);
                            (effect, unserved)
                        })
                        .collect::<Vec<_>>()
                })
                .await?;
            for (attempt, (effect, unserved)) in attempts.iter().zip(effects) {
                self.effects(effect).await;
                log_settlement(wallet.as_deref(), &attempt.id, effect, unserved);
            }
            // The rest waits for the next run (as past the safety valve above); a run whose first
            // round was already too much makes half as many attempts at once, one that was not
            // twice as many (up to SETTLE_AT_ONCE).
            if rounds == 1 {
                self.memory.borrow_mut().at_once = match limited {
                    true => (at_once / 2).max(1),
                    false => (at_once * 2).min(SETTLE_AT_ONCE),
                };
            }
            if limited {
                rounds = 200;
            }
        }
    }

    async fn effects(&self, effect: Effect) {
        if let Effect::Failed {
            became_delinquent: true,
        }
        | Effect::SettledAfterAll = effect
        {
            // Not written: written again by the alarm, which the ledger's next change sets.
            if !self.sync_delinquency().await {
                let _ = self.set_stale(true).await;
            }
        }
    }

    /// Whether KV's blocklist is still to be written again ([`STALE_KEY`]).
    async fn stale(&self) -> Result<bool> {
        if let Some(stale) = self.memory.borrow().stale {
            return Ok(stale);
        }
        let storage = self.state.storage();
        let stale = js::stored_bool(storage.as_raw(), STALE_KEY)
            .await?
            .unwrap_or(false);
        self.memory.borrow_mut().stale = Some(stale);
        Ok(stale)
    }

    async fn set_stale(&self, stale: bool) -> Result<()> {
        if stale {
            self.memory.borrow_mut().stale_marks += 1;
        }
        if self.stale().await? != stale {
            let storage = self.state.storage();
            js::store(storage.as_raw(), STALE_KEY, stale.into()).await?;
            self.memory.borrow_mut().stale = Some(stale);
        }
        Ok(())
    }

    /// Mirrors the ledger's delinquency (the truth) into the KV blocklist (the fast copy).
    /// Whether KV's blocklist now says what the ledger says (nothing to say counts as yes).
    async fn sync_delinquency(&self) -> bool {
        let Some(wallet) = self.wallet().await else {
            return true;
        };
        let Ok(debt) = self.book(Book::debt).await else {
            return false;
        };
        let key = format!("{DELINQUENT_PREFIX}{wallet}");
        if let Some((owed, reason)) = debt {
            let value = serde_json::json!({
                "owedMicroUsd": decimal(owed),
                "reason": reason,
            });
            let written = self.kv_put(&key, &value.to_string()).await;
            super::access::forget_standing(&wallet);
            written
        } else {
            self.kv_delete(&key).await
        }
    }

    /// Writes `key` in KV, asked twice if the first write fails: whether it was written.
    async fn kv_put(&self, key: &str, value: &str) -> bool {
        let Some(kv) = js::kv(&self.env, super::KV_BINDING) else {
            return false;
        };
        kv.put(key, value, None).await.is_ok() || kv.put(key, value, None).await.is_ok()
    }

    /// Deletes `key` from KV, asked twice if the first delete fails: whether it was deleted.
    async fn kv_delete(&self, key: &str) -> bool {
        let Some(kv) = js::kv(&self.env, super::KV_BINDING) else {
            return false;
        };
        kv.delete(key).await.is_ok() || kv.delete(key).await.is_ok()
    }
}

/// Runs `futures` side by side and gives their outputs in order. `futures_util::future::join_all`
/// does the same, but also carries a second implementation for long lists, 3 KB of gzipped wasm
/// that a handful of settlements never needs.
async fn side_by_side<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => waiting = true,
                }
            }
        }
        match waiting {
            true => Poll::Pending,
            false => Poll::Ready(()),
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Asks the chain whether an authorization was used, when an RPC URL is configured for its
/// network; and if its state says so, whether it paid or was cancelled (the token's logs).
/// `refused` is set when the platform refused one of its calls (its limit on one invocation's
/// calls).
async fn reconcile(
    config: &Config,
    wallet: Option<&str>,
    attempt: &Attempt,
    refused: &Cell<bool>,
) -> Outcome {
    let chain_id = crate::networks::parse_network(&attempt.network).map(|n| n.chain_id);
    let Some(url) = chain_id.and_then(|c| config.rpc_for(c)) else {
        return Outcome::NoRpc;
    };
    let (Some(from), Ok(token), Ok(nonce)) = (
        wallet.and_then(|w| Address::parse(w).ok()),
        Address::parse(&attempt.asset),
        crate::evm::parse_bytes32(&attempt.nonce),
    ) else {
        return Outcome::Unknown {
            why: "unreadable entry".into(),
        };
    };
    // The node's newest block first: the state is read as of it, and the logs up to it, so that
    // a node behind another (behind one URL) cannot show a use whose log it does not yet hold.
    let latest = js::rpc_noting(url, &crate::chain::block_number_request(), refused)
        .await
        .as_deref()
        .and_then(crate::chain::read_block_number);
    let at = latest.map_or_else(|| "latest".into(), |b| format!("0x{b:x}"));
    let body = crate::chain::authorization_state_request(&token, &from, &nonce, &at);
    match js::rpc_noting(url, &body, refused)
        .await
        .as_deref()
        .and_then(crate::chain::read_bool_result)
    {
        Some(true) => {}
        Some(false) => return Outcome::OnChainUnused,
        None => {
            return Outcome::ChainUnreadable {
                why: "the chain could not be read".into(),
            }
        }
    }
    // Used or cancelled: FiatToken sets the same state for both. The logs tell them apart (and
    // name the paying transaction). If they cannot be read, or name nothing, the state is all
    // there is, and the ledger does not book that as paid (`Outcome::OnChainUsed`); but where
    // the state was already "used" at the first block searched, older than the admission, the
    // nonce was used before the payment came (`Outcome::OnChainUsedBefore`).
    let elapsed = super::now_seconds().saturating_sub(attempt.admitted_at);
    let mut first = None;
    let event = match latest {
        Some(latest) => {
            let from_block = latest.saturating_sub(crate::chain::blocks_back(elapsed));
            first = Some(from_block);
            // Many nodes cap the blocks one query may cover: refused whole, the range is asked in
            // pieces of LOG_PIECE_BLOCKS, newest first, as far as LOG_PIECES of them reach.
            let (mut range, mut pieces) = ((from_block, latest), 0);
            loop {
                let body = crate::chain::authorization_logs_request(
                    &token, &from, &nonce, range.0, range.1,
                );
                let read = js::rpc_noting(url, &body, refused).await.and_then(|text| {
                    crate::chain::read_authorization_logs(&text, &token, &from, &nonce)
                });
                let to = match read {
                    Some(Some(event)) => break Some(event),
                    Some(None) if pieces > 0 && range.0 > from_block => range.0 - 1,
                    None if pieces == 0 => latest,
                    _ => break None,
                };
                if pieces == LOG_PIECES {
                    break None;
                }
                pieces += 1;
                range = (to.saturating_sub(LOG_PIECE_BLOCKS - 1).max(from_block), to);
            }
        }
        None => None,
    };
    match event {
        Some(AuthorizationEvent::Cancelled) => Outcome::OnChainCancelled,
        Some(AuthorizationEvent::Used { transaction }) if !transaction.is_empty() => {
            // The payer chooses its nonces: the same one in a transfer of its own, to anyone,
            // leaves the same log. Only the transaction's own transfer says whether we were paid.
            let Some((to, value)) = signed_transfer(&attempt.payload) else {
                return Outcome::Unknown {
                    why: "the entry does not say whom it pays".into(),
                };
            };
            let body = crate::chain::receipt_request(&transaction);
            match js::rpc_noting(url, &body, refused)
                .await
                .as_deref()
                .and_then(|text| {
                    crate::chain::read_receipt_pays(text, &token, &from, &nonce, &to, value)
                }) {
                Some(true) => Outcome::Settled { transaction },
                Some(false) => Outcome::OnChainUsedElsewhere { transaction },
                None => Outcome::Unknown {
                    why: format!(
                        "the receipt of {transaction}, which used the nonce, could not be read"
                    ),
                },
            }
        }
        None if used_before(
            url,
            &token,
            &from,
            &nonce,
            first,
            attempt.admitted_at,
            refused,
        )
        .await =>
        {
            Outcome::OnChainUsedBefore
        }
        _ => Outcome::OnChainUsed,
    }
}

/// Whether the chain shows the nonce already used as of `block`, a block whose timestamp is
/// older than the admission (`admitted_at`, unix seconds): positive proof that it was used before
/// the payment came, which no lag, reorg or gap of a node's logs can fake. Not if either cannot be
/// read (a node that keeps no state that old answers an error).
async fn used_before(
    url: &str,
    token: &Address,
    from: &Address,
    nonce: &[u8; 32],
    block: Option<u64>,
    admitted_at: u64,
    refused: &Cell<bool>,
) -> bool {
    let Some(block) = block.filter(|b| *b > 0) else {
        return false;
    };
    let at = format!("0x{block:x}");
    let body = crate::chain::authorization_state_request(token, from, nonce, &at);
    if js::rpc_noting(url, &body, refused)
        .await
        .as_deref()
        .and_then(crate::chain::read_bool_result)
        != Some(true)
    {
        return false;
    }
    js::rpc_noting(url, &crate::chain::block_request(block), refused)
        .await
        .as_deref()
        .and_then(crate::chain::read_block_timestamp)
        .is_some_and(|t| t < admitted_at)
}

/// How many blocks one piece of a log query covers when the node refuses the whole range, and
/// how many pieces are asked at most.
const LOG_PIECE_BLOCKS: u64 = 500;
const LOG_PIECES: u32 = 10;

/// Whom a payment's authorization pays, and how much (atomic units): from the body it is settled
/// with (`paymentPayload.payload.authorization`, v1 and v2 alike).
fn signed_transfer(payload: &serde_json::Value) -> Option<(Address, u128)> {
    let auth = &payload["paymentPayload"]["payload"]["authorization"];
    let to = Address::parse(auth["to"].as_str()?).ok()?;
    let value = auth["value"].as_str()?.parse().ok()?;
    Some((to, value))
}

fn log_settlement(wallet: Option<&str>, id: &str, effect: Effect, unserved: bool) {
    let outcome = match effect {
        Effect::None => return,
        // Its request served nothing (its settlement unanswered there): charged, not served,
        // until the payer sends it again with its identifier (or is refunded).
        Effect::Settled if unserved => "settled_unserved",
        Effect::Settled => "settled",
        Effect::SettledAfterAll => "settled_after_failure",
        Effect::Failed {
            became_delinquent: true,
        } => "failed_delinquent",
        Effect::Failed { .. } => "failed",
        Effect::Retry { .. } => "retry",
    };
    worker::console_log!(
        "{}",
        serde_json::json!({"event": "settlement", "outcome": outcome, "payer": wallet, "id": id})
    );
}

/// Reads a value stored as JSON text (the default when nothing is stored). Values are kept as
/// text rather than as structured clones so that one serialiser (serde_json) serves the whole
/// Worker, which keeps the bundle small. A read that fails, or text that does not parse, is an
/// error, never taken for "nothing stored": the command would then write the empty value back
/// over what it could not read (every counted request bought, every sign-in nonce used).
async fn get_json<T: Read + Default>(storage: &worker::Storage, key: &str) -> Result<T> {
    match js::stored_text(storage.as_raw(), key).await? {
        None => Ok(T::default()),
        Some(text) => json::parse(&text).map_err(|_| worker::Error::RustError(key.into())),
    }
}

async fn put_json<T: Serialize>(storage: &worker::Storage, key: &str, value: &T) -> Result<()> {
    let text = serde_json::to_string(value)?;
    Ok(js::store(storage.as_raw(), key, text.into()).await?)
}
