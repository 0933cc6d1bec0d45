//! Calls to the facilitator over HTTP, with a deadline. What the answers mean is decided in
//! [`crate::facilitator`]; this file only carries bytes and notices silence.

use std::rc::Rc;

use worker::Env;

use super::js;
use crate::cdp::ApiKey;

use crate::config::{Config, FacilitatorConfig};
use crate::facilitator::{read_settle, read_verify, SettleOutcome, Supported, VerifyOutcome};

/// How long we wait for `/supported`: it is asked on the request path once every few minutes, so
/// a slow facilitator must not hold a reader for long.
const SUPPORTED_TIMEOUT_MS: u32 = 3_000;

/// Secret: a bearer token sent to the facilitator as it is, if it wants one.
const FACILITATOR_TOKEN: &str = "X402_FACILITATOR_TOKEN";
/// Secrets: a Coinbase Developer Platform API key, for CDP's facilitator (a fresh JWT per call).
const CDP_KEY_ID: &str = "CDP_API_KEY_ID";
const CDP_KEY_SECRET: &str = "CDP_API_KEY_SECRET";

/// How the paywall proves itself to the facilitator.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// A fixed bearer token (`X402_FACILITATOR_TOKEN`).
    Bearer(Rc<str>),
    /// A CDP API key (`CDP_API_KEY_ID`, `CDP_API_KEY_SECRET`): each call gets its own token.
    Cdp(Rc<ApiKey>),
}

impl Auth {
    /// From the Worker's secrets. A CDP key that cannot be read is logged (never quoted) and
    /// none is sent: CDP then refuses the calls, which the settlement log shows.
    pub fn of(env: &Env) -> Auth {
        let secret = |name: &str| env.secret(name).ok().map(|s| s.to_string());
        if let (Some(id), Some(key)) = (secret(CDP_KEY_ID), secret(CDP_KEY_SECRET)) {
            return match ApiKey::parse(&id, &key) {
                Ok(key) => Auth::Cdp(Rc::new(key)),
                Err(why) => {
                    worker::console_error!("{CDP_KEY_SECRET}: {why}; no key is sent");
                    Auth::None
                }
            };
        }
        match secret(FACILITATOR_TOKEN) {
            Some(token) => Auth::Bearer(token.into()),
            None => Auth::None,
        }
    }

    /// The bearer token for one call.
    async fn bearer(&self, method: &str, url: &str) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Bearer(token) => Some(token.to_string()),
            Auth::Cdp(key) => {
                let nonce = super::random_nonce()?;
                let input = key.signing_input(method, url, super::now_seconds(), &nonce);
                match js::sign(key.alg, &key.pkcs8, input.as_bytes()).await {
                    Ok(signature) => Some(crate::cdp::token(&input, &signature)),
                    Err(e) => {
                        worker::console_error!("signing a CDP token failed: {e:?}");
                        None
                    }
                }
            }
        }
    }
}

/// Asks the facilitator what it settles. `None` when it cannot say.
pub async fn supported(f: &FacilitatorConfig, auth: &Auth) -> Option<Supported> {
    let url = format!("{}/supported", f.url);
    let bearer = auth.bearer("GET", &url).await;
    let request = js::Outgoing {
        method: "GET",
        headers: &js::headers(false, bearer.as_deref()).ok()?,
        body: None,
        manual_redirect: false,
        timeout_ms: Some(SUPPORTED_TIMEOUT_MS),
    }
    .build(&url)
    .ok()?;
    let response = js::send(&request).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    Supported::parse(&super::body_text(response.text()).await?)
}

pub struct Client<'a> {
    base: Option<&'a str>,
    timeout_ms: u64,
    auth: Auth,
}

impl<'a> Client<'a> {
    pub fn new(config: &'a Config, auth: Auth) -> Self {
        Client {
            base: config.facilitator.as_ref().map(|f| f.url.as_str()),
            timeout_ms: config.facilitator.as_ref().map_or(10_000, |f| f.timeout_ms),
            auth,
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
        let url = format!("{base}{path}");
        let bearer = self.auth.bearer("POST", &url).await;
        let request = js::post_json(&url, body, bearer.as_deref(), Some(timeout))?;
        let response = js::send(&request).await?;
        let status = response.status();
        let text = super::body_text(response.text()).await.unwrap_or_default();
        Ok((Some(status), text))
    }
}
