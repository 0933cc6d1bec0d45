//! Calls to the facilitator over HTTP, with a deadline. What the answers mean is decided in
//! [`crate::facilitator`]; this file only carries bytes and notices silence.

use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::config::{Config, FacilitatorConfig};
use crate::facilitator::{read_settle, read_verify, SettleOutcome, Supported, VerifyOutcome};

/// How long we wait for `/supported`: it is asked on the request path once every few minutes, so
/// a slow facilitator must not hold a reader for long.
const SUPPORTED_TIMEOUT_MS: u32 = 3_000;

/// Asks the facilitator what it settles. `None` when it cannot say.
pub async fn supported(f: &FacilitatorConfig, token: Option<&str>) -> Option<Supported> {
    let headers = Headers::new();
    if let Some(t) = token {
        headers.set("Authorization", &format!("Bearer {t}")).ok()?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let request = Request::new_with_init(&format!("{}/supported", f.url), &init).ok()?;
    let signal =
        worker::AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(SUPPORTED_TIMEOUT_MS));
    let response = Fetch::Request(request)
        .send_with_signal(&signal)
        .await
        .ok()?;
    if response.status_code() != 200 {
        return None;
    }
    Supported::parse(&super::body_text(web_sys::Response::from(response).text()).await?)
}

pub struct Client<'a> {
    base: Option<&'a str>,
    timeout_ms: u64,
    token: Option<String>,
}

impl<'a> Client<'a> {
    pub fn new(config: &'a Config, token: Option<String>) -> Self {
        Client {
            base: config.facilitator.as_ref().map(|f| f.url.as_str()),
            timeout_ms: config.facilitator.as_ref().map_or(10_000, |f| f.timeout_ms),
            token,
        }
    }

    pub async fn settle(&self, body: &str) -> SettleOutcome {
        let (status, text) = self.post("/settle", body).await;
        read_settle(status, &text)
    }

    pub async fn verify(&self, body: &str) -> VerifyOutcome {
        let (status, text) = self.post("/verify", body).await;
        read_verify(status, &text)
    }

    /// POSTs JSON; returns the status (None when no answer came) and the body or the error.
    async fn post(&self, path: &str, body: &str) -> (Option<u16>, String) {
        let Some(base) = self.base else {
            return (None, "no facilitator is configured".into());
        };
        match self.try_post(base, path, body).await {
            Ok(r) => r,
            Err(e) => (None, format!("facilitator {path}: {e}")),
        }
    }

    async fn try_post(
        &self,
        base: &str,
        path: &str,
        body: &str,
    ) -> worker::Result<(Option<u16>, String)> {
        let headers = Headers::new();
        headers.set("Content-Type", "application/json")?;
        if let Some(t) = &self.token {
            headers.set("Authorization", &format!("Bearer {t}"))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(&format!("{base}{path}"), &init)?;
        let timeout = u32::try_from(self.timeout_ms).unwrap_or(u32::MAX);
        let signal = worker::AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(timeout));
        let response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        let text = super::body_text(web_sys::Response::from(response).text())
            .await
            .unwrap_or_default();
        Ok((Some(status), text))
    }
}
