//! The publisher's statistics as one Durable Object (`STATS`, named "publisher"): the numbers
//! must add up exactly, so one strongly consistent owner keeps them. Events are sent after the
//! answer is on its way (`waitUntil`), never on the request's critical path, and each isolate
//! gathers the events of a second into one command: one object for the whole Worker could not
//! take a write per paid request at any volume, and the publisher's figures can wait a second.

use wasm_bindgen::prelude::*;
use worker::{Env, Method, Request, Response, Result, State};

use crate::json::Read;
use crate::stats::{Event, Stats as Tallies};

pub const STATS_BINDING: &str = "STATS";
const NAME: &str = "publisher";
const KEY: &str = "stats";

/// Exported to JavaScript by hand, as the ledger is (see [`super::answered`]).
#[wasm_bindgen]
pub struct Stats {
    state: State,
}

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl Stats {
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, _env: Env) -> Stats {
        Stats {
            state: State::from(state),
        }
    }

    pub async fn fetch(&self, req: web_sys::Request) -> std::result::Result<JsValue, JsValue> {
        super::answered(self.serve(req.into()).await)
    }
}

impl Stats {
    async fn serve(&self, req: Request) -> Result<Response> {
        // The event is read before the tallies: between reading and writing them nothing may be
        // awaited but storage, whose input gate keeps other events out. Reading a request body in
        // between would let a concurrent event (a payment and the session it bought are sent at
        // the same time) read the same old tallies, and one of the two writes would be lost.
        let events: Option<Vec<Event>> = if req.method() == Method::Post {
            let text = super::body_text(req.inner().text())
                .await
                .unwrap_or_default();
            // A list of events; one event alone is what a Worker of an earlier version sends.
            let value = crate::json::parse::<serde_json::Value>(&text);
            match value.and_then(|v| match v {
                serde_json::Value::Array(_) => Vec::<Event>::read(&v),
                one => Event::read(&one).map(|e| vec![e]),
            }) {
                Ok(e) => Some(e),
                Err(e) => return Response::error(format!("bad event: {e}"), 400),
            }
        } else {
            None
        };
        let storage = self.state.storage();
        // Tallies that cannot be read are not taken for none: written over, they would be lost.
        let Some(mut tallies) = read(&storage).await else {
            return Response::error("the statistics could not be read", 503);
        };
        let Some(events) = events else {
            return Response::from_json(&tallies.view(10));
        };
        for event in &events {
            tallies.record_by(event, super::now_seconds() + 60);
        }
        let text = serde_json::to_string(&tallies)?;
        super::js::store(storage.as_raw(), KEY, text.into()).await?;
        Response::ok("")
    }
}

/// The tallies stored, none yet being none; `None` when storage fails or what it holds does not
/// read.
async fn read(storage: &worker::Storage) -> Option<Tallies> {
    match super::js::stored_text(storage.as_raw(), KEY).await.ok()? {
        None => Some(Tallies::default()),
        Some(text) => crate::json::parse(&text).ok(),
    }
}

fn stub(env: &Env) -> Option<worker::Stub> {
    env.durable_object(STATS_BINDING)
        .ok()?
        .id_from_name(NAME)
        .ok()?
        .get_stub()
        .ok()
}

/// How long an isolate gathers events before sending them, in one command.
const GATHER_MS: u64 = 1_000;

thread_local! {
    /// Events counted in this isolate and not sent yet.
    static PENDING: super::Gathered<Event> = const { std::cell::RefCell::new((Vec::new(), 0.0)) };
}

/// Counts an event, off the request path: sent with the isolate's other events of the next
/// second ([`GATHER_MS`]), kept alive by the `waitUntil` of the request that counted the first.
pub fn record(env: &Env, ctx: &worker::Context, event: Event) {
    let env = env.clone();
    super::gather(&PENDING, ctx, event, GATHER_MS, |events| async move {
        let Some(stub) = stub(&env) else { return };
        let Ok(body) = serde_json::to_string(&events) else {
            return;
        };
        if let Ok(req) = super::js::post_json("https://stats.internal/", &body, None, None) {
            let _ = stub.fetch_with_request(req.into()).await;
        }
    });
}

/// The current view, for the admin endpoint.
pub async fn view(env: &Env) -> Option<serde_json::Value> {
    let res = stub(env)?
        .fetch_with_str("https://stats.internal/")
        .await
        .ok()?;
    let text = super::body_text(web_sys::Response::from(res).text()).await?;
    serde_json::from_str(&text).ok()
}
