//! Who is asking: Web Bot Auth with the signer's key directory fetched and cached, Cloudflare's
//! bot verdicts when the request carries them, then the User-Agent. The judgement itself is in
//! [`crate::crawlers::classify`] and [`crate::policy`]; this file fetches and caches.
//!
//! Key directories are cached in KV for an hour (a failed fetch for five minutes, with why, so a
//! broken directory cannot make us fetch on every request and the log still says what is wrong),
//! and fetched with a short deadline and a size limit: a crawler's directory must never slow down
//! or exhaust the paywall. A signature naming a key that the cached directory lacks (the signer
//! rotated its keys) has the directory fetched again, at most once per [`REFETCH_SECONDS`] per
//! directory and isolate; a failed fetch then leaves the cached copy as it was.

use worker::{Env, Headers};

use super::js;

use crate::crawlers::{
    self, Class, ClassifyInput, CloudflareBot, Evidence, Jwks, SignedRequest, VerifiedAgent,
};

const DIRECTORY_TTL: u64 = 3600;
const DIRECTORY_FAILURE_TTL: u64 = 300;
const DIRECTORY_TIMEOUT_MS: u32 = 3_000;
pub const REFETCH_SECONDS: u64 = 300;

thread_local! {
    /// Directories this isolate fetched again for an unknown key, and when.
    static REFETCHED: std::cell::RefCell<crate::recent::Recent<()>> =
        std::cell::RefCell::new(crate::recent::Recent::new(REFETCH_SECONDS, 64));
}

/// Whether directory `url` may be fetched again now for an unknown key (and, if so, it is
/// remembered as fetched): not when this isolate did so in the last [`REFETCH_SECONDS`].
fn may_refetch(url: &str, now: u64) -> bool {
    REFETCHED.with(|r| {
        let mut r = r.borrow_mut();
        let fresh = r.get(url, now).is_none();
        if fresh {
            r.put(url, (), now);
        }
        fresh
    })
}

/// What is known of the client.
pub struct Who {
    pub class: Class,
    pub evidence: Evidence,
    pub verified: Option<VerifiedAgent>,
    pub cloudflare: Option<CloudflareBot>,
    /// The request's `User-Agent` and `Accept`, read once for the classification and kept for
    /// the choice between the paywall page and JSON.
    pub user_agent: Option<String>,
    pub accept: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn who(
    req: &web_sys::Request,
    headers: &Headers,
    env: &Env,
    trusted: &[String],
    agent_signers: &[String],
    full: &str,
    url: &crate::siwx::HttpUrl,
    method: &str,
    now: u64,
) -> Who {
    let header = |name: &str| headers.get(name).ok().flatten();
    let authority = url.authority();
    let signed = SignedRequest {
        method,
        authority: &authority,
        target_uri: full,
        path: &url.path,
        header: &header,
    };
    let cloudflare = cloudflare_fields(req);
    // Only a signer the publisher trusts has its directory fetched. Cloudflare's verified-bot flag
    // does not stand in for that: it vouches for the bot (its address, say), not for the
    // `Signature-Agent` the request names, which would let any verified bot have the Worker fetch
    // a URL of its choosing. Such a request is classified by Cloudflare's verdict instead.
    let (verified, signature_error) = match crawlers::parse_signature(&signed) {
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
        Ok(Some(parsed)) => match (&parsed.agent_url, &parsed.agent) {
            (Some(agent_url), Some(agent))
                if crawlers::signer_trusted(
                    agent,
                    (parsed.agent_link == Some(crawlers::AgentLink::JwksUri))
                        .then_some(agent_url.as_str()),
                    trusted,
                ) =>
            {
                let mut fresh = false;
                let result = loop {
                    let keys = directory(env, agent_url, fresh).await;
                    let result = match keys {
                        Ok(keys) => verify(&parsed, &keys, now).await,
                        Err(e) => Err(e),
                    };
                    if fresh
                        || !matches!(result, Err(crawlers::WbaError::UnknownKey))
                        || !may_refetch(agent_url, now)
                    {
                        break result;
                    }
                    fresh = true;
                };
                match result {
                    Ok(v) => (Some(v), None),
                    Err(e) => (None, Some(e)),
                }
            }
            (Some(_), Some(agent)) => (
                None,
                Some(crawlers::WbaError::UntrustedSigner(agent.clone())),
            ),
            _ => (None, None),
        },
    };
    let user_agent = header("user-agent");
    let accept = header("accept");
    let (class, evidence) = crawlers::classify(&ClassifyInput {
        web_bot_auth: verified.as_ref(),
        cloudflare: cloudflare.as_ref(),
        user_agent: user_agent.as_deref(),
        accept: accept.as_deref(),
        agent_signers,
    });
    if let Some(e) = signature_error {
        // A bad signature is worth no signature: the request is judged as if unsigned.
        worker::console_log!(
            "{}",
            serde_json::json!({"event": "web_bot_auth", "outcome": "refused", "error": e.code(), "detail": e.message()})
        );
    }
    Who {
        class,
        evidence,
        verified,
        cloudflare,
        user_agent,
        accept,
    }
}

/// [`crawlers::check`], then the Ed25519 verification by the runtime's WebCrypto.
async fn verify(
    parsed: &crawlers::ParsedSignature,
    keys: &Jwks,
    now: u64,
) -> Result<VerifiedAgent, crawlers::WbaError> {
    let unverified = crawlers::check(parsed, keys, now)?;
    let mut verified = false;
    for base in &unverified.bases {
        if js::ed25519_verify(unverified.key, unverified.signature, base.as_bytes()).await {
            verified = true;
            break;
        }
    }
    unverified.conclude(verified)
}

/// The signer's keys: from the KV cache (unless `fresh`), or fetched and cached. A directory that
/// could not be used is remembered by the isolate for a few minutes as [`UNAVAILABLE`] and why, so
/// the log keeps saying why; but not over a copy that is only being fetched again (`fresh`).
async fn directory(env: &Env, url: &str, fresh: bool) -> Result<Jwks, crawlers::WbaError> {
    let kv = js::kv(env, super::KV_BINDING);
    let key = crawlers::directory_key(url);
    if let (Some(kv), false) = (&kv, fresh) {
        // A failure is remembered by the isolate, never written to KV: requests naming made-up
        // directories of a trusted signer (another port, another subdomain under a wildcard)
        // would each cost a write.
        let cached = match js::recall(&key, DIRECTORY_FAILURE_TTL as u32) {
            Some(failed) => Some(failed),
            None => kv.text(&key).await.ok().flatten(),
        };
        if let Some(cached) = cached {
            // A directory is cached only once it parsed, so it never starts with the marker.
            return match cached.strip_prefix(UNAVAILABLE) {
                Some(why) => Err(crawlers::WbaError::DirectoryUnavailable(format!(
                    "{why} (remembered for {} minutes)",
                    DIRECTORY_FAILURE_TTL / 60
                ))),
                None => crawlers::parse_directory(&cached),
            };
        }
    }
    // Either the keys and the body to cache, or the refusal and why it is remembered.
    let fetched = match fetch_directory(url).await {
        Ok(body) => match crawlers::parse_directory(&body) {
            Ok(keys) => Ok((keys, body)),
            Err(e) => {
                let why = match &e {
                    crawlers::WbaError::MalformedDirectory(why) => {
                        format!("at {url} could not be read: {why}")
                    }
                    _ => format!("at {url} has no Ed25519 key"),
                };
                Err((e, why))
            }
        },
        Err(why) => {
            let why = format!("at {url} {why}");
            Err((crawlers::WbaError::DirectoryUnavailable(why.clone()), why))
        }
    };
    match fetched {
        Ok((keys, body)) => {
            if let Some(kv) = &kv {
                let _ = kv.put(&key, &body, Some(DIRECTORY_TTL)).await;
            }
            Ok(keys)
        }
        Err((e, why)) => {
            if !fresh {
                js::remember(&key, &format!("{UNAVAILABLE}{why}"));
            }
            Err(e)
        }
    }
}

/// How a cached directory that could not be used begins (what follows says why).
const UNAVAILABLE: &str = "unavailable: ";

/// The directory's body, or what went wrong (a phrase that follows "the key directory at URL").
async fn fetch_directory(url: &str) -> Result<String, String> {
    fn unreadable<E>(_: E) -> String {
        "could not be fetched".to_string()
    }
    let headers = web_sys::Headers::new().map_err(unreadable)?;
    headers
        .set("Accept", crawlers::DIRECTORY_MEDIA_TYPE)
        .map_err(unreadable)?;
    let request = js::Outgoing {
        method: "GET",
        headers: &headers,
        body: None,
        manual_redirect: true,
        timeout_ms: Some(DIRECTORY_TIMEOUT_MS),
    }
    .build(url)
    .map_err(|_| "is not a URL that can be fetched".to_string())?;
    let res = js::send(&request).await.map_err(|_| {
        format!(
            "could not be fetched (a network error, or no answer within {DIRECTORY_TIMEOUT_MS} ms)"
        )
    })?;
    if res.status() != 200 {
        return Err(format!("answered HTTP {}, not 200", res.status()));
    }
    // Read no further than the limit: the signer's server chooses how much it sends.
    let limit = crawlers::MAX_DIRECTORY_BYTES;
    js::response_text(&res, limit as u32)
        .await
        .ok_or_else(|| format!("sent more than the {limit} bytes read"))
}

/// Cloudflare's bot fields, read one by one from `request.cf` (not the whole object, which is
/// large and would cost a serialisation on every request).
fn cloudflare_fields(req: &web_sys::Request) -> Option<CloudflareBot> {
    let get = |o: &wasm_bindgen::JsValue, k: &str| {
        js_sys::Reflect::get(o, &k.into())
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    };
    let cf = get(req, "cf")?;
    let bm = get(&cf, "botManagement");
    let category = get(&cf, "verifiedBotCategory")
        .and_then(|v| v.as_string())
        .filter(|s| !s.is_empty());
    if bm.is_none() && category.is_none() {
        return None;
    }
    Some(CloudflareBot {
        verified_bot: bm
            .as_ref()
            .and_then(|b| get(b, "verifiedBot"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        verified_bot_category: category,
        score: bm
            .as_ref()
            .and_then(|b| get(b, "score"))
            .and_then(|v| v.as_f64())
            .filter(|s| (0.0..=255.0).contains(s))
            .map(|s| s as u8),
    })
}
