//! Calls to the facilitator over HTTP, with a deadline. What the answers mean is decided in
//! [`crate::facilitator`]; this file only carries bytes and notices silence.

use worker::Fetch;

use super::js;

use crate::config::{Config, FacilitatorConfig};
use crate::facilitator::{read_settle, read_verify, SettleOutcome, Supported, VerifyOutcome};

/// How long we wait for `/supported`: it is asked on the request path once every few minutes, so
/// a slow facilitator must not hold a reader for long.
const SUPPORTED_TIMEOUT_MS: u32 = 3_000;

/// Asks the facilitator what it settles. `None` when it cannot say.
pub async fn supported(f: &FacilitatorConfig, token: Option<&str>) -> Option<Supported> {
    let request = js::Outgoing {
        method: "GET",
        headers: &js::headers(false, token).ok()?,
        body: None,
        manual_redirect: false,
        timeout_ms: Some(SUPPORTED_TIMEOUT_MS),
    }
    .build(&format!("{}/supported", f.url))
    .ok()?;
    let response = Fetch::Request(request.into()).send().await.ok()?;
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
        let timeout = u32::try_from(self.timeout_ms).unwrap_or(u32::MAX);
        let request = js::post_json(
            &format!("{base}{path}"),
            body,
            self.token.as_deref(),
            Some(timeout),
        )?;
        let response = Fetch::Request(request.into()).send().await?;
        let status = response.status_code();
        let text = super::body_text(web_sys::Response::from(response).text())
            .await
            .unwrap_or_default();
        Ok((Some(status), text))
    }
}
