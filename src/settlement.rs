//! Deferred settlement: serve first, settle later, and never lose track of a payment.
//!
//! A payment verified locally can be served at once and settled afterwards through the
//! facilitator's `/settle`. One Durable Object per paying wallet owns that wallet's [`Ledger`]
//! (strongly consistent, single-threaded) and stores it as rows ([`Ledger::take_rows`]: one per
//! entry, one per remembered nonce, one for the counters), writing only the rows a change touched,
//! so that an admission costs the same however many payments the batch holds. This module is the
//! ledger's pure state machine: no clock (every function takes `now`, unix seconds), no
//! randomness, no I/O. The shell calls it, performs the I/O it asks for (`/settle`, an optional
//! chain read of `authorizationState(from, nonce)`) and feeds the results back with
//! [`Ledger::record`].
//!
//! # The shell's loop
//!
//! ```text
//! request:  prune(now); admit(admission, held) → ask the origin →
//!             deferred:  answer < 400: serve, release(id) │ answer ≥ 400: withdraw(id)
//!             immediate: answer < 400: settle now, record │ answer ≥ 400: withdraw(id)
//! alarm:    prune(now); for a in due(now) { begin(a.id); perform a.action; record(a.id, outcome) }
//! always:   store take_rows(); set the alarm to next_alarm()
//! ```
//!
//! A deferred payment is admitted *before* the origin is asked (replay protection and the credit
//! check must come first) but may only be collected once the origin has answered successfully:
//! nobody pays for an error. So the Worker admits it *held* ([`Admission::held`]): see rule 2.
//!
//! [`Attempt::action`] says what to perform. [`Action::Settle`]: `POST /settle` with the payload and
//! record the answer ([`Outcome::from`] a [`SettleOutcome`]). [`Action::Reconcile`]: an earlier
//! attempt got no usable answer, so first find out whether the money moved: with an RPC URL read
//! `authorizationState(from, nonce)` and record [`Outcome::OnChainUsed`] /
//! [`Outcome::OnChainUnused`] (or [`Outcome::OnChainCancelled`] when the shell saw an
//! `AuthorizationCanceled` log, or [`Outcome::Settled`] when it found the transaction and its
//! receipt shows the payment's transfer, [`Outcome::OnChainUsedElsewhere`] when it shows none; a
//! read the node did not answer is an [`Outcome::ChainUnreadable`]); without one record
//! [`Outcome::NoRpc`]. The ledger then
//! schedules a resend if one is allowed ([`Effect::Retry`] at `now`: call [`Ledger::due`] again).
//! A shell without RPC may also resend directly when [`Attempt::may_resend`] is true; the answer is
//! judged the same way. [`Ledger::begin`] marks an entry in flight before the request leaves, so
//! that a crash between sending and recording is later reconciled rather than blindly resent.
//!
//! # The contract
//!
//! 1. **Nothing is dropped.** Every admitted entry ends as settled (with its transaction, `""` when
//!    only the chain state is known) or failed (with its reason). Failed entries stay visible until
//!    the admin forgives them ([`Ledger::revoke`], [`Ledger::clear_delinquency`]) or marks them paid
//!    ([`Ledger::mark_paid`]); settled entries stay up to `settled_history` (and, for the same
//!    payment sent again, those with a payment identifier for [`REPEAT_SECONDS`]), the rest are
//!    counted,
//!    and so do immediate payments refused at settlement (nothing was served for them, nobody
//!    owes) beyond the newest `settled_history` of them ([`Ledger::trim`]); not those whose origin
//!    did the request's work before the settlement ([`Admission::worked`]), which a refusal of
//!    the payer's own leaves owed. So
//!    `admitted == open + settled + failed + settled_trimmed + failed_trimmed + forgiven` at all
//!    times.
//! 2. **Admission**, in this order: the same payment sent again with its payment identifier
//!    ([`Admission::payment_id`]) for the same request, once served or while being answered, is a
//!    [`AdmitError::Repeat`] (its kept answer is given again, nothing is admitted or charged), and
//!    the identifier with another such payment an [`AdmitError::IdConflict`]; a delinquent wallet
//!    is refused with what it owes; an
//!    `(asset, nonce)` still remembered is a [`AdmitError::Replay`] (a payment is served at most
//!    once, even after it settled, until `validBefore` + [`REPLAY_GRACE`] has passed and it was
//!    pruned); for a deferred admission, `unsettled + lost + amount > credit_limit` is
//!    [`AdmitError::CreditExceeded`] (`lost`: deferred payments failed without the payer owing,
//!    until an admin forgives them, so that credit does not refill while settlements keep
//!    failing), with earned credit `unsettled + lost + amount > paid` (everything the
//!    wallet ever paid through settled entries) is [`AdmitError::CreditNotEarned`] (the shell then
//!    settles it before serving: a wallet is never trusted with more than it has paid), and
//!    `validBefore − safety_margin < now + batch_window` is
//!    [`AdmitError::TooLateToDefer`] (the shell then settles immediately or answers 402, per route).
//!    A deferred entry is due at `min(now + batch_window, validBefore − safety_margin)`, or at the
//!    open batch's due time when that is sooner, so one wake settles a whole batch. An immediate
//!    entry starts in flight: the shell settles it at once and records the outcome.
//!
//!    **Tickets.** Each admission carries a ticket drawn by the admitting request
//!    ([`Admission::ticket`]). Only that request may later withdraw, release or fail the entry
//!    ([`Ledger::owns`], [`Ledger::record_from`]): a replaying request, refused or not, cannot
//!    undo a payment that was served. And only that request may admit the same payment again
//!    while nothing was sent, when the answer to its admission was lost: the same admission is
//!    accepted as it stands, an immediate one turns the entry into that immediate settlement.
//!    This comes before the checks above: had the wallet become delinquent in between, turning
//!    the request away would still leave its held entry to be collected, unserved.
//!
//!    **Holds.** A deferred admission may be *held* while the origin answers. A held entry is open
//!    like any other (its nonce is remembered, its amount counts against the credit limit and in
//!    `unsettled`) but it is not attempted: [`Ledger::due`] leaves it out and its batch time does
//!    not drive [`Ledger::next_alarm`]. [`Ledger::release`] (the origin answered < 400, the content
//!    was served) makes it an ordinary pending entry, due at its batch time (or at once if that has
//!    passed); [`Ledger::withdraw`] (the origin answered ≥ 400) removes it, counted as forgiven,
//!    and forgets its nonce, since nothing was served and nothing was sent. A hold ends by itself
//!    at `min(admitted_at + HOLD_SECONDS, validBefore − safety_margin − HOLD_RETRY_ROOM)`, never
//!    before its batch time ([`HOLD_SECONDS`], [`HOLD_RETRY_ROOM`]); that
//!    time, not the batch's, is what the entry asks the alarm for while it is held, and from then
//!    on the entry is treated as released. A hold never outlasts the settlement deadline: past it
//!    the payment could not be collected at all.
//!
//!    Why an unanswered hold settles rather than forgets: the Worker withdraws an error on the
//!    request path, before the error is even returned, and releases only after the origin answered
//!    successfully. So a hold that nobody ends is most likely a release that was lost (the ledger
//!    briefly out of reach, the Worker cut off after the response left) for content that was
//!    served; forgetting it would give that content away. Settling charges for an error only when
//!    the origin took longer than the hold *and* then failed, or the withdrawal itself was lost.
//! 3. **Payer-caused refusal** (insufficient balance or funds, a bad signature, a KYT screen, a
//!    failed simulation, `invalid_payload`; not an `invalid_*` reason we do not know, which is
//!    retried as in rule 4, so that a facilitator naming its refusals anew does not make every
//!    payer delinquent at once): failed, and for a deferred
//!    entry the wallet becomes delinquent: `owed` grows by the amount and the wallet's next
//!    admissions are refused with it. `…nonce_already_used`, even on the first attempt, is judged
//!    by the chain, never on the facilitator's word: a cancelled authorization or a transfer of
//!    the payer's own under the same nonce ([`Outcome::OnChainCancelled`],
//!    [`Outcome::OnChainUsedElsewhere`]), or a nonce the chain shows used as of a block older
//!    than the admission ([`Outcome::OnChainUsedBefore`]: the payer sent an authorization it had
//!    already cancelled or spent, which local verification cannot see), leaves the payer owing
//!    as above; this authorization sent
//!    by someone else paid us ([`Outcome::Settled`]); a chain that cannot say which (a node behind,
//!    or one that will not show the token's logs; no RPC URL) holds nothing against the payer.
//!    If an earlier attempt may have moved the money, state-dependent refusals (balance, revert,
//!    simulation) are not held against the payer: our own lost settlement may be what drained the
//!    balance, so the chain is read first, as after an unanswered attempt (rule 5): money that
//!    moved is booked settled, a nonce still unused is sent again; refused so as often as an
//!    unanswered attempt may be, it fails (`unconfirmed_refusal`). Signature and KYT refusals are
//!    definite either way.
//! 4. **Transient or facilitator-side refusal** (`unexpected_*`, `invalid_transaction_state`,
//!    `invalid_request` from a broken facilitator, unsupported network/scheme, terms mismatches
//!    that local verification already ruled out, anything mentioning `rpc`, the facilitator's
//!    own account out of gas whatever reason it gives, and any reason we do not recognise):
//!    retried with exponential backoff (1, 2, 4 … capped at 60 s) but never later
//!    than `validBefore − safety_margin`. When that deadline passes the entry fails with
//!    [`EXPIRED_UNSETTLED`]: not delinquent (not the payer's fault), counted as lost revenue.
//!    An expiry refusal (`…valid_before`, `…expired`) ends the same way at once. A transient
//!    refusal can come after the facilitator broadcast (a failed receipt wait is reported as
//!    `unexpected_settle_error` too), so later answers are judged as after an uncertain attempt
//!    (but not after one made before anything was sent: a request the facilitator could not read),
//!    and when the deadline passes after one the chain is read (rule 5) before the entry is
//!    closed: money that moved is booked settled, not lost. Past the deadline nothing is resent.
//! 5. **Unknown** (timeout, 5xx, garbage, and refusals whose text says the transaction timed out or
//!    did not confirm, or that its send failed in a way that may follow the broadcast: the
//!    official facilitator's `…transaction_failed` without a transaction, a failed RPC request, a
//!    node that already knows the transaction or took the facilitator's nonce; the payment may or
//!    may not have moved): the next attempt reconciles first
//!    (see above). Used by a transaction that paid us settles the entry; `OnChainUnused` and
//!    `NoRpc` allow a resend while the deadline allows it. After such an attempt,
//!    `…nonce_already_used` from the facilitator is **not** taken as payment, nor as a
//!    cancellation: our own earlier settlement may have landed after all. The entry is read from
//!    the chain instead and never resent: used by a payment to us settles it, cancelled fails it as
//!    a cancellation, unused so far (our transaction may still be pending) is read again soon, up to
//!    `max_attempts_unknown` times, then once more at `validBefore` + [`CHAIN_GRACE`], when it
//!    can no longer move: used by then settles it, still unused fails it [`EXPIRED_UNSETTLED`]. Without RPC it fails with [`UNCONFIRMED_NONCE_USED`], not delinquent;
//!    so does a nonce the chain shows used when what used it cannot be read (`OnChainUsed`: the
//!    node would not show the logs), after being read again like an unanswered attempt: the state
//!    alone is the same after a payment and after a cancellation, and is never booked as paid. Reconciliation is bounded: more than
//!    `max_attempts_unknown` unanswered attempts in a row fail with [`SETTLEMENT_UNKNOWN`]. A chain
//!    read that finds the authorization unused ends the row: a facilitator that is down for a
//!    while is retried with backoff until the deadline, not given up while the chain says the money
//!    is still there to collect. Past the deadline only a chain read can still settle it (an
//!    authorization unused once `validBefore` + [`CHAIN_GRACE`] has passed can never move:
//!    [`EXPIRED_UNSETTLED`]); without RPC it fails with [`SETTLEMENT_UNKNOWN`]. An attempt whose
//!    calls the platform refused to make (its limit on one invocation's calls) is none:
//!    [`Outcome::NotSent`] leaves the entry as it was, due again a second later.
//! 6. **Immediate entries** (not deferred) are served only if settlement succeeds, as the shell does
//!    today. So a refusal for cause fails them without delinquency (the client got a 402 and
//!    nothing). After an Unknown, or a transient refusal (which may come after a broadcast, rule
//!    4; the shell then tells the client that the outcome is unknown, see
//!    [`refusal_is_uncertain`]), they are reconciled by chain reads only, never resent. A chain
//!    read that finds them used settles them (charged, not served: the view shows it for a
//!    refund). An immediate entry whose admitting request recorded anything but a settlement is
//!    marked unserved: settled later, the same payment sent again with its identifier is an
//!    [`AdmitError::Unserved`], given to that one request to serve (the entry takes its ticket;
//!    its withdrawal, the origin having failed, marks it unserved again; its release, the origin
//!    having answered, marks it served), and answered again as a served payment from then on. A
//!    request given it that neither releases nor withdraws it within
//!    [`LedgerPolicy::serve_within`] (its isolate gone) leaves it owed: the next repeat is given it.
//! 7. `unsettled` is the sum of open (pending, in-flight, unknown) amounts in micro-USD; credit is
//!    per wallet. `owed` is the sum of delinquent failures; `lost` of other deferred failures;
//!    `paid` of every entry that ever settled (admin `mark_paid` included), kept in the counters so
//!    that trimming history does not shrink it.
//! 8. **Deterministic**: the same calls with the same times give the same ledger.
//!
//! Stored compactly: short keys, no payload once an entry is closed, nonces remembered as 128-bit
//! hashes. u128 amounts are written as decimal strings so that JavaScript never rounds them.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::facilitator::SettleOutcome;
use crate::json::{self, Fields, Read};

/// The facilitator refuses to settle when `now + 6 ≥ validBefore` (its `/settle` re-verifies).
pub const FACILITATOR_WINDOW: u64 = 6;
/// The smallest usable safety margin: at `validBefore − 6` the facilitator already refuses.
pub const MIN_SAFETY_MARGIN: u64 = FACILITATOR_WINDOW + 1;
/// Longest wait between two attempts, in seconds.
pub const MAX_BACKOFF: u64 = 60;
/// How long after `validBefore` a nonce is still remembered (clock skew between isolates).
pub const REPLAY_GRACE: u64 = 300;
/// How long an attempt may stay in flight before its outcome counts as unknown.
pub const IN_FLIGHT_LEASE: u64 = 120;
/// After `validBefore`, how long to wait before a chain read saying "unused" is final (block
/// timestamps trail the wall clock, and a lost transaction may still be in the mempool).
pub const CHAIN_GRACE: u64 = 60;
/// How long a held deferred entry waits for the Worker to release or withdraw it before it is
/// released by itself (see the module documentation, rule 2): far longer than an origin normally
/// takes to answer, short enough that a lost release delays settlement by only a couple of minutes.
pub const HOLD_SECONDS: u64 = 120;
/// How long before its settlement deadline a hold ends at the latest: room for the first retries
/// (1, 2 and 4 s) of a settlement it lapses into, its release lost.
pub const HOLD_RETRY_ROOM: u64 = 8;

/// How long a served payment that carried a payment identifier may be sent again and answered
/// again (its answer is kept as long).
pub const REPEAT_SECONDS: u64 = 3600;
/// How long after its admission a served payment's answer may still be on its way to the store
/// that keeps it for a repeat: the origin's time (at most [`HOLD_SECONDS`] while held), then the
/// client's reading of it, then a minute for the store to show it everywhere.
pub const ANSWER_KEPT_SECONDS: u64 = HOLD_SECONDS + 60;
/// The most settled payments with identifiers kept for that beyond the settled history.
pub const REPEATABLE_KEPT: usize = 256;

/// Failure: the authorization lapsed while the facilitator could not settle it.
pub const EXPIRED_UNSETTLED: &str = "expired_unsettled";
/// Failure: the nonce used (`…nonce_already_used`, or the chain's `authorizationState`) after an
/// attempt that may itself have settled the payment, with no chain read to tell that settlement
/// from a cancellation (no RPC URL, or a node that would not show the token's logs).
pub const UNCONFIRMED_NONCE_USED: &str = "unconfirmed_nonce_used";
/// Failure: a state-dependent refusal (balance, revert) after an attempt that may have settled the
/// payment, still refused after the chain was read (or could not be) as often as an unanswered
/// attempt is.
pub const UNCONFIRMED_REFUSAL: &str = "unconfirmed_refusal";
/// Failure: no usable answer could be had and the chain could not be read.
pub const SETTLEMENT_UNKNOWN: &str = "settlement_unknown";
/// Failure: the chain shows the payer cancelled the authorization.
pub const AUTHORIZATION_CANCELLED: &str = "authorization_cancelled";
/// Failure: the chain shows the nonce used by a transfer that did not pay this payment.
pub const AUTHORIZATION_USED_ELSEWHERE: &str = "authorization_used_elsewhere";
/// Failure: the chain shows the nonce used (cancelled, or spent by a transfer of the payer's own)
/// before the payment was admitted.
pub const AUTHORIZATION_USED_BEFORE: &str = "authorization_used_before";

/// The publisher's settlement policy for one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerPolicy {
    /// Unsettled total (micro-USD, 6 decimals) a wallet may run up with deferred payments.
    pub credit_limit: u128,
    /// How long a deferred payment waits for others to settle with it, in seconds.
    pub batch_window: u64,
    /// Seconds before `validBefore` by which settlement must be done. Values below
    /// [`MIN_SAFETY_MARGIN`] are treated as that.
    pub safety_margin: u64,
    /// Attempts without a usable answer before an entry is given up as [`SETTLEMENT_UNKNOWN`].
    pub max_attempts_unknown: u32,
    /// How many settled entries to keep for the view (and as many immediate payments refused at
    /// settlement).
    pub settled_history: usize,
    /// Credit is earned: a wallet may leave unsettled no more than it has already paid in settled
    /// payments (and never more than `credit_limit`), so a new wallet's first payment is settled
    /// before it is served. When `false`, every wallet starts with the whole `credit_limit`.
    pub earned_credit: bool,
    /// How long a request given a payment owed its content ([`AdmitError::Unserved`]) has to say
    /// that it served it or could not, in seconds: the origin's time and a margin. Past it, the
    /// request is taken for gone, and the next repeat is given the payment.
    pub serve_within: u64,
}

impl Default for LedgerPolicy {
    /// $1 of credit (earned), a 60 s batch, a 30 s margin, 5 reconciliations, 20 settled
    /// entries.
    fn default() -> Self {
        LedgerPolicy {
            credit_limit: 1_000_000,
            batch_window: 60,
            safety_margin: 30,
            max_attempts_unknown: 5,
            settled_history: 20,
            earned_credit: true,
            serve_within: HOLD_SECONDS,
        }
    }
}

impl LedgerPolicy {
    /// The safety margin actually applied.
    pub fn margin(&self) -> u64 {
        self.safety_margin.max(MIN_SAFETY_MARGIN)
    }

    /// Whether a payment valid until `valid_before` may be deferred at `now`: its settlement
    /// deadline (`valid_before` less the safety margin) comes no sooner than the batch window's
    /// end. Otherwise it is settled before it is served.
    pub fn may_defer(&self, now: u64, valid_before: u64) -> bool {
        valid_before.saturating_sub(self.margin()) >= now.saturating_add(self.batch_window)
    }

    /// When a deferred payment admitted held at `now` lapses into its batch if nobody releases or
    /// withdraws it: [`HOLD_SECONDS`] later, or [`HOLD_RETRY_ROOM`] before its settlement deadline
    /// if sooner (so that a settlement it lapses into can still be tried again), but never before
    /// its batch would have come due.
    pub fn hold_ends(&self, now: u64, valid_before: u64) -> u64 {
        let deadline = valid_before.saturating_sub(self.margin());
        let room = deadline
            .saturating_sub(HOLD_RETRY_ROOM)
            .max(now.saturating_add(self.batch_window))
            .min(deadline);
        now.saturating_add(HOLD_SECONDS).min(room)
    }
}

/// A locally verified payment, handed to the ledger before it is served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admission {
    /// `chain:asset:nonce`, unique.
    pub id: String,
    /// Token contract, lowercase.
    pub asset: String,
    /// `0x` + 64 lowercase hex digits.
    pub nonce: String,
    /// Atomic units, decimal.
    pub amount: String,
    /// The amount in micro-USD.
    #[serde(with = "dec")]
    pub amount_micro_usd: u128,
    /// The authorization's `validBefore`, unix seconds.
    pub valid_before: u64,
    pub route: String,
    pub network: String,
    /// Served before settlement (`true`) or settled before the response leaves (`false`).
    pub deferred: bool,
    /// The facilitator request body, opaque.
    pub payload: Value,
    /// Deferred only: not to be settled until [`Ledger::release`]d (the origin answered) or
    /// [`HOLD_SECONDS`] have passed; withdrawn if the origin fails. Ignored for immediate entries.
    #[serde(default, skip_serializing_if = "is_false")]
    pub held: bool,
    /// Drawn afresh by the admitting request: it names that request in its later commands
    /// ([`Ledger::owns`]), so that another request carrying the same payment can neither withdraw,
    /// release nor fail it, and the same request may send its admission again when an answer was
    /// lost. Empty from a Worker of an earlier version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ticket: String,
    /// Immediate only: the origin does the request's work (a method other than `GET` and `HEAD`)
    /// before the payment is settled, so a refusal that is the payer's doing (funds moved away,
    /// the authorization cancelled) leaves the payer owing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub worked: bool,
    /// The payment's `payment-identifier`, where its route offers the extension: the same payment
    /// sent again with it, for the same `request`, is a [`AdmitError::Repeat`], not a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// With a payment identifier: the method and URL the payment was sent with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request: String,
    /// Given a payment owed its content ([`AdmitError::Unserved`]), the request will say that it
    /// served it ([`Ledger::release`]) or could not ([`Ledger::withdraw`]): the ledger waits
    /// [`LedgerPolicy::serve_within`] for that, then gives it to the next repeat. `false` from a
    /// Worker of an earlier version, which never says so: the payment counts as served once given.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reports_serving: bool,
}

/// Why an admission was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitError {
    /// This authorization was already admitted.
    Replay,
    /// The wallet owes for payments that were served and then refused for its own reasons.
    Delinquent {
        owed_micro_usd: u128,
        reason: String,
    },
    /// Deferring this payment would exceed the wallet's credit. `unsettled` counts the open
    /// deferred payments and those lost ([`LedgerView::lost_micro_usd`]).
    CreditExceeded { unsettled: u128, limit: u128 },
    /// Deferring this payment would leave more unsettled than the wallet has ever paid (credit is
    /// earned, [`LedgerPolicy::earned_credit`]): it must be settled before it is served.
    CreditNotEarned { unsettled: u128, paid: u128 },
    /// The authorization expires before a batch could settle it.
    TooLateToDefer,
    /// This payment was admitted before with the same identifier, for the same request: its
    /// answer is given again, and it is not charged again; `in_progress` while the request that
    /// sent it first may not have answered yet.
    Repeat { in_progress: bool },
    /// The payment identifier was given with another payment of this wallet.
    IdConflict,
    /// This payment, sent again with its identifier, settled without its content being served
    /// (its settlement's answer was lost to the request that sent it): the request admitting it
    /// now serves it, with this transaction as its receipt, and nothing more is charged.
    Unserved { transaction: String },
}

impl AdmitError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Replay => "replay",
            AdmitError::Delinquent { .. } => "delinquent",
            AdmitError::CreditExceeded { .. } => "credit_exceeded",
            AdmitError::CreditNotEarned { .. } => "credit_not_earned",
            AdmitError::TooLateToDefer => "too_late_to_defer",
            AdmitError::Repeat { in_progress: true } => "in_progress",
            AdmitError::Repeat { .. } => "repeat",
            AdmitError::IdConflict => "id_conflict",
            AdmitError::Unserved { .. } => "unserved",
        }
    }
}

impl std::fmt::Display for AdmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdmitError::Replay => f.write_str("This payment authorization was already used."),
            AdmitError::Delinquent {
                owed_micro_usd,
                reason,
            } => write!(
                f,
                "This wallet owes {} USD for payments that could not be settled ({reason}).",
                usd(*owed_micro_usd)
            ),
            AdmitError::CreditExceeded { unsettled, limit } => write!(
                f,
                "This wallet has {} USD unsettled (or lost to settlements that failed); the limit \
                 is {} USD.",
                usd(*unsettled),
                usd(*limit)
            ),
            AdmitError::CreditNotEarned { unsettled, paid } => write!(
                f,
                "This wallet has {} USD unsettled (or lost to settlements that failed) and has \
                 paid {} USD so far; it is trusted for no more than it has paid.",
                usd(*unsettled),
                usd(*paid)
            ),
            AdmitError::TooLateToDefer => {
                f.write_str("The authorization expires too soon to be settled later.")
            }
            AdmitError::Repeat { in_progress } => f.write_str(match in_progress {
                true => "This payment is still being answered to the request that sent it first.",
                false => "This payment was answered before, with the same identifier.",
            }),
            AdmitError::IdConflict => {
                f.write_str("This payment identifier was given with another payment.")
            }
            AdmitError::Unserved { .. } => {
                f.write_str("This payment was settled and its content not served yet.")
            }
        }
    }
}

impl std::error::Error for AdmitError {}

/// Why an admin operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminError {
    /// No entry has this id.
    NotFound,
    /// The entry is settled, or an attempt may have moved its money: it cannot be changed so.
    NotAllowed,
    /// An immediate payment's content was never served, so nothing was owed: only the
    /// transaction that moved its money after all may mark it paid.
    NoTransaction,
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminError::NotFound => "no entry has this id",
            AdminError::NotAllowed => "this entry cannot be changed in its current state",
            AdminError::NoTransaction => {
                "this payment's content was never served, so nothing was owed: name the \
                 transaction that moved its money (tx=0x…) to mark it paid"
            }
        })
    }
}

impl std::error::Error for AdminError {}

/// What the result of an attempt was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The facilitator settled it (or the shell confirmed the transaction some other way).
    Settled { transaction: String },
    /// The facilitator refused it.
    Refused { reason: String, message: String },
    /// No usable answer (timeout, 5xx, garbage, a failed chain read).
    Unknown { why: String },
    /// `authorizationState` says used, and what used it could not be read (record `Settled`,
    /// `OnChainCancelled` or `OnChainUsedElsewhere` when known): read again, then failed as
    /// [`UNCONFIRMED_NONCE_USED`]; never settled on that alone, since a cancellation leaves the
    /// same state.
    OnChainUsed,
    /// `authorizationState` says unused: safe to resend.
    OnChainUnused,
    /// The chain shows an `AuthorizationCanceled` for this nonce: the payer cancelled it.
    OnChainCancelled,
    /// `authorizationState` says used as of a block whose timestamp is older than the payment's
    /// admission (the first block its logs were searched from), and the logs name no use since:
    /// it was used before the payment was sent here, so neither by our settlement nor after it.
    OnChainUsedBefore,
    /// The nonce was used by `transaction`, which did not pay this payment's recipient its amount:
    /// the payer spent the nonce on another transfer of its own, and nothing came to us.
    OnChainUsedElsewhere { transaction: String },
    /// A reconciliation was asked for but no RPC URL is configured.
    NoRpc,
    /// The chain's node did not answer a reconciliation's read (down, or an answer that could
    /// not be read). As [`Outcome::Unknown`], except that where nothing said the nonce was used, a
    /// payment still collectable is sent again, as without an RPC URL: a node and a facilitator
    /// both away for a while are no reason to give it up before its deadline.
    ChainUnreadable { why: String },
    /// The platform refused to make the attempt's calls: the limit on the calls one invocation
    /// may make was reached ([`refused_by_limit`]). Nothing was asked, nothing is learned: the
    /// entry is due again at once, for the next invocation, as it was before.
    NotSent { action: Action },
}

/// What the shell's calls carry when the platform refused to make them (its limit on the calls
/// of one invocation).
pub const LIMIT_MARK: &str = "x402:limit";

/// Whether an attempt's `outcome` comes from calls the platform refused to make, `limited`
/// saying that it refused one of this attempt's calls: a settlement whose own call was refused
/// (the answer carries [`LIMIT_MARK`]), or a reconciliation that learned nothing for certain (a
/// read it needed was refused). Such an attempt is recorded as [`Outcome::NotSent`]; one the
/// facilitator or the chain answered is recorded as it came.
pub fn refused_by_limit(action: Action, outcome: &Outcome, limited: bool) -> bool {
    limited
        && match action {
            Action::Settle => {
                matches!(outcome, Outcome::Unknown { why } if why.contains(LIMIT_MARK))
            }
            Action::Reconcile => matches!(
                outcome,
                Outcome::Unknown { .. } | Outcome::ChainUnreadable { .. } | Outcome::OnChainUsed
            ),
        }
}

impl From<SettleOutcome> for Outcome {
    fn from(o: SettleOutcome) -> Self {
        match o {
            SettleOutcome::Settled(r) => Outcome::Settled {
                transaction: r.transaction,
            },
            SettleOutcome::Refused { reason, message } => Outcome::Refused { reason, message },
            SettleOutcome::Unknown(why) => Outcome::Unknown { why },
        }
    }
}

/// What [`Ledger::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing: no such entry, or it was already closed.
    None,
    /// The entry is settled.
    Settled,
    /// An entry closed as failed is settled after all (a confirmed answer came late): the
    /// payer's debts may have changed.
    SettledAfterAll,
    /// The entry failed; `became_delinquent` when it is held against the payer.
    Failed { became_delinquent: bool },
    /// The entry is still open; its next attempt is due at `at` (possibly `now`).
    Retry { at: u64 },
}

/// What the shell must do for a due entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /settle` with the payload.
    Settle,
    /// Find out whether an unanswered attempt moved the money: read the chain, or record `NoRpc`.
    Reconcile,
}

/// One attempt the shell should make now.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: String,
    pub action: Action,
    pub asset: String,
    pub nonce: String,
    pub network: String,
    /// When the entry was admitted, unix seconds (how far back a chain read must look).
    pub admitted_at: u64,
    /// The facilitator request body, as admitted.
    pub payload: Value,
    /// Whether a `/settle` may be sent now (false for immediate entries and past the deadline).
    pub may_resend: bool,
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    InFlight,
    Unknown,
    Settled,
    Failed,
}

/// One entry, as shown to the publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryView {
    pub id: String,
    pub status: Status,
    pub asset: String,
    pub nonce: String,
    pub amount: String,
    #[serde(with = "dec")]
    pub amount_micro_usd: u128,
    pub valid_before: u64,
    pub route: String,
    pub network: String,
    pub deferred: bool,
    pub admitted_at: u64,
    /// When the next attempt is due (open entries); for a held entry, when its hold ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<u64>,
    /// Held (admitted, the origin not answered yet): released by itself at this time at the latest.
    /// On a settled entry owed its content (`unserved`): the request it was given to has until then
    /// to serve it; past it (that request gone), the next repeat is given it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<u64>,
    /// When it settled or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Why it failed, or the last unanswered attempt's story (unknown entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Failed and held against the payer.
    pub delinquent: bool,
    /// Transient refusals so far.
    pub retries: u32,
    /// Attempts without a usable answer so far.
    pub unknowns: u32,
    /// An immediate payment its first request did not serve (its settlement's outcome unknown
    /// there), still owed its content: settled, it is charged and not served until the payer
    /// sends it again with its payment identifier and that request serves it (or it is refunded).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unserved: bool,
}

/// The ledger as shown to the publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerView {
    /// Open entries: pending, in flight, or unknown.
    pub pending: Vec<EntryView>,
    /// The most recent settled entries.
    pub settled: Vec<EntryView>,
    /// Every failed entry not yet forgiven or paid, but for immediate payments refused at
    /// settlement beyond the newest `settled_history` of them (counted in `failed_trimmed`).
    pub failed: Vec<EntryView>,
    #[serde(with = "dec")]
    pub unsettled_micro_usd: u128,
    #[serde(with = "dec")]
    pub owed_micro_usd: u128,
    /// Deferred payments served and not (or not provably) paid, through no fault of the payer.
    #[serde(with = "dec")]
    pub lost_micro_usd: u128,
    pub delinquent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delinquent_reason: Option<String>,
    pub admitted: u64,
    pub settled_trimmed: u64,
    /// Immediate payments refused at settlement (nothing served) beyond the newest
    /// `settled_history`, counted instead of kept.
    pub failed_trimmed: u64,
    pub forgiven: u64,
    /// Everything this wallet has paid through settled entries, micro-USD.
    #[serde(with = "dec")]
    pub paid_micro_usd: u128,
    pub remembered_nonces: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_alarm: Option<u64>,
}

/// How a facilitator refusal is judged (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The payer's doing. `definite` when no earlier settlement of ours could have caused it
    /// (signature, KYT), as opposed to balance or revert refusals.
    Payer { definite: bool },
    /// The authorization's nonce is already used on chain.
    NonceUsed,
    /// The authorization expired.
    Expired,
    /// The facilitator's or the network's trouble: retry.
    Transient,
    /// A refusal that says the transaction may still land (timeout, not confirmed): unknown.
    Unanswered,
}

/// Whether a facilitator's refusal to settle leaves open that the money moved: an unanswered
/// attempt in all but name, or a transient refusal that can come after the transaction was
/// broadcast (a failed receipt wait is reported as `unexpected_settle_error`; an RPC error; a
/// reason we do not know), as opposed to one made before anything was sent. The client of an
/// immediate payment so refused is told that the outcome is unknown, not that nothing was
/// charged, and the ledger reads the chain (rule 6).
pub fn refusal_is_uncertain(reason: &str, message: &str) -> bool {
    match classify_refusal(reason, message) {
        RefusalKind::Unanswered => true,
        RefusalKind::Transient => {
            !refused_before_sending(&reason.to_ascii_lowercase(), &message.to_ascii_lowercase())
        }
        _ => false,
    }
}

/// A facilitator-side refusal that comes before any transaction is sent: the request or the
/// facilitator's own setup (`invalid_request`, an unsupported network), or terms that local
/// verification already checked. `r` and `m` in lower case.
fn refused_before_sending(r: &str, m: &str) -> bool {
    const FACILITATOR_SIDE: [&str; 8] = [
        "invalid_request",
        "invalid_network",
        "invalid_scheme",
        "invalid_x402_version",
        "invalid_payment_requirements",
        "invalid_exact_evm_scheme",
        "invalid_exact_evm_missing_eip712_domain",
        "invalid_exact_evm_eip3009_not_supported",
    ];
    FACILITATOR_SIDE.contains(&r)
        || facilitator_out_of_gas(m)
        // The Go facilitator's own failures before its send, under the scheme's prefix: a node
        // that did not answer its reads (`…_failed_to_check_nonce`, `…_failed_to_get_balance`,
        // `…_failed_to_verify_signature`, `…_verification_failed`), its account out of gas
        // (`…_relayer_insufficient_funds`). A signature it could not parse is the payer's; its
        // failed send or receipt wait may follow the broadcast (see `classify_refusal`).
        || (r.contains("failed_to_") && !r.contains("parse"))
        || r.ends_with("verification_failed")
        || r.contains("relayer")
        || r.starts_with("unsupported")
        || r.contains("valid_after")
        || r.ends_with("_early")
        || r == "invalid_format"
        || m.contains("not yet valid")
        || r.contains("hook")
        || r.contains("mismatch")
        || r.contains("authorization_value")
}

/// The node's refusal of a transaction whose sender cannot pay its gas (`m` in lower case).
fn facilitator_out_of_gas(m: &str) -> bool {
    m.contains("for gas") || m.contains("intrinsic gas") || m.contains("gas required exceeds")
}

/// Judges a facilitator refusal by its reason string and message (both treated as opaque text).
pub fn classify_refusal(reason: &str, message: &str) -> RefusalKind {
    let r = reason.to_ascii_lowercase();
    let m = message.to_ascii_lowercase();
    let either = |needle: &str| r.contains(needle) || m.contains(needle);
    // The node refused the facilitator's own transaction before it was sent: its account's gas
    // (which the official facilitator reports as the payer's `insufficient_balance`, its pattern
    // matching "insufficient funds for gas … balance").
    if facilitator_out_of_gas(&m) {
        return RefusalKind::Transient;
    }
    if [
        "timeout",
        "timed out",
        "did not confirm",
        "not confirmed",
        "settlement_pending",
    ]
    .into_iter()
    .any(either)
        // Sending the transfer failed in a way that may follow its broadcast: the official
        // facilitator answers `…transaction_failed` with no transaction for any error of its
        // send (a gateway's 502 after it forwarded the transaction, a node that already has it,
        // its own account's nonce taken), and the node's words are only in the message.
        || r.ends_with("transaction_failed")
        // The Go facilitator's failure to send the transfer (its fallback for any error of the
        // send, a reset connection after the transaction left included) or to read its receipt.
        || r.contains("failed_to_execute")
        || r.contains("failed_to_get_receipt")
        || [
            "request failed",
            "already known",
            "nonce too low",
            "underpriced",
            "fetch failed",
        ]
        .into_iter()
        .any(|needle| m.contains(needle))
    {
        return RefusalKind::Unanswered;
    }
    if r.contains("nonce_already_used")
        || r.contains("nonce_used")
        || r == "duplicate_settlement"
        || m.contains("authorization is used")
    {
        return RefusalKind::NonceUsed;
    }
    if r.contains("valid_before") || r.contains("expired") || m.contains("authorization is expired")
    {
        return RefusalKind::Expired;
    }
    if r.starts_with("unexpected")
        || r.contains("rpc")
        || r.contains("network_error")
        || r == "invalid_transaction_state"
        || refused_before_sending(&r, &m)
    {
        return RefusalKind::Transient;
    }
    if r.contains("signature") || r.contains("kyt") || r.contains("undeployed") {
        return RefusalKind::Payer { definite: true };
    }
    // The payer's balance, or a transfer the token refused in simulation or on the facilitator's
    // reading of the payload. Another `invalid_…` is not taken for the payer's fault: a
    // facilitator that names its refusals anew must not make every payer owe at once.
    if r.contains("insufficient")
        || r.contains("simulation")
        || r.contains("typed_data")
        || r == "invalid_payload"
        || r == "invalid_payment"
    {
        return RefusalKind::Payer { definite: false };
    }
    RefusalKind::Transient
}

/// Row keys: an entry (`e:` + id), a remembered nonce (`s:` + replay key), the counters.
pub const ENTRY_ROW: &str = "e:";
pub const SEEN_ROW: &str = "s:";
pub const COUNTERS_ROW: &str = "counters";

/// One stored row: its key, and its JSON text (`None`: delete the row).
pub type Row = (String, Option<String>);

/// The most keys one call of Durable Object storage takes (a `put` of several entries, a `delete`
/// of several keys), by Cloudflare's documented limit.
pub const KEYS_PER_CALL: usize = 128;

/// One storage call of a write: rows to put, or keys to delete.
#[derive(Debug, PartialEq, Eq)]
pub enum StorageCall {
    Put(Vec<(String, String)>),
    Delete(Vec<String>),
}

/// The storage calls that write `rows`, each of at most [`KEYS_PER_CALL`] keys: the puts, then
/// the deletes, each in the rows' order.
pub fn storage_calls(rows: Vec<Row>) -> Vec<StorageCall> {
    let (mut puts, mut deletes) = (Vec::new(), Vec::new());
    for (key, value) in rows {
        match value {
            Some(v) => puts.push((key, v)),
            None => deletes.push(key),
        }
    }
    let puts = puts
        .chunks(KEYS_PER_CALL)
        .map(|c| StorageCall::Put(c.to_vec()));
    let deletes = deletes.chunks(KEYS_PER_CALL);
    puts.chain(deletes.map(|c| StorageCall::Delete(c.to_vec())))
        .collect()
}

/// One wallet's deferred payments. Its Durable Object stores it as rows ([`Ledger::take_rows`]);
/// ledgers stored whole as one JSON value (before rows) are still read ([`Ledger::mark_all`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    entries: Vec<Entry>,
    /// Remembered `(asset, nonce)` hashes and when to forget them.
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<Seen>,
    #[serde(rename = "c", default, skip_serializing_if = "Counters::is_zero")]
    counters: Counters,
    /// What changed since the rows were last taken.
    #[serde(skip)]
    dirty: Dirty,
}

/// Two ledgers are equal when they hold the same payments (in the same order), the same
/// remembered nonces (in any order) and the same counters; which rows are still to be written is
/// not part of a ledger's value.
impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        fn sorted(seen: &[Seen]) -> Vec<(&str, u64)> {
            let mut v: Vec<(&str, u64)> = seen.iter().map(|s| (s.0.as_str(), s.1)).collect();
            v.sort_unstable();
            v
        }
        self.entries == other.entries
            && self.counters == other.counters
            && sorted(&self.seen) == sorted(&other.seen)
    }
}

/// The rows a change touched: entries by id, remembered nonces by key (either may repeat: the
/// rows are the same), the counters.
#[derive(Debug, Clone, Default)]
struct Dirty {
    entries: Vec<String>,
    seen: Vec<String>,
    counters: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Seen(String, u64);

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Counters {
    #[serde(rename = "a", default, skip_serializing_if = "is_zero_u64")]
    admitted: u64,
    #[serde(rename = "t", default, skip_serializing_if = "is_zero_u64")]
    trimmed: u64,
    #[serde(rename = "f", default, skip_serializing_if = "is_zero_u64")]
    forgiven: u64,
    /// Immediate payments refused at settlement, trimmed from the history (see [`Ledger::trim`]).
    #[serde(rename = "ft", default, skip_serializing_if = "is_zero_u64")]
    failed_trimmed: u64,
    /// Micro-USD paid through settled entries, ever (trimmed ones included): the earned credit.
    #[serde(
        rename = "p",
        default,
        skip_serializing_if = "is_zero_u128",
        with = "dec"
    )]
    paid: u128,
}

impl Counters {
    fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Entry {
    id: String,
    /// Admission order within the ledger (rows are read back in key order, not this one).
    #[serde(rename = "q", default)]
    seq: u64,
    #[serde(rename = "a")]
    asset: String,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "v")]
    amount: String,
    #[serde(rename = "u", with = "dec")]
    micro: u128,
    #[serde(rename = "vb")]
    valid_before: u64,
    #[serde(rename = "r")]
    route: String,
    #[serde(rename = "net")]
    network: String,
    #[serde(rename = "at")]
    admitted_at: u64,
    #[serde(rename = "i", default, skip_serializing_if = "is_false")]
    immediate: bool,
    /// [`Admission::worked`].
    #[serde(rename = "w", default, skip_serializing_if = "is_false")]
    worked: bool,
    #[serde(rename = "s")]
    state: State,
    /// Transient refusals so far (drives the backoff).
    #[serde(rename = "tr", default, skip_serializing_if = "is_zero_u32")]
    tries: u32,
    /// Attempts without a usable answer so far (drives the backoff).
    #[serde(rename = "uk", default, skip_serializing_if = "is_zero_u32")]
    unknowns: u32,
    /// Attempts without a usable answer since a chain read last showed the authorization unused:
    /// what [`LedgerPolicy::max_attempts_unknown`] bounds. A facilitator that is down is not a
    /// reason to give up a payment the chain says is still collectable; the deadline bounds that.
    #[serde(rename = "ur", default, skip_serializing_if = "is_zero_u32")]
    unresolved: u32,
    /// An earlier attempt may have moved the money.
    #[serde(rename = "x", default, skip_serializing_if = "is_false")]
    uncertain: bool,
    /// The facilitator said the nonce was used after an uncertain attempt: only the chain can tell
    /// our own settlement from a cancellation, so the entry is read, never resent.
    #[serde(rename = "nu", default, skip_serializing_if = "is_false")]
    used_reported: bool,
    /// Held until released, withdrawn or this time, whichever comes first (pending, never attempted;
    /// or settled, owed its content and given to a request, which has until then to serve it).
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    held_until: Option<u64>,
    /// The facilitator body; dropped once the entry is closed.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
    /// The admitting request's [`Admission::ticket`].
    #[serde(rename = "k", default, skip_serializing_if = "String::is_empty")]
    ticket: String,
    /// [`Admission::payment_id`], kept while the entry is.
    #[serde(rename = "pi", default, skip_serializing_if = "Option::is_none")]
    payment_id: Option<String>,
    /// [`Admission::request`].
    #[serde(rename = "rq", default, skip_serializing_if = "String::is_empty")]
    request: String,
    /// An immediate payment its admitting request did not serve (it recorded an outcome other
    /// than a settlement): `Some(0)` while it is owed its content, then the time a repeat with
    /// its identifier was given it ([`Ledger::admit`]), served once `held_until` is cleared (by
    /// the request's release). `None` for a payment served as usual.
    #[serde(rename = "us", default, skip_serializing_if = "Option::is_none")]
    unserved: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
enum State {
    #[serde(rename = "p")]
    Pending {
        #[serde(rename = "d")]
        due: u64,
    },
    #[serde(rename = "f")]
    InFlight {
        #[serde(rename = "d")]
        since: u64,
    },
    #[serde(rename = "u")]
    Unknown {
        #[serde(rename = "d")]
        due: u64,
        #[serde(rename = "w", default)]
        why: String,
    },
    #[serde(rename = "s")]
    Settled {
        #[serde(rename = "tx", default)]
        tx: String,
        #[serde(rename = "d")]
        at: u64,
    },
    #[serde(rename = "x")]
    Failed {
        #[serde(rename = "r")]
        reason: String,
        #[serde(rename = "m", default, skip_serializing_if = "String::is_empty")]
        message: String,
        #[serde(rename = "d")]
        at: u64,
        #[serde(rename = "o", default, skip_serializing_if = "is_false")]
        owed: bool,
    },
}

impl State {
    fn is_open(&self) -> bool {
        matches!(
            self,
            State::Pending { .. } | State::InFlight { .. } | State::Unknown { .. }
        )
    }
}

// Reading what was written: field names as the `serde` attributes above write them, absent
// optional fields as their defaults (so rows written by earlier versions read unchanged).

impl Read for Admission {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(Admission {
            id: f.get("id")?,
            asset: f.get("asset")?,
            nonce: f.get("nonce")?,
            amount: f.get("amount")?,
            amount_micro_usd: f.decimal("amount_micro_usd")?,
            valid_before: f.get("valid_before")?,
            route: f.get("route")?,
            network: f.get("network")?,
            deferred: f.get("deferred")?,
            payload: f.get("payload")?,
            held: f.or_default("held")?,
            ticket: f.or_default("ticket")?,
            worked: f.or_default("worked")?,
            payment_id: f.maybe("payment_id")?,
            request: f.or_default("request")?,
            reports_serving: f.or_default("reports_serving")?,
        })
    }
}

/// A ledger stored whole, as one JSON value (before rows).
impl Read for Ledger {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        let seen: Vec<(String, u64)> = f.or_default("s")?;
        Ok(Ledger {
            entries: f.or_default("e")?,
            seen: seen.into_iter().map(|(k, until)| Seen(k, until)).collect(),
            counters: f.or_default("c")?,
            dirty: Dirty::default(),
        })
    }
}

impl Read for Counters {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(Counters {
            admitted: f.or_default("a")?,
            trimmed: f.or_default("t")?,
            failed_trimmed: f.or_default("ft")?,
            forgiven: f.or_default("f")?,
            paid: match f.maybe::<json::Decimal>("p")? {
                Some(d) => d.0,
                None => 0,
            },
        })
    }
}

impl Read for Entry {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(Entry {
            id: f.get("id")?,
            seq: f.or_default("q")?,
            asset: f.get("a")?,
            nonce: f.get("n")?,
            amount: f.get("v")?,
            micro: f.decimal("u")?,
            valid_before: f.get("vb")?,
            route: f.get("r")?,
            network: f.get("net")?,
            admitted_at: f.get("at")?,
            immediate: f.or_default("i")?,
            worked: f.or_default("w")?,
            state: f.get("s")?,
            tries: f.or_default("tr")?,
            unknowns: f.or_default("uk")?,
            unresolved: f.or_default("ur")?,
            uncertain: f.or_default("x")?,
            used_reported: f.or_default("nu")?,
            held_until: f.maybe("h")?,
            payload: f.maybe("p")?,
            ticket: f.or_default("k")?,
            payment_id: f.maybe("pi")?,
            request: f.or_default("rq")?,
            unserved: f.maybe("us")?,
        })
    }
}

impl Read for State {
    fn read(value: &Value) -> Result<Self, json::Error> {
        json::read_variant(value, &["p", "f", "u", "s", "x"], |name, f| {
            Ok(match name {
                "p" => State::Pending { due: f.get("d")? },
                "f" => State::InFlight { since: f.get("d")? },
                "u" => State::Unknown {
                    due: f.get("d")?,
                    why: f.or_default("w")?,
                },
                "s" => State::Settled {
                    tx: f.or_default("tx")?,
                    at: f.get("d")?,
                },
                _ => State::Failed {
                    reason: f.get("r")?,
                    message: f.or_default("m")?,
                    at: f.get("d")?,
                    owed: f.or_default("o")?,
                },
            })
        })
    }
}

/// Whether a `/settle` sent at `now` can still be accepted by the facilitator.
fn sendable(valid_before: u64, now: u64) -> bool {
    now.saturating_add(FACILITATOR_WINDOW) < valid_before
}

/// 1, 2, 4 … seconds, capped at [`MAX_BACKOFF`]; `n` counts from 1.
fn backoff(n: u32) -> u64 {
    let shift = n.saturating_sub(1).min(6);
    (1u64 << shift).min(MAX_BACKOFF)
}

fn replay_key(asset: &str, nonce: &str) -> String {
    let mut h = Sha256::new();
    h.update(asset.to_ascii_lowercase().as_bytes());
    h.update(b":");
    h.update(nonce.to_ascii_lowercase().as_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..16])
}

fn detail(reason: &str, message: &str) -> String {
    if message.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {message}")
    }
}

impl Entry {
    fn deadline(&self, policy: &LedgerPolicy) -> u64 {
        self.valid_before.saturating_sub(policy.margin())
    }

    /// No attempt was ever made to settle it: nothing can have moved.
    fn untried(&self) -> bool {
        !self.uncertain && self.tries == 0 && self.unknowns == 0
    }

    /// The request that admitted this entry sends its admission again, because the answer was
    /// lost: accepted when it is that request (the same ticket) and nothing was sent yet, so that
    /// it is not turned away as a replay of its own payment. A deferred entry admitted again as
    /// immediate (the request fell back to settling the payment itself) becomes an immediate
    /// entry in flight.
    fn admitted_again(&mut self, a: &Admission, now: u64) -> bool {
        if a.ticket.is_empty() || a.ticket != self.ticket || !self.untried() {
            return false;
        }
        match (&self.state, a.deferred) {
            (State::Pending { .. }, true) => true,
            (State::InFlight { .. }, false) => self.immediate,
            (State::Pending { .. }, false) => {
                self.immediate = true;
                self.worked = a.worked;
                self.held_until = None;
                self.state = State::InFlight { since: now };
                true
            }
            _ => false,
        }
    }

    /// This entry's payment, sent again with its identifier: its answer may be given again while
    /// it is served and not refused (settled, or deferred and not failed), and is not ready yet
    /// while the request that admitted it may still be working (an immediate payment still being
    /// settled, a deferred one still held). `None` for a payment that was not served (an
    /// immediate one refused at settlement, or whose outcome is unknown) or failed: a replay.
    ///
    /// Served, its answer is kept for a repeat only once the client has read it to its end, and
    /// the store may take a minute more to show it elsewhere: for [`ANSWER_KEPT_SECONDS`] after
    /// its admission, a repeat finding no kept answer is told to come back, not that it is a
    /// replay (a client told so would pay again).
    ///
    /// An immediate payment its admitting request did not serve (its settlement unanswered or
    /// refused there, then found on chain) is owed its content: settled, it is
    /// [`AdmitError::Unserved`]; still being settled or read, `in_progress`. Once a repeat was
    /// given it, that serving counts as its admission did; but if that request has not said it
    /// served it by `held_until` (gone with its isolate), the payment is owed again.
    fn repeat(&self, now: u64) -> Option<AdmitError> {
        let since = match self.unserved {
            Some(given) if given == 0 || self.held_until.is_some_and(|h| h <= now) => {
                return match &self.state {
                    State::Settled { tx, .. } => Some(AdmitError::Unserved {
                        transaction: tx.clone(),
                    }),
                    State::Failed { .. } => None,
                    _ => Some(AdmitError::Repeat { in_progress: true }),
                }
            }
            Some(served) => served,
            None => self.admitted_at,
        };
        let lately = now < since.saturating_add(ANSWER_KEPT_SECONDS);
        let in_progress = match self.state {
            State::Settled { .. } => lately,
            State::InFlight { .. } => self.immediate || lately,
            State::Unknown { .. } if !self.immediate => lately,
            State::Pending { .. } => self.held_until.is_some_and(|h| h > now) || lately,
            _ => return None,
        };
        Some(AdmitError::Repeat { in_progress })
    }

    /// Whether `a` is this entry's payment as it was sent: the same amount and deadline (which
    /// keeps a repeat to the authorization's own time), and the same signature, byte for byte, as
    /// long as the entry keeps its facilitator body (see [`Ledger::repeated`]).
    fn same_terms(&self, a: &Admission) -> bool {
        fn signature(body: &Value) -> Option<&str> {
            body["paymentPayload"]["payload"]["signature"].as_str()
        }
        self.amount == a.amount
            && self.valid_before == a.valid_before
            && self
                .payload
                .as_ref()
                .is_none_or(|p| signature(p) == signature(&a.payload))
    }

    /// Settled, and its content not served yet: owed, or given to a request that has not said it
    /// served it.
    fn owed_content(&self) -> bool {
        matches!(self.state, State::Settled { .. })
            && self
                .unserved
                .is_some_and(|given| given == 0 || self.held_until.is_some())
    }

    fn may_resend(&self, now: u64) -> bool {
        !self.immediate && sendable(self.valid_before, now)
    }

    /// When a pending entry may be attempted: its due time, or the end of its hold if later.
    fn pending_due(&self, due: u64) -> u64 {
        self.held_until.map_or(due, |h| due.max(h))
    }

    fn settle(&mut self, tx: String, now: u64) -> Effect {
        self.state = State::Settled { tx, at: now };
        self.payload = None;
        self.held_until = None;
        Effect::Settled
    }

    fn fail(&mut self, reason: &str, message: String, owed: bool, now: u64) -> Effect {
        self.state = State::Failed {
            reason: reason.to_string(),
            message,
            at: now,
            owed,
        };
        self.payload = None;
        self.held_until = None;
        Effect::Failed {
            became_delinquent: owed,
        }
    }

    /// The deadline passed unsettled. After an unanswered attempt only the chain can tell whether
    /// the money moved, so reconcile; otherwise it is lost.
    fn lapse(&mut self, why: &str, now: u64) -> Effect {
        // After an unanswered attempt, or a refusal that can follow a broadcast (x402's
        // `unexpected_settle_error` is also what a failed receipt wait gives), the money may
        // have moved: only the chain can say whether it did.
        if self.unknowns > 0 || self.uncertain {
            self.state = State::Unknown {
                due: now,
                why: format!("deadline passed after an attempt that may have moved it ({why})"),
            };
            return Effect::Retry { at: now };
        }
        let message = if self.immediate {
            format!("not settled, not served ({why})")
        } else {
            format!("the authorization lapsed while the facilitator could not settle it ({why})")
        };
        self.fail(EXPIRED_UNSETTLED, message, false, now)
    }

    /// Nothing was asked ([`Outcome::NotSent`]): due again in a second, as it was; a settlement
    /// not sent by its deadline lapses as any other.
    fn not_sent(&mut self, action: Action, policy: &LedgerPolicy, now: u64) -> Effect {
        let due = now.saturating_add(1);
        if action == Action::Settle
            && (due > self.deadline(policy) || !sendable(self.valid_before, due))
        {
            return self.lapse("not sent before the deadline", now);
        }
        self.state = match action {
            Action::Settle => State::Pending { due },
            Action::Reconcile => State::Unknown {
                due,
                why: "not asked: the platform's limit on calls per run was reached".into(),
            },
        };
        Effect::Retry { at: due }
    }

    fn unknown(&mut self, why: String, policy: &LedgerPolicy, now: u64) -> Effect {
        self.uncertain = true;
        self.unknowns = self.unknowns.saturating_add(1);
        self.unresolved = self.unresolved.saturating_add(1);
        if self.unresolved > policy.max_attempts_unknown {
            let message = format!(
                "no usable answer after {} attempts; the payment may have moved ({why})",
                self.unresolved
            );
            return self.fail(SETTLEMENT_UNKNOWN, message, false, now);
        }
        let mut at = now.saturating_add(backoff(self.unknowns));
        let deadline = self.deadline(policy);
        if !self.immediate && now < deadline {
            at = at.min(deadline);
        }
        self.state = State::Unknown { due: at, why };
        Effect::Retry { at }
    }

    /// `sent_maybe`: whether the refusal may follow a broadcast (see [`refusal_is_uncertain`]);
    /// one made before anything was sent leaves the entry as certain as it was.
    fn transient(
        &mut self,
        why: String,
        sent_maybe: bool,
        policy: &LedgerPolicy,
        now: u64,
    ) -> Effect {
        self.uncertain |= sent_maybe;
        self.tries = self.tries.saturating_add(1);
        let at = now
            .saturating_add(backoff(self.tries))
            .min(self.deadline(policy));
        if at <= now || !sendable(self.valid_before, at) {
            return self.lapse(&why, now);
        }
        self.state = State::Pending { due: at };
        Effect::Retry { at }
    }

    fn refused(&mut self, reason: &str, message: &str, policy: &LedgerPolicy, now: u64) -> Effect {
        let kind = classify_refusal(reason, message);
        let why = detail(reason, message);
        match kind {
            RefusalKind::Unanswered => self.unknown(why, policy, now),
            // Our own earlier attempt may be what used it, or the payer may have cancelled the
            // authorization or spent its nonce on a transfer of its own (owing), or anyone holding
            // it may have sent it to the token (which pays all the same): read the chain before
            // anything else, and judge by what it shows, never by the facilitator's word alone. So
            // for an immediate payment too: not served, but money that came to us is booked (for
            // a refund), not trimmed away as a refusal that charged nothing.
            RefusalKind::NonceUsed => {
                self.used_reported = true;
                self.state = State::Unknown {
                    due: now,
                    why: format!("{why}; reading the chain for what used it"),
                };
                Effect::Retry { at: now }
            }
            // A transient refusal can come after the facilitator broadcast (rule 4): what the
            // client was told is that the outcome is unknown, and the chain decides (rule 6).
            RefusalKind::Transient if self.immediate && refusal_is_uncertain(reason, message) => {
                self.unknown(why, policy, now)
            }
            // Nothing served, nobody owes; but where the origin did the work first, the payer's
            // own refusals (funds moved away since `/verify`, a signature or a wallet the chain
            // will not take) leave it owing.
            RefusalKind::Payer { .. } if self.worked => {
                self.fail(reason, message.to_string(), true, now)
            }
            _ if self.immediate => self.fail(reason, message.to_string(), false, now),
            RefusalKind::Expired => self.lapse(&why, now),
            RefusalKind::Transient => {
                let sent_maybe = refusal_is_uncertain(reason, message);
                self.transient(why, sent_maybe, policy, now)
            }
            // Our own earlier attempt may be what drained the balance: the chain is read before
            // anything else, as after an unanswered attempt (money that moved to us is booked
            // settled; a nonce still unused is sent again while the deadline allows), and it is
            // never held against the payer.
            RefusalKind::Payer { definite: false } if self.uncertain => {
                let why = format!("{why} after an attempt that may have settled it");
                // Bounded: a chain that keeps showing the nonce unused, and a payer who keeps
                // lacking the money, end it as before, still not held against the payer.
                match self.unknowns < policy.max_attempts_unknown {
                    true => self.unknown(why, policy, now),
                    false => self.fail(UNCONFIRMED_REFUSAL, why, false, now),
                }
            }
            RefusalKind::Payer { .. } => self.fail(reason, message.to_string(), true, now),
        }
    }

    /// Whether a resend is still allowed: not an immediate entry, and before the settlement
    /// deadline (past it only a chain read can still settle it, rule 5).
    fn may_resend_by(&self, policy: &LedgerPolicy, now: u64) -> bool {
        self.may_resend(now) && now < self.deadline(policy)
    }

    fn on_chain_unused(&mut self, policy: &LedgerPolicy, now: u64) -> Effect {
        let final_at = self.valid_before.saturating_add(CHAIN_GRACE);
        if self.used_reported && now < final_at && self.unresolved < policy.max_attempts_unknown {
            // The facilitator saw the nonce used where the chain does not yet: a transaction of
            // ours may still be pending. Read again soon, a few times; then once more when the
            // authorization can no longer move (below), which settles the question either way. A
            // resend would only meet the same refusal.
            let why = "the facilitator reported the nonce used; the chain shows it unused so far";
            return self.unknown(why.into(), policy, now);
        }
        if !self.used_reported && self.may_resend_by(policy, now) {
            // The chain answered what the facilitator could not: nothing moved (yet).
            return self.resend(now);
        }
        if self.immediate && self.payment_id.is_some() && now < self.valid_before {
            // Our transaction may still be on its way (a lost answer is most often one that came
            // before its receipt): read again on the backoff, not only once the authorization has
            // ended, so that a payer who sends it again with its identifier is served while the
            // authorization still lets it in (without an identifier it cannot be, and after
            // `validBefore` it no longer can). Not counted as unanswered: the chain did answer.
            self.unknowns = self.unknowns.saturating_add(1);
            let at = now.saturating_add(backoff(self.unknowns)).min(final_at);
            self.state = State::Unknown {
                due: at,
                why: "unused on chain so far; reading again".into(),
            };
            return Effect::Retry { at };
        }
        if now >= final_at {
            let message = if self.immediate {
                "unused on chain after validBefore: not charged, not served".to_string()
            } else {
                "unused on chain after validBefore: it can no longer be settled".to_string()
            };
            return self.fail(EXPIRED_UNSETTLED, message, false, now);
        }
        self.state = State::Unknown {
            due: final_at,
            why: "unused on chain; reading again once validBefore has passed".into(),
        };
        Effect::Retry { at: final_at }
    }

    /// Used on chain, by what the shell could not tell (the token's logs, which name the
    /// transaction, could not be read): our own settlement, or the payer's cancellation or
    /// transfer of its own, which leave the same state. Never booked as paid on that alone: read
    /// again, bounded like an unanswered attempt (a node that refused once may answer later),
    /// then failed as unconfirmed, not held against the payer, for an admin who finds the
    /// transaction to mark paid.
    fn used_unexplained(&mut self, policy: &LedgerPolicy, now: u64) -> Effect {
        const WHY: &str =
            "the nonce is used on chain; the logs that tell our settlement from a cancellation \
             could not be read";
        self.used_reported = true;
        if self.unresolved >= policy.max_attempts_unknown {
            return self.fail(UNCONFIRMED_NONCE_USED, WHY.into(), false, now);
        }
        self.unknown(WHY.into(), policy, now)
    }

    /// Sent again now, after an attempt whose outcome a chain read (or its absence) left open:
    /// later answers are still judged as after an uncertain attempt, the backoff keeps growing,
    /// and the count of unanswered attempts starts again.
    fn resend(&mut self, now: u64) -> Effect {
        self.uncertain = true;
        self.unresolved = 0;
        self.state = State::Pending { due: now };
        Effect::Retry { at: now }
    }

    /// A reconciliation's read the node did not answer. Where nothing said the nonce was used,
    /// sent again while that is allowed, as without an RPC URL ([`Entry::no_rpc`]); otherwise read
    /// again, bounded like an unanswered attempt.
    fn chain_unreadable(&mut self, why: String, policy: &LedgerPolicy, now: u64) -> Effect {
        if !self.used_reported && self.may_resend_by(policy, now) {
            return self.resend(now);
        }
        self.unknown(why, policy, now)
    }

    fn no_rpc(&mut self, policy: &LedgerPolicy, now: u64) -> Effect {
        if self.used_reported {
            // Without a chain read, a used nonce after our own uncertain attempt stays unexplained.
            let message = "the nonce was reported used after an attempt that may have settled it; \
                           no transaction confirmed and no chain RPC to check";
            return self.fail(UNCONFIRMED_NONCE_USED, message.into(), false, now);
        }
        if self.may_resend_by(policy, now) {
            // Resent, as after a chain read that shows it unused: the nonce keeps a second
            // transfer from happening, so a facilitator that stays away is not a reason to give
            // up a payment still collectable; the deadline bounds the tries.
            return self.resend(now);
        }
        let message = "no usable answer and no chain RPC to check: the payment may have moved";
        self.fail(SETTLEMENT_UNKNOWN, message.into(), false, now)
    }

    /// The attempt this entry asks for at `now`, if any.
    fn attempt(&self, now: u64) -> Option<(u64, Attempt)> {
        let (at, action) = self.due_action(now)?;
        Some((
            at,
            Attempt {
                id: self.id.clone(),
                action,
                asset: self.asset.clone(),
                nonce: self.nonce.clone(),
                network: self.network.clone(),
                admitted_at: self.admitted_at,
                payload: self.payload.clone().unwrap_or(Value::Null),
                may_resend: self.may_resend(now),
            },
        ))
    }

    /// When the entry became due and what it needs, if it is due at `now`.
    fn due_action(&self, now: u64) -> Option<(u64, Action)> {
        Some(match self.state {
            State::Pending { due } if self.pending_due(due) <= now && self.may_resend(now) => {
                (self.pending_due(due), Action::Settle)
            }
            State::Unknown { due, .. } if due <= now => (due, Action::Reconcile),
            State::InFlight { since } if since.saturating_add(IN_FLIGHT_LEASE) <= now => {
                (since.saturating_add(IN_FLIGHT_LEASE), Action::Reconcile)
            }
            _ => return None,
        })
    }

    /// An in-flight attempt whose lease ran out counts as unanswered.
    fn expire_lease(&mut self, now: u64) {
        if let State::InFlight { since } = self.state {
            if since.saturating_add(IN_FLIGHT_LEASE) <= now {
                self.uncertain = true;
                self.unknowns = self.unknowns.saturating_add(1);
                self.unresolved = self.unresolved.saturating_add(1);
                self.state = State::Unknown {
                    due: now,
                    why: "an attempt was in flight and its outcome was never recorded".into(),
                };
            }
        }
    }

    fn next_time(&self) -> Option<u64> {
        match self.state {
            State::Pending { due } => Some(self.pending_due(due)),
            State::Unknown { due, .. } => Some(due),
            State::InFlight { since } => Some(since.saturating_add(IN_FLIGHT_LEASE)),
            _ => None,
        }
    }

    fn view(&self) -> EntryView {
        let mut v = EntryView {
            id: self.id.clone(),
            status: Status::Pending,
            asset: self.asset.clone(),
            nonce: self.nonce.clone(),
            amount: self.amount.clone(),
            amount_micro_usd: self.micro,
            valid_before: self.valid_before,
            route: self.route.clone(),
            network: self.network.clone(),
            deferred: !self.immediate,
            admitted_at: self.admitted_at,
            due_at: self.next_time(),
            held_until: self.held_until,
            closed_at: None,
            transaction: None,
            reason: None,
            message: None,
            delinquent: false,
            retries: self.tries,
            unknowns: self.unknowns,
            unserved: self.owed_content(),
        };
        match &self.state {
            State::Pending { .. } => {}
            State::InFlight { .. } => v.status = Status::InFlight,
            State::Unknown { why, .. } => {
                v.status = Status::Unknown;
                v.message = Some(why.clone());
            }
            State::Settled { tx, at } => {
                v.status = Status::Settled;
                v.transaction = Some(tx.clone());
                v.closed_at = Some(*at);
            }
            State::Failed {
                reason,
                message,
                at,
                owed,
            } => {
                v.status = Status::Failed;
                v.reason = Some(reason.clone());
                v.message = (!message.is_empty()).then(|| message.clone());
                v.closed_at = Some(*at);
                v.delinquent = *owed;
            }
        }
        v
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows changed since the last call, to write in one storage transaction: each entry and
    /// remembered nonce that was added, changed or removed, and the counters if they moved.
    pub fn take_rows(&mut self) -> Vec<Row> {
        // A key marked twice gives the same row twice, which the write takes as one.
        let dirty = std::mem::take(&mut self.dirty);
        let mut rows = Vec::with_capacity(dirty.entries.len() + dirty.seen.len() + 1);
        for id in dirty.entries {
            let value = self
                .entries
                .iter()
                .find(|e| e.id == id)
                .and_then(|e| serde_json::to_string(e).ok());
            rows.push((format!("{ENTRY_ROW}{id}"), value));
        }
        for key in dirty.seen {
            let value = self
                .seen
                .iter()
                .find(|s| s.0 == key)
                .map(|s| s.1.to_string());
            rows.push((format!("{SEEN_ROW}{key}"), value));
        }
        if dirty.counters {
            let value = serde_json::to_string(&self.counters).ok();
            rows.push((COUNTERS_ROW.to_string(), value));
        }
        rows
    }

    /// A ledger read back from its rows, in any order (keys other than the ledger's are ignored;
    /// an unreadable row is skipped rather than failing the whole wallet).
    pub fn from_rows<K: AsRef<str>, V: AsRef<str>>(rows: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut l = Ledger::new();
        for (key, value) in rows {
            let (key, value) = (key.as_ref(), value.as_ref());
            if key.starts_with(ENTRY_ROW) {
                if let Ok(e) = json::parse::<Entry>(value) {
                    l.entries.push(e);
                }
            } else if let Some(k) = key.strip_prefix(SEEN_ROW) {
                if let Ok(until) = value.parse() {
                    l.seen.push(Seen(k.to_string(), until));
                }
            } else if key == COUNTERS_ROW {
                l.counters = json::parse(value).unwrap_or_default();
            }
        }
        crate::sorted::sort_by_order(&mut l.entries, |e| (e.admitted_at.into(), e.seq, 0));
        if l.counters.paid == 0 {
            // A ledger kept before payments were counted: what its settled entries show.
            l.counters.paid = l
                .entries
                .iter()
                .filter(|e| matches!(e.state, State::Settled { .. }))
                .fold(0u128, |s, e| s.saturating_add(e.micro));
        }
        l
    }

    /// Marks every row changed: a ledger read whole from its former single value is written back
    /// as rows.
    pub fn mark_all(&mut self) {
        self.dirty.entries = self.entries.iter().map(|e| e.id.clone()).collect();
        self.dirty.seen = self.seen.iter().map(|s| s.0.clone()).collect();
        self.dirty.counters = true;
    }

    /// What this ledger knows of a payment that carries an identifier, before anything else is
    /// asked of it: the same payment sent again with its identifier, for the same request, is
    /// answered again ([`AdmitError::Repeat`], `in_progress` while its first request may still be
    /// working: a client whose first answer was lost), never charged twice; the identifier with
    /// another payment that was served (or is being answered) is an [`AdmitError::IdConflict`];
    /// one whose payment bought nothing (refused at settlement) is free again. `None` otherwise:
    /// the same payment for another request, with another amount or deadline, or with another
    /// signature while the entry still holds its own, or lapsed unsent past its deadline, is a
    /// replay like any other, which admission refuses.
    ///
    /// It changes nothing, so that it may be asked before the payment is judged (a smart wallet's
    /// signature, which only the facilitator's `/verify` can check): the signature is what binds
    /// a payment sent again to the one served, as long as the entry keeps it (once the entry is
    /// closed it is on chain for anyone to read, and the identifier, which only the payer and
    /// this paywall have seen, tells the payer's repeat from someone else's, within the
    /// authorization's own time).
    pub fn repeated(&self, a: &Admission, now: u64) -> Option<AdmitError> {
        let pid = a.payment_id.as_deref()?;
        let mut named = self
            .entries
            .iter()
            .filter(|e| e.payment_id.as_deref() == Some(pid));
        // An entry that lapsed unsent past its deadline is no payment to answer again (admission
        // closes it first).
        let answerable = |e: &Entry| match e.state {
            State::Pending { .. } if !e.may_resend(now) => None,
            _ => e.repeat(now),
        };
        match named.clone().find(|e| e.id == a.id) {
            Some(e) if e.request == a.request && e.same_terms(a) => answerable(e),
            Some(_) => None,
            None if named.any(|e| answerable(e).is_some()) => Some(AdmitError::IdConflict),
            None => None,
        }
    }

    /// Admits a locally verified payment (see rule 2 of the module documentation).
    pub fn admit(
        &mut self,
        a: Admission,
        policy: &LedgerPolicy,
        now: u64,
    ) -> Result<(), AdmitError> {
        self.close_lapsed(now);
        // The request that admitted it already, asking again: admitted, whatever happened since
        // (were it turned away now, its held entry would still be collected, unserved).
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == a.id) {
            if e.admitted_again(&a, now) {
                self.dirty.entries.push(a.id);
                return Ok(());
            }
            // So is the request a payment owed its content was given to (below): given it again
            // (its answer lost, or its held admission turned into an immediate one).
            // (Not once its time to serve it is over: it is then given as to any repeat, below.)
            if let (State::Settled { tx, .. }, Some(1..)) = (&e.state, e.unserved) {
                if !a.ticket.is_empty()
                    && e.ticket == a.ticket
                    && e.held_until.is_none_or(|h| h > now)
                {
                    return Err(AdmitError::Unserved {
                        transaction: tx.clone(),
                    });
                }
            }
        }
        // Checked before a debt: a payment sent again buys nothing new. One settled and never
        // served is given to this request, whose ticket may give it back (see `withdraw`).
        if let Some(known) = self.repeated(&a, now) {
            if let (AdmitError::Unserved { .. }, Some(e)) =
                (&known, self.entries.iter_mut().find(|e| e.id == a.id))
            {
                e.unserved = Some(now.max(1));
                e.held_until = a
                    .reports_serving
                    .then(|| now.saturating_add(policy.serve_within));
                e.ticket = a.ticket;
                self.dirty.entries.push(a.id);
            }
            return Err(known);
        }
        if let Some((owed_micro_usd, reason)) = self.debt() {
            return Err(AdmitError::Delinquent {
                owed_micro_usd,
                reason,
            });
        }
        if self.remembers(&a.asset, &a.nonce) || self.entries.iter().any(|e| e.id == a.id) {
            return Err(AdmitError::Replay);
        }
        let state = if a.deferred {
            // What the wallet's deferred payments already cost: the open ones, and those lost
            // (failed without it owing: an expiry during an outage, an unknown outcome). Lost
            // ones keep counting until an admin forgives them, so that credit does not refill
            // while the facilitator cannot settle.
            let unsettled = self.unsettled().saturating_add(self.lost());
            let after = unsettled.saturating_add(a.amount_micro_usd);
            if after > policy.credit_limit {
                return Err(AdmitError::CreditExceeded {
                    unsettled,
                    limit: policy.credit_limit,
                });
            }
            if after > self.credit(policy) {
                return Err(AdmitError::CreditNotEarned {
                    unsettled,
                    paid: self.counters.paid,
                });
            }
            if !policy.may_defer(now, a.valid_before) {
                return Err(AdmitError::TooLateToDefer);
            }
            let deadline = a.valid_before.saturating_sub(policy.margin());
            let window_end = now.saturating_add(policy.batch_window);
            let batch = self.open_batch(now).unwrap_or(u64::MAX);
            State::Pending {
                due: window_end.min(deadline).min(batch),
            }
        } else {
            State::InFlight { since: now }
        };
        let held_until = (a.deferred && a.held).then(|| policy.hold_ends(now, a.valid_before));
        let key = replay_key(&a.asset, &a.nonce);
        self.dirty.seen.push(key.clone());
        self.seen
            .push(Seen(key, a.valid_before.saturating_add(REPLAY_GRACE)));
        self.dirty.entries.push(a.id.clone());
        self.dirty.counters = true;
        self.entries.push(Entry {
            id: a.id,
            seq: self.counters.admitted,
            asset: a.asset,
            nonce: a.nonce,
            amount: a.amount,
            micro: a.amount_micro_usd,
            valid_before: a.valid_before,
            route: a.route,
            network: a.network,
            admitted_at: now,
            immediate: !a.deferred,
            worked: a.worked && !a.deferred,
            state,
            tries: 0,
            unknowns: 0,
            unresolved: 0,
            uncertain: false,
            used_reported: false,
            held_until,
            payload: Some(a.payload),
            ticket: a.ticket,
            payment_id: a.payment_id,
            request: a.request,
            unserved: None,
        });
        self.counters.admitted = self.counters.admitted.saturating_add(1);
        Ok(())
    }

    /// Entries to attempt now, the one that can wait least first (earliest `validBefore`, then
    /// earliest due, then oldest): pending entries due and still sendable (held ones only once
    /// their hold has ended), unknown entries due for reconciliation, and in-flight entries whose
    /// lease ran out (reconciled).
    pub fn due(&self, now: u64) -> Vec<Attempt> {
        let mut due: Vec<((u64, u64), Attempt)> = self
            .entries
            .iter()
            .filter_map(|e| e.attempt(now).map(|(at, a)| ((e.valid_before, at), a)))
            .collect();
        crate::sorted::sort_by_order(&mut due, |&((vb, at), _)| (vb.into(), at, 0));
        due.into_iter().map(|(_, a)| a).collect()
    }

    /// The id of the first of [`Ledger::due`], without building every attempt.
    pub fn first_due(&self, now: u64) -> Option<String> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.due_action(now)
                    .map(|(at, _)| ((e.valid_before, at, i), e))
            })
            .min_by_key(|(order, _)| *order)
            .map(|(_, e)| e.id.clone())
    }

    /// Marks a due entry in flight just before the shell performs its attempt, and returns the
    /// attempt; `None` when the entry is not due (or was just given up). If the shell dies before
    /// recording, the entry comes back after [`IN_FLIGHT_LEASE`] as a reconciliation.
    pub fn begin(&mut self, id: &str, policy: &LedgerPolicy, now: u64) -> Option<Attempt> {
        let e = self.entries.iter_mut().find(|e| e.id == id)?;
        let (_, attempt) = e.attempt(now)?;
        self.dirty.entries.push(e.id.clone());
        e.expire_lease(now);
        if e.unresolved > policy.max_attempts_unknown {
            let message = format!("no usable answer after {} attempts", e.unresolved);
            e.fail(SETTLEMENT_UNKNOWN, message, false, now);
            return None;
        }
        e.state = State::InFlight { since: now };
        e.held_until = None;
        Some(attempt)
    }

    /// Records what an attempt for entry `id` gave (see rules 3–6 of the module documentation).
    pub fn record(
        &mut self,
        id: &str,
        outcome: Outcome,
        policy: &LedgerPolicy,
        now: u64,
    ) -> Effect {
        let Some(e) = self.entries.iter_mut().find(|e| e.id == id) else {
            return Effect::None;
        };
        if !e.state.is_open() {
            // A confirmed settlement is never thrown away: one that comes back after its entry was
            // closed as failed (the call outlived its lease, and the entry was given up or
            // resent meanwhile) settles it after all, and lifts any debt the failure made.
            // (What an admin's `mark_paid` does; a closed entry is settled or failed.)
            return match outcome {
                Outcome::Settled { transaction } => match self.mark_paid(id, transaction, now) {
                    Ok(()) => Effect::SettledAfterAll,
                    Err(_) => Effect::None,
                },
                _ => Effect::None,
            };
        }
        self.dirty.entries.push(e.id.clone());
        // An attempt not sent is no unanswered one, however long its round took.
        if !matches!(outcome, Outcome::NotSent { .. }) {
            e.expire_lease(now);
        }
        e.held_until = None;
        let micro = e.micro;
        let effect = match outcome {
            Outcome::Settled { transaction } => e.settle(transaction, now),
            Outcome::OnChainUsed => e.used_unexplained(policy, now),
            Outcome::OnChainCancelled => e.fail(
                AUTHORIZATION_CANCELLED,
                "the payer cancelled the authorization on chain".into(),
                !e.immediate || e.worked,
                now,
            ),
            Outcome::OnChainUsedBefore => e.fail(
                AUTHORIZATION_USED_BEFORE,
                "the payer had used or cancelled the authorization before sending it".into(),
                !e.immediate || e.worked,
                now,
            ),
            Outcome::OnChainUsedElsewhere { transaction } => e.fail(
                AUTHORIZATION_USED_ELSEWHERE,
                format!(
                    "the payer used the nonce in {transaction}, which did not pay this payment"
                ),
                !e.immediate || e.worked,
                now,
            ),
            Outcome::OnChainUnused => e.on_chain_unused(policy, now),
            Outcome::NoRpc => e.no_rpc(policy, now),
            Outcome::ChainUnreadable { why } => e.chain_unreadable(why, policy, now),
            Outcome::Unknown { why } => e.unknown(why, policy, now),
            Outcome::NotSent { action } => e.not_sent(action, policy, now),
            Outcome::Refused { reason, message } => e.refused(&reason, &message, policy, now),
        };
        if effect == Effect::Settled {
            self.count_paid(micro);
        }
        if matches!(effect, Effect::Settled | Effect::Failed { .. }) {
            self.trim(policy.settled_history, now);
        }
        effect
    }

    /// An entry of `micro` settled: it counts toward the wallet's earned credit.
    fn count_paid(&mut self, micro: u128) {
        self.counters.paid = self.counters.paid.saturating_add(micro);
        self.dirty.counters = true;
    }

    /// What the wallet may leave unsettled with deferred payments: the policy's limit, or with
    /// earned credit no more than the wallet has paid so far.
    pub fn credit(&self, policy: &LedgerPolicy) -> u128 {
        if policy.earned_credit {
            policy.credit_limit.min(self.counters.paid)
        } else {
            policy.credit_limit
        }
    }

    /// Everything the wallet has paid through settled entries, micro-USD.
    pub fn paid(&self) -> u128 {
        self.counters.paid
    }

    /// The earliest time an open entry needs attention, for the Durable Object's alarm (for a held
    /// entry, the end of its hold: it is released then if nobody released or withdrew it).
    pub fn next_alarm(&self) -> Option<u64> {
        self.entries.iter().filter_map(Entry::next_time).min()
    }

    /// Housekeeping, to run before anything else on every wake: pending entries that can no longer
    /// be sent are closed (rule 4: [`EXPIRED_UNSETTLED`], or reconciled after an unanswered
    /// attempt), and nonces past `validBefore` + [`REPLAY_GRACE`] are forgotten. History is trimmed
    /// ([`Ledger::trim`]) whenever an entry settles or fails.
    pub fn prune(&mut self, now: u64) {
        self.close_lapsed(now);
        let dirty = &mut self.dirty.seen;
        self.seen.retain(|s| {
            let keep = s.1 > now;
            if !keep {
                dirty.push(s.0.clone());
            }
            keep
        });
    }

    /// Trims history: settled entries, and immediate payments refused at settlement with nobody
    /// owing and nothing sent that could have moved money, or found unused on chain once it could
    /// no longer move (so nothing was served and nothing was charged; not those whose origin did
    /// the work first), each kind to its newest `keep`.
    /// Their nonces stay remembered until they lapse, so a trimmed payment is still a replay.
    /// Without the second kind, a key signing payments it cannot fund would grow its ledger by
    /// one entry a try. A settled payment that carried a payment identifier is kept beyond
    /// `keep` for [`REPEAT_SECONDS`] after it closed (the newest [`REPEATABLE_KEPT`] of them):
    /// the same payment sent again is answered again for that long, however many the wallet
    /// paid since.
    pub fn trim(&mut self, keep: usize, now: u64) {
        // Newest first within each kind (closed last, then admitted last); the kind rides in the
        // position, as its remainder by 4.
        let closed = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let (kind, at) = match e.state {
                    // Charged and not served: what the publisher refunds from, and what the
                    // payer's repeat is given, kept beside the history (by the hundred).
                    State::Settled { at, .. } if e.owed_content() => (3, at),
                    State::Settled { at, .. }
                        if e.payment_id.is_some() && now < at.saturating_add(REPEAT_SECONDS) =>
                    {
                        (2, at)
                    }
                    State::Settled { at, .. } => (0, at),
                    // Not one whose money may have moved (an unanswered attempt, an unknown
                    // outcome): the publisher may owe a refund, and a late confirmation must
                    // find it. Expired unsettled is certain: nothing sent could have moved it,
                    // or the chain showed it unused once it no longer could move.
                    State::Failed {
                        owed: false,
                        at,
                        ref reason,
                        ..
                    } if e.immediate
                        && !e.worked
                        && (reason == EXPIRED_UNSETTLED
                            || reason == AUTHORIZATION_USED_BEFORE
                            || !e.uncertain
                                && e.unknowns == 0
                                && reason != SETTLEMENT_UNKNOWN
                                && reason != UNCONFIRMED_NONCE_USED) =>
                    {
                        (1, at)
                    }
                    _ => return None,
                };
                Some((kind as u128, u64::MAX - at, u64::MAX - e.seq, i * 4 + kind))
            })
            .collect();
        let mut gone = vec![0u8; self.entries.len()];
        let mut left = [keep, keep, REPEATABLE_KEPT, REPEATABLE_KEPT];
        for p in crate::sorted::order(closed) {
            let (i, kind) = (p / 4, p % 4);
            match left[kind] {
                // Settled (either way) or refused.
                0 => gone[i] = [1, 2, 1, 1][kind],
                _ => left[kind] -= 1,
            }
        }
        let mut i = 0;
        let (dirty, counters) = (&mut self.dirty, &mut self.counters);
        self.entries.retain(|e| {
            let g = gone[i];
            i += 1;
            match g {
                1 => counters.trimmed += 1,
                2 => counters.failed_trimmed += 1,
                _ => return true,
            }
            dirty.entries.push(e.id.clone());
            dirty.counters = true;
            false
        });
    }

    /// The ledger for the publisher.
    pub fn view(&self) -> LedgerView {
        let mut v = LedgerView {
            pending: Vec::new(),
            settled: Vec::new(),
            failed: Vec::new(),
            unsettled_micro_usd: self.unsettled(),
            owed_micro_usd: 0,
            lost_micro_usd: self.lost(),
            delinquent: false,
            delinquent_reason: None,
            admitted: self.counters.admitted,
            settled_trimmed: self.counters.trimmed,
            failed_trimmed: self.counters.failed_trimmed,
            forgiven: self.counters.forgiven,
            paid_micro_usd: self.counters.paid,
            remembered_nonces: self.seen.len(),
            next_alarm: self.next_alarm(),
        };
        if let Some((owed, reason)) = self.debt() {
            v.owed_micro_usd = owed;
            v.delinquent = true;
            v.delinquent_reason = Some(reason);
        }
        for e in &self.entries {
            let ev = e.view();
            match ev.status {
                Status::Settled => v.settled.push(ev),
                Status::Failed => v.failed.push(ev),
                _ => v.pending.push(ev),
            }
        }
        v
    }

    /// One entry, by id.
    pub fn entry(&self, id: &str) -> Option<EntryView> {
        self.entries.iter().find(|e| e.id == id).map(Entry::view)
    }

    /// Whether entry `id` is settled and its content not served yet (see [`EntryView::unserved`]).
    pub fn owes_content(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id && e.owed_content())
    }

    /// Sum of open amounts (pending, in flight, unknown), micro-USD.
    pub fn unsettled(&self) -> u128 {
        self.entries
            .iter()
            .filter(|e| e.state.is_open())
            .fold(0u128, |s, e| s.saturating_add(e.micro))
    }

    /// Sum of failures held against the payer, micro-USD.
    pub fn owed(&self) -> u128 {
        self.debt().map_or(0, |(owed, _)| owed)
    }

    /// Whether the wallet's admissions are refused for what it owes.
    pub fn is_delinquent(&self) -> bool {
        self.debt().is_some()
    }

    /// Whether `(asset, nonce)` is still remembered (a new admission of it would be a replay).
    pub fn remembers(&self, asset: &str, nonce: &str) -> bool {
        let key = replay_key(asset, nonce);
        self.seen.iter().any(|s| s.0 == key)
            || self
                .entries
                .iter()
                .any(|e| e.asset.eq_ignore_ascii_case(asset) && e.nonce.eq_ignore_ascii_case(nonce))
    }

    /// Whether the request holding `ticket` admitted entry `id`: only that request may withdraw,
    /// release or fail it (another request carrying the same payment is a replay, whatever
    /// happened to its own admission). No ticket, or an entry admitted without one, is a Worker
    /// of an earlier version, trusted as before.
    pub fn owns(&self, id: &str, ticket: Option<&str>) -> bool {
        match (ticket, self.entries.iter().find(|e| e.id == id)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(t), Some(e)) => e.ticket.is_empty() || e.ticket == t,
        }
    }

    /// [`Ledger::withdraw`], asked by the request holding `ticket`: refused to any other
    /// ([`Ledger::owns`]).
    pub fn withdraw_from(&mut self, ticket: Option<&str>, id: &str) -> Result<u128, AdminError> {
        match self.owns(id, ticket) {
            true => self.withdraw(id),
            false => Err(AdminError::NotAllowed),
        }
    }

    /// [`Ledger::release`], asked by the request holding `ticket`: refused to any other.
    pub fn release_from(
        &mut self,
        ticket: Option<&str>,
        id: &str,
        now: u64,
    ) -> Result<(), AdminError> {
        match self.owns(id, ticket) {
            true => self.release(id, now),
            false => Err(AdminError::NotAllowed),
        }
    }

    /// [`Ledger::record`] for an outcome a request reports: a settlement is a fact on chain,
    /// recorded whoever reports it; any other outcome only from the request that owns the entry
    /// ([`Ledger::owns`]).
    pub fn record_from(
        &mut self,
        ticket: Option<&str>,
        id: &str,
        outcome: Outcome,
        policy: &LedgerPolicy,
        now: u64,
    ) -> Effect {
        if !matches!(outcome, Outcome::Settled { .. }) {
            if !self.owns(id, ticket) {
                return Effect::None;
            }
            // The request serves an immediate payment only once it is settled: with any other
            // outcome, its content is owed if the chain shows it moved after all. Not where the
            // origin did the request's work before the settlement (a POST): serving it again
            // would do that work twice.
            if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
                if e.immediate && !e.worked && e.state.is_open() {
                    e.unserved = Some(0);
                }
            }
        }
        self.record(id, outcome, policy, now)
    }

    /// Admin: forgives one entry, which leaves the ledger (counted as forgiven); returns its
    /// amount. Allowed for failed entries (reducing `owed` if held against the payer) and for
    /// pending entries never attempted (the authorization is simply not collected).
    pub fn revoke(&mut self, id: &str) -> Result<u128, AdminError> {
        let i = self
            .entries
            .iter()
            .position(|e| e.id == id)
            .ok_or(AdminError::NotFound)?;
        let e = self.entries.get(i).ok_or(AdminError::NotFound)?;
        let allowed = match e.state {
            State::Failed { .. } => true,
            State::Pending { .. } => e.untried(),
            _ => false,
        };
        if !allowed {
            return Err(AdminError::NotAllowed);
        }
        let amount = e.micro;
        let gone = self.entries.remove(i);
        self.dirty.entries.push(gone.id);
        self.counters.forgiven = self.counters.forgiven.saturating_add(1);
        self.dirty.counters = true;
        Ok(amount)
    }

    /// The request that admitted `id` served it (the origin answered successfully): a held entry
    /// becomes an ordinary pending entry, due at its batch time (at once if that has passed; its
    /// due time is left as it was, so that it does not draw later admissions into an early batch).
    /// A payment owed its content, given to the request that releases it, is served. Anything
    /// else is left as it is (not held, already released, or its hold ended and it was
    /// attempted), so releasing twice is harmless. Like an admission, it first closes pending
    /// entries that can no longer be sent (rule 4).
    pub fn release(&mut self, id: &str, now: u64) -> Result<(), AdminError> {
        self.close_lapsed(now);
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(AdminError::NotFound)?;
        if e.held_until.is_some() {
            e.held_until = None;
            self.dirty.entries.push(e.id.clone());
        }
        Ok(())
    }

    /// The request that admitted `id` will not collect it (the origin answered with an error, and
    /// nobody pays for that); returns its amount, counted as forgiven. Allowed wherever
    /// [`Ledger::revoke`] is, and for an immediate entry whose settlement was never sent (no
    /// outcome recorded yet): a Worker that admits an immediate payment before asking the origin
    /// withdraws it instead of settling it; so does one that admitted a deferred payment held
    /// (still held, or released by its deadline but not yet attempted): nothing was sent, so it
    /// goes. When no attempt was ever made, the nonce is forgotten
    /// too: nothing was served and nothing can have moved, so the same signed payment may still
    /// buy something else (once). After an attempt it stays remembered.
    ///
    /// A settled payment given to a repeat for its content ([`AdmitError::Unserved`]), whose
    /// origin then failed, is owed its content again (nothing is forgiven: returns 0).
    pub fn withdraw(&mut self, id: &str) -> Result<u128, AdminError> {
        let i = self
            .entries
            .iter()
            .position(|e| e.id == id)
            .ok_or(AdminError::NotFound)?;
        let e = self.entries.get_mut(i).ok_or(AdminError::NotFound)?;
        if let (State::Settled { .. }, Some(1..)) = (&e.state, e.unserved) {
            e.unserved = Some(0);
            e.held_until = None;
            self.dirty.entries.push(e.id.clone());
            return Ok(0);
        }
        let never_sent = e.untried()
            && match e.state {
                State::Pending { .. } => true,
                State::InFlight { .. } => e.immediate,
                _ => false,
            };
        if !never_sent {
            return self.revoke(id);
        }
        let e = self.entries.remove(i);
        let key = replay_key(&e.asset, &e.nonce);
        self.seen.retain(|s| s.0 != key);
        self.dirty.seen.push(key);
        self.dirty.entries.push(e.id);
        self.counters.forgiven = self.counters.forgiven.saturating_add(1);
        self.dirty.counters = true;
        Ok(e.micro)
    }

    /// Admin: the money for a failed (or unknown) entry arrived after all: it becomes settled
    /// with `transaction`, clearing what it added to `owed`. A debt paid out of band may name
    /// none (`""`); an immediate payment whose origin never did the work, so never owed, must
    /// (marked paid, it would count as money earned, and raise the wallet's earned credit, on the
    /// admin's word).
    pub fn mark_paid(&mut self, id: &str, transaction: String, now: u64) -> Result<(), AdminError> {
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(AdminError::NotFound)?;
        match e.state {
            State::Failed { .. } | State::Unknown { .. }
                if e.immediate && !e.worked && transaction.is_empty() =>
            {
                Err(AdminError::NoTransaction)
            }
            State::Failed { .. } | State::Unknown { .. } => {
                e.settle(transaction, now);
                self.dirty.entries.push(e.id.clone());
                let micro = e.micro;
                self.count_paid(micro);
                Ok(())
            }
            _ => Err(AdminError::NotAllowed),
        }
    }

    /// Admin: forgives every failure held against the payer, and every deferred payment lost
    /// without its fault (which counts against its credit until then); returns the amount
    /// forgiven. The wallet may pay again, on its whole credit.
    pub fn clear_delinquency(&mut self) -> u128 {
        let mut forgiven = 0u128;
        let mut count = 0u64;
        let dirty = &mut self.dirty.entries;
        self.entries.retain(|e| {
            let owed = match e.state {
                State::Failed { owed, .. } => owed || !e.immediate,
                _ => false,
            };
            if owed {
                forgiven = forgiven.saturating_add(e.micro);
                count += 1;
                dirty.push(e.id.clone());
            }
            !owed
        });
        self.counters.forgiven = self.counters.forgiven.saturating_add(count);
        self.dirty.counters |= count > 0;
        forgiven
    }

    /// What the wallet owes and the latest reason, if anything.
    pub fn debt(&self) -> Option<(u128, String)> {
        let mut owed = 0u128;
        let mut latest: Option<(u64, &str)> = None;
        for e in &self.entries {
            if let State::Failed {
                owed: true,
                at,
                reason,
                ..
            } = &e.state
            {
                owed = owed.saturating_add(e.micro);
                if latest.is_none_or(|(t, _)| *at >= t) {
                    latest = Some((*at, reason));
                }
            }
        }
        latest.map(|(_, reason)| (owed, reason.to_string()))
    }

    fn lost(&self) -> u128 {
        self.entries
            .iter()
            .filter(|e| !e.immediate && matches!(e.state, State::Failed { owed: false, .. }))
            .fold(0u128, |s, e| s.saturating_add(e.micro))
    }

    /// The due time of the batch a new deferred entry can join.
    fn open_batch(&self, now: u64) -> Option<u64> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::Pending { due } if due >= now => Some(due),
                _ => None,
            })
            .min()
    }

    fn close_lapsed(&mut self, now: u64) {
        for e in &mut self.entries {
            if matches!(e.state, State::Pending { .. }) && !e.may_resend(now) {
                e.lapse("not sent before the deadline", now);
                self.dirty.entries.push(e.id.clone());
            }
        }
    }
}

/// Micro-USD as dollars with six decimals: `0.015000`. Fraction plus a million keeps the
/// fraction's leading zeros.
pub fn usd(micro: u128) -> String {
    let fraction = crate::evm::decimal(micro % 1_000_000 + 1_000_000);
    format!(
        "{}.{}",
        crate::evm::decimal(micro / 1_000_000),
        &fraction[1..]
    )
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u128(n: &u128) -> bool {
    *n == 0
}

/// u128 as a decimal string (JavaScript numbers cannot hold it); read back as a [`json::Decimal`],
/// which also takes a plain number. Written by [`crate::evm::decimal`].
pub(crate) mod dec {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::evm::decimal(*v))
    }
}

/// How many ledgers one cron run nudges at most: each nudge is a subrequest, and an invocation
/// has a budget of them (listing the open wallets takes one more per thousand).
pub const SWEEP_MOST: usize = 500;

/// The wallets a cron run nudges: all of them when they fit in `most`; otherwise `most` of them
/// in a row from `start` (taken at random by the caller), wrapping round at the end, so that no
/// wallet sits for good beyond what one run reaches.
pub fn sweep_turn(wallets: &[String], start: usize, most: usize) -> Vec<&String> {
    if wallets.len() <= most {
        return wallets.iter().collect();
    }
    let start = start % wallets.len();
    (start..start + most)
        .map(|i| &wallets[i % wallets.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_750_000_000;
    const USDC: &str = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";

    fn policy() -> LedgerPolicy {
        LedgerPolicy {
            credit_limit: 1_000_000,
            batch_window: 2,
            safety_margin: 30,
            max_attempts_unknown: 5,
            settled_history: 20,
            earned_credit: false,
            serve_within: HOLD_SECONDS,
        }
    }

    fn admit(l: &mut Ledger, valid_before: u64, now: u64) -> String {
        let nonce = format!("0x{:064x}", 7);
        let id = format!("31337:{USDC}:{nonce}");
        l.admit(
            Admission {
                id: id.clone(),
                asset: USDC.into(),
                nonce,
                amount: "10000".into(),
                amount_micro_usd: 10_000,
                valid_before,
                route: "/api/*".into(),
                network: "eip155:31337".into(),
                deferred: true,
                payload: serde_json::json!({}),
                held: false,
                ticket: String::new(),
                worked: false,
                payment_id: None,
                request: String::new(),
                reports_serving: false,
            },
            &policy(),
            now,
        )
        .unwrap();
        id
    }

    /// Plays the shell's alarm loop with the facilitator unreachable (every /settle unanswered) and
    /// a chain that says the authorization is unused, until `until`; returns the time it stopped.
    fn facilitator_down(l: &mut Ledger, id: &str, mut now: u64, until: u64) -> u64 {
        let p = policy();
        while now < until {
            let Some(next) = l.next_alarm() else { break };
            now = now.max(next);
            if now >= until {
                break;
            }
            l.prune(now);
            while let Some(a) = l.due(now).into_iter().next() {
                let Some(a) = l.begin(&a.id, &p, now) else {
                    break;
                };
                let outcome = match a.action {
                    Action::Settle => Outcome::Unknown {
                        why: "facilitator /settle: Network connection lost.".into(),
                    },
                    Action::Reconcile => Outcome::OnChainUnused,
                };
                l.record(id, outcome, &p, now);
            }
        }
        now
    }

    /// A facilitator outage longer than `max_attempts_unknown` backoffs (about 31 s here) used to
    /// fail a collectable payment as `settlement_unknown` ("may have moved") although every chain
    /// read said it had not, minutes before its deadline.
    #[test]
    fn an_outage_the_chain_can_see_through_does_not_give_a_payment_up() {
        let p = policy();
        let mut l = Ledger::new();
        let vb = T0 + 300;
        let id = admit(&mut l, vb, T0);
        let now = facilitator_down(&mut l, &id, T0, T0 + 120);
        let e = l.entry(&id).unwrap();
        assert!(
            matches!(e.status, Status::Unknown | Status::Pending),
            "still open after a 2-minute outage: {e:?}"
        );
        assert!(e.unknowns > p.max_attempts_unknown);
        // The backoff kept growing: a handful of attempts, not one a second.
        assert!(e.unknowns <= 12, "{} attempts", e.unknowns);
        // The facilitator is back: the next attempt reconciles, then resends, and it settles.
        let now = now.max(l.next_alarm().unwrap());
        let a = l.begin(&id, &p, now).unwrap();
        assert_eq!(a.action, Action::Reconcile);
        assert_eq!(
            l.record(&id, Outcome::OnChainUnused, &p, now),
            Effect::Retry { at: now }
        );
        let a = l.begin(&id, &p, now).unwrap();
        assert_eq!(a.action, Action::Settle);
        let tx = format!("0x{}", "ab".repeat(32));
        assert_eq!(
            l.record(
                &id,
                Outcome::Settled {
                    transaction: tx.clone()
                },
                &p,
                now
            ),
            Effect::Settled
        );
        assert_eq!(l.entry(&id).unwrap().transaction, Some(tx));
        assert_eq!(l.view().lost_micro_usd, 0);
    }

    /// An outage that outlasts the authorization ends as lost revenue for the right reason.
    #[test]
    fn an_outage_past_the_authorization_ends_as_expired_unsettled() {
        let mut l = Ledger::new();
        let vb = T0 + 300;
        let id = admit(&mut l, vb, T0);
        facilitator_down(&mut l, &id, T0, vb + 10 * CHAIN_GRACE);
        let e = l.entry(&id).unwrap();
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.reason.as_deref(), Some(EXPIRED_UNSETTLED), "{e:?}");
        assert!(!e.delinquent);
        assert_eq!(l.view().lost_micro_usd, 10_000);
        assert_eq!(l.next_alarm(), None);
        // Lost without the payer's fault, it counts against the wallet's credit until the admin
        // forgives the wallet, which refills it.
        assert_eq!(l.clear_delinquency(), 10_000);
        assert_eq!(l.view().lost_micro_usd, 0);
        assert!(l.entry(&id).is_none());
    }

    /// An immediate payment admitted before the origin answered can be withdrawn until its
    /// settlement is sent; a deferred one only until its batch is attempted.
    #[test]
    fn withdraw_only_what_no_attempt_can_have_moved() {
        let p = policy();
        let mut l = Ledger::new();
        let mut a = Admission {
            id: "31337:a:1".into(),
            asset: USDC.into(),
            nonce: format!("0x{:064x}", 1),
            amount: "10000".into(),
            amount_micro_usd: 10_000,
            valid_before: T0 + 300,
            route: "/api/*".into(),
            network: "eip155:31337".into(),
            deferred: false,
            payload: serde_json::json!({}),
            held: false,
            ticket: String::new(),
            worked: false,
            payment_id: None,
            request: String::new(),
            reports_serving: false,
        };
        l.admit(a.clone(), &p, T0).unwrap();
        assert_eq!(l.withdraw(&a.id), Ok(10_000));
        assert!(l.entry(&a.id).is_none());
        assert_eq!(l.view().forgiven, 1);
        assert_eq!(l.next_alarm(), None);
        // Never sent, never served: the same authorization may still buy something, once.
        assert!(!l.remembers(&a.asset, &a.nonce));
        l.admit(a.clone(), &p, T0).unwrap();
        assert_eq!(l.admit(a.clone(), &p, T0), Err(AdmitError::Replay));
        l.record(
            &a.id,
            Outcome::Settled {
                transaction: "0x1".into(),
            },
            &p,
            T0,
        );
        assert_eq!(l.view().admitted, 2);
        assert_eq!(l.view().settled.len(), 1);
        // Once an outcome came back (here: no answer), the money may have moved: not withdrawn.
        a.id = "31337:a:2".into();
        a.nonce = format!("0x{:064x}", 2);
        l.admit(a.clone(), &p, T0).unwrap();
        l.record(&a.id, Outcome::Unknown { why: "x".into() }, &p, T0);
        assert_eq!(l.withdraw(&a.id), Err(AdminError::NotAllowed));
        // Admin revocation never touches an immediate entry in flight.
        a.id = "31337:a:3".into();
        a.nonce = format!("0x{:064x}", 3);
        l.admit(a.clone(), &p, T0).unwrap();
        assert_eq!(l.revoke(&a.id), Err(AdminError::NotAllowed));
        // A deferred entry: withdrawn (and forgotten) while pending, not once its batch is in flight.
        let id = admit(&mut l, T0 + 300, T0);
        assert_eq!(l.withdraw(&id), Ok(10_000));
        assert!(!l.remembers(USDC, &format!("0x{:064x}", 7)));
        let mut l = Ledger::new();
        let id = admit(&mut l, T0 + 300, T0);
        l.begin(&id, &p, T0 + 2).unwrap();
        assert_eq!(l.withdraw(&id), Err(AdminError::NotAllowed));
        // After an attempt that may have moved the money, a failed entry is withdrawn as revoked,
        // but its nonce stays remembered: admitting it again could charge the payer twice.
        l.record(&id, Outcome::Unknown { why: "x".into() }, &p, T0 + 2);
        l.record(
            &id,
            Outcome::Refused {
                reason: "invalid_exact_evm_nonce_already_used".into(),
                message: String::new(),
            },
            &p,
            T0 + 4,
        );
        l.record(&id, Outcome::NoRpc, &p, T0 + 4);
        assert_eq!(l.entry(&id).unwrap().status, Status::Failed);
        assert_eq!(l.withdraw(&id), Ok(10_000));
        assert!(l.remembers(USDC, &format!("0x{:064x}", 7)));
        // The invariant of rule 1 holds throughout.
        let v = l.view();
        assert_eq!(
            v.admitted,
            (v.pending.len() + v.settled.len() + v.failed.len()) as u64
                + v.settled_trimmed
                + v.failed_trimmed
                + v.forgiven
        );
    }

    /// Without chain reads to resolve them, unanswered attempts stay bounded: a settle nobody
    /// answered and a chain that cannot be read count alike.
    #[test]
    fn unresolved_unknowns_are_still_bounded() {
        let p = policy();
        let mut l = Ledger::new();
        let id = admit(&mut l, T0 + 3_600, T0);
        let mut now = T0 + 2;
        let mut records = 0;
        while let Effect::Retry { at } =
            l.record(&id, Outcome::Unknown { why: "x".into() }, &p, now)
        {
            records += 1;
            now = at;
        }
        assert_eq!(records, p.max_attempts_unknown);
        let e = l.entry(&id).unwrap();
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.reason.as_deref(), Some(SETTLEMENT_UNKNOWN));
    }

    #[test]
    fn a_sweep_takes_every_wallet_when_they_fit_and_a_window_that_wraps_when_not() {
        let wallets: Vec<String> = (0..7).map(|i| format!("0x{i}")).collect();
        let names = |picked: Vec<&String>| {
            picked
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            names(sweep_turn(&wallets, 5, 7)),
            "0x0,0x1,0x2,0x3,0x4,0x5,0x6"
        );
        assert_eq!(names(sweep_turn(&wallets, 5, 3)), "0x5,0x6,0x0");
        assert_eq!(names(sweep_turn(&wallets, 7 * 1000 + 2, 3)), "0x2,0x3,0x4");
        assert!(sweep_turn(&[], 9, 3).is_empty());
        // Every wallet is reachable from some start.
        let mut seen = std::collections::BTreeSet::new();
        for start in 0..wallets.len() {
            seen.extend(sweep_turn(&wallets, start, 3));
        }
        assert_eq!(seen.len(), wallets.len());
    }

    #[test]
    fn dollars_in_refusals_keep_six_decimals() {
        assert_eq!(usd(0), "0.000000");
        assert_eq!(usd(15_000), "0.015000");
        assert_eq!(usd(12_000_001), "12.000001");
        assert_eq!(
            usd(u128::MAX),
            format!("{}.{:06}", u128::MAX / 1_000_000, u128::MAX % 1_000_000)
        );
    }
}
