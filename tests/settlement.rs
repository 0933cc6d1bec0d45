//! The deferred-settlement ledger: admission, batching, every outcome path, the admin operations,
//! storage, and a property test driven by a deterministic PRNG that checks nothing is ever lost.

use std::collections::BTreeMap;

use serde_json::json;
use x402_edge::facilitator::SettleOutcome;
use x402_edge::json::{self, Read};
use x402_edge::settlement::{
    classify_refusal, refusal_is_uncertain, refused_by_limit, Action, AdminError, Admission,
    AdmitError, Effect, Ledger, LedgerPolicy, LedgerView, Outcome, RefusalKind, Status,
    ANSWER_KEPT_SECONDS, AUTHORIZATION_CANCELLED, AUTHORIZATION_USED_BEFORE,
    AUTHORIZATION_USED_ELSEWHERE, CHAIN_GRACE, COUNTERS_ROW, EXPIRED_UNSETTLED, HOLD_RETRY_ROOM,
    HOLD_SECONDS, IN_FLIGHT_LEASE, LIMIT_MARK, MIN_SAFETY_MARGIN, REPEATABLE_KEPT, REPEAT_SECONDS,
    REPLAY_GRACE, SETTLEMENT_UNKNOWN, UNCONFIRMED_NONCE_USED, UNCONFIRMED_REFUSAL,
};
use x402_edge::x402::SettleResponse;

const T0: u64 = 1_750_000_000;
const USDC: &str = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";
const OTHER: &str = "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913";
/// A validBefore far enough away for every deferral in these tests.
const LONG: u64 = T0 + 3_600;

/// The whole credit from the first payment: most tests here are about what happens to a payment
/// once it is deferred. Earned credit has its own tests below.
fn policy() -> LedgerPolicy {
    LedgerPolicy {
        credit_limit: 100_000,
        batch_window: 60,
        safety_margin: 30,
        max_attempts_unknown: 3,
        settled_history: 5,
        earned_credit: false,
        serve_within: 30,
    }
}

fn nonce(n: u64) -> String {
    format!("0x{n:064x}")
}

fn admission(asset: &str, n: u64, micro: u128, valid_before: u64, deferred: bool) -> Admission {
    let nonce = nonce(n);
    Admission {
        id: format!("eip155:84532:{asset}:{nonce}"),
        asset: asset.to_string(),
        nonce: nonce.clone(),
        amount: micro.to_string(),
        amount_micro_usd: micro,
        valid_before,
        route: "/api/*".into(),
        network: "eip155:84532".into(),
        deferred,
        payload: json!({"x402Version": 2, "nonce": nonce}),
        held: false,
        ticket: String::new(),
        worked: false,
        payment_id: None,
        request: String::new(),
        reports_serving: false,
    }
}

/// `a` as admitted by the request holding `ticket`.
fn by(ticket: &str, a: Admission) -> Admission {
    Admission {
        ticket: ticket.into(),
        ..a
    }
}

fn deferred(n: u64, micro: u128) -> Admission {
    admission(USDC, n, micro, LONG, true)
}

/// A deferred admission held while the origin answers.
fn held(n: u64, micro: u128, valid_before: u64) -> Admission {
    Admission {
        held: true,
        ..admission(USDC, n, micro, valid_before, true)
    }
}

fn settled(tx: &str) -> Outcome {
    Outcome::Settled {
        transaction: tx.into(),
    }
}

fn refused(reason: &str) -> Outcome {
    Outcome::Refused {
        reason: reason.into(),
        message: String::new(),
    }
}

fn unknown() -> Outcome {
    Outcome::Unknown {
        why: "facilitator answered 504".into(),
    }
}

/// Admits one deferred payment and brings it to its first attempt; returns (ledger, id, due time).
fn one_due(micro: u128) -> (Ledger, String, u64) {
    let mut l = Ledger::new();
    let a = deferred(1, micro);
    let id = a.id.clone();
    l.admit(a, &policy(), T0).unwrap();
    let at = T0 + 60;
    assert_eq!(l.due(at).len(), 1);
    (l, id, at)
}

/// Rule 1's count: open, settled, failed, trimmed and forgiven entries, which must add up to
/// those admitted.
fn accounted(v: &LedgerView) -> u64 {
    (v.pending.len() + v.settled.len() + v.failed.len()) as u64
        + v.settled_trimmed
        + v.failed_trimmed
        + v.forgiven
}

fn status(l: &Ledger, id: &str) -> Status {
    l.entry(id).unwrap().status
}

#[test]
fn admit_then_replay_until_valid_before_passes() {
    let p = LedgerPolicy {
        settled_history: 0,
        ..policy()
    };
    let mut l = Ledger::new();
    let vb = T0 + 600;
    let a = admission(USDC, 7, 10_000, vb, true);
    let id = a.id.clone();
    l.admit(a.clone(), &p, T0).unwrap();
    assert_eq!(l.admit(a.clone(), &p, T0), Err(AdmitError::Replay));
    // The same nonce in another spelling is the same authorization.
    let mut upper = a.clone();
    upper.nonce = upper.nonce.to_uppercase().replacen("0X", "0x", 1);
    upper.id.push('x');
    assert_eq!(l.admit(upper, &p, T0), Err(AdmitError::Replay));
    // The same nonce on another asset is another authorization.
    l.admit(admission(OTHER, 7, 10_000, vb, true), &p, T0)
        .unwrap();

    // Settled, and trimmed out of the history: still a replay, the nonce is remembered.
    assert_eq!(l.record(&id, settled("0xaa"), &p, T0 + 60), Effect::Settled);
    assert!(l.entry(&id).is_none());
    assert_eq!(l.view().settled_trimmed, 1);
    assert_eq!(l.admit(a.clone(), &p, T0 + 100), Err(AdmitError::Replay));
    l.prune(vb + REPLAY_GRACE - 1);
    assert_eq!(
        l.admit(a.clone(), &p, vb + REPLAY_GRACE - 1),
        Err(AdmitError::Replay)
    );
    l.prune(vb + REPLAY_GRACE);
    assert!(!l.remembers(USDC, &nonce(7)));
    let mut later = a;
    later.valid_before = vb + REPLAY_GRACE + 600;
    l.admit(later, &p, vb + REPLAY_GRACE).unwrap();
}

#[test]
fn credit_limit_is_per_wallet_and_counts_open_entries() {
    let p = policy();
    let mut l = Ledger::new();
    l.admit(deferred(1, 60_000), &p, T0).unwrap();
    assert_eq!(
        l.admit(deferred(2, 50_000), &p, T0),
        Err(AdmitError::CreditExceeded {
            unsettled: 60_000,
            limit: 100_000
        })
    );
    // Exactly at the limit is fine.
    l.admit(deferred(3, 40_000), &p, T0).unwrap();
    assert_eq!(l.unsettled(), 100_000);
    // Immediate settlement is not credit; it still counts as unsettled while in flight.
    l.admit(admission(USDC, 4, 50_000, LONG, false), &p, T0)
        .unwrap();
    assert_eq!(l.unsettled(), 150_000);
    // Settling frees credit.
    for a in l.due(T0 + 60) {
        l.record(&a.id, settled("0x1"), &p, T0 + 60);
    }
    l.record(
        &admission(USDC, 4, 0, 0, false).id,
        settled("0x2"),
        &p,
        T0 + 1,
    );
    assert_eq!(l.unsettled(), 0);
    l.admit(deferred(2, 50_000), &p, T0 + 61).unwrap();
}

/// Credit is earned: what a wallet may leave unsettled grows with what it has paid.
fn earned() -> LedgerPolicy {
    LedgerPolicy {
        earned_credit: true,
        ..policy()
    }
}

/// Payment `n` of `micro`, settled before it was served (admitted at T0, settled at T0 + 1).
fn paid_now(l: &mut Ledger, p: &LedgerPolicy, n: u64, micro: u128) {
    let a = admission(USDC, n, micro, LONG, false);
    l.admit(a.clone(), p, T0).unwrap();
    assert_eq!(l.record(&a.id, settled("0x1"), p, T0 + 1), Effect::Settled);
}

#[test]
fn a_new_wallet_is_trusted_with_no_more_than_it_has_paid() {
    let p = earned();
    let mut l = Ledger::new();
    // A throwaway key that never paid anything gets no credit: its payment must settle first.
    assert_eq!(
        l.admit(deferred(1, 10_000), &p, T0),
        Err(AdmitError::CreditNotEarned {
            unsettled: 0,
            paid: 0
        })
    );
    assert_eq!(l.view().admitted, 0, "a refused admission leaves no entry");
    assert_eq!(l.credit(&p), 0);
    // Settled before it was served (the Worker's fallback): now the wallet has paid 10_000.
    paid_now(&mut l, &p, 1, 10_000);
    assert_eq!((l.paid(), l.credit(&p)), (10_000, 10_000));
    // So it may leave that much unsettled, and no more.
    l.admit(deferred(2, 6_000), &p, T0 + 3).unwrap();
    l.admit(deferred(3, 4_000), &p, T0 + 3).unwrap();
    assert_eq!(
        l.admit(deferred(4, 1), &p, T0 + 3),
        Err(AdmitError::CreditNotEarned {
            unsettled: 10_000,
            paid: 10_000
        })
    );
    // A deferred payment that failed is not paid: it earns nothing.
    let due = l.due(T0 + 63);
    assert_eq!(due.len(), 2);
    l.record(&due[0].id, settled("0x2"), &p, T0 + 63);
    l.record(&due[1].id, refused("insufficient_funds"), &p, T0 + 63);
    assert_eq!(l.paid(), 16_000);
    assert!(l.is_delinquent());
    // An admin's mark_paid is money that arrived: it counts, and lifts the debt.
    l.mark_paid(&due[1].id, "0x3".into(), T0 + 70).unwrap();
    assert_eq!(l.paid(), 20_000);
    assert_eq!(l.view().paid_micro_usd, 20_000);
    l.admit(deferred(5, 20_000), &p, T0 + 71).unwrap();
}

#[test]
fn earned_credit_never_passes_the_limit_and_then_over_credit_applies() {
    let p = earned();
    let mut l = Ledger::new();
    for n in 0..3 {
        paid_now(&mut l, &p, n, 60_000);
    }
    assert_eq!((l.paid(), l.credit(&p)), (180_000, 100_000));
    l.admit(deferred(10, 60_000), &p, T0 + 2).unwrap();
    // Past the publisher's limit the refusal is the limit's, whatever was earned: the route's
    // overCredit rule applies (settle first or refuse), as without earned credit.
    assert_eq!(
        l.admit(deferred(11, 50_000), &p, T0 + 2),
        Err(AdmitError::CreditExceeded {
            unsettled: 60_000,
            limit: 100_000
        })
    );
}

#[test]
fn what_a_wallet_paid_survives_storage_and_trimming() {
    let p = LedgerPolicy {
        settled_history: 0,
        ..earned()
    };
    let mut l = Ledger::new();
    paid_now(&mut l, &p, 1, 30_000);
    assert!(l.view().settled.is_empty(), "trimmed from the view");
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    let back = Ledger::from_rows(stored.iter());
    assert_eq!(back.paid(), 30_000);
    assert_eq!(back.credit(&p), 30_000);
    let whole: Ledger = json::parse(&serde_json::to_string(&l).unwrap()).unwrap();
    assert_eq!(whole.paid(), 30_000);
}

#[test]
fn a_ledger_kept_before_payments_were_counted_earns_what_its_settled_entries_show() {
    let p = earned();
    let mut l = Ledger::new();
    for n in 0..2 {
        paid_now(&mut l, &p, n, 25_000);
    }
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    // The counters row as it was written before it held the paid total.
    let row = stored.get_mut(COUNTERS_ROW).unwrap();
    let mut counters: serde_json::Value = serde_json::from_str(row).unwrap();
    assert_eq!(counters["p"], "50000");
    counters.as_object_mut().unwrap().remove("p");
    *row = counters.to_string();
    assert_eq!(Ledger::from_rows(stored.iter()).paid(), 50_000);
}

#[test]
fn too_late_to_defer() {
    let p = policy();
    let mut l = Ledger::new();
    // validBefore − margin must be at least now + batch window.
    let edge = T0 + 60 + 30;
    assert_eq!(
        l.admit(admission(USDC, 1, 1, edge - 1, true), &p, T0),
        Err(AdmitError::TooLateToDefer)
    );
    l.admit(admission(USDC, 2, 1, edge, true), &p, T0).unwrap();
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    // The shell asks the same question before it admits (to give the origin its whole time when
    // the payment will be settled now instead).
    assert!(!p.may_defer(T0, edge - 1));
    assert!(p.may_defer(T0, edge));
    assert!(!p.may_defer(T0, 0));
    // A margin below the facilitator's own window is raised to it.
    let thin = LedgerPolicy {
        safety_margin: 0,
        ..p
    };
    assert_eq!(thin.margin(), MIN_SAFETY_MARGIN);
    assert_eq!(
        l.admit(
            admission(USDC, 3, 1, T0 + 60 + MIN_SAFETY_MARGIN - 1, true),
            &thin,
            T0
        ),
        Err(AdmitError::TooLateToDefer)
    );
    // Already expired: too late, and no arithmetic underflow.
    assert_eq!(
        l.admit(admission(USDC, 4, 1, 0, true), &p, T0),
        Err(AdmitError::TooLateToDefer)
    );
    // A refused admission leaves nothing behind.
    assert_eq!(l.view().admitted, 1);
    assert!(!l.remembers(USDC, &nonce(1)));
}

/// A batch is sent the payment that can wait least first: a wallet that falls behind then loses
/// the fewest to their `validBefore`.
#[test]
fn a_batch_goes_earliest_deadline_first() {
    let p = policy();
    let mut l = Ledger::new();
    l.admit(admission(USDC, 1, 1, LONG, true), &p, T0).unwrap();
    l.admit(admission(USDC, 2, 1, T0 + 900, true), &p, T0 + 1)
        .unwrap();
    l.admit(admission(USDC, 3, 1, T0 + 1200, true), &p, T0 + 2)
        .unwrap();
    let due = l.due(T0 + 60);
    let order: Vec<_> = due.iter().map(|a| a.payload["nonce"].clone()).collect();
    assert_eq!(order, [nonce(2), nonce(3), nonce(1)]);
    assert_eq!(l.first_due(T0 + 60), Some(due[0].id.clone()));
}

#[test]
fn admissions_in_one_window_settle_in_one_batch() {
    let p = policy();
    let mut l = Ledger::new();
    l.admit(deferred(1, 1), &p, T0).unwrap();
    l.admit(deferred(2, 1), &p, T0 + 30).unwrap();
    l.admit(deferred(3, 1), &p, T0 + 59).unwrap();
    let v = l.view();
    assert!(v.pending.iter().all(|e| e.due_at.unwrap() <= T0 + 60));
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    assert!(l.due(T0 + 59).is_empty());
    let due = l.due(T0 + 60);
    assert_eq!(due.len(), 3);
    assert!(due
        .iter()
        .all(|a| a.action == Action::Settle && a.may_resend));
    assert_eq!(due[0].payload["nonce"], nonce(1));
    // After the batch, a new admission opens a new window.
    for a in &due {
        l.record(&a.id, settled("0xbb"), &p, T0 + 61);
    }
    l.admit(deferred(4, 1), &p, T0 + 70).unwrap();
    assert_eq!(l.next_alarm(), Some(T0 + 130));
    // A deferral never waits past its own deadline, even to join a batch.
    let mut l = Ledger::new();
    l.admit(deferred(1, 1), &p, T0).unwrap();
    l.admit(admission(USDC, 2, 1, T0 + 10 + 60 + 30, true), &p, T0 + 10)
        .unwrap();
    assert!(l.view().pending.iter().all(|e| e.due_at == Some(T0 + 60)));
}

#[test]
fn a_held_entry_is_not_due_until_released() {
    let p = policy();
    let mut l = Ledger::new();
    let a = held(1, 5_000, LONG);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let e = l.entry(&id).unwrap();
    assert_eq!(e.status, Status::Pending);
    assert_eq!(e.held_until, Some(T0 + HOLD_SECONDS));
    // Its batch time passes: not attempted, and it does not wake the ledger for it.
    assert!(l.due(T0 + 60).is_empty());
    assert!(l.due(T0 + HOLD_SECONDS - 1).is_empty());
    assert_eq!(l.next_alarm(), Some(T0 + HOLD_SECONDS));
    assert_eq!(e.due_at, Some(T0 + HOLD_SECONDS));
    // An ordinary admission still joins its batch; a release puts both in it.
    let b = deferred(2, 1_000);
    l.admit(b.clone(), &p, T0 + 10).unwrap();
    assert_eq!(l.entry(&b.id).unwrap().due_at, Some(T0 + 60));
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    assert_eq!(l.due(T0 + 60).len(), 1);
    assert_eq!(l.release(&id, T0 + 20), Ok(()));
    let e = l.entry(&id).unwrap();
    assert_eq!((e.held_until, e.due_at), (None, Some(T0 + 60)));
    assert!(l.due(T0 + 59).is_empty());
    let due = l.due(T0 + 60);
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|a| a.action == Action::Settle));
    // Releasing again, or something that is not held, changes nothing; an unknown id is an error.
    let before = l.clone();
    assert_eq!(l.release(&id, T0 + 20), Ok(()));
    assert_eq!(l.release(&b.id, T0 + 20), Ok(()));
    assert_eq!(l, before);
    assert_eq!(l.release("nope", T0 + 20), Err(AdminError::NotFound));
    for a in due {
        l.begin(&a.id, &p, T0 + 60).unwrap();
        assert_eq!(
            l.record(&a.id, settled("0x1"), &p, T0 + 61),
            Effect::Settled
        );
    }
    assert_eq!(l.next_alarm(), None);

    // Released after its batch time (a slow origin): due at once.
    let mut l = Ledger::new();
    let a = held(3, 5_000, LONG);
    l.admit(a.clone(), &p, T0).unwrap();
    assert!(l.due(T0 + 90).is_empty());
    l.release(&a.id, T0 + 90).unwrap();
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    assert_eq!(l.due(T0 + 90).len(), 1);
    // It does not pull a later admission into a batch that is already over.
    l.admit(deferred(4, 1), &p, T0 + 90).unwrap();
    assert_eq!(l.entry(&deferred(4, 1).id).unwrap().due_at, Some(T0 + 150));
}

#[test]
fn a_hold_ends_by_itself_and_never_past_the_deadline() {
    let p = policy();
    // Nobody released it (the Worker died, or its release was lost): settled after the hold.
    let mut l = Ledger::new();
    let a = held(1, 5_000, LONG);
    l.admit(a.clone(), &p, T0).unwrap();
    let at = T0 + HOLD_SECONDS;
    assert!(l.due(at - 1).is_empty());
    assert_eq!(l.next_alarm(), Some(at));
    let due = l.due(at);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].action, Action::Settle);
    assert!(due[0].may_resend);
    l.begin(&a.id, &p, at).unwrap();
    assert_eq!(l.entry(&a.id).unwrap().held_until, None);
    assert_eq!(l.record(&a.id, settled("0xab"), &p, at), Effect::Settled);
    assert_eq!(l.next_alarm(), None);

    // A short authorization: the hold ends HOLD_RETRY_ROOM before validBefore − margin, while it
    // can still be settled, and tried again if the first attempt is refused for now.
    let mut l = Ledger::new();
    let vb = T0 + 100; // deadline T0 + 70, batch T0 + 60
    let a = held(2, 5_000, vb);
    l.admit(a.clone(), &p, T0).unwrap();
    let ends = T0 + 70 - HOLD_RETRY_ROOM;
    assert_eq!(l.entry(&a.id).unwrap().held_until, Some(ends));
    assert_eq!(l.next_alarm(), Some(ends));
    assert!(l.due(ends - 1).is_empty());
    let due = l.due(ends);
    assert_eq!(due.len(), 1);
    assert!(due[0].may_resend);
    l.begin(&a.id, &p, ends).unwrap();
    assert_eq!(
        l.record(&a.id, refused("unexpected_settle_error"), &p, ends),
        Effect::Retry { at: ends + 1 },
        "retried before the deadline"
    );
    assert_eq!(l.due(ends + 1).len(), 1);
    l.begin(&a.id, &p, ends + 1).unwrap();
    assert_eq!(
        l.record(&a.id, settled("0xcd"), &p, ends + 1),
        Effect::Settled
    );

    // Never before the batch time (T0 + 60): a deadline just past it leaves less room.
    assert_eq!(p.hold_ends(T0, T0 + 30 + 75), T0 + 75 - HOLD_RETRY_ROOM);
    assert_eq!(p.hold_ends(T0, T0 + 30 + 61), T0 + 60);
    assert_eq!(p.hold_ends(T0, T0 + 30 + 60), T0 + 60);

    // Nobody woke the ledger until it could no longer be sent: lost revenue, as for any entry.
    let mut l = Ledger::new();
    let a = held(3, 5_000, vb);
    l.admit(a.clone(), &p, T0).unwrap();
    l.prune(vb - 6);
    let e = l.entry(&a.id).unwrap();
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.reason.as_deref(), Some(EXPIRED_UNSETTLED));
    assert_eq!(e.held_until, None);
    assert_eq!(l.next_alarm(), None);
    // Released too late: the same, at once.
    let mut l = Ledger::new();
    l.admit(a.clone(), &p, T0).unwrap();
    l.release(&a.id, vb - 6).unwrap();
    assert_eq!(status(&l, &a.id), Status::Failed);
}

#[test]
fn a_held_entry_is_withdrawn_when_the_origin_fails() {
    let p = policy();
    let mut l = Ledger::new();
    let a = held(1, 5_000, LONG);
    l.admit(a.clone(), &p, T0).unwrap();
    // Long after its batch time: still held, nothing sent, so it simply goes.
    assert!(l.due(T0 + 90).is_empty());
    assert_eq!(l.withdraw(&a.id), Ok(5_000));
    assert!(l.entry(&a.id).is_none());
    assert!(
        !l.remembers(USDC, &nonce(1)),
        "nothing was served: the nonce is free again"
    );
    assert_eq!(l.unsettled(), 0);
    assert_eq!(l.next_alarm(), None);
    let v = l.view();
    assert_eq!((v.admitted, v.forgiven), (1, 1));
    // Its hold ended but no attempt was made yet: still withdrawn.
    let mut l = Ledger::new();
    l.admit(a.clone(), &p, T0).unwrap();
    assert_eq!(l.due(T0 + HOLD_SECONDS).len(), 1);
    assert_eq!(l.withdraw(&a.id), Ok(5_000));
    assert!(!l.remembers(USDC, &nonce(1)));
    // Once an attempt started, the money may move: too late to withdraw.
    let mut l = Ledger::new();
    l.admit(a.clone(), &p, T0).unwrap();
    l.begin(&a.id, &p, T0 + HOLD_SECONDS).unwrap();
    assert_eq!(l.withdraw(&a.id), Err(AdminError::NotAllowed));
}

#[test]
fn held_entries_count_for_credit_and_replay() {
    let p = policy();
    let mut l = Ledger::new();
    let a = held(1, 60_000, LONG);
    l.admit(a.clone(), &p, T0).unwrap();
    assert_eq!(l.unsettled(), 60_000);
    assert_eq!(
        l.admit(deferred(2, 50_000), &p, T0),
        Err(AdmitError::CreditExceeded {
            unsettled: 60_000,
            limit: 100_000
        })
    );
    assert_eq!(
        l.admit(held(2, 50_000, LONG), &p, T0),
        Err(AdmitError::CreditExceeded {
            unsettled: 60_000,
            limit: 100_000
        })
    );
    assert_eq!(l.admit(a.clone(), &p, T0 + 1), Err(AdmitError::Replay));
    assert_eq!(l.admit(deferred(1, 1), &p, T0 + 1), Err(AdmitError::Replay));
    let v = l.view();
    assert_eq!(v.unsettled_micro_usd, 60_000);
    assert_eq!(v.pending.len(), 1);
    assert_eq!(v.pending[0].held_until, Some(T0 + HOLD_SECONDS));
    // Released or not, the credit comes back only once it is settled (or withdrawn).
    l.release(&a.id, T0 + 1).unwrap();
    assert_eq!(l.unsettled(), 60_000);
    l.withdraw(&a.id).unwrap();
    l.admit(deferred(2, 50_000), &p, T0 + 2).unwrap();
    // An immediate admission is never held.
    let i = Admission {
        held: true,
        ..admission(USDC, 3, 1, LONG, false)
    };
    l.admit(i.clone(), &p, T0 + 2).unwrap();
    let e = l.entry(&i.id).unwrap();
    assert_eq!((e.status, e.held_until), (Status::InFlight, None));
}

#[test]
fn a_request_whose_admission_answer_was_lost_may_admit_again() {
    let p = policy();
    let mut l = Ledger::new();
    let a = by("request-1", held(1, 5_000, LONG));
    l.admit(a.clone(), &p, T0).unwrap();
    // The same request, the same held admission again: the same entry, counted once.
    assert_eq!(l.admit(a.clone(), &p, T0), Ok(()));
    assert_eq!((l.view().admitted, l.unsettled()), (1, 5_000));
    // It fell back to settling the payment itself: the entry becomes that immediate settlement,
    // no longer held, no longer waiting for a batch.
    let immediate = by("request-1", admission(USDC, 1, 5_000, LONG, false));
    assert_eq!(l.admit(immediate.clone(), &p, T0 + 1), Ok(()));
    let e = l.entry(&a.id).unwrap();
    assert_eq!((e.status, e.held_until), (Status::InFlight, None));
    assert!(
        l.due(T0 + HOLD_SECONDS).is_empty(),
        "the request settles it"
    );
    assert_eq!(l.admit(immediate, &p, T0 + 1), Ok(()));
    assert_eq!(
        l.record_from(Some("request-1"), &a.id, settled("0xab"), &p, T0 + 2),
        Effect::Settled
    );
    assert_eq!(l.view().admitted, 1);
    // Settled: admitting it again is a replay, even for the same request.
    assert_eq!(l.admit(a.clone(), &p, T0 + 3), Err(AdmitError::Replay));

    // The wallet became delinquent meanwhile: the same request is still admitted (turned away,
    // its held entry would be collected unserved); anyone else is refused for the debt.
    let mut l = Ledger::new();
    let debt = deferred(2, 1_000);
    l.admit(debt.clone(), &p, T0).unwrap();
    l.admit(a.clone(), &p, T0).unwrap();
    l.begin(&debt.id, &p, T0 + 60).unwrap();
    l.record(&debt.id, refused("insufficient_funds"), &p, T0 + 60);
    assert!(l.is_delinquent());
    let immediate = by("request-1", admission(USDC, 1, 5_000, LONG, false));
    assert_eq!(l.admit(immediate, &p, T0 + 61), Ok(()));
    assert!(matches!(
        l.admit(by("request-2", held(1, 5_000, LONG)), &p, T0 + 61),
        Err(AdmitError::Delinquent { .. })
    ));

    // Another request carrying the same payment is a replay, held or immediate.
    let mut l = Ledger::new();
    l.admit(a.clone(), &p, T0).unwrap();
    assert_eq!(
        l.admit(by("request-2", held(1, 5_000, LONG)), &p, T0),
        Err(AdmitError::Replay)
    );
    assert_eq!(
        l.admit(
            by("request-2", admission(USDC, 1, 5_000, LONG, false)),
            &p,
            T0
        ),
        Err(AdmitError::Replay)
    );
    // So is one without a ticket (a Worker of an earlier version).
    assert_eq!(
        l.admit(held(1, 5_000, LONG), &p, T0),
        Err(AdmitError::Replay)
    );
    assert!(l.entry(&a.id).unwrap().held_until.is_some());

    // Once an attempt was made, nobody admits it again: the money may have moved.
    l.begin(&a.id, &p, T0 + HOLD_SECONDS).unwrap();
    assert_eq!(
        l.admit(a.clone(), &p, T0 + HOLD_SECONDS),
        Err(AdmitError::Replay)
    );
    let immediate = by("request-1", admission(USDC, 1, 5_000, LONG, false));
    assert_eq!(
        l.admit(immediate, &p, T0 + HOLD_SECONDS),
        Err(AdmitError::Replay)
    );
}

#[test]
fn only_the_admitting_request_withdraws_releases_or_fails_its_payment() {
    let p = policy();
    let mut l = Ledger::new();
    let a = by("request-1", held(1, 5_000, LONG));
    l.admit(a.clone(), &p, T0).unwrap();
    assert!(l.owns(&a.id, Some("request-1")));
    assert!(!l.owns(&a.id, Some("request-2")), "a replaying request");
    assert!(l.owns(&a.id, None), "a Worker of an earlier version");
    assert!(!l.owns("nope", Some("request-1")));
    // A replaying request can neither withdraw nor release it...
    assert_eq!(
        l.withdraw_from(Some("request-2"), &a.id),
        Err(AdminError::NotAllowed)
    );
    assert_eq!(
        l.release_from(Some("request-2"), &a.id, T0),
        Err(AdminError::NotAllowed)
    );
    let e = l.entry(&a.id).unwrap();
    assert_eq!(
        (e.status, e.held_until),
        (Status::Pending, Some(T0 + HOLD_SECONDS))
    );
    // A replaying request's failed settlement is not held against the payment it replayed...
    let refusal = refused("invalid_exact_evm_payload_authorization_nonce_already_used");
    let e = l.record_from(Some("request-2"), &a.id, refusal.clone(), &p, T0 + 1);
    assert_eq!(e, Effect::None);
    assert_eq!(status(&l, &a.id), Status::Pending);
    assert_eq!(l.owed(), 0);
    // ...but money that moved is a fact, whoever reports it.
    let e = l.record_from(Some("request-2"), &a.id, settled("0xcd"), &p, T0 + 1);
    assert_eq!(e, Effect::Settled);
    assert_eq!(status(&l, &a.id), Status::Settled);

    // ...the admitting request can.
    let mut l = Ledger::new();
    l.admit(a.clone(), &p, T0).unwrap();
    assert_eq!(l.release_from(Some("request-1"), &a.id, T0), Ok(()));
    assert_eq!(l.entry(&a.id).unwrap().held_until, None);
    assert_eq!(l.withdraw_from(Some("request-1"), &a.id), Ok(5_000));
    assert!(l.entry(&a.id).is_none());

    // The admitting request itself records what it got.
    let mut l = Ledger::new();
    let i = by("request-1", admission(USDC, 2, 5_000, LONG, false));
    l.admit(i.clone(), &p, T0).unwrap();
    let e = l.record_from(Some("request-1"), &i.id, refusal, &p, T0 + 1);
    assert_ne!(e, Effect::None);
    assert_eq!(status(&l, &i.id), Status::Unknown, "read on chain");
    // Entries admitted without a ticket are trusted as before.
    let mut l = Ledger::new();
    let old = held(3, 5_000, LONG);
    l.admit(old.clone(), &p, T0).unwrap();
    assert!(l.owns(&old.id, Some("anyone")));
}

#[test]
fn a_ticket_is_stored_and_travels() {
    let p = policy();
    let mut l = Ledger::new();
    let mut stored = BTreeMap::new();
    let a = by("0123456789abcdef0123456789abcdef", held(1, 5_000, LONG));
    l.admit(a.clone(), &p, T0).unwrap();
    store_rows(&mut l, &mut stored, 0);
    let mut back = Ledger::from_rows(stored.iter());
    assert!(back.owns(&a.id, Some(&a.ticket)));
    assert!(!back.owns(&a.id, Some("another")));
    assert_eq!(back.admit(a.clone(), &p, T0 + 1), Ok(()));
    // On the wire: sent only when there is one; absent reads as none (older Workers).
    let wire = serde_json::to_value(&a).unwrap();
    assert_eq!(wire["ticket"], a.ticket.as_str());
    let plain = serde_json::to_value(held(1, 1, LONG)).unwrap();
    assert!(plain.get("ticket").is_none());
    let read: Admission = Read::read(&plain).unwrap();
    assert!(read.ticket.is_empty());
}

#[test]
fn a_hold_is_stored_and_travels() {
    let p = policy();
    let mut l = Ledger::new();
    l.admit(held(1, 5_000, LONG), &p, T0).unwrap();
    let json = serde_json::to_string(&l).unwrap();
    assert!(
        json.contains(&format!("\"h\":{}", T0 + HOLD_SECONDS)),
        "{json}"
    );
    let back: Ledger = json::parse(&json).unwrap();
    assert_eq!(back, l);
    assert!(back.due(T0 + 60).is_empty());
    // The admission's flag: sent only when set, false when absent (older Workers).
    let wire = serde_json::to_value(held(1, 1, LONG)).unwrap();
    assert_eq!(wire["held"], true);
    let plain = serde_json::to_value(deferred(1, 1)).unwrap();
    assert!(plain.get("held").is_none());
    let read: Admission = Read::read(&plain).unwrap();
    assert!(!read.held);
}

#[test]
fn settle_success() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    let attempt = l.begin(&id, &p, at).unwrap();
    assert_eq!(attempt.action, Action::Settle);
    assert_eq!(status(&l, &id), Status::InFlight);
    // In flight: not due again, and still unsettled.
    assert!(l.due(at + 1).is_empty());
    assert_eq!(l.unsettled(), 5_000);
    let outcome = Outcome::from(SettleOutcome::Settled(SettleResponse {
        success: true,
        error_reason: None,
        error_message: None,
        transaction: "0xfeed".into(),
        network: "eip155:84532".into(),
        payer: None,
    }));
    assert_eq!(l.record(&id, outcome, &p, at + 2), Effect::Settled);
    let v = l.view();
    assert_eq!(v.settled.len(), 1);
    assert_eq!(v.settled[0].transaction.as_deref(), Some("0xfeed"));
    assert_eq!(v.settled[0].closed_at, Some(at + 2));
    assert_eq!(v.unsettled_micro_usd, 0);
    assert_eq!(l.next_alarm(), None);
    // A second answer for a closed entry changes nothing.
    assert_eq!(l.record(&id, refused("x"), &p, at + 3), Effect::None);
    assert_eq!(l.record("nope", settled("0x"), &p, at + 3), Effect::None);
}

#[test]
fn payer_caused_refusal_makes_the_wallet_delinquent() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    let effect = l.record(
        &id,
        Outcome::Refused {
            reason: "invalid_exact_evm_insufficient_balance".into(),
            message: "balance 0".into(),
        },
        &p,
        at,
    );
    assert_eq!(
        effect,
        Effect::Failed {
            became_delinquent: true
        }
    );
    let v = l.view();
    assert!(v.delinquent);
    assert_eq!(v.owed_micro_usd, 5_000);
    assert_eq!(v.lost_micro_usd, 0);
    assert_eq!(
        v.failed[0].reason.as_deref(),
        Some("invalid_exact_evm_insufficient_balance")
    );
    let refusal = l.admit(deferred(2, 1), &p, at + 1).unwrap_err();
    assert_eq!(
        refusal,
        AdmitError::Delinquent {
            owed_micro_usd: 5_000,
            reason: "invalid_exact_evm_insufficient_balance".into()
        }
    );
    assert_eq!(refusal.code(), "delinquent");
    assert!(refusal.to_string().contains("0.005000 USD"));
    // Immediate admissions are refused too.
    assert!(matches!(
        l.admit(admission(USDC, 3, 1, LONG, false), &p, at + 1),
        Err(AdmitError::Delinquent { .. })
    ));
    // The admin forgives: the wallet may pay again.
    assert_eq!(l.clear_delinquency(), 5_000);
    assert!(!l.is_delinquent());
    l.admit(deferred(2, 1), &p, at + 2).unwrap();
    let v = l.view();
    assert_eq!(v.forgiven, 1);
    assert_eq!(v.admitted, 2);
}

/// The facilitator's own trouble is never held against the payer: its account out of gas (which
/// the official facilitator reports as the payer's insufficient balance) is retried, before
/// anything was sent; a send that failed in a way that may follow its broadcast is read on chain.
#[test]
fn the_facilitators_own_trouble_is_not_the_payers() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    let gas = Outcome::Refused {
        reason: "invalid_exact_evm_insufficient_balance".into(),
        message: "insufficient funds for gas * price + value: balance 0, tx cost 52000".into(),
    };
    assert!(matches!(l.record(&id, gas, &p, at), Effect::Retry { .. }));
    assert!(!l.view().delinquent);
    // Nothing was sent: the payer's own refusal next is held against it as on a first attempt.
    let (mut again, id2, at2) = one_due(5_000);
    let gas = Outcome::Refused {
        reason: "invalid_exact_evm_insufficient_balance".into(),
        message: "insufficient funds for gas * price + value".into(),
    };
    let Effect::Retry { at: next } = again.record(&id2, gas, &p, at2) else {
        panic!("not retried");
    };
    again.begin(&id2, &p, next).unwrap();
    assert_eq!(
        again.record(
            &id2,
            refused("invalid_exact_evm_insufficient_balance"),
            &p,
            next
        ),
        Effect::Failed {
            became_delinquent: true
        }
    );
    // A send that failed after it may have left: the chain is read, nothing held against anyone.
    let (mut sent, id3, at3) = one_due(5_000);
    let failed = Outcome::Refused {
        reason: "invalid_exact_evm_transaction_failed".into(),
        message: "HTTP request failed. Status: 502".into(),
    };
    assert!(matches!(
        sent.record(&id3, failed, &p, at3),
        Effect::Retry { .. }
    ));
    assert!(!sent.view().delinquent);
    let due = sent.due(at3 + 60);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].action, Action::Reconcile);
}

/// A refusal made before anything was sent (a facilitator that could not read our request) leaves
/// the entry as certain as it was: the payer's own refusal after it is held against it.
#[test]
fn a_refusal_before_sending_does_not_excuse_the_next_one() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    let Effect::Retry { at: next } = l.record(&id, refused("invalid_request"), &p, at) else {
        panic!("not retried");
    };
    l.begin(&id, &p, next).unwrap();
    assert_eq!(
        l.record(
            &id,
            refused("invalid_exact_evm_insufficient_balance"),
            &p,
            next
        ),
        Effect::Failed {
            became_delinquent: true
        }
    );
    assert_eq!(l.view().owed_micro_usd, 5_000);
}

/// `…nonce_already_used` on the first attempt is judged by the chain, never on the facilitator's
/// word: a cancellation leaves the payer owing; a chain that cannot say which (no RPC URL, a node
/// a block behind) holds nothing against the payer, and a read that then finds our payment books it.
#[test]
fn nonce_used_on_first_attempt_is_judged_by_the_chain() {
    let p = policy();
    let nonce_used = || refused("invalid_exact_evm_nonce_already_used");

    // Cancelled on chain: owed.
    let (mut l, id, at) = one_due(5_000);
    assert_eq!(l.record(&id, nonce_used(), &p, at), Effect::Retry { at });
    assert_eq!(l.owed(), 0, "not on the facilitator's word");
    assert_eq!(l.due(at)[0].action, Action::Reconcile);
    assert_eq!(
        l.record(&id, Outcome::OnChainCancelled, &p, at),
        Effect::Failed {
            became_delinquent: true
        }
    );
    assert_eq!(l.owed(), 5_000);

    // No RPC URL: nothing to judge by; not owed, left for an admin as unconfirmed.
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, nonce_used(), &p, at);
    assert_eq!(
        l.record(&id, Outcome::NoRpc, &p, at),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(l.owed(), 0);
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(UNCONFIRMED_NONCE_USED)
    );

    // A node a block behind shows it unused, or does not answer: read again later, never owed;
    // then it shows the transaction that paid us.
    let (mut l, id, now) = one_due(5_000);
    l.record(&id, nonce_used(), &p, now);
    let Effect::Retry { at } = l.record(&id, Outcome::OnChainUnused, &p, now) else {
        panic!("expected another read");
    };
    assert!(at > now);
    assert_eq!(l.due(at)[0].action, Action::Reconcile);
    let unreadable = Outcome::ChainUnreadable { why: "down".into() };
    let Effect::Retry { at } = l.record(&id, unreadable, &p, at) else {
        panic!("expected another read");
    };
    assert_eq!(
        l.due(at)[0].action,
        Action::Reconcile,
        "read again, not resent"
    );
    assert_eq!(l.owed(), 0);
    assert_eq!(l.record(&id, settled("0xabc"), &p, at), Effect::Settled);
}

/// The facilitator and the chain's node both away: a payment still collectable is sent again
/// until its deadline (as without an RPC URL), not given up after the bounded unanswered attempts.
#[test]
fn an_unreadable_chain_does_not_give_up_a_collectable_payment() {
    let p = policy();
    let (mut l, id, mut now) = one_due(5_000);
    for round in 0..p.max_attempts_unknown + 2 {
        let Effect::Retry { at } = l.record(&id, unknown(), &p, now) else {
            panic!("given up in round {round}");
        };
        now = at;
        assert_eq!(l.due(now)[0].action, Action::Reconcile);
        let unreadable = Outcome::ChainUnreadable { why: "down".into() };
        assert_eq!(
            l.record(&id, unreadable, &p, now),
            Effect::Retry { at: now }
        );
        assert_eq!(l.due(now)[0].action, Action::Settle, "sent again");
    }
    assert!(now < LONG, "well before validBefore");
    assert_eq!(l.owed(), 0);
    assert_eq!(l.record(&id, settled("0xdef"), &p, now), Effect::Settled);
}

#[test]
fn transient_refusal_backs_off_until_the_deadline() {
    let p = policy();
    let mut l = Ledger::new();
    // Deadline = validBefore − 30 = T0 + 80; first attempt at T0 + 60.
    let a = admission(USDC, 1, 5_000, T0 + 110, true);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let mut now = T0 + 60;
    let mut schedule = Vec::new();
    loop {
        assert_eq!(l.due(now).len(), 1, "due at {now}");
        l.begin(&id, &p, now).unwrap();
        match l.record(&id, refused("unexpected_settle_error"), &p, now) {
            Effect::Retry { at } if at > now => {
                assert!(at <= T0 + 80);
                assert_eq!(l.next_alarm(), Some(at));
                assert!(l.due(at - 1).is_empty());
                schedule.push(at - now);
                now = at;
            }
            other => {
                // At the deadline: `unexpected_settle_error` can follow a broadcast (a failed
                // receipt wait), so whether the money moved is asked of the chain at once.
                assert_eq!(other, Effect::Retry { at: now });
                break;
            }
        }
    }
    // 1, 2, 4, 8, then clamped to the deadline (T0 + 75 → T0 + 80).
    assert_eq!(schedule, vec![1, 2, 4, 8, 5]);
    assert_eq!(now, T0 + 80);
    let due = l.due(now);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].action, Action::Reconcile);
    // If one of those attempts did land, the chain says so and it is settled, not lost.
    let mut landed = l.clone();
    landed.begin(&id, &p, now).unwrap();
    assert_eq!(
        landed.record(&id, settled("0xfeed"), &p, now),
        Effect::Settled
    );
    assert_eq!(landed.view().lost_micro_usd, 0);
    // Unused: past the deadline it is not sent again (that would spin against a facilitator that
    // keeps refusing); read again once validBefore has passed, then it is lost revenue.
    l.begin(&id, &p, now).unwrap();
    let again = T0 + 110 + CHAIN_GRACE;
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, now),
        Effect::Retry { at: again }
    );
    l.begin(&id, &p, again).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, again),
        Effect::Failed {
            became_delinquent: false
        }
    );
    now = again;
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(EXPIRED_UNSETTLED));
    let v = l.view();
    assert!(!v.delinquent);
    assert_eq!(v.owed_micro_usd, 0);
    assert_eq!(v.lost_micro_usd, 5_000);
    l.admit(deferred(2, 1), &p, now).unwrap();
}

#[test]
fn lost_payments_keep_counting_against_credit_until_forgiven() {
    let p = LedgerPolicy {
        credit_limit: 10_000,
        ..policy()
    };
    let mut l = Ledger::new();
    let mut now = T0;
    // Two payments of 5,000 deferred, then lost: the facilitator refuses them until too late.
    let ids: Vec<String> = (1..=2)
        .map(|n| {
            let a = deferred(n, 5_000);
            let id = a.id.clone();
            l.admit(a, &p, now).unwrap();
            id
        })
        .collect();
    now += 60;
    for id in &ids {
        let effect = l.record(
            id,
            refused("invalid_exact_evm_payload_authorization_valid_before"),
            &p,
            now,
        );
        assert_eq!(
            effect,
            Effect::Failed {
                became_delinquent: false
            }
        );
    }
    let v = l.view();
    assert_eq!(v.unsettled_micro_usd, 0);
    assert_eq!(v.lost_micro_usd, 10_000);
    assert!(!v.delinquent, "not the payer's fault");
    // Nothing is open, but the credit is spent: the next deferral is refused (the shell settles
    // it now instead).
    let err = l.admit(deferred(3, 1), &p, now).unwrap_err();
    assert_eq!(
        err,
        AdmitError::CreditExceeded {
            unsettled: 10_000,
            limit: 10_000
        }
    );
    assert!(err.to_string().contains("lost"), "{err}");
    // An immediate payment is still taken: the chain guarantees it before it is served.
    let immediate = admission(USDC, 4, 5_000, LONG, false);
    let immediate_id = immediate.id.clone();
    l.admit(immediate, &p, now).unwrap();
    assert_eq!(
        l.record(&immediate_id, settled("0x4"), &p, now),
        Effect::Settled
    );
    // Forgiven by the admin, the credit is back.
    l.revoke(&ids[0]).unwrap();
    l.admit(deferred(5, 5_000), &p, now).unwrap();
}

#[test]
fn backoff_is_capped_at_a_minute() {
    let p = policy();
    let (mut l, id, mut now) = one_due(1);
    let mut gaps = Vec::new();
    for _ in 0..9 {
        let Effect::Retry { at } = l.record(&id, refused("rpc_unavailable"), &p, now) else {
            panic!("expected a retry");
        };
        gaps.push(at - now);
        now = at;
    }
    assert_eq!(gaps, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

#[test]
fn expiry_refusal_is_lost_revenue_not_debt() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    assert_eq!(
        l.record(
            &id,
            refused("invalid_exact_evm_payload_authorization_valid_before"),
            &p,
            at
        ),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(EXPIRED_UNSETTLED)
    );
    assert_eq!(l.view().lost_micro_usd, 5_000);
}

#[test]
fn unknown_then_chain_says_used_settles() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    let Effect::Retry { at: next } = l.record(&id, unknown(), &p, at) else {
        panic!("expected a retry");
    };
    assert_eq!(next, at + 1);
    assert_eq!(status(&l, &id), Status::Unknown);
    assert_eq!(l.unsettled(), 5_000);
    let due = l.due(next);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].action, Action::Reconcile);
    assert!(due[0].may_resend);
    l.begin(&id, &p, next).unwrap();
    assert_eq!(l.record(&id, settled("0xfeed"), &p, next), Effect::Settled);
    assert_eq!(l.entry(&id).unwrap().transaction.as_deref(), Some("0xfeed"));
    assert_eq!(l.unsettled(), 0);
}

#[test]
fn unknown_then_chain_says_unused_resends() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, unknown(), &p, at);
    let now = at + 1;
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, now),
        Effect::Retry { at: now }
    );
    let due = l.due(now);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].action, Action::Settle);
    assert_eq!(l.record(&id, settled("0xcafe"), &p, now), Effect::Settled);
    assert_eq!(l.entry(&id).unwrap().transaction.as_deref(), Some("0xcafe"));
}

#[test]
fn unknown_without_rpc_then_nonce_used_is_unconfirmed_not_debt() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, unknown(), &p, at);
    let now = at + 1;
    assert_eq!(l.due(now)[0].action, Action::Reconcile);
    assert_eq!(
        l.record(&id, Outcome::NoRpc, &p, now),
        Effect::Retry { at: now }
    );
    assert_eq!(l.due(now)[0].action, Action::Settle);
    l.begin(&id, &p, now).unwrap();
    // Used, after an attempt of ours that may have landed: the chain is asked before anything else.
    assert_eq!(
        l.record(
            &id,
            refused("invalid_exact_evm_nonce_already_used"),
            &p,
            now
        ),
        Effect::Retry { at: now }
    );
    assert_eq!(status(&l, &id), Status::Unknown);
    assert_eq!(l.due(now)[0].action, Action::Reconcile);
    // Without RPC nothing can tell our settlement from a cancellation.
    assert_eq!(
        l.record(&id, Outcome::NoRpc, &p, now),
        Effect::Failed {
            became_delinquent: false
        }
    );
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(UNCONFIRMED_NONCE_USED));
    assert!(!e.delinquent);
    assert!(!l.is_delinquent());
    // The same through a facilitator that says it in the revert message.
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, unknown(), &p, at);
    l.record(&id, Outcome::NoRpc, &p, at + 1);
    let effect = l.record(
        &id,
        Outcome::Refused {
            reason: "invalid_payload".into(),
            message: "execution reverted: FiatTokenV2: authorization is used or canceled".into(),
        },
        &p,
        at + 1,
    );
    assert_eq!(effect, Effect::Retry { at: at + 1 });
    l.record(&id, Outcome::NoRpc, &p, at + 1);
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(UNCONFIRMED_NONCE_USED));
}

#[test]
fn without_rpc_a_facilitator_away_for_a_while_does_not_lose_a_collectable_payment() {
    // Deferred, validBefore an hour away: the facilitator answers nothing from the first attempt
    // at T0 + 60 until T0 + 600, far more tries than max_attempts_unknown.
    let p = policy();
    let (mut l, id, mut now) = one_due(5_000);
    let mut tries = 0;
    while now < T0 + 600 {
        l.begin(&id, &p, now).unwrap();
        let Effect::Retry { at } = l.record(&id, unknown(), &p, now) else {
            panic!("gave up after {tries} tries at {now}: {:?}", l.entry(&id));
        };
        // The reconciliation finds no chain to read: resent, never given up before the deadline.
        assert_eq!(l.due(at)[0].action, Action::Reconcile);
        assert_eq!(l.record(&id, Outcome::NoRpc, &p, at), Effect::Retry { at });
        assert_eq!(l.due(at)[0].action, Action::Settle);
        tries += 1;
        now = at;
    }
    assert!(tries > p.max_attempts_unknown as usize + 1, "{tries} tries");
    l.begin(&id, &p, now).unwrap();
    assert_eq!(l.record(&id, settled("0xback"), &p, now), Effect::Settled);
    assert_eq!(l.view().lost_micro_usd, 0);

    // Away for good: past the deadline (30 s before validBefore) it ends, marked as possibly moved.
    let (mut l, id, mut now) = one_due(5_000);
    let effect = loop {
        l.begin(&id, &p, now);
        if let Effect::Retry { at } = l.record(&id, unknown(), &p, now) {
            match l.record(&id, Outcome::NoRpc, &p, at) {
                Effect::Retry { at } => now = at,
                other => break other,
            }
        } else {
            panic!("an unanswered attempt is always read first");
        }
        assert!(now < LONG + 60, "never ends");
    };
    assert_eq!(
        effect,
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(SETTLEMENT_UNKNOWN)
    );
}

/// Brings an entry to "nonce already used" after a lagging chain read let it be resent.
fn used_after_a_resend(p: &LedgerPolicy) -> (Ledger, String, u64) {
    let (mut l, id, at) = one_due(5_000);
    l.begin(&id, p, at).unwrap();
    l.record(&id, unknown(), p, at);
    let now = at + 1;
    l.begin(&id, p, now).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, p, now),
        Effect::Retry { at: now }
    );
    l.begin(&id, p, now).unwrap();
    let effect = l.record(&id, refused("invalid_exact_evm_nonce_already_used"), p, now);
    assert_eq!(effect, Effect::Retry { at: now });
    (l, id, now)
}

#[test]
fn nonce_used_after_our_own_attempt_is_settled_by_the_chain() {
    let p = policy();
    let (mut l, id, now) = used_after_a_resend(&p);
    assert_eq!(l.due(now)[0].action, Action::Reconcile);
    assert_eq!(l.record(&id, settled("0xbeef"), &p, now), Effect::Settled);
    let e = l.entry(&id).unwrap();
    assert_eq!(e.status, Status::Settled);
    assert_eq!(e.transaction.as_deref(), Some("0xbeef"));
    assert_eq!(l.view().lost_micro_usd, 0);
    assert_eq!(l.paid(), 5_000);
}

/// `authorizationState` is the same after our settlement and after the payer's cancellation: a
/// nonce the chain shows used, when the logs that say by what cannot be read, is read again like
/// an unanswered attempt, never resent, and then failed as unconfirmed: never booked as paid
/// (which would also have counted toward the wallet's earned credit), never held against the
/// payer, and still found by a late confirmation.
#[test]
fn a_used_nonce_whose_logs_cannot_be_read_is_never_booked_as_paid() {
    let p = policy();
    let (mut l, id, mut now) = used_after_a_resend(&p);
    let mut reads = 0;
    let effect = loop {
        let due = l.due(now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].action, Action::Reconcile, "read again, never resent");
        l.begin(&id, &p, now).unwrap();
        reads += 1;
        match l.record(&id, Outcome::OnChainUsed, &p, now) {
            Effect::Retry { at } => {
                assert!(at > now, "read again later, not at once");
                assert_eq!(status(&l, &id), Status::Unknown);
                assert_eq!(l.paid(), 0);
                now = at;
            }
            other => break other,
        }
        assert!(reads <= 20, "bounded");
    };
    assert_eq!(
        effect,
        Effect::Failed {
            became_delinquent: false
        }
    );
    // The first read and as many again as an unanswered attempt gets (a chain read that found
    // the authorization unused, just before, started the count afresh).
    assert_eq!(reads, p.max_attempts_unknown + 1);
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(UNCONFIRMED_NONCE_USED));
    assert!(e.message.as_deref().unwrap_or_default().contains("logs"));
    assert!(!e.delinquent);
    assert!(!l.is_delinquent());
    assert_eq!(l.paid(), 0, "nothing earned on it");
    assert_eq!(
        l.view().lost_micro_usd,
        5_000,
        "counted as lost until an admin says otherwise"
    );
    // The node answers the logs a moment later: still found, and settled after all.
    assert_eq!(
        l.record(&id, settled("0xbeef"), &p, now + 1),
        Effect::SettledAfterAll
    );
    assert_eq!(l.paid(), 5_000);
    assert_eq!(l.view().lost_micro_usd, 0);

    // A read that names it after all ends the row, as with any other.
    let (mut l, id, now) = used_after_a_resend(&p);
    l.begin(&id, &p, now).unwrap();
    let Effect::Retry { at } = l.record(&id, Outcome::OnChainUsed, &p, now) else {
        panic!("expected another read");
    };
    l.begin(&id, &p, at).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainCancelled, &p, at),
        Effect::Failed {
            became_delinquent: true
        }
    );
}

/// A deferred payment served on credit for an authorization its payer had already cancelled or
/// spent (local verification cannot see the chain): the facilitator says the nonce is used, and
/// the chain, its logs read whole from before the admission, shows no use since. The payer owes;
/// an immediate payment (its answer not served) owes nothing and is trimmed like any refusal.
#[test]
fn nonce_used_before_the_payment_came_is_the_payers() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    l.begin(&id, &p, at).unwrap();
    let Effect::Retry { at: read } =
        l.record(&id, refused("invalid_exact_evm_nonce_already_used"), &p, at)
    else {
        panic!("expected a chain read");
    };
    assert_eq!(l.due(read)[0].action, Action::Reconcile);
    l.begin(&id, &p, read).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUsedBefore, &p, read),
        Effect::Failed {
            became_delinquent: true
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(AUTHORIZATION_USED_BEFORE)
    );
    assert!(l.is_delinquent());
    assert_eq!(l.view().owed_micro_usd, 5_000);

    // Immediate: refused, nothing owed, and kept only among the newest refusals, even after an
    // unanswered attempt (the chain shows the nonce was used before it).
    let mut l = Ledger::new();
    let mut ids = Vec::new();
    for n in 0..30u64 {
        let first = match n % 2 {
            0 => refused("invalid_exact_evm_nonce_already_used"),
            _ => unknown(),
        };
        let at = T0 + n * 200;
        let id = immediate_then(&mut l, &p, n + 1, at, vec![first]);
        let read = l.due(at + 120)[0].clone();
        assert_eq!(read.action, Action::Reconcile);
        l.begin(&id, &p, at + 120).unwrap();
        assert_eq!(
            l.record(&id, Outcome::OnChainUsedBefore, &p, at + 120),
            Effect::Failed {
                became_delinquent: false
            }
        );
        ids.push(id);
    }
    assert!(!l.is_delinquent());
    let kept = ids.iter().filter(|id| l.entry(id).is_some()).count();
    assert!(
        kept <= p.settled_history,
        "refusals trimmed, {kept} of 30 kept"
    );
    assert!(l.entry(ids.last().unwrap()).is_some(), "the newest kept");
}

#[test]
fn nonce_used_after_our_own_attempt_and_cancelled_on_chain_is_the_payers() {
    let p = policy();
    let (mut l, id, now) = used_after_a_resend(&p);
    assert_eq!(
        l.record(&id, Outcome::OnChainCancelled, &p, now),
        Effect::Failed {
            became_delinquent: true
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(AUTHORIZATION_CANCELLED)
    );
}

#[test]
fn nonce_used_after_our_own_attempt_by_a_transfer_that_paid_someone_else_is_the_payers() {
    // The payer raced our settlement with a transfer of its own under the same nonce: the chain
    // shows it used, and the transaction that used it paid someone else.
    let p = policy();
    let (mut l, id, now) = used_after_a_resend(&p);
    let elsewhere = Outcome::OnChainUsedElsewhere {
        transaction: "0xfeed".into(),
    };
    assert_eq!(
        l.record(&id, elsewhere, &p, now),
        Effect::Failed {
            became_delinquent: true
        }
    );
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(AUTHORIZATION_USED_ELSEWHERE));
    assert_eq!(l.owed(), 5_000);
    assert_eq!(l.paid(), 0, "nothing earned");
}

#[test]
fn nonce_used_but_unused_on_chain_is_read_again_never_resent() {
    let p = policy();
    let (mut l, id, mut now) = used_after_a_resend(&p);
    // The facilitator saw it used, the chain not yet (our transaction pending): read again soon,
    // a few times; never send it again.
    for _ in 0..p.max_attempts_unknown {
        let Effect::Retry { at } = l.record(&id, Outcome::OnChainUnused, &p, now) else {
            panic!("read again");
        };
        assert!(at > now, "not at once");
        assert!(at < now + 60, "soon");
        assert!(l.due(at - 1).is_empty());
        assert_eq!(l.due(at)[0].action, Action::Reconcile);
        now = at;
        l.begin(&id, &p, now).unwrap();
    }
    // Still unused: not given up while the transaction may yet be mined, but read once more when
    // it no longer can be, and nothing sent meanwhile.
    let last = LONG + CHAIN_GRACE;
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, now),
        Effect::Retry { at: last }
    );
    assert!(l.due(last - 1).is_empty(), "nothing before then");
    assert_eq!(l.due(last)[0].action, Action::Reconcile);
    assert_eq!(status(&l, &id), Status::Unknown);
    // Mined late after all: booked as paid.
    let mut mined = l.clone();
    mined.begin(&id, &p, last).unwrap();
    assert_eq!(
        mined.record(&id, settled("0xlate"), &p, last),
        Effect::Settled
    );
    assert_eq!(status(&mined, &id), Status::Settled);
    // Never mined: it can no longer move, and nothing was charged.
    l.begin(&id, &p, last).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, last),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(EXPIRED_UNSETTLED)
    );
    // Unused once validBefore has passed with its grace: it can never move.
    let (mut l, id, _) = used_after_a_resend(&p);
    let late = LONG + CHAIN_GRACE;
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, late),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(EXPIRED_UNSETTLED)
    );
}

#[test]
fn nonce_used_state_survives_storage() {
    let p = policy();
    let (mut l, id, now) = used_after_a_resend(&p);
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    let mut back = Ledger::from_rows(stored.iter());
    assert_eq!(back.due(now)[0].action, Action::Reconcile);
    // Still read, never resent: without RPC it ends as before it was stored.
    back.record(&id, Outcome::NoRpc, &p, now);
    assert_eq!(
        back.entry(&id).unwrap().reason.as_deref(),
        Some(UNCONFIRMED_NONCE_USED)
    );
}

#[test]
fn balance_refusal_after_an_uncertain_attempt_is_judged_by_the_chain() {
    let p = policy();
    // Our first attempt went unanswered; sent again, it meets a balance our own first transfer
    // may have drained.
    let after_refusal = || {
        let (mut l, id, at) = one_due(5_000);
        l.begin(&id, &p, at).unwrap();
        l.record(&id, unknown(), &p, at);
        l.begin(&id, &p, at + 1).unwrap();
        l.record(&id, Outcome::OnChainUnused, &p, at + 1);
        l.begin(&id, &p, at + 1).unwrap();
        let effect = l.record(&id, refused("insufficient_funds"), &p, at + 1);
        let Effect::Retry { at: next } = effect else {
            panic!("expected a chain read, got {effect:?}");
        };
        assert_eq!(l.entry(&id).unwrap().reason, None, "not failed");
        assert!(!l.is_delinquent());
        assert_eq!(l.due(next)[0].action, Action::Reconcile);
        (l, id, next)
    };
    // The chain shows our first transfer: settled, the money counted as paid.
    let (mut l, id, now) = after_refusal();
    l.begin(&id, &p, now).unwrap();
    assert_eq!(l.record(&id, settled("0xd00d"), &p, now), Effect::Settled);
    assert_eq!(l.entry(&id).unwrap().status, Status::Settled);
    assert_eq!((l.paid(), l.view().lost_micro_usd), (5_000, 0));
    // Unused, and the deadline far: sent again, still not held against the payer.
    let (mut l, id, now) = after_refusal();
    l.begin(&id, &p, now).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, now),
        Effect::Retry { at: now }
    );
    assert_eq!(l.due(now)[0].action, Action::Settle);
    assert!(!l.is_delinquent());
    // Refused so again and again, the chain showing it unused each time: it ends, bounded like
    // unanswered attempts, and is still not held against the payer.
    let mut now = now;
    let mut cycles = 0;
    loop {
        l.begin(&id, &p, now).unwrap();
        match l.record(&id, refused("insufficient_funds"), &p, now) {
            Effect::Retry { at } => now = at,
            Effect::Failed { became_delinquent } => {
                assert!(!became_delinquent);
                break;
            }
            other => panic!("{other:?}"),
        }
        l.begin(&id, &p, now).unwrap();
        l.record(&id, Outcome::OnChainUnused, &p, now);
        cycles += 1;
        assert!(cycles <= p.max_attempts_unknown, "bounded");
    }
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(UNCONFIRMED_REFUSAL)
    );
    assert!(!l.is_delinquent());
    // A signature refusal is the payer's whatever happened before.
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, refused("unexpected_settle_error"), &p, at);
    assert_eq!(
        l.record(
            &id,
            refused("invalid_exact_evm_payload_signature"),
            &p,
            at + 1
        ),
        Effect::Failed {
            became_delinquent: true
        }
    );
}

#[test]
fn unknown_attempts_are_bounded() {
    let p = policy();
    let (mut l, id, mut now) = one_due(5_000);
    for _ in 0..p.max_attempts_unknown {
        let Effect::Retry { at } = l.record(&id, unknown(), &p, now) else {
            panic!("expected a retry");
        };
        now = at;
    }
    assert_eq!(
        l.record(&id, unknown(), &p, now),
        Effect::Failed {
            became_delinquent: false
        }
    );
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(SETTLEMENT_UNKNOWN));
    assert_eq!(e.unknowns, p.max_attempts_unknown + 1);
}

#[test]
fn unknown_past_the_deadline_only_the_chain_can_settle() {
    let p = policy();
    let vb = T0 + 120; // deadline T0 + 90, first attempt at T0 + 60.
    let mk = || {
        let mut l = Ledger::new();
        let a = admission(USDC, 1, 5_000, vb, true);
        let id = a.id.clone();
        l.admit(a, &p, T0).unwrap();
        l.record(&id, unknown(), &p, T0 + 60);
        (l, id)
    };
    // Without RPC, past the deadline: nothing more can be done.
    let (mut l, id) = mk();
    let late = vb - 3;
    assert!(!l.due(late)[0].may_resend);
    assert_eq!(
        l.record(&id, Outcome::NoRpc, &p, late),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(SETTLEMENT_UNKNOWN)
    );
    // With RPC: unused before validBefore is not final; read again once it has passed.
    let (mut l, id) = mk();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, late),
        Effect::Retry {
            at: vb + CHAIN_GRACE
        }
    );
    assert!(l.due(vb + CHAIN_GRACE - 1).is_empty());
    assert_eq!(l.due(vb + CHAIN_GRACE)[0].action, Action::Reconcile);
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, vb + CHAIN_GRACE),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(EXPIRED_UNSETTLED)
    );
    // A late chain read can still find it paid.
    let (mut l, id) = mk();
    assert_eq!(
        l.record(&id, settled("0xfeed"), &p, vb + 1_000),
        Effect::Settled
    );
    // A cancellation seen on chain is the payer's doing.
    let (mut l, id) = mk();
    l.record(&id, Outcome::OnChainCancelled, &p, T0 + 61);
    let e = l.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(AUTHORIZATION_CANCELLED));
    assert!(e.delinquent);
}

#[test]
fn a_lost_in_flight_attempt_is_reconciled() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    l.begin(&id, &p, at).unwrap();
    // The shell died before recording anything.
    assert_eq!(l.next_alarm(), Some(at + IN_FLIGHT_LEASE));
    assert!(l.due(at + IN_FLIGHT_LEASE - 1).is_empty());
    let due = l.due(at + IN_FLIGHT_LEASE);
    assert_eq!(due[0].action, Action::Reconcile);
    let now = at + IN_FLIGHT_LEASE;
    l.begin(&id, &p, now).unwrap();
    assert_eq!(l.entry(&id).unwrap().unknowns, 1);
    l.record(&id, Outcome::NoRpc, &p, now);
    l.record(
        &id,
        refused("invalid_exact_evm_nonce_already_used"),
        &p,
        now,
    );
    assert_eq!(
        l.record(&id, Outcome::NoRpc, &p, now),
        Effect::Failed {
            became_delinquent: false
        }
    );
}

#[test]
fn immediate_entries_record_outcomes_without_resending() {
    let p = policy();
    let mut l = Ledger::new();
    let a = admission(USDC, 1, 5_000, LONG, false);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    assert_eq!(status(&l, &id), Status::InFlight);
    assert!(l.due(T0).is_empty());
    assert_eq!(l.unsettled(), 5_000);
    assert_eq!(l.record(&id, settled("0x1"), &p, T0 + 2), Effect::Settled);

    // Refused: the client got a 402 and nothing else, so nothing is owed.
    let a = admission(USDC, 2, 5_000, LONG, false);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    assert_eq!(
        l.record(
            &id,
            refused("invalid_exact_evm_insufficient_balance"),
            &p,
            T0 + 2
        ),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(l.view().lost_micro_usd, 0);
    // Never served, so never owed: an admin may mark it paid only with the transaction that
    // moved its money, or it would count as money earned on the admin's word alone.
    let paid = l.view().paid_micro_usd;
    assert_eq!(
        l.mark_paid(&id, String::new(), T0 + 3),
        Err(AdminError::NoTransaction)
    );
    assert_eq!(l.view().paid_micro_usd, paid);
    assert_eq!(status(&l, &id), Status::Failed);
    l.mark_paid(&id, format!("0x{}", "ab".repeat(32)), T0 + 3)
        .unwrap();
    assert_eq!(l.view().paid_micro_usd, paid + 5_000);

    // Unknown: reconciled by reading the chain, never by resending.
    let a = admission(USDC, 3, 5_000, LONG, false);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let Effect::Retry { at } = l.record(&id, unknown(), &p, T0 + 2) else {
        panic!("expected a retry");
    };
    let due = l.due(at);
    assert_eq!(due[0].action, Action::Reconcile);
    assert!(!due[0].may_resend);
    assert_eq!(
        l.record(&id, Outcome::NoRpc, &p, at),
        Effect::Failed {
            became_delinquent: false
        }
    );
    assert_eq!(
        l.entry(&id).unwrap().reason.as_deref(),
        Some(SETTLEMENT_UNKNOWN)
    );
    assert!(!l.is_delinquent());

    // A refusal that can come after the transaction was broadcast (the facilitator's receipt
    // wait failed): read from the chain like an unanswered attempt, and settled when it moved.
    let a = admission(USDC, 4, 5_000, LONG, false);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let Effect::Retry { at } = l.record(&id, refused("unexpected_settle_error"), &p, T0 + 2) else {
        panic!("expected a chain read, not a failure");
    };
    let due = l.due(at);
    assert_eq!(due[0].action, Action::Reconcile);
    assert!(!due[0].may_resend);
    assert_eq!(
        l.record(&id, settled("0xfeed"), &p, at),
        Effect::Settled,
        "charged (and not served): booked, for a refund"
    );

    // One made before anything was sent fails it at once.
    let a = admission(USDC, 5, 5_000, LONG, false);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    assert_eq!(
        l.record(&id, refused("invalid_request"), &p, T0 + 2),
        Effect::Failed {
            became_delinquent: false
        }
    );
}

/// An immediate payment for a request whose work the origin does before settlement (a `POST`).
fn worked(n: u64) -> Admission {
    Admission {
        worked: true,
        ..admission(USDC, n, 5_000, LONG, false)
    }
}

#[test]
fn a_payer_who_defeats_settlement_after_the_origin_worked_owes() {
    let p = policy();
    let delinquent = Effect::Failed {
        became_delinquent: true,
    };
    // Funds moved away between `/verify` and `/settle`: the work was done, so the payer owes,
    // and its next payments are refused until the admin forgives it or marks the entry paid.
    let mut l = Ledger::new();
    let a = worked(1);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let outcome = refused("invalid_exact_evm_insufficient_balance");
    assert_eq!(l.record(&id, outcome, &p, T0 + 2), delinquent);
    assert_eq!(l.view().owed_micro_usd, 5_000);
    assert!(matches!(
        l.admit(worked(2), &p, T0 + 3),
        Err(AdmitError::Delinquent { .. })
    ));
    assert!(matches!(
        l.admit(deferred(3, 1), &p, T0 + 3),
        Err(AdmitError::Delinquent { .. })
    ));
    // The work was done, so this is a debt: paid out of band, the admin marks it paid without
    // a transaction, and the payer may pay again.
    l.mark_paid(&id, String::new(), T0 + 4).unwrap();
    assert!(!l.is_delinquent());
    assert_eq!(l.view().paid_micro_usd, 5_000);

    // A refusal that is the facilitator's, not the payer's: nobody owes.
    let mut l = Ledger::new();
    let a = worked(1);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let not_owed = Effect::Failed {
        became_delinquent: false,
    };
    assert_eq!(
        l.record(&id, refused("invalid_request"), &p, T0 + 2),
        not_owed
    );
    assert!(!l.is_delinquent());

    // The nonce used meanwhile: the chain tells a cancellation (owed) from the payer sending
    // the authorization itself, which paid (settled). Never resent.
    for (chain, effect) in [
        (Outcome::OnChainCancelled, delinquent),
        (settled("0xfeed"), Effect::Settled),
    ] {
        let mut l = Ledger::new();
        let a = worked(1);
        let id = a.id.clone();
        l.admit(a, &p, T0).unwrap();
        let used = refused("invalid_exact_evm_nonce_already_used");
        let Effect::Retry { at } = l.record(&id, used, &p, T0 + 2) else {
            panic!("expected a chain read");
        };
        let due = l.due(at);
        assert_eq!(due[0].action, Action::Reconcile);
        assert!(!due[0].may_resend);
        // Kept across storage, as the ledger object keeps it between its wakes.
        let mut stored = BTreeMap::new();
        store_rows(&mut l, &mut stored, 0);
        let mut l = Ledger::from_rows(stored.iter());
        assert_eq!(l.record(&id, chain, &p, at), effect);
    }

    // The same refusals for a request whose answer is simply not served (a `GET`): nobody owes.
    // A used nonce is read on chain all the same: whoever sent the authorization first may have
    // paid us with it, and that is booked (charged, not served: for a refund).
    let mut l = Ledger::new();
    let refusal = refused("invalid_exact_evm_insufficient_balance");
    let id = immediate_then(&mut l, &p, 1, T0, vec![refusal]);
    assert_eq!(l.entry(&id).unwrap().status, Status::Failed);
    assert!(!l.is_delinquent());
    for (chain, effect) in [
        (
            Outcome::OnChainCancelled,
            Effect::Failed {
                became_delinquent: false,
            },
        ),
        (settled("0xfeed"), Effect::Settled),
    ] {
        let mut l = Ledger::new();
        let used = refused("invalid_exact_evm_nonce_already_used");
        let id = immediate_then(&mut l, &p, 1, T0, vec![used]);
        assert_eq!(l.entry(&id).unwrap().status, Status::Unknown);
        let due = l.due(T0 + 2);
        assert_eq!(due[0].action, Action::Reconcile);
        assert!(!due[0].may_resend);
        l.begin(&id, &p, T0 + 2).unwrap();
        assert_eq!(l.record(&id, chain, &p, T0 + 2), effect);
        assert!(!l.is_delinquent());
    }

    // A held deferred payment whose request falls back to settling it after the origin's work.
    let mut l = Ledger::new();
    let a = by("request-1", held(1, 5_000, LONG));
    l.admit(a, &p, T0).unwrap();
    let again = by("request-1", worked(1));
    let id = again.id.clone();
    assert_eq!(l.admit(again, &p, T0 + 1), Ok(()));
    let outcome = refused("invalid_exact_evm_insufficient_balance");
    assert_eq!(
        l.record_from(Some("request-1"), &id, outcome, &p, T0 + 2),
        delinquent
    );

    // Read back from what an earlier version of the Worker sent: not worked.
    let text = serde_json::to_string(&admission(USDC, 1, 5_000, LONG, false)).unwrap();
    assert!(!text.contains("worked"));
    let back: Admission =
        x402_edge::json::parse(&serde_json::to_string(&worked(1)).unwrap()).unwrap();
    assert!(back.worked);
}

#[test]
fn refusals_that_may_come_after_a_broadcast_are_uncertain() {
    for (reason, message) in [
        ("unexpected_settle_error", ""),
        ("unexpected_error", "receipt wait failed"),
        ("rpc_error", ""),
        ("network_error", ""),
        ("invalid_transaction_state", ""),
        ("something_new", "a reason no one has seen"),
        (
            "invalid_exact_evm_transaction_failed",
            "timed out waiting for the receipt",
        ),
        // The Go facilitator's failed send and receipt wait.
        ("invalid_exact_evm_failed_to_execute_transfer", "EOF"),
        ("invalid_exact_evm_failed_to_get_receipt", ""),
    ] {
        assert!(refusal_is_uncertain(reason, message), "{reason}");
    }
    for (reason, message) in [
        (
            "invalid_request",
            "stand-in: request does not match any schema",
        ),
        ("unsupported_network", ""),
        ("invalid_exact_evm_recipient_mismatch", ""),
        ("invalid_exact_evm_insufficient_balance", ""),
        ("invalid_exact_evm_signature", ""),
        ("invalid_exact_evm_nonce_already_used", ""),
        ("invalid_exact_evm_payload_authorization_valid_before", ""),
        // The Go facilitator's own failures before it sends anything.
        ("invalid_exact_evm_failed_to_check_nonce", ""),
        ("invalid_exact_evm_failed_to_get_balance", ""),
        (
            "invalid_exact_evm_failed_to_verify_signature",
            "connection refused",
        ),
        ("invalid_exact_evm_verification_failed", ""),
        ("invalid_exact_evm_relayer_insufficient_funds", ""),
    ] {
        assert!(!refusal_is_uncertain(reason, message), "{reason}");
    }
}

#[test]
fn next_alarm_is_the_earliest_open_time() {
    let p = policy();
    let mut l = Ledger::new();
    assert_eq!(l.next_alarm(), None);
    l.admit(deferred(1, 1), &p, T0).unwrap();
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    l.admit(admission(USDC, 2, 1, LONG, false), &p, T0 + 10)
        .unwrap();
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    let id1 = deferred(1, 1).id;
    l.record(&id1, refused("unexpected_settle_error"), &p, T0 + 60);
    assert_eq!(l.next_alarm(), Some(T0 + 61));
    l.record(&id1, settled("0x"), &p, T0 + 61);
    assert_eq!(l.next_alarm(), Some(T0 + 10 + IN_FLIGHT_LEASE));
    l.record(
        &admission(USDC, 2, 1, 0, false).id,
        settled("0x"),
        &p,
        T0 + 12,
    );
    assert_eq!(l.next_alarm(), None);
    assert_eq!(l.view().next_alarm, None);
}

#[test]
fn prune_forgets_nonces_closes_lapsed_entries_and_history_is_trimmed() {
    let p = LedgerPolicy {
        settled_history: 2,
        ..policy()
    };
    let mut l = Ledger::new();
    for n in 0..5 {
        l.admit(deferred(n, 1), &p, T0).unwrap();
    }
    for (i, a) in l.due(T0 + 60).into_iter().enumerate() {
        l.record(&a.id, settled(&format!("0x{i}")), &p, T0 + 60 + i as u64);
    }
    let v = l.view();
    assert_eq!(v.settled.len(), 2);
    assert_eq!(v.settled_trimmed, 3);
    assert_eq!(v.settled[0].transaction.as_deref(), Some("0x3"));
    assert_eq!(v.remembered_nonces, 5);
    l.prune(LONG + REPLAY_GRACE);
    assert_eq!(l.view().remembered_nonces, 0);

    // A pending entry whose alarm came too late is closed, not sent.
    let mut l = Ledger::new();
    let a = admission(USDC, 9, 700, T0 + 100, true);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    let late = T0 + 100 - 6;
    assert!(l.due(late).is_empty());
    assert_eq!(l.next_alarm(), Some(T0 + 60));
    l.prune(late);
    let e = l.entry(&id).unwrap();
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.reason.as_deref(), Some(EXPIRED_UNSETTLED));
    assert_eq!(l.next_alarm(), None);
    assert_eq!(l.view().lost_micro_usd, 700);
}

/// Admits immediate payment `n` at `at`, records `outcomes` for it in turn, and returns its id.
fn immediate_then(
    l: &mut Ledger,
    p: &LedgerPolicy,
    n: u64,
    at: u64,
    outcomes: Vec<Outcome>,
) -> String {
    let a = admission(USDC, n, 10_000, LONG, false);
    let id = a.id.clone();
    l.admit(a, p, at).unwrap();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        l.record(&id, outcome, p, at + 1 + i as u64);
    }
    id
}

#[test]
fn immediate_payments_refused_at_settlement_are_trimmed_and_still_replays() {
    let p = LedgerPolicy {
        settled_history: 2,
        ..policy()
    };
    let broke = || vec![refused("insufficient_funds")];
    let mut l = Ledger::new();
    // A key that cannot fund what it signs, trying again and again on an immediate route.
    for n in 0..6 {
        let id = immediate_then(&mut l, &p, n, T0 + n, broke());
        assert_eq!(
            l.entry(&id).map(|e| e.status),
            Some(Status::Failed),
            "try {n}"
        );
        assert_eq!(l.view().failed.len() as u64, (n + 1).min(2), "try {n}");
    }
    // A deferred payment lost without the payer owing (it counts against credit until forgiven)
    // and one the payer owes are not history: neither is trimmed.
    let mut o = Ledger::new();
    let (lost, owed) = (admission(USDC, 20, 700, T0 + 100, true), deferred(21, 300));
    let (lost_id, owed_id) = (lost.id.clone(), owed.id.clone());
    o.admit(lost, &p, T0).unwrap();
    o.admit(owed, &p, T0).unwrap();
    o.prune(T0 + 94);
    assert_eq!(o.due(T0 + 94).len(), 1);
    for n in 10..13 {
        immediate_then(&mut o, &p, n, T0 + 95 + n, broke());
    }
    o.record(&owed_id, refused("insufficient_funds"), &p, T0 + 120);
    let v = o.view();
    assert_eq!((v.lost_micro_usd, v.owed_micro_usd), (700, 300));
    assert_eq!(
        v.failed.len(),
        4,
        "two refused immediate payments, the lost and the owed one"
    );
    assert_eq!(v.failed_trimmed, 1);
    assert!(o.entry(&lost_id).is_some() && o.entry(&owed_id).is_some());

    // Immediate payments whose money may have moved (no usable answer, no chain to ask) are not
    // history: the publisher may owe a refund, and a late confirmation must find them.
    let mut u = Ledger::new();
    let maybe_moved: Vec<String> = (30..33)
        .map(|n| immediate_then(&mut u, &p, n, T0, vec![unknown(), Outcome::NoRpc]))
        .collect();
    for id in &maybe_moved {
        let e = u.entry(id).unwrap();
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.reason.as_deref(), Some(SETTLEMENT_UNKNOWN));
    }
    for n in 40..44 {
        immediate_then(&mut u, &p, n, T0 + n, broke());
    }
    assert!(maybe_moved.iter().all(|id| u.entry(id).is_some()));
    assert_eq!((u.view().failed.len(), u.view().failed_trimmed), (5, 2));
    // Read on chain once they could no longer move, and found unused: nothing moved and nothing
    // was served, so they are history like any refusal.
    let mut c = Ledger::new();
    let never_moved: Vec<String> = (50..53)
        .map(|n| {
            let id = immediate_then(&mut c, &p, n, T0 + n, vec![unknown()]);
            c.record(&id, Outcome::OnChainUnused, &p, LONG + CHAIN_GRACE + n);
            id
        })
        .collect();
    for id in &never_moved[1..] {
        assert_eq!(
            c.entry(id).unwrap().reason.as_deref(),
            Some(EXPIRED_UNSETTLED)
        );
    }
    assert!(c.entry(&never_moved[0]).is_none(), "the oldest trimmed");
    assert_eq!((c.view().failed.len(), c.view().failed_trimmed), (2, 1));

    let v = l.view();
    assert_eq!(v.failed.len(), 2);
    assert_eq!(v.failed_trimmed, 4);
    // The newest kept: the last two tries.
    let kept: Vec<u64> = (0..6)
        .filter(|n| {
            l.entry(&admission(USDC, *n, 10_000, LONG, false).id)
                .is_some()
        })
        .collect();
    assert_eq!(kept, [4, 5]);
    assert_eq!(
        v.admitted,
        accounted(&v),
        "rule 1: every admitted entry is accounted for"
    );
    // A trimmed payment is still remembered: sent again, it is a replay.
    assert_eq!(
        l.admit(admission(USDC, 0, 10_000, LONG, false), &p, T0 + 10),
        Err(AdmitError::Replay)
    );
    // What was trimmed is counted in storage too.
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    let back = Ledger::from_rows(stored.iter()).view();
    assert_eq!((back.failed.len(), back.failed_trimmed), (2, 4));
}

#[test]
fn unpaid_work_is_never_trimmed_from_history() {
    let p = LedgerPolicy {
        settled_history: 2,
        ..policy()
    };
    let mut l = Ledger::new();
    // A POST whose settlement the facilitator refused for its own reasons, after the origin's work.
    let a = worked(1);
    let id = a.id.clone();
    l.admit(a, &p, T0).unwrap();
    l.record(&id, refused("invalid_request"), &p, T0 + 1);
    assert_eq!(status(&l, &id), Status::Failed);
    // Then many GETs refused the same way, which are trimmed to the newest two.
    for n in 10..20 {
        immediate_then(&mut l, &p, n, T0 + n, vec![refused("invalid_request")]);
    }
    assert!(l.entry(&id).is_some(), "the unpaid work is still shown");
    assert_eq!(l.view().failed.len(), 3);
}

#[test]
fn admin_revoke_and_mark_paid() {
    let p = policy();
    let mut l = Ledger::new();
    l.admit(deferred(1, 100), &p, T0).unwrap();
    l.admit(deferred(2, 200), &p, T0).unwrap();
    l.admit(deferred(3, 300), &p, T0).unwrap();
    let [id1, id2, id3] = [1, 2, 3].map(|n| deferred(n, 0).id);
    // A pending entry never attempted may be forgiven: it is simply not collected.
    assert_eq!(l.revoke(&id1), Ok(100));
    assert_eq!(l.revoke(&id1), Err(AdminError::NotFound));
    l.record(&id2, refused("insufficient_funds"), &p, T0 + 60);
    l.record(&id3, unknown(), &p, T0 + 60);
    // An entry whose money may have moved cannot be forgiven.
    assert_eq!(l.revoke(&id3), Err(AdminError::NotAllowed));
    assert_eq!(l.owed(), 200);
    // The debt was paid out of band.
    l.mark_paid(&id2, "0xpaid".into(), T0 + 100).unwrap();
    assert!(!l.is_delinquent());
    assert_eq!(
        l.entry(&id2).unwrap().transaction.as_deref(),
        Some("0xpaid")
    );
    assert_eq!(
        l.mark_paid(&id2, String::new(), T0 + 100),
        Err(AdminError::NotAllowed)
    );
    let v = l.view();
    assert_eq!(
        v.admitted,
        accounted(&v),
        "rule 1: every admitted entry is accounted for"
    );
}

#[test]
fn refusals_are_classified() {
    use RefusalKind::*;
    let table: &[(&str, &str, RefusalKind)] = &[
        ("insufficient_funds", "", Payer { definite: false }),
        (
            "invalid_exact_evm_insufficient_balance",
            "",
            Payer { definite: false },
        ),
        (
            "invalid_exact_evm_payload_signature",
            "",
            Payer { definite: true },
        ),
        ("invalid_signature", "", Payer { definite: true }),
        (
            "invalid_exact_evm_payload_authorization_from_address_kyt",
            "",
            Payer { definite: true },
        ),
        (
            "invalid_payload",
            "execution reverted",
            Payer { definite: false },
        ),
        // The official facilitator's answer to any error of its send, which may follow the
        // broadcast: the chain decides.
        ("invalid_exact_evm_transaction_failed", "", Unanswered),
        (
            "invalid_exact_evm_transaction_failed",
            "HTTP request failed. Status: 502",
            Unanswered,
        ),
        (
            "invalid_exact_evm_transaction_failed",
            "RPC Request failed. Details: already known",
            Unanswered,
        ),
        ("invalid_payload", "nonce too low: next nonce 8", Unanswered),
        (
            "unexpected_settle_error",
            "replacement transaction underpriced",
            Unanswered,
        ),
        // Its own account's gas, which it reports under the payer's reason: retried, never the
        // payer's.
        (
            "invalid_exact_evm_insufficient_balance",
            "insufficient funds for gas * price + value: balance 0, tx cost 21000",
            Transient,
        ),
        (
            "invalid_exact_evm_transaction_failed",
            "intrinsic gas too low",
            Transient,
        ),
        ("invalid_exact_evm_nonce_already_used", "", NonceUsed),
        ("duplicate_settlement", "", NonceUsed),
        (
            "invalid_payload",
            "FiatTokenV2: authorization is used or canceled",
            NonceUsed,
        ),
        (
            "invalid_exact_evm_payload_authorization_valid_before",
            "",
            Expired,
        ),
        ("invalid_payment_expired", "", Expired),
        ("unexpected_settle_error", "", Transient),
        ("unexpected_error", "", Transient),
        ("invalid_transaction_state", "", Transient),
        ("invalid_request", "", Transient),
        ("invalid_network", "", Transient),
        ("unsupported_scheme", "", Transient),
        (
            "invalid_exact_evm_payload_authorization_valid_after",
            "",
            Transient,
        ),
        // x402-rs: not yet valid, and a request it could not read (ours, not the payer's).
        ("invalid_payment_early", "", Transient),
        ("invalid_format", "", Transient),
        ("invalid_exact_evm_token_name_mismatch", "", Transient),
        ("rpc_error", "", Transient),
        // The Go facilitator: its send failed (possibly after the broadcast) or its receipt
        // wait, its node did not answer a read, its account is out of gas; only a signature it
        // could not parse is the payer's.
        (
            "invalid_exact_evm_failed_to_execute_transfer",
            "EOF",
            Unanswered,
        ),
        ("failed_to_execute_transfer", "", Unanswered),
        ("invalid_exact_evm_failed_to_get_receipt", "", Unanswered),
        ("invalid_exact_evm_failed_to_check_nonce", "", Transient),
        ("invalid_exact_evm_failed_to_get_balance", "", Transient),
        (
            "invalid_exact_evm_failed_to_get_network_config",
            "",
            Transient,
        ),
        ("invalid_exact_evm_failed_to_get_asset_info", "", Transient),
        (
            "invalid_exact_evm_failed_to_verify_signature",
            "connection refused",
            Transient,
        ),
        (
            "invalid_exact_evm_failed_to_check_deployment",
            "",
            Transient,
        ),
        (
            "invalid_exact_evm_verification_failed",
            "asset contract check failed",
            Transient,
        ),
        (
            "invalid_exact_evm_relayer_insufficient_funds",
            "",
            Transient,
        ),
        (
            "invalid_exact_evm_failed_to_parse_signature",
            "",
            Payer { definite: true },
        ),
        ("", "", Transient),
        // A reason of the payer's kind that no facilitator gives today is retried, not held
        // against the payer; the known ones, in whatever facilitator's words, are.
        ("invalid_exact_evm_payload_something_new", "", Transient),
        ("invalid_payment_amount", "", Transient),
        ("invalid_payment", "", Payer { definite: false }),
        (
            "invalid_exact_evm_payload_authorization_typed_data_message",
            "",
            Payer { definite: false },
        ),
        ("transaction_simulation", "", Payer { definite: false }),
        (
            "invalid_exact_evm_transaction_simulation_failed",
            "",
            Payer { definite: false },
        ),
        ("settle_timeout", "", Unanswered),
        (
            "unexpected_settle_error",
            "transaction did not confirm in time",
            Unanswered,
        ),
        ("settlement_pending", "", Unanswered),
    ];
    for (reason, message, kind) in table {
        assert_eq!(
            classify_refusal(reason, message),
            *kind,
            "{reason} / {message}"
        );
    }
}

#[test]
fn stored_compactly_and_read_back() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    l.admit(
        deferred(2, u128::from(u64::MAX) * 3),
        &LedgerPolicy {
            credit_limit: u128::MAX,
            ..p
        },
        T0,
    )
    .unwrap();
    l.record(&id, settled("0xabc"), &p, at);
    let json = serde_json::to_string(&l).unwrap();
    let back: Ledger = json::parse(&json).unwrap();
    assert_eq!(back, l);
    // Amounts beyond 2^53 are strings; closed entries carry no payload.
    assert!(json.contains("\"55340232221128654845\""));
    assert_eq!(json.matches("x402Version").count(), 1);
    assert_eq!(serde_json::to_string(&Ledger::default()).unwrap(), "{}");
    assert_eq!(json::parse::<Ledger>("{}").unwrap(), Ledger::new());
    let view = serde_json::to_value(l.view()).unwrap();
    assert_eq!(view["unsettled_micro_usd"], "55340232221128654845");
    assert_eq!(view["settled"][0]["transaction"], "0xabc");
    assert_eq!(view["pending"][0]["status"], "pending");
}

#[test]
fn garbage_never_panics() {
    let p = policy();
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, unknown(), &p, at);
    l.admit(deferred(2, 1), &p, T0).unwrap();
    let json = serde_json::to_string(&l).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let mut bytes = json.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] = b"0123456789{}[]\",:-xpu"[rng.below(21) as usize];
        }
        let Ok(s) = String::from_utf8(bytes) else {
            continue;
        };
        if let Ok(mut g) = json::parse::<Ledger>(&s) {
            for now in [0, T0, u64::MAX] {
                g.prune(now);
                let _ = g.view();
                let _ = g.next_alarm();
                for a in g.due(now) {
                    g.begin(&a.id, &p, now);
                    g.record(&a.id, Outcome::NoRpc, &p, now);
                }
                let _ = g.admit(deferred(99, u128::MAX), &p, now);
            }
        }
    }
    // Extreme times and amounts.
    let mut l = Ledger::new();
    let mut a = admission(USDC, 1, u128::MAX, u64::MAX, true);
    a.amount_micro_usd = u128::MAX;
    let big = LedgerPolicy {
        credit_limit: u128::MAX,
        batch_window: u64::MAX,
        safety_margin: u64::MAX,
        max_attempts_unknown: u32::MAX,
        settled_history: usize::MAX,
        earned_credit: false,
        serve_within: u64::MAX,
    };
    let _ = l.admit(a, &big, u64::MAX);
    l.admit(
        admission(USDC, 2, u128::MAX, u64::MAX, false),
        &big,
        u64::MAX,
    )
    .unwrap();
    assert_eq!(l.unsettled(), u128::MAX);
    let _ = l.record(
        &admission(USDC, 2, 0, 0, false).id,
        unknown(),
        &big,
        u64::MAX,
    );
    let _ = l.due(u64::MAX);
    let _ = l.next_alarm();
}

/// xorshift64*: deterministic, good enough to drive the ledger.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const REASONS: [&str; 10] = [
    "invalid_exact_evm_insufficient_balance",
    "invalid_exact_evm_payload_signature",
    "invalid_exact_evm_nonce_already_used",
    "unexpected_settle_error",
    "invalid_transaction_state",
    "invalid_request",
    "rpc_timeout",
    "invalid_exact_evm_payload_authorization_valid_before",
    "failed_to_execute_transfer",
    "insufficient_funds",
];

fn random_outcome(rng: &mut Rng, action: Action) -> Outcome {
    let chain = action == Action::Reconcile && rng.chance(70);
    if chain {
        return match rng.below(6) {
            0 => Outcome::OnChainUsed,
            1 => Outcome::OnChainUnused,
            2 => Outcome::NoRpc,
            3 => Outcome::OnChainCancelled,
            4 => Outcome::OnChainUsedBefore,
            _ => unknown(),
        };
    }
    match rng.below(10) {
        0..=3 => settled(&format!("0x{:x}", rng.next())),
        4..=6 => refused(REASONS[rng.below(REASONS.len() as u64) as usize]),
        _ => unknown(),
    }
}

fn check_invariants(l: &Ledger, p: &LedgerPolicy, seed: u64) {
    let v = l.view();
    assert_eq!(v.admitted, accounted(&v), "seed {seed}: an entry was lost");
    let sum: u128 = v.pending.iter().map(|e| e.amount_micro_usd).sum();
    assert_eq!(v.unsettled_micro_usd, sum, "seed {seed}");
    assert_eq!(l.unsettled(), sum);
    let owed: u128 = v
        .failed
        .iter()
        .filter(|e| e.delinquent)
        .map(|e| e.amount_micro_usd)
        .sum();
    assert_eq!(v.owed_micro_usd, owed, "seed {seed}");
    assert_eq!(v.delinquent, v.failed.iter().any(|e| e.delinquent));
    // (Beyond the history: payments with identifiers, kept for their repeats, and payments
    // charged and not served.)
    assert!(
        v.settled.len() <= p.settled_history + 2 * REPEATABLE_KEPT,
        "seed {seed}"
    );
    let settled: u128 = v.settled.iter().map(|e| e.amount_micro_usd).sum();
    assert!(
        v.paid_micro_usd >= settled,
        "seed {seed}: paid less than settled"
    );
    assert!(v.settled.iter().all(|e| e.transaction.is_some()));
    assert!(v.failed.iter().all(|e| e.reason.is_some()));
    assert!(v.pending.iter().all(|e| e.due_at.is_some()));
    assert_eq!(
        v.next_alarm,
        v.pending.iter().filter_map(|e| e.due_at).min(),
        "seed {seed}"
    );
    let mut ids: Vec<&str> = v
        .pending
        .iter()
        .chain(&v.settled)
        .chain(&v.failed)
        .map(|e| e.id.as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "seed {seed}: duplicate id");
}

/// Writes a ledger's changed rows into `stored` as its Durable Object does after every command,
/// then checks that what is stored reads back as the ledger in memory.
fn store_rows(l: &mut Ledger, stored: &mut BTreeMap<String, String>, seed: u64) {
    for (key, value) in l.take_rows() {
        match value {
            Some(v) => stored.insert(key, v),
            None => stored.remove(&key),
        };
    }
    assert_eq!(
        Ledger::from_rows(stored.iter()),
        *l,
        "seed {seed}: rows round trip"
    );
}

/// Who served a payment with an identifier whose first request may not have.
#[derive(Clone)]
enum Given {
    No,
    /// Given to the request holding `ticket` at `at`, which has not said what became of it.
    To {
        ticket: String,
        at: u64,
    },
    Served,
}

/// Runs random admissions, attempts, outcomes, crashes, admin actions and time; then drains.
/// Returns how many times a payment owed its content was given to a repeat.
fn run(seed: u64) -> u32 {
    let mut rng = Rng(seed | 1);
    let p = LedgerPolicy {
        credit_limit: 200_000,
        batch_window: 20 + rng.below(60),
        safety_margin: 6 + rng.below(40),
        max_attempts_unknown: rng.below(5) as u32,
        settled_history: rng.below(6) as usize,
        earned_credit: rng.below(2) == 1,
        serve_within: 1 + rng.below(150),
    };
    let mut l = Ledger::new();
    let mut stored = BTreeMap::new();
    let mut now = T0;
    // (asset, nonce) → forget time, for every successful admission.
    let mut remembered: Vec<((usize, u64), u64)> = Vec::new();
    // Immediate payments with an identifier: the admission, and who served it.
    let mut identified: Vec<(Admission, Given)> = Vec::new();
    let mut given = 0;
    let assets = [USDC, OTHER];
    for step in 0..400 {
        now += rng.below(40);
        if rng.chance(30) {
            l.prune(now);
            remembered.retain(|(_, until)| *until > now);
        }
        for k in 0..rng.below(3) {
            let asset = rng.below(2) as usize;
            let n = rng.below(60);
            let vb = now + rng.below(400);
            let micro = 1 + rng.below(50_000) as u128;
            let was_remembered = l.remembers(assets[asset], &nonce(n));
            let mut a = admission(assets[asset], n, micro, vb, rng.chance(80));
            a.held = rng.chance(50);
            a.ticket = format!("request-{step}-{k}");
            if !a.deferred && rng.chance(50) {
                a = with_id(&format!("pay_{asset}_{step:06}_{k:06}"), PAGE, a);
            }
            match l.admit(a.clone(), &p, now) {
                Ok(()) if a.payment_id.is_some() => {
                    // The request settles it and serves it only if it settled; or it learns
                    // nothing (and serves nothing); or it dies before recording.
                    let served = match rng.below(3) {
                        0 => {
                            l.record_from(Some(&a.ticket), &a.id, settled("0xab"), &p, now);
                            Given::Served
                        }
                        1 => {
                            l.record_from(Some(&a.ticket), &a.id, unknown(), &p, now);
                            Given::No
                        }
                        _ => Given::No,
                    };
                    remembered.push(((asset, n), vb + REPLAY_GRACE));
                    identified.push((a, served));
                }
                Ok(()) => {
                    assert!(!was_remembered, "seed {seed} step {step}: admitted twice");
                    assert!(
                        !remembered.iter().any(|(k, _)| *k == (asset, n)),
                        "seed {seed} step {step}: a remembered nonce was admitted"
                    );
                    remembered.push(((asset, n), vb + REPLAY_GRACE));
                    assert!(l.remembers(assets[asset], &nonce(n)));
                    // Another request with the same payment is a replay; the same request,
                    // whose answer was lost, may admit again, as it was or as immediate.
                    let other = by("another request", a.clone());
                    assert_eq!(l.admit(other, &p, now), Err(AdmitError::Replay));
                    if rng.chance(10) {
                        let (admitted, unsettled) = (l.view().admitted, l.unsettled());
                        a.deferred &= rng.chance(50);
                        assert_eq!(l.admit(a, &p, now), Ok(()), "seed {seed} step {step}");
                        assert_eq!((l.view().admitted, l.unsettled()), (admitted, unsettled));
                    }
                }
                Err(AdmitError::Replay) => assert!(was_remembered),
                Err(_) => {}
            }
        }
        // Payers whose answers were lost send their payments again with their identifiers: a
        // payment is served at most once, whoever asks, however often; given to a request that
        // never says what became of it, it is given to another once that one's time is over.
        for (a, served) in identified.iter_mut() {
            if !rng.chance(20) {
                continue;
            }
            let mut again = by(
                &format!("repeat-{step}-{}", rng.below(1_000_000)),
                a.clone(),
            );
            // (Now and then from a Worker of an earlier version, which never says it served it.)
            again.reports_serving = rng.chance(90);
            let settled_before = l.entry(&a.id).map(|e| e.status) == Some(Status::Settled);
            let answer = l.admit(again.clone(), &p, now);
            if let Given::To { at, .. } = *served {
                if settled_before && now >= at + p.serve_within {
                    assert!(
                        matches!(answer, Err(AdmitError::Unserved { .. })),
                        "seed {seed} step {step}: not given again once its request was gone"
                    );
                }
            }
            if let Err(AdmitError::Unserved { .. }) = answer {
                assert!(
                    settled_before,
                    "seed {seed}: owed content before it was paid"
                );
                match *served {
                    Given::Served => panic!("seed {seed} step {step}: served twice"),
                    Given::To { at, .. } => assert!(
                        now >= at + p.serve_within,
                        "seed {seed} step {step}: given to two requests at once"
                    ),
                    Given::No => {}
                }
                given += 1;
                *served = match again.reports_serving {
                    true => Given::To {
                        ticket: again.ticket.clone(),
                        at: now,
                    },
                    false => Given::Served,
                };
                assert!(
                    matches!(
                        l.admit(again.clone(), &p, now),
                        Err(AdmitError::Unserved { .. })
                    ),
                    "seed {seed}: the same request is given it again"
                );
            }
            // The request it was given to (now or before) comes back, or never does.
            if let Given::To { ticket, .. } = served.clone() {
                match rng.below(10) {
                    // Its origin failed: given back, owed again.
                    0..=2 => {
                        assert_eq!(l.withdraw_from(Some(&ticket), &a.id), Ok(0));
                        *served = Given::No;
                    }
                    3..=5 => {
                        assert_eq!(l.release_from(Some(&ticket), &a.id, now), Ok(()));
                        *served = Given::Served;
                    }
                    _ => {}
                }
            }
        }
        // The Workers that admitted held entries come back: most release, some withdraw (the
        // origin failed), some never come back (their hold ends by itself).
        for e in l.view().pending {
            let Some(until) = e.held_until else { continue };
            assert_eq!(e.status, Status::Pending, "seed {seed}: held but attempted");
            assert_eq!((e.retries, e.unknowns), (0, 0), "seed {seed}");
            assert!(until <= e.admitted_at + HOLD_SECONDS, "seed {seed}");
            assert!(until <= e.valid_before - p.margin(), "seed {seed}");
            match rng.below(10) {
                0..=3 => assert_eq!(l.release(&e.id, now), Ok(())),
                4 => {
                    assert_eq!(l.withdraw(&e.id), Ok(e.amount_micro_usd));
                    assert!(!l.remembers(&e.asset, &e.nonce), "seed {seed}");
                    remembered
                        .retain(|((i, n), _)| !(assets[*i] == e.asset && nonce(*n) == e.nonce));
                }
                _ => {}
            }
        }
        let due = l.due(now);
        assert_eq!(
            l.first_due(now),
            due.first().map(|a| a.id.clone()),
            "seed {seed}"
        );
        for a in due {
            let held = l.entry(&a.id).unwrap().held_until;
            assert!(
                held.is_none_or(|h| h <= now),
                "seed {seed} step {step}: a held entry came due"
            );
            if rng.chance(70) && l.begin(&a.id, &p, now).is_none() {
                continue;
            }
            if rng.chance(5) {
                continue; // the shell died before recording
            }
            let outcome = random_outcome(&mut rng, a.action);
            let before = l.entry(&a.id).unwrap();
            let effect = l.record(&a.id, outcome, &p, now);
            if let Some(after) = l.entry(&a.id) {
                match effect {
                    Effect::Settled => assert_eq!(after.status, Status::Settled),
                    Effect::Failed { became_delinquent } => {
                        assert_eq!(after.status, Status::Failed);
                        assert_eq!(after.delinquent, became_delinquent);
                        if !before.deferred {
                            assert!(!became_delinquent, "seed {seed}: immediate debt");
                        }
                    }
                    Effect::Retry { at } => {
                        assert!(at >= now);
                        assert_eq!(after.due_at, Some(at));
                    }
                    Effect::None => panic!("seed {seed}: a due entry ignored an outcome"),
                    Effect::SettledAfterAll => panic!("seed {seed}: a due entry was closed"),
                }
            } else {
                // Only trimming removes: a settled entry, or an immediate payment refused.
                let immediate_refused = !before.deferred
                    && effect
                        == Effect::Failed {
                            became_delinquent: false,
                        };
                assert!(
                    effect == Effect::Settled || immediate_refused,
                    "seed {seed}: only trimming removes, not {effect:?}"
                );
            }
        }
        if rng.chance(3) {
            let failed = l.view().failed;
            if let Some(e) = failed.first() {
                assert_eq!(l.revoke(&e.id), Ok(e.amount_micro_usd));
            }
        }
        if rng.chance(2) {
            l.clear_delinquency();
        }
        if rng.chance(2) {
            let failed = l.view().failed;
            if let Some(e) = failed.last() {
                assert_eq!(l.mark_paid(&e.id, "0xfeed".into(), now), Ok(()));
                l.trim(p.settled_history, now); // as the Durable Object does after every settlement
            }
        }
        store_rows(&mut l, &mut stored, seed);
        if rng.chance(10) {
            // A cold start: the object reads its rows back (or, stored before rows, the whole
            // ledger as one value, which it then writes back as rows).
            if rng.chance(50) {
                l = Ledger::from_rows(stored.iter());
            } else {
                let json = serde_json::to_string(&l).unwrap();
                let mut back: Ledger = json::parse(&json).unwrap();
                assert_eq!(back, l, "seed {seed}: storage round trip");
                back.mark_all();
                stored.clear();
                store_rows(&mut back, &mut stored, seed);
                l = back;
            }
        }
        check_invariants(&l, &p, seed);
    }
    // Drain: no more admissions, the shell always records; every entry must close.
    for _ in 0..2_000 {
        let Some(alarm) = l.next_alarm() else { break };
        now = now.max(alarm) + rng.below(3);
        l.prune(now);
        for a in l.due(now) {
            if rng.chance(50) && l.begin(&a.id, &p, now).is_none() {
                continue;
            }
            let outcome = random_outcome(&mut rng, a.action);
            l.record(&a.id, outcome, &p, now);
        }
        store_rows(&mut l, &mut stored, seed);
        check_invariants(&l, &p, seed);
    }
    let v = l.view();
    assert!(v.pending.is_empty(), "seed {seed}: entries never closed");
    assert_eq!(v.unsettled_micro_usd, 0);
    assert_eq!(l.next_alarm(), None);
    given
}

#[test]
fn property_nothing_is_lost_and_nothing_is_served_twice() {
    let given: u32 = (1..=100u64)
        .map(|seed| run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .sum();
    assert!(given > 0, "no payment owed its content was ever sent again");
}

/// A confirmed settlement is never thrown away: when a `/settle` call outlived its lease and the
/// entry was resent and closed meanwhile, the `Settled` answer of the first call, coming back
/// late, settles it after all, with its transaction, and lifts any debt the failure made.
#[test]
fn a_late_confirmed_settlement_settles_an_entry_closed_meanwhile() {
    let p = policy();
    // Resent after an unanswered call and no chain to ask: the resend finds the nonce used.
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, unknown(), &p, at);
    l.record(&id, Outcome::NoRpc, &p, at + 1);
    l.begin(&id, &p, at + 1).unwrap();
    l.record(
        &id,
        refused("invalid_exact_evm_nonce_already_used"),
        &p,
        at + 1,
    );
    l.record(&id, Outcome::NoRpc, &p, at + 1);
    assert_eq!(l.entry(&id).unwrap().status, Status::Failed);
    assert_eq!(
        l.record(&id, settled("0xabc"), &p, at + 2),
        Effect::SettledAfterAll
    );
    let e = l.entry(&id).unwrap();
    assert_eq!(
        (e.status, e.transaction.as_deref()),
        (Status::Settled, Some("0xabc"))
    );
    // A second late answer changes nothing.
    assert_eq!(l.record(&id, settled("0xdef"), &p, at + 3), Effect::None);
    assert_eq!(l.entry(&id).unwrap().transaction.as_deref(), Some("0xabc"));

    // Held against the payer (a refusal for its balance), then the money arrived after all.
    let (mut l, id, at) = one_due(5_000);
    l.record(&id, refused("insufficient_funds"), &p, at);
    assert!(l.is_delinquent());
    assert_eq!(
        l.record(&id, settled("0xabc"), &p, at + 1),
        Effect::SettledAfterAll
    );
    assert!(!l.is_delinquent(), "no debt for a payment that arrived");
    assert!(!l.entry(&id).unwrap().delinquent);
}

/// `a` sent with a payment identifier, for a request.
fn with_id(id: &str, request: &str, a: Admission) -> Admission {
    Admission {
        payment_id: Some(id.into()),
        request: request.into(),
        reports_serving: true,
        ..a
    }
}

const PAGE: &str = "GET https://news.example/a/1";

/// An immediate payment of a cent (nonce `n`) sent for [`PAGE`] with the identifier `pid` by the
/// request holding `ticket`.
fn sent(ticket: &str, pid: &str, n: u64) -> Admission {
    by(
        ticket,
        with_id(pid, PAGE, admission(USDC, n, 10_000, LONG, false)),
    )
}

fn repeat(in_progress: bool) -> Result<(), AdmitError> {
    Err(AdmitError::Repeat { in_progress })
}

/// An immediate payment sent again with its identifier: not ready while it is being settled,
/// then answered again; never admitted twice, never charged twice. The same
/// payment for another request, or without its identifier, is a replay; the identifier with
/// another payment is a conflict.
#[test]
fn a_payment_sent_again_with_its_identifier_is_a_repeat() {
    let p = policy();
    let mut l = Ledger::new();
    let first = sent("t1", "pay_0123456789abcdef", 1);
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    let again = by("t2", first.clone());
    assert_eq!(
        l.admit(again.clone(), &p, T0 + 1),
        repeat(true),
        "still being settled"
    );
    l.record(&id, settled("0xabc"), &p, T0 + 2);
    // Served: its answer may still be on its way to the store that keeps it (read by the client
    // to its end, then shown everywhere), and a repeat that finds none is told to come back.
    assert_eq!(
        l.admit(again.clone(), &p, T0 + 3),
        repeat(true),
        "its answer being kept"
    );
    let kept = T0 + ANSWER_KEPT_SECONDS;
    assert_eq!(l.admit(again.clone(), &p, kept - 1), repeat(true));
    assert_eq!(l.admit(again.clone(), &p, kept), repeat(false));
    assert_eq!(l.view().settled.len(), 1);
    assert_eq!(l.paid(), 10_000, "paid once");

    let elsewhere = with_id(
        "pay_0123456789abcdef",
        "GET https://news.example/a/2",
        again.clone(),
    );
    assert_eq!(l.admit(elsewhere, &p, T0 + 3), Err(AdmitError::Replay));
    let bare = Admission {
        payment_id: None,
        request: String::new(),
        ..again.clone()
    };
    assert_eq!(l.admit(bare, &p, T0 + 3), Err(AdmitError::Replay));
    let other = sent("t3", "pay_0123456789abcdef", 2);
    assert_eq!(l.admit(other, &p, T0 + 3), Err(AdmitError::IdConflict));

    // What the ledger keeps of it survives storage.
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    let mut back = Ledger::from_rows(stored.iter());
    assert_eq!(back.admit(again.clone(), &p, T0 + 4), repeat(true));
    assert_eq!(back.admit(again, &p, kept), repeat(false));
}

/// An immediate payment whose settlement gave its request no clear answer (nothing was served),
/// then found settled on chain: sent again with its identifier, it is given to one request to
/// serve, with the transaction that settled it, and charged nothing more. Not while the chain is
/// still being read; a request whose origin then fails gives it back, one that dies leaves it to
/// the next repeat once its origin's time is over; a payment that never moved is a replay as
/// before.
#[test]
fn a_payment_settled_and_never_served_is_served_to_its_repeat() {
    let p = policy();
    let mut l = Ledger::new();
    let first = sent("t1", "pay_0123456789abcdef", 1);
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    // Only the admitting request's outcome says what it served.
    l.record_from(Some("t9"), &id, unknown(), &p, T0 + 1);
    assert_eq!(status(&l, &id), Status::InFlight);
    l.record_from(Some("t1"), &id, unknown(), &p, T0 + 1);
    assert!(!l.entry(&id).unwrap().unserved, "shown once charged");
    let again = by("t2", first.clone());
    assert_eq!(
        l.admit(again.clone(), &p, T0 + 2),
        repeat(true),
        "still being read"
    );
    assert_eq!(l.repeated(&again, T0 + 2), repeat(true).err());
    // The chain shows it unused at first (our transaction not mined yet): read again soon, not
    // only once the authorization has ended, then found moved: charged, owed its content.
    l.begin(&id, &p, T0 + 2).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, T0 + 2),
        Effect::Retry { at: T0 + 4 }
    );
    assert_eq!(l.admit(again.clone(), &p, T0 + 3), repeat(true));
    l.begin(&id, &p, T0 + 4).unwrap();
    assert_eq!(
        l.record(&id, settled("0xfeed"), &p, T0 + 4),
        Effect::Settled
    );
    assert!(l.entry(&id).unwrap().unserved, "charged, not served");
    let owed = Err(AdmitError::Unserved {
        transaction: "0xfeed".into(),
    });
    assert_eq!(
        l.repeated(&again, T0 + 4),
        owed.clone().err(),
        "asked, not given"
    );
    assert!(l.entry(&id).unwrap().unserved);
    // Kept so through storage.
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    let mut l = Ledger::from_rows(stored.iter());
    assert_eq!(
        l.admit(again.clone(), &p, T0 + 5),
        owed,
        "given to this request"
    );
    assert!(l.entry(&id).unwrap().unserved, "not served yet");
    // Asked again by the same request (its answer lost, or its held admission turned into an
    // immediate one): given again.
    assert_eq!(l.admit(again.clone(), &p, T0 + 5), owed);
    // A second repeat meanwhile waits for the first one's answer.
    let third = by("t3", first.clone());
    assert_eq!(l.admit(third.clone(), &p, T0 + 6), repeat(true));
    // The origin failed the request it was given to: only that request gives it back.
    assert_eq!(
        l.withdraw_from(Some("t3"), &id),
        Err(AdminError::NotAllowed)
    );
    assert_eq!(l.withdraw_from(Some("t2"), &id), Ok(0));
    assert!(l.entry(&id).unwrap().unserved, "owed again");
    assert_eq!(l.admit(third.clone(), &p, T0 + 7), owed);
    // That request dies with its isolate, neither serving it nor giving it back: repeats wait
    // for it as long as its origin may take, then the next one is given the payment.
    let gone = T0 + 7 + p.serve_within;
    let fourth = by("t4", first.clone());
    assert_eq!(l.admit(fourth.clone(), &p, gone - 1), repeat(true));
    assert!(l.entry(&id).unwrap().unserved);
    assert_eq!(l.admit(fourth.clone(), &p, gone), owed, "given to the next");
    // The request taken for gone can no longer give it back or say it served it.
    assert_eq!(
        l.withdraw_from(Some("t3"), &id),
        Err(AdminError::NotAllowed)
    );
    assert_eq!(
        l.release_from(Some("t3"), &id, gone),
        Err(AdminError::NotAllowed)
    );
    // Served, and said so: no repeat is given it again, however late.
    assert_eq!(l.release_from(Some("t4"), &id, gone + 1), Ok(()));
    assert!(!l.entry(&id).unwrap().unserved, "served");
    store_rows(&mut l, &mut stored, 0);
    let mut l = Ledger::from_rows(stored.iter());
    let fifth = by("t5", first.clone());
    assert_eq!(l.admit(fifth, &p, gone + 2 * p.serve_within), repeat(true));
    // Answered again from where its answer is kept, counted from when it was given.
    let kept = gone + ANSWER_KEPT_SECONDS;
    assert_eq!(l.admit(again.clone(), &p, kept - 1), repeat(true));
    assert_eq!(l.admit(again.clone(), &p, kept), repeat(false));
    assert_eq!(l.view().settled.len(), 1);
    assert_eq!(l.paid(), 10_000, "charged once");

    // A Worker of an earlier version never says that it served it: given to its request, the
    // payment counts as served at once, as it did then.
    let mut l = Ledger::new();
    let first = sent("t1", "pay_0123456789abcdef", 1);
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    l.record_from(Some("t1"), &id, unknown(), &p, T0 + 1);
    l.begin(&id, &p, T0 + 2).unwrap();
    l.record(&id, settled("0xfeed"), &p, T0 + 2);
    let old = Admission {
        reports_serving: false,
        ..by("t2", first.clone())
    };
    assert_eq!(l.admit(old, &p, T0 + 3), owed);
    assert!(
        !l.entry(&id).unwrap().unserved,
        "served, as far as it can tell"
    );
    let later = T0 + 3 + 2 * p.serve_within;
    assert_eq!(l.admit(by("t3", first.clone()), &p, later), repeat(true));
    // Past its time to serve it, the request it was given to asking again (it cannot be alive
    // by then, but say it were) takes it afresh, with a new time: no other request is given it
    // meanwhile.
    let mut l = Ledger::new();
    l.admit(first.clone(), &p, T0).unwrap();
    l.record_from(Some("t1"), &id, unknown(), &p, T0 + 1);
    l.begin(&id, &p, T0 + 2).unwrap();
    l.record(&id, settled("0xfeed"), &p, T0 + 2);
    let again = by("t2", first.clone());
    assert_eq!(l.admit(again.clone(), &p, T0 + 3), owed);
    let late = T0 + 3 + p.serve_within;
    assert_eq!(l.admit(again, &p, late), owed);
    assert_eq!(l.admit(by("t3", first), &p, late + 1), repeat(true));

    // A POST whose origin did the work before the settlement: never served again (the work
    // would be done twice); its kept answer, if any, is what a repeat gets.
    let mut l = Ledger::new();
    let posted = by("t1", with_id("pay_0123456789abcdef", PAGE, worked(3)));
    let id = posted.id.clone();
    l.admit(posted.clone(), &p, T0).unwrap();
    l.record_from(Some("t1"), &id, unknown(), &p, T0 + 1);
    l.begin(&id, &p, T0 + 2).unwrap();
    assert_eq!(
        l.record(&id, settled("0xfeed"), &p, T0 + 2),
        Effect::Settled
    );
    assert!(!l.entry(&id).unwrap().unserved);
    assert_eq!(l.admit(by("t2", posted), &p, T0 + 3), repeat(true));

    // Without an identifier nobody can be served it later: found unused, it is read again once
    // its authorization has ended, as before (a node is asked no more often than that needs).
    let mut l = Ledger::new();
    let bare = by("t1", admission(USDC, 4, 10_000, LONG, false));
    let id = bare.id.clone();
    l.admit(bare, &p, T0).unwrap();
    l.record_from(Some("t1"), &id, unknown(), &p, T0 + 1);
    l.begin(&id, &p, T0 + 2).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, T0 + 2),
        Effect::Retry {
            at: LONG + CHAIN_GRACE
        }
    );

    // One that never moved: unused on chain past its deadline, it fails, and a repeat is a
    // replay (the payer is told to pay again).
    let mut l = Ledger::new();
    let first = sent("t1", "pay_fedcba9876543210", 2);
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    l.record_from(Some("t1"), &id, unknown(), &p, T0 + 1);
    let late = LONG + 3_600;
    l.begin(&id, &p, late).unwrap();
    l.record(&id, Outcome::OnChainUnused, &p, late);
    assert_eq!(status(&l, &id), Status::Failed);
    assert_eq!(
        l.admit(by("t2", first), &p, late + 1),
        Err(AdmitError::Replay)
    );
}

/// `a` with a facilitator body carrying `signature`.
fn signed(signature: &str, a: Admission) -> Admission {
    Admission {
        payload: json!({"paymentPayload": {"payload": {"signature": signature}}}),
        ..a
    }
}

/// What the ledger knows of a payment carrying an identifier, asked before the payment is judged
/// elsewhere (a smart wallet's, by the facilitator's `/verify`): the same answers as admission's
/// for a repeat and a conflict, nothing for a payment it has not seen or a replay elsewhere. While
/// the entry keeps the payment's body, a repeat must carry its signature: the same authorization
/// with any other signature is a replay.
#[test]
fn what_the_ledger_knows_of_an_identified_payment_is_asked_without_admitting_it() {
    let p = policy();
    let mut l = Ledger::new();
    let first = signed("0x5167", sent("t1", "pay_0123456789abcdef", 1));
    let id = first.id.clone();
    assert_eq!(l.repeated(&first, T0), None, "nothing known yet");
    assert!(
        l.view().settled.is_empty() && l.view().pending.is_empty(),
        "nothing admitted"
    );
    l.admit(first.clone(), &p, T0).unwrap();
    let again = by("t2", first.clone());
    assert_eq!(l.repeated(&again, T0 + 1), repeat(true).err());
    let forged = signed("0x0000", again.clone());
    assert_eq!(
        l.repeated(&forged, T0 + 1),
        None,
        "another signature: a replay"
    );
    assert_eq!(l.admit(forged.clone(), &p, T0 + 1), Err(AdmitError::Replay));
    // The binding survives storage: a ledger read back from its rows compares the same.
    let mut stored = BTreeMap::new();
    store_rows(&mut l, &mut stored, 0);
    let back = Ledger::from_rows(stored.iter());
    assert_eq!(back.repeated(&forged, T0 + 1), None);
    assert_eq!(back.repeated(&again, T0 + 1), repeat(true).err());
    l.record(&id, settled("0xabc"), &p, T0 + 2);
    // Settled, the entry no longer keeps the body: its signature is on chain for anyone to
    // read, and the identifier tells the payer's repeat, within the authorization's own time:
    // another deadline or amount is not the payment served.
    assert_eq!(l.repeated(&forged, T0 + 3), repeat(true).err());
    let kept = T0 + ANSWER_KEPT_SECONDS;
    assert_eq!(l.repeated(&forged, kept), repeat(false).err());
    let later = Admission {
        valid_before: LONG + 3600,
        ..forged.clone()
    };
    assert_eq!(l.repeated(&later, T0 + 3), None, "another deadline");
    let more = Admission {
        amount: "20000".into(),
        ..forged.clone()
    };
    assert_eq!(l.repeated(&more, T0 + 3), None, "another amount");
    assert_eq!(l.repeated(&again, kept), repeat(false).err());
    let elsewhere = with_id(
        "pay_0123456789abcdef",
        "GET https://news.example/a/2",
        again.clone(),
    );
    assert_eq!(
        l.repeated(&elsewhere, T0 + 3),
        None,
        "a replay: admission refuses it"
    );
    let other = sent("t3", "pay_0123456789abcdef", 2);
    assert_eq!(l.repeated(&other, T0 + 3), Some(AdmitError::IdConflict));
    let bare = Admission {
        payment_id: None,
        ..other
    };
    assert_eq!(
        l.repeated(&bare, T0 + 3),
        None,
        "no identifier, nothing to ask"
    );
    assert_eq!(l.paid(), 10_000, "paid once");
}

/// A deferred payment with an identifier that lapsed unsent past its deadline is not answered
/// again, and its identifier is free again, asked before admission (which closes it first) as by
/// admission itself.
#[test]
fn a_lapsed_payment_is_not_a_repeat() {
    let p = policy();
    let mut l = Ledger::new();
    let short = T0 + 120;
    let first = by(
        "t1",
        with_id(
            "pay_0123456789abcdef",
            PAGE,
            admission(USDC, 1, 10_000, short, true),
        ),
    );
    l.admit(first.clone(), &p, T0).unwrap();
    let again = by("t2", first);
    assert_eq!(l.repeated(&again, T0 + 1), repeat(true).err());
    assert_eq!(l.repeated(&again, short), None, "past its deadline, unsent");
    // Its identifier is free for another payment, asked before admission as by admission.
    let other = by(
        "t3",
        with_id(
            "pay_0123456789abcdef",
            PAGE,
            admission(USDC, 2, 10_000, LONG, false),
        ),
    );
    assert_eq!(
        l.repeated(&other, short),
        None,
        "no conflict with a lapsed one"
    );
    assert_eq!(l.admit(again, &p, short), Err(AdmitError::Replay));
    assert_eq!(l.admit(other, &p, short), Ok(()));
}

/// A payment with an identifier stays answerable again for an hour, however many payments the
/// wallet settles after it (the settled history alone keeps only the newest few); then it is a
/// replay like any other, and is trimmed.
#[test]
fn a_payment_with_an_identifier_stays_repeatable_for_an_hour_beyond_the_history() {
    let p = policy();
    let mut l = Ledger::new();
    let first = sent("t1", "pay_0123456789abcdef", 1);
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    l.record(&id, settled("0xabc"), &p, T0 + 1);
    // Many more, without identifiers: well past the settled history.
    for n in 2..(3 + p.settled_history as u64 * 2) {
        let a = admission(USDC, n, 10_000, LONG, false);
        let other = a.id.clone();
        l.admit(a, &p, T0 + 2).unwrap();
        l.record(&other, settled("0xdef"), &p, T0 + 3);
    }
    assert_eq!(l.view().settled.len(), p.settled_history + 1);
    let again = by("t2", first);
    assert_eq!(
        l.admit(again.clone(), &p, T0 + ANSWER_KEPT_SECONDS),
        repeat(false)
    );
    // An hour after it settled, the next trim lets it go: the same payment is then a replay.
    let late = T0 + 1 + REPEAT_SECONDS;
    let a = admission(USDC, 99, 10_000, LONG, false);
    let last = a.id.clone();
    l.admit(a, &p, late).unwrap();
    l.record(&last, settled("0xfed"), &p, late);
    assert!(l.entry(&id).is_none(), "trimmed");
    assert_eq!(l.view().settled.len(), p.settled_history);
    assert_eq!(l.admit(again, &p, late), Err(AdmitError::Replay));
}

/// A deferred payment sent again with its identifier: not ready while its origin answers (held),
/// then answered again, before its batch settles it, while it is being settled, and after.
#[test]
fn a_deferred_payment_sent_again_is_a_repeat_once_served() {
    let p = policy();
    let mut l = Ledger::new();
    let first = by(
        "t1",
        with_id("pay_deferred_000000", PAGE, held(1, 10_000, LONG)),
    );
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    let again = by("t2", first);
    assert_eq!(
        l.admit(again.clone(), &p, T0 + 1),
        repeat(true),
        "its origin is answering"
    );
    l.release(&id, T0 + 1).unwrap();
    assert_eq!(
        l.admit(again.clone(), &p, T0 + 2),
        repeat(true),
        "served, its answer on its way to being kept"
    );
    let at = T0 + 60;
    l.begin(&id, &p, at).expect("due");
    assert_eq!(l.admit(again.clone(), &p, at), repeat(true));
    let kept = T0 + ANSWER_KEPT_SECONDS;
    assert_eq!(
        l.admit(again.clone(), &p, kept),
        repeat(false),
        "being settled: served already"
    );
    l.record(&id, settled("0xdef"), &p, kept + 1);
    assert_eq!(l.admit(again, &p, kept + 2), repeat(false));
    assert_eq!(accounted(&l.view()), 1, "admitted once");
}

/// A payment whose settlement was refused was not served: sent again with its identifier, it is
/// a replay, and its identifier may go with a new payment. One withdrawn (its origin failed) is
/// forgotten, identifier and all: the identifier may go with a new payment.
#[test]
fn a_payment_not_served_is_no_repeat() {
    let p = policy();
    let mut l = Ledger::new();
    let first = sent("t1", "pay_refused_0000000", 1);
    let id = first.id.clone();
    l.admit(first.clone(), &p, T0).unwrap();
    l.record(
        &id,
        refused("invalid_exact_evm_insufficient_funds"),
        &p,
        T0 + 1,
    );
    assert_eq!(
        l.admit(by("t2", first), &p, T0 + 2),
        Err(AdmitError::Replay)
    );
    // Its identifier bought nothing: it may go with a new payment, which is then the one a
    // repeat finds.
    let funded = sent("t5", "pay_refused_0000000", 4);
    l.admit(funded.clone(), &p, T0 + 2).unwrap();
    l.record(&funded.id, settled("0x123"), &p, T0 + 3);
    assert_eq!(l.admit(by("t6", funded), &p, T0 + 4), repeat(true));

    let withdrawn = sent("t3", "pay_withdrawn_00000", 2);
    let wid = withdrawn.id.clone();
    l.admit(withdrawn, &p, T0).unwrap();
    l.withdraw_from(Some("t3"), &wid).unwrap();
    let next = sent("t4", "pay_withdrawn_00000", 3);
    assert_eq!(l.admit(next, &p, T0 + 1), Ok(()));
}

#[test]
fn a_write_is_split_into_storage_calls_of_at_most_128_keys() {
    use x402_edge::settlement::{storage_calls, StorageCall, KEYS_PER_CALL};
    assert_eq!(KEYS_PER_CALL, 128, "Cloudflare's documented limit");
    // A prune after a burst of 300 payments, with a few rows changed beside it.
    let mut rows: Vec<(String, Option<String>)> =
        (0..300).map(|i| (format!("s:{i}"), None)).collect();
    rows.extend((0..130).map(|i| (format!("e:{i}"), Some(format!("{{\"n\":{i}}}")))));
    let calls = storage_calls(rows.clone());
    let sizes: Vec<(bool, usize)> = calls
        .iter()
        .map(|c| match c {
            StorageCall::Put(p) => (true, p.len()),
            StorageCall::Delete(d) => (false, d.len()),
        })
        .collect();
    assert_eq!(
        sizes,
        [
            (true, 128),
            (true, 2),
            (false, 128),
            (false, 128),
            (false, 44)
        ]
    );
    // Every row once, in its order.
    let mut back = Vec::new();
    for call in calls {
        match call {
            StorageCall::Put(p) => back.extend(p.into_iter().map(|(k, v)| (k, Some(v)))),
            StorageCall::Delete(d) => back.extend(d.into_iter().map(|k| (k, None))),
        }
    }
    let mut want = rows.split_off(300);
    want.extend(rows);
    assert_eq!(back, want);
    assert!(storage_calls(Vec::new()).is_empty());
}

/// A payment charged and not served is what the publisher refunds from and what the payer's
/// repeat is given: the settled history does not push it out, however many payments settle
/// after it; once served, it is history like any other.
#[test]
fn a_payment_owed_its_content_outlasts_the_settled_history() {
    let p = policy();
    let mut l = Ledger::new();
    // Without an identifier (a refund is all it can get), and with one.
    let bare = by("t1", admission(USDC, 1, 10_000, LONG, false));
    let named = sent("t2", "pay_0123456789abcdef", 2);
    for a in [&bare, &named] {
        l.admit(a.clone(), &p, T0).unwrap();
        l.record_from(Some(&a.ticket), &a.id, unknown(), &p, T0 + 1);
        l.begin(&a.id, &p, T0 + 2).unwrap();
        assert_eq!(
            l.record(&a.id, settled("0xfeed"), &p, T0 + 2),
            Effect::Settled
        );
    }
    let later = T0 + REPEAT_SECONDS + 10;
    for n in 10..10 + 3 * p.settled_history as u64 {
        let a = by("t", admission(USDC, n, 10_000, later + 600, false));
        l.admit(a.clone(), &p, later).unwrap();
        l.record_from(Some("t"), &a.id, settled("0xbeef"), &p, later);
        l.trim(p.settled_history, later);
    }
    let v = l.view();
    assert_eq!(
        v.settled.iter().filter(|e| e.unserved).count(),
        2,
        "both kept"
    );
    assert_eq!(v.settled.len(), p.settled_history + 2);
    // The one with an identifier is served to its repeat, and then goes the way of history.
    let again = by("t3", named.clone());
    assert!(matches!(
        l.admit(again.clone(), &p, later + 1),
        Err(AdmitError::Unserved { .. })
    ));
    assert_eq!(l.release_from(Some("t3"), &named.id, later + 1), Ok(()));
    l.trim(p.settled_history, later + 1);
    assert!(l.entry(&named.id).is_none(), "trimmed once served");
    assert!(l.entry(&bare.id).is_some_and(|e| e.unserved));
}

/// Calls the platform refused to make (its limit on the calls of one invocation) are no attempt:
/// the entry is due again a second later as it was, with no unanswered attempt counted, so that a
/// plan's small allowance can never make a payment look uncertain, or give one up.
#[test]
fn calls_the_platform_refused_to_make_count_as_no_attempt() {
    let p = policy();
    let limit = Outcome::Unknown {
        why: format!("facilitator /settle: {LIMIT_MARK} (Error: Too many subrequests.)"),
    };
    // Only where the platform refused a call in the round, and only what that can explain.
    assert!(refused_by_limit(Action::Settle, &limit, true));
    assert!(!refused_by_limit(Action::Settle, &limit, false));
    assert!(!refused_by_limit(Action::Settle, &unknown(), true));
    assert!(!refused_by_limit(
        Action::Settle,
        &refused("insufficient_funds"),
        true
    ));
    assert!(!refused_by_limit(Action::Settle, &settled("0xfeed"), true));
    for vague in [
        unknown(),
        Outcome::ChainUnreadable { why: "x".into() },
        Outcome::OnChainUsed,
    ] {
        assert!(refused_by_limit(Action::Reconcile, &vague, true));
        assert!(!refused_by_limit(Action::Reconcile, &vague, false));
    }
    for known in [
        Outcome::OnChainUnused,
        Outcome::OnChainCancelled,
        Outcome::NoRpc,
        settled("0xfeed"),
    ] {
        assert!(!refused_by_limit(Action::Reconcile, &known, true));
    }

    // A settlement not sent, many times over: due again each second, never uncertain.
    let (mut l, id, mut now) = one_due(10_000);
    for _ in 0..20 {
        let attempt = l.begin(&id, &p, now).unwrap();
        assert_eq!(attempt.action, Action::Settle);
        assert_eq!(
            l.record(
                &id,
                Outcome::NotSent {
                    action: Action::Settle
                },
                &p,
                now
            ),
            Effect::Retry { at: now + 1 }
        );
        assert!(l.due(now).is_empty());
        now += 1;
    }
    let e = l.entry(&id).unwrap();
    assert_eq!((e.status, e.unknowns, e.retries), (Status::Pending, 0, 0));
    // However long the round it was in took (past the in-flight lease), nothing is counted.
    let mut slow = l.clone();
    slow.begin(&id, &p, now).unwrap();
    let after = now + 600;
    slow.record(
        &id,
        Outcome::NotSent {
            action: Action::Settle,
        },
        &p,
        after,
    );
    let e = slow.entry(&id).unwrap();
    assert_eq!(
        (e.status, e.unknowns, e.due_at),
        (Status::Pending, 0, Some(after + 1))
    );
    let mut late = l.clone();
    l.begin(&id, &p, now).unwrap();
    assert_eq!(l.record(&id, settled("0xfeed"), &p, now), Effect::Settled);
    // Not sent by the deadline (validBefore less the safety margin): it lapses, lost revenue, not
    // held against the payer, and is not sent inside the margin.
    let deadline = LONG - 30;
    late.begin(&id, &p, deadline).unwrap();
    assert_eq!(
        late.record(
            &id,
            Outcome::NotSent {
                action: Action::Settle
            },
            &p,
            deadline
        ),
        Effect::Failed {
            became_delinquent: false
        }
    );
    let e = late.entry(&id).unwrap();
    assert_eq!(e.reason.as_deref(), Some(EXPIRED_UNSETTLED));

    // A reconciliation not made: still to be made, the count of unanswered attempts as it was.
    let (mut l, id, now) = one_due(10_000);
    l.begin(&id, &p, now).unwrap();
    l.record(&id, unknown(), &p, now);
    let later = now + 1;
    for n in 0..20 {
        let attempt = l.begin(&id, &p, later + n).unwrap();
        assert_eq!(attempt.action, Action::Reconcile);
        l.record(
            &id,
            Outcome::NotSent {
                action: Action::Reconcile,
            },
            &p,
            later + n,
        );
    }
    let e = l.entry(&id).unwrap();
    assert_eq!((e.status, e.unknowns), (Status::Unknown, 1));
    assert_eq!(e.due_at, Some(later + 20));
    l.begin(&id, &p, later + 20).unwrap();
    assert_eq!(
        l.record(&id, Outcome::OnChainUnused, &p, later + 20),
        Effect::Retry { at: later + 20 }
    );
}
