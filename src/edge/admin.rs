//! The publisher's admin interface, behind a bearer secret (`X402_ADMIN_TOKEN`, set with
//! `wrangler secret put`). Without the secret configured, the interface does not exist; with one
//! shorter than [`MIN_TOKEN_CHARS`], it answers 503 `admin_token_too_short` and opens to no one.
//!
//! - `GET  /__x402/admin/stats`                   revenue per route and day, payments, sessions, settlements, top payers
//! - `GET  /__x402/admin/stats.html`              the same as a page with a chart (asks for the token)
//! - `GET  /__x402/admin/ledger[?cursor=&limit=]` a page of wallets' ledgers (40 at most) and the next page's cursor
//! - `GET  /__x402/admin/ledger?wallet=0x…`       one wallet's ledger
//! - `POST /__x402/admin/ledger/forgive?wallet=`  forgive a wallet's debt and its lost deferred payments
//! - `POST /__x402/admin/ledger/revoke?wallet=&id=`     drop one failed or untried entry
//! - `POST /__x402/admin/ledger/mark-paid?wallet=&id=&tx=`  the money arrived after all
//! - `POST /__x402/admin/grants/revoke?wallet=`   end a wallet's sessions (grants and tokens)

use worker::{Env, Request, Response, Result};

use super::ledger::{Command, WALLET_PREFIX};
use super::ledger_client::LedgerClient;
use crate::evm::{decimal, Address};

pub const PREFIX: &str = "/__x402/admin/";
const STATS_PAGE: &str = include_str!("stats-page.min.html");
const ADMIN_TOKEN: &str = "X402_ADMIN_TOKEN";
/// The shortest admin token the interface opens with: one that cannot be guessed request by
/// request (`openssl rand -hex 32` makes 64 characters).
pub const MIN_TOKEN_CHARS: usize = 32;

/// A JSON answer of the admin interface that gives no data (refused, or failed): `error` and a
/// sentence, with `status` and one header if given.
pub(crate) fn closed(
    status: u16,
    error: &str,
    message: &str,
    header: Option<(&str, &str)>,
) -> Result<Response> {
    let mut res = Response::from_json(&serde_json::json!({"error": error, "message": message}))?
        .with_status(status);
    if let Some((name, value)) = header {
        res.headers_mut().set(name, value)?;
    }
    Ok(res)
}

pub async fn handle(req: Request, env: &Env, url: &crate::siwx::HttpUrl) -> Result<Response> {
    let Ok(token) = env.secret(ADMIN_TOKEN).map(|s| s.to_string()) else {
        return Response::error("not found", 404);
    };
    if url.path == format!("{PREFIX}stats.html") {
        // The page holds no data: its script asks for the token and reads the JSON endpoint.
        let mut res = Response::from_html(STATS_PAGE)?;
        res.headers_mut().set("Cache-Control", "no-store")?;
        return Ok(res);
    }
    if token.len() < MIN_TOKEN_CHARS {
        return closed(
            503,
            "admin_token_too_short",
            &format!("X402_ADMIN_TOKEN is shorter than {MIN_TOKEN_CHARS} characters, so the admin interface stays closed; set a longer one (openssl rand -hex 32 | wrangler secret put X402_ADMIN_TOKEN)."),
            None,
        );
    }
    // Wrong tokens count against the client's address as refused payments do (`X402_RATE_LIMIT`):
    // over the limit, the address is turned away for a minute, whatever token it sends then.
    let strikes = super::Strikes::new(req.headers());
    if strikes.barred() {
        return closed(
            429,
            "too_many_attempts",
            "Too many wrong admin tokens, or refused payments, from this address; wait a minute.",
            Some(("Retry-After", &super::BARRED_SECONDS.to_string())),
        );
    }
    let presented = req
        .headers()
        .get("authorization")?
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_string));
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        strikes.count(env).await;
        return closed(
            401,
            "unauthorized",
            "This is the publisher's admin interface; send Authorization: Bearer <X402_ADMIN_TOKEN>.",
            Some(("WWW-Authenticate", "Bearer")),
        );
    }
    let pairs = crate::siwx::form_pairs(url.query.as_deref().unwrap_or(""));
    let query = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
    };
    let action = url.path.trim_start_matches(PREFIX).trim_end_matches('/');
    let wallet = match query("wallet").map(|w| Address::parse(&w)) {
        Some(Ok(a)) => Some(a.to_lower_hex()),
        Some(Err(e)) => return bad(&format!("wallet: {e}")),
        None => None,
    };
    let method = req.method().to_string();
    let command = match (method.as_str(), action) {
        ("GET", "stats") => return stats(env).await,
        ("GET", "ledger") => match wallet {
            Some(w) => return one(env, &w).await,
            None => {
                let limit = query("limit").and_then(|n| n.parse().ok()).unwrap_or(PAGE);
                let page = ledgers(env, true, query("cursor").as_deref(), limit).await?;
                return Response::from_json(&page);
            }
        },
        ("POST", "grants/revoke") => {
            let Some(w) = wallet.as_deref().and_then(|w| Address::parse(w).ok()) else {
                return bad("wallet is required");
            };
            let config = super::config_of(env);
            return match super::access::revoke_grants(env, config.as_deref(), &w).await {
                Ok(revoked) => Response::from_json(&serde_json::json!({"ok": true, "revoked": revoked})),
                Err(code) => Response::from_json(&serde_json::json!({"error": code,
                    "message": match code {
                        "kv_unavailable" => "KV did not delete every grant of this wallet; send the revocation again",
                        _ => "the wallet's ledger did not forget its counted sessions; send the revocation again",
                    }}))
                .map(|r| r.with_status(503)),
            };
        }
        ("POST", "ledger/forgive") => Command::Forgive,
        ("POST", "ledger/revoke") => match query("id") {
            Some(id) => Command::Revoke { id },
            None => return bad("id is required"),
        },
        ("POST", "ledger/mark-paid") => {
            // A transaction hash as a chain writes it, or none (a debt paid out of band).
            let tx = query("tx").unwrap_or_default();
            let hash = |t: &str| {
                t.len() == 66
                    && t.starts_with("0x")
                    && t.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
            };
            match query("id") {
                _ if !tx.is_empty() && !hash(&tx) => {
                    return bad("tx must be a transaction hash: 0x and 64 hex digits")
                }
                Some(id) => Command::MarkPaid {
                    id,
                    transaction: tx,
                },
                None => return bad("id is required"),
            }
        }
        _ => return Response::error("no such admin endpoint", 404),
    };
    let Some(w) = wallet else {
        return bad("wallet is required");
    };
    let Some(book) = LedgerClient::open(env, &w) else {
        return Response::error("no LEDGER binding", 501);
    };
    match book.send(&command).await {
        // Refused (no such entry, or not in a state it may be taken from): 409, with why.
        Some(v) if v["ok"] == false => Response::from_json(&v).map(|r| r.with_status(409)),
        Some(v) => Response::from_json(&v),
        None => Response::error("the ledger did not answer", 502),
    }
}

async fn one(env: &Env, wallet: &str) -> Result<Response> {
    let Some(book) = LedgerClient::open(env, wallet) else {
        return Response::error("no LEDGER binding", 501);
    };
    match book.send(&Command::View).await {
        Some(v) => Response::from_json(&v),
        None => Response::error("the ledger did not answer", 502),
    }
}

/// The most wallets one admin answer asks about: each is a call to that wallet's ledger, and one
/// invocation of a Worker may make only so many (50 on the Workers Free plan), however many
/// wallets have paid (and anyone can make a wallet pay, even a payment refused at settlement).
const PAGE: u32 = 40;

/// Settlement counts over a page of the wallets that ever paid (from the KV index), from
/// `cursor`, at most `limit` of them (and [`PAGE`]), and the ledgers themselves if asked. For a
/// publisher's dashboard, not for the request path: it asks each wallet's ledger. `cursor` in the
/// answer names the next page, `null` after the last; `unanswered` the wallets whose ledger did
/// not answer, which the counts leave out.
async fn ledgers(
    env: &Env,
    with_wallets: bool,
    cursor: Option<&str>,
    limit: u32,
) -> Result<serde_json::Value> {
    let kv = super::js::kv(env, super::KV_BINDING)
        .ok_or_else(|| worker::Error::RustError("no KV binding".into()))?;
    let limit = limit.clamp(1, PAGE);
    let (wallets, next) = kv.keys(WALLET_PREFIX, cursor, Some(limit)).await?;
    let mut unanswered = Vec::new();
    let mut ledgers = Vec::with_capacity(wallets.len());
    let (mut pending, mut settled, mut failed) = (0usize, 0u64, 0u64);
    let (mut unsettled, mut owed, mut lost) = (0u128, 0u128, 0u128);
    for w in wallets {
        let w = w.strip_prefix(WALLET_PREFIX).unwrap_or(&w);
        let Some(book) = LedgerClient::open(env, w) else {
            continue;
        };
        let Some(v) = book.send(&Command::View).await else {
            unanswered.push(w.to_string());
            continue;
        };
        pending += v["pending"].as_array().map_or(0, Vec::len);
        settled += v["settled"].as_array().map_or(0, |a| a.len() as u64)
            + v["settled_trimmed"].as_u64().unwrap_or(0);
        failed += v["failed"].as_array().map_or(0, |a| a.len() as u64)
            + v["failed_trimmed"].as_u64().unwrap_or(0);
        unsettled += number(&v["unsettled_micro_usd"]);
        owed += number(&v["owed_micro_usd"]);
        lost += number(&v["lost_micro_usd"]);
        if with_wallets {
            ledgers.push(v);
        }
    }
    let mut out = serde_json::json!({
        "pending": pending,
        "settled": settled,
        "failed": failed,
        "unsettledMicroUsd": decimal(unsettled),
        "owedMicroUsd": decimal(owed),
        "lostMicroUsd": decimal(lost),
        "unanswered": unanswered,
        "cursor": next,
    });
    if with_wallets {
        out["wallets"] = serde_json::Value::from(ledgers);
    }
    Ok(out)
}

/// Revenue per route and per day, payments, sessions sold, settlements, top payers.
async fn stats(env: &Env) -> Result<Response> {
    // Figures that cannot be read are an error, never a page of zeros.
    let Some(mut v) = super::stats::view(env).await else {
        return closed(
            503,
            "stats_unavailable",
            "the statistics could not be read; try again",
            None,
        );
    };
    v["settlements"] = ledgers(env, false, None, PAGE).await?;
    Response::from_json(&v)
}

/// Every key under a prefix, without it.
pub async fn list_prefix(env: &Env, prefix: &str) -> Result<Vec<String>> {
    let kv = super::js::kv(env, super::KV_BINDING)
        .ok_or_else(|| worker::Error::RustError("no KV binding".into()))?;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (names, next) = kv.keys(prefix, cursor.as_deref(), None).await?;
        out.extend(
            names
                .into_iter()
                .filter_map(|k| k.strip_prefix(prefix).map(str::to_string)),
        );
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

fn number(v: &serde_json::Value) -> u128 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n.as_u64().map_or(0, u128::from),
        _ => 0,
    }
}

fn bad(message: &str) -> Result<Response> {
    Response::from_json(&serde_json::json!({"error": "bad_request", "message": message}))
        .map(|r| r.with_status(400))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
