//! Who is asking: Web Bot Auth with the signer's key directory fetched and cached, Cloudflare's
//! bot verdicts when the request carries them, then the User-Agent. The judgement itself is in
//! [`crate::crawlers::classify`] and [`crate::policy`]; this file fetches and caches.
//!
//! Key directories are cached in KV for an hour (a failed fetch for five minutes, so a broken
//! directory cannot make us fetch on every request), and fetched with a short deadline and a size
//! limit: a crawler's directory must never slow down or exhaust the paywall.

use futures_util::StreamExt;
use worker::{Env, Fetch, Headers};

use super::js;

use crate::crawlers::{
    self, Class, ClassifyInput, CloudflareBot, Evidence, Jwks, SignedRequest, VerifiedAgent,
};

const DIRECTORY_TTL: u64 = 3600;
const DIRECTORY_FAILURE_TTL: u64 = 300;
const DIRECTORY_TIMEOUT_MS: u32 = 3_000;

/// What is known of the client.
pub struct Who {
    pub class: Class,
    pub evidence: Evidence,
    pub verified: Option<VerifiedAgent>,
    pub cloudflare: Option<CloudflareBot>,
}

pub async fn who(
    req: &web_sys::Request,
    headers: &Headers,
    env: &Env,
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
    let (verified, signature_error) = match crawlers::parse_signature(&signed) {
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
        Ok(Some(parsed)) => match &parsed.agent_url {
            None => (None, None),
            Some(agent_url) => match directory(env, agent_url).await {
                None => (None, None),
                Some(keys) => match verify(&parsed, &keys, now).await {
                    Ok(v) => (Some(v), None),
                    Err(e) => (None, Some(e)),
                },
            },
        },
    };
    let cloudflare = cloudflare_fields(req);
    let user_agent = header("user-agent");
    let accept = header("accept");
    let (class, evidence) = crawlers::classify(&ClassifyInput {
        web_bot_auth: verified.as_ref(),
        cloudflare: cloudflare.as_ref(),
        user_agent: user_agent.as_deref(),
        accept: accept.as_deref(),
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

/// The signer's keys: from the KV cache, or fetched and cached.
async fn directory(env: &Env, url: &str) -> Option<Jwks> {
    let kv = js::kv(env, super::KV_BINDING);
    let key = crawlers::directory_key(url);
    if let Some(kv) = &kv {
        if let Ok(Some(cached)) = kv.text(&key).await {
            return crawlers::parse_directory(&cached).ok();
        }
    }
    let body = fetch_directory(url).await;
    let (value, ttl) = match &body {
        Some(b) if crawlers::parse_directory(b).is_ok() => (b.clone(), DIRECTORY_TTL),
        _ => ("{\"keys\":[]}".to_string(), DIRECTORY_FAILURE_TTL),
    };
    if let Some(kv) = &kv {
        let _ = kv.put(&key, &value, Some(ttl)).await;
    }
    crawlers::parse_directory(body.as_deref()?).ok()
}

async fn fetch_directory(url: &str) -> Option<String> {
    let headers = web_sys::Headers::new().ok()?;
    headers.set("Accept", crawlers::DIRECTORY_MEDIA_TYPE).ok()?;
    let request = js::Outgoing {
        method: "GET",
        headers: &headers,
        body: None,
        manual_redirect: true,
        timeout_ms: Some(DIRECTORY_TIMEOUT_MS),
    }
    .build(url)
    .ok()?;
    let mut res = Fetch::Request(request.into()).send().await.ok()?;
    if res.status_code() != 200 {
        return None;
    }
    // Read no further than the limit: the signer's server chooses how much it sends.
    let limit = crawlers::MAX_DIRECTORY_BYTES;
    let declared = res.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|n| n.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
    {
        return None;
    }
    let mut body = res.stream().ok()?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if bytes.len() + chunk.len() > limit {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).ok()
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
