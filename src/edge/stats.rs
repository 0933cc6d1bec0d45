//! The publisher's statistics as one Durable Object (`STATS`, named "publisher"): the numbers
//! must add up exactly, so one strongly consistent owner keeps them. Events are sent after the
//! answer is on its way (`waitUntil`), never on the request's critical path.

use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, RequestInit, Response, Result,
    State,
};

use crate::stats::{Event, Stats as Tallies};

pub const STATS_BINDING: &str = "STATS";
const NAME: &str = "publisher";
const KEY: &str = "stats";

#[durable_object]
pub struct Stats {
    state: State,
}

impl DurableObject for Stats {
    fn new(state: State, _env: Env) -> Self {
        Stats { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        // The event is read before the tallies: between reading and writing them nothing may be
        // awaited but storage, whose input gate keeps other events out. Reading a request body in
        // between would let a concurrent event (a payment and the session it bought are sent at
        // the same time) read the same old tallies, and one of the two writes would be lost.
        let event: Option<Event> = if req.method() == Method::Post {
            let text = super::body_text(req.inner().text())
                .await
                .unwrap_or_default();
            match serde_json::from_str(&text) {
                Ok(e) => Some(e),
                Err(e) => return Response::error(format!("bad event: {e}"), 400),
            }
        } else {
            None
        };
        let storage = self.state.storage();
        let mut tallies = read(&storage).await;
        let Some(event) = event else {
            return Response::from_json(&tallies.view(10));
        };
        tallies.record(&event);
        storage.put(KEY, serde_json::to_string(&tallies)?).await?;
        Response::ok("")
    }
}

async fn read(storage: &worker::Storage) -> Tallies {
    storage
        .get::<String>(KEY)
        .await
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn stub(env: &Env) -> Option<worker::Stub> {
    env.durable_object(STATS_BINDING)
        .ok()?
        .id_from_name(NAME)
        .ok()?
        .get_stub()
        .ok()
}

/// Counts an event, off the request path when a context is given.
pub fn record(env: &Env, ctx: &worker::Context, event: Event) {
    let Some(stub) = stub(env) else { return };
    ctx.wait_until(async move {
        let Ok(body) = serde_json::to_string(&event) else {
            return;
        };
        let headers = Headers::new();
        let _ = headers.set("Content-Type", "application/json");
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        if let Ok(req) = Request::new_with_init("https://stats.internal/", &init) {
            let _ = stub.fetch_with_request(req).await;
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
