//! The Worker's side of a wallet ledger: sends it commands by RPC over the Durable Object stub.

use std::cell::RefCell;

use worker::Env;

use super::ledger::{AdmitAnswer, Command, WireOutcome};
use crate::facilitator::SettleOutcome;
use crate::reason::{Reason, Refusal};
use crate::settlement::Admission;

pub struct LedgerClient {
    stub: LedgerStub,
    wallet: String,
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A wallet ledger's Durable Object stub, as the runtime hands it out.
    type LedgerStub;

    /// The ledger's RPC method ([`super::ledger::Ledger::command`]): a promise of the answer's
    /// JSON text, rejected if the command got no answer.
    #[wasm_bindgen(method, catch)]
    fn command(this: &LedgerStub, text: &str) -> Result<js_sys::Promise, wasm_bindgen::JsValue>;
}

/// Why a ledger did not admit a payment.
pub enum AdmitRefusal {
    /// A refusal for the client (replay, delinquency).
    Refused(Refusal),
    /// Past the wallet's credit limit.
    OverCredit,
    /// Too close to `validBefore` to wait for a batch.
    TooLate,
    /// The wallet has not paid enough yet to be trusted with this much unsettled.
    NotEarned,
    /// The same payment, sent again with its identifier for the same request: answered again,
    /// not charged again ([`crate::settlement::AdmitError::Repeat`]).
    Repeat { in_progress: bool },
    /// The same payment, sent again with its identifier, settled and never served: this request
    /// serves it, nothing more is charged ([`crate::settlement::AdmitError::Unserved`]).
    Unserved { transaction: String },
    /// The ledger could not be asked.
    Unreachable,
}

impl LedgerClient {
    /// The ledger of `wallet` (lowercase address), if the Worker has the binding.
    pub fn open(env: &Env, wallet: &str) -> Option<LedgerClient> {
        let ns = env.durable_object(super::LEDGER_BINDING).ok()?;
        let stub = ns.id_from_name(wallet).ok()?.get_stub().ok()?;
        Some(LedgerClient {
            stub: stub.into_rpc(),
            wallet: wallet.to_string(),
        })
    }

    pub async fn send(&self, command: &Command) -> Option<serde_json::Value> {
        serde_json::from_str(&self.send_text(command).await?).ok()
    }

    /// Sends a command; the ledger's answer as JSON text (read straight into the type expected).
    /// By RPC: one call with one string each way, where an HTTP request to the object's `fetch`
    /// would build a request, its headers and a body stream, then a response and another.
    async fn send_text(&self, command: &Command) -> Option<String> {
        let body = serde_json::to_string(command).ok()?;
        super::js::text(self.stub.command(&body)).await.ok()?
    }

    pub async fn admit(&self, admission: Admission) -> Result<(), AdmitRefusal> {
        let answer = self
            .send_text(&Command::Admit {
                wallet: self.wallet.clone(),
                admission,
            })
            .await
            .and_then(|text| crate::json::parse::<AdmitAnswer>(&text).ok())
            .ok_or(AdmitRefusal::Unreachable)?;
        refusal(answer)
    }

    /// What the ledger knows of a payment that carries an identifier, before anyone else is
    /// asked about it (see [`Command::Repeated`]): `Some` for the payment answered before
    /// ([`AdmitRefusal::Repeat`]) or an identifier of another payment; `None` for nothing known,
    /// and without an answer (the admission that follows asks the ledger again).
    pub async fn repeated(&self, admission: &Admission) -> Option<AdmitRefusal> {
        let command = Command::Repeated {
            admission: admission.clone(),
        };
        let answer = self
            .send_text(&command)
            .await
            .and_then(|text| crate::json::parse::<AdmitAnswer>(&text).ok())?;
        refusal(answer).err()
    }

    /// The outcome of the immediate settlement of `id`, made by the request holding `ticket`.
    /// Sent a second time if the first got no answer: a lost outcome leaves the entry to be
    /// reconciled when its lease ends, where, without a chain to read, a settled payment would
    /// be booked as unknown (recording twice is harmless).
    pub async fn record(&self, id: &str, ticket: &str, outcome: &SettleOutcome) {
        let outcome = match outcome {
            SettleOutcome::Settled(r) => WireOutcome::Settled {
                transaction: r.transaction.clone(),
            },
            SettleOutcome::Refused { reason, message } => WireOutcome::Refused {
                reason: reason.clone(),
                message: message.clone(),
            },
            SettleOutcome::Unknown(why) => WireOutcome::Unknown { why: why.clone() },
        };
        let command = Command::Record {
            id: id.to_string(),
            ticket: Some(ticket.to_string()),
            outcome,
        };
        if self.send(&command).await.is_none() {
            let _ = self.send(&command).await;
        }
    }

    /// The request holding `ticket` will not collect `id`. Sent a second time if the first got no
    /// answer: a withdrawal that is lost leaves a held payment to settle when its hold ends,
    /// charging for an error (withdrawing twice is harmless).
    pub async fn withdraw(&self, id: &str, ticket: &str) {
        self.send_twice(&Command::Withdraw {
            id: id.to_string(),
            ticket: Some(ticket.to_string()),
        })
        .await
    }

    /// Sends `command`, and once more if it went unanswered (for a command that may be carried
    /// out twice).
    async fn send_twice(&self, command: &Command) {
        if self.send(command).await.is_none() {
            let _ = self.send(command).await;
        }
    }
}

/// How long served payments wait to be released together, per isolate: one ledger command for
/// every payment a wallet made in that time instead of one each (the batch they join settles
/// seconds later anyway).
const RELEASE_GATHER_MS: u64 = 200;

thread_local! {
    /// Served payments not yet released: (wallet, (payment id, ticket)).
    static TO_RELEASE: super::Gathered<(String, (String, String))> = const { RefCell::new((Vec::new(), 0.0)) };
}

/// A payment admitted held was served: its ledger may settle it (or a payment owed its content
/// was: no later repeat is to be given it). Sent off the request path, gathered with the
/// isolate's other releases of the next moments ([`RELEASE_GATHER_MS`]), one command per wallet,
/// sent again once if unanswered (releasing twice is harmless). If it never arrives (the isolate
/// died in between), the hold ends by itself ([`crate::settlement::HOLD_SECONDS`]) and the
/// payment is settled all the same; a payment owed its content is given to the next repeat after
/// the ledger's wait, served again and charged nothing.
pub fn release_soon(env: &Env, ctx: &worker::Context, wallet: &str, id: String, ticket: String) {
    let env = env.clone();
    let item = (wallet.to_string(), (id, ticket));
    super::gather(
        &TO_RELEASE,
        ctx,
        item,
        RELEASE_GATHER_MS,
        |pending| async move {
            let mut by_wallet: Vec<(String, Vec<(String, String)>)> = Vec::new();
            for (wallet, id) in pending {
                match by_wallet.iter_mut().find(|(w, _)| *w == wallet) {
                    Some((_, ids)) => ids.push(id),
                    None => by_wallet.push((wallet, vec![id])),
                }
            }
            for (wallet, ids) in by_wallet {
                if let Some(book) = LedgerClient::open(&env, &wallet) {
                    book.send_twice(&Command::ReleaseAll { ids }).await;
                }
            }
        },
    );
}

/// An admission's answer, as the Worker acts on it.
fn refusal(answer: AdmitAnswer) -> Result<(), AdmitRefusal> {
    if answer.ok {
        return Ok(());
    }
    Err(match answer.error.as_deref() {
        Some("replay") => AdmitRefusal::Refused(Reason::Replay.into()),
        Some("delinquent") => {
            AdmitRefusal::Refused(super::delinquent(answer.detail.as_deref().unwrap_or("?")))
        }
        Some("credit_exceeded") => AdmitRefusal::OverCredit,
        Some("too_late_to_defer") => AdmitRefusal::TooLate,
        Some("credit_not_earned") => AdmitRefusal::NotEarned,
        Some(code @ ("repeat" | "in_progress")) => AdmitRefusal::Repeat {
            in_progress: code == "in_progress",
        },
        Some("id_conflict") => AdmitRefusal::Refused(Reason::PaymentIdConflict.into()),
        Some("unserved") => AdmitRefusal::Unserved {
            transaction: answer.detail.unwrap_or_default(),
        },
        _ => AdmitRefusal::Unreachable,
    })
}
