//! Sessions at the edge: letting a wallet in without paying again.
//!
//! A wallet that bought a session holds a grant: in Workers KV under `grant:<wallet>:<scope>` (the
//! offer's name: its scope, then the route that sells it),
//! expiring with KV's own expiry, readable fast at every edge location. It proves it is that
//! wallet with Sign-In-With-X (EIP-4361 signed with EIP-191) or with the short-lived session token
//! we hand out after a payment or a successful sign-in (cookie, or the same value as a bearer
//! token).
//!
//! What KV cannot do is kept in the wallet's ledger (a Durable Object, strongly consistent):
//! counting the requests left on a counted grant (KV's read-modify-write races across locations,
//! so two requests could both spend the last one), and remembering Sign-In-With-X nonces (a
//! nonce written to KV in one location may not be visible in another for a minute, long enough to
//! replay it). Every use also checks the delinquent-wallet blocklist and that the grant still
//! exists, so revoking a grant, or a failed settlement, ends a session, tokens included: at once
//! in the isolate that revoked it or recorded the debt, elsewhere within KV's own propagation delay
//! plus the few seconds each isolate reuses what it read (see [`crate::recent`]).

use std::cell::RefCell;

use worker::Env;

use super::js;
use super::ledger::{Command, DELINQUENT_PREFIX};
use super::ledger_client::LedgerClient;
use crate::config::{Config, Route};
use crate::evm::Address;
use crate::reason::{Reason, Refusal};
use crate::recent::{self, Recent};
use crate::session::{self, Grant, SessionOffer, TokenClaims};
use crate::siwx;

thread_local! {
    /// Grants read from KV a moment ago, by `<wallet lowercase hex>:<scope>`.
    static GRANTS: RefCell<Recent<Grant>> = RefCell::new(Recent::default());
    /// Wallets (lowercase hex) found not delinquent a moment ago.
    static IN_GOOD_STANDING: RefCell<Recent<()>> = RefCell::new(Recent::default());
    /// Session tokens found genuine a moment ago, by their MAC: the whole token and its claims,
    /// with the secret they were checked against.
    static TOKENS: RefCell<(String, Recent<(String, TokenClaims)>)> =
        RefCell::new((String::new(), Recent::new(TOKEN_KEEP_SECONDS, recent::CAPACITY)));
}

/// How long this isolate trusts a token it has checked without checking its MAC again (its
/// expiry is still checked on every request, and the grant behind it as before).
const TOKEN_KEEP_SECONDS: u64 = 60;

/// A session token's claims, if it is genuine and unexpired. An agent sends the same token with
/// every request: its MAC is checked once a minute per isolate, not every time.
fn checked_token(secret: &str, token: &str, now: u64) -> Result<TokenClaims, session::TokenError> {
    let tag = token.rsplit('.').next().unwrap_or(token);
    let kept = TOKENS.with(|t| {
        let t = t.borrow();
        (t.0 == secret).then(|| t.1.get(tag, now)).flatten()
    });
    if let Some((whole, claims)) = kept {
        if whole == token && now < claims.expires_at {
            return Ok(claims);
        }
    }
    let claims = session::check_token(secret.as_bytes(), token, now)?;
    TOKENS.with(|t| {
        let mut t = t.borrow_mut();
        if t.0 != secret {
            // Tokens checked against another secret are no longer known to be genuine.
            t.0 = secret.to_string();
            t.1.forget("");
        }
        t.1.put(tag, (token.to_string(), claims.clone()), now);
    });
    Ok(claims)
}

/// Where [`GRANTS`] keeps a wallet's grant for a scope.
fn remembered_as(wallet: &Address, scope: &str) -> String {
    format!("{}:{scope}", wallet.to_lower_hex())
}

/// Forgets what this isolate remembers of a wallet's standing (it has just become delinquent).
pub fn forget_standing(wallet_lower_hex: &str) {
    IN_GOOD_STANDING.with(|r| r.borrow_mut().forget(wallet_lower_hex));
}

/// Secret: the key session tokens are signed with (at least 32 bytes).
const SESSION_SECRET: &str = "X402_SESSION_SECRET";
/// The response header carrying a fresh session token (also set as a cookie).
pub const TOKEN_HEADER: &str = "X402-Session";

/// A request let in on a session.
pub struct Admitted {
    pub wallet: Address,
    /// A fresh token to hand back, after a Sign-In-With-X.
    pub token: Option<(String, String)>,
    /// The counted grant this request spent one of (its key and end), to give back if the origin
    /// fails to answer it.
    pub spent: Option<(String, u64)>,
}

/// What a counted grant's spend would be given back by.
fn spent_from(wallet: &Address, offer: &SessionOffer, grant: &Grant) -> Option<(String, u64)> {
    grant
        .requests
        .map(|_| (session::grant_key(wallet, &offer.name), grant.expires_at))
}

/// Gives back the request a session spent, when the origin failed to answer it.
pub async fn refund(env: &Env, admitted: &Admitted) {
    let Some((key, until)) = admitted.spent.clone() else {
        return;
    };
    if let Some(book) = LedgerClient::open(env, &admitted.wallet.to_lower_hex()) {
        let _ = book.send(&Command::RefundGrant { key, until }).await;
    }
}

/// Tries the credentials of the request whose headers `client` holds (and whose refusals it
/// counts), for a request `route` prices. `Ok(None)`: it has none (or none for this path);
/// `Err`: it has some and they were refused, with the reason (the request still may pay).
pub async fn try_session(
    config: &Config,
    route: &Route,
    env: &Env,
    client: &super::Strikes<'_>,
    url: &str,
    path: &str,
    now: u64,
) -> Result<Option<Admitted>, Refusal> {
    let headers = client.headers;
    let sold: Vec<&SessionOffer> = config.sessions_for(route, path).collect();
    if sold.is_empty() {
        return Ok(None);
    }
    // A sign-in is let in on a pass for a time before a counted one: a day pass that covers the
    // page must not drain the requests of a bundle the wallet also holds.
    let counted = |yes: bool| sold.iter().filter(move |o| o.requests.is_some() == yes);
    let offers: Vec<&SessionOffer> = counted(false).chain(counted(true)).copied().collect();
    let header = |n: &str| headers.get(n).ok().flatten();
    let secret = env.secret(SESSION_SECRET).ok().map(|s| s.to_string());

    let cookie = header("cookie");
    let authorization = header("authorization");
    let proof = header(siwx::HEADER);
    // The names of the cookies that may open the page, only where there is a cookie of ours.
    let names: Vec<&str> = match cookie.as_deref() {
        Some(jar) if jar.contains(session::COOKIE_NAME) => {
            offers.iter().map(|o| o.cookie.as_str()).collect()
        }
        _ => Vec::new(),
    };
    let tokens = session::tokens_from_request(cookie.as_deref(), authorization.as_deref(), &names);
    if let (false, Some(secret)) = (tokens.is_empty(), secret.as_deref()) {
        match admit_token(env, route, &offers, &tokens, secret, path, now).await {
            Ok(admitted) => return Ok(Some(admitted)),
            // A token that does not get in (expired, out of scope, made with a rotated secret)
            // must not stand in the way of a sign-in sent with it: a browser sends its
            // `Path=/` cookies everywhere, including to another scope the wallet bought.
            Err(refusal) if proof.is_none() => return Err(refusal),
            Err(_) => {}
        }
    }

    let Some(proof) = proof else {
        return Ok(None);
    };
    let proof = siwx::parse_header(&proof).map_err(|e| refused(e.code(), &e.to_string()))?;
    // A signature its address's own key did not make may be a smart wallet's (ERC-1271), which
    // only the chain can tell, where `rpc` reaches it. The chain is asked, and the proof's nonce
    // spent in the wallet's ledger, only once a grant for this address is found: a proof for an
    // address that bought nothing (any new key can make one) costs no call to a node and writes
    // nothing anywhere.
    let (wallet, mut ask_contract) =
        match siwx::verify(&proof, url, now, siwx::DEFAULT_MAX_AGE_SECONDS) {
            Ok(wallet) => (wallet, None),
            Err(e) if e.may_be_contract_signature() && config.rpc_for(proof.chain_id).is_some() => {
                (proof.address, Some(e))
            }
            Err(e) => return Err(refused(e.code(), &e.to_string())),
        };
    // Whether the wallet contract's word (not a key's) is what lets this proof in, for every
    // grant it is tried on.
    let by_contract = ask_contract.is_some();
    let mut nonce_spent = false;
    let mut last = refused(
        "no_grant",
        "this wallet has no session for this path; pay to get one",
    );
    for offer in offers {
        let grant = match find_grant(env, &wallet, offer, route, path, now).await {
            Ok(grant) => grant,
            // Not known now is not "none": said at once.
            Err(r) if r.reason == Reason::SessionUnavailable => return Err(r),
            Err(r) => {
                last = r;
                continue;
            }
        };
        // The wallet contract at one address may have another owner on another chain: a
        // contract's word counts on the chain the session was paid on only, for this grant as for
        // any other tried after the contract said yes.
        if by_contract && grant.chain != Some(proof.chain_id) {
            last = refused(
                "siwx_chain_mismatch",
                "a smart wallet signs in on the chain it paid on",
            );
            continue;
        }
        if let Some(local) = &ask_contract {
            // Each such question is a call to the node, for a proof anyone can make up for a
            // wallet that bought a session: a client whose proofs keep being refused by wallet
            // contracts is counted like one whose payments are, and turned away for a while
            // before the node is asked again.
            if client.barred() {
                return Err(refused(
                    "siwx_too_many_refusals",
                    "too many sign-ins refused by wallet contracts; wait a minute",
                ));
            }
            contract_signer(config, &proof, local, env, client).await?;
            ask_contract = None;
        }
        if !nonce_spent {
            let spent = use_nonce(env, &wallet, &proof).await;
            // A copied proof (already used) has its wallet contract say yes again: counted like a
            // contract's no, so that a replay cannot have the node asked over and over for free.
            if by_contract && matches!(&spent, Err(r) if r.reason != Reason::SessionUnavailable) {
                client.count(env).await;
            }
            spent?;
            nonce_spent = true;
        }
        match spend_grant(env, &wallet, offer, &grant, now).await {
            Ok(()) => {
                let token = secret
                    .as_deref()
                    .filter(|s| s.len() >= session::MIN_SECRET_BYTES)
                    .map(|s| fresh_token(s, &wallet, offer, &grant, now));
                let spent = spent_from(&wallet, offer, &grant);
                return Ok(Some(Admitted {
                    wallet,
                    token,
                    spent,
                }));
            }
            // A ledger that did not answer is said at once, as above: another offer's "no"
            // would have a session holder pay again.
            Err(r) if r.reason == Reason::SessionUnavailable => return Err(r),
            Err(r) => last = r,
        }
    }
    Err(last)
}

/// A token for `grant`, and how long it lives: as long as the grant (a day pass, a month of
/// requests), so that a browser, which does not sign in, keeps what it bought as long as that
/// lasts. A token is no more than a pointer to its grant: every request on it finds the grant
/// still there (revocation and debts end it) and, for a bundle, spends one of its requests.
fn fresh_token(
    secret: &str,
    wallet: &Address,
    offer: &SessionOffer,
    grant: &Grant,
    now: u64,
) -> (String, String) {
    let token = session::issue_token(secret.as_bytes(), wallet, &offer.name, grant.expires_at);
    let max_age = grant.expires_at.saturating_sub(now);
    let cookie = session::cookie(&token, max_age, &offer.name);
    (token, cookie)
}

/// A session that could not be checked now (the store, the ledger or the chain did not answer):
/// 503, never the terms, which would have a client that holds a session pay again.
fn unavailable(detail: &'static str) -> Refusal {
    Refusal::new(Reason::SessionUnavailable, detail)
}

/// Records in the wallet's ledger that this proof's nonce was used: a proof is good once.
async fn use_nonce(env: &Env, wallet: &Address, proof: &siwx::Proof) -> Result<(), Refusal> {
    let book = LedgerClient::open(env, &wallet.to_lower_hex())
        .ok_or_else(|| refused("siwx_unavailable", "no ledger to remember sign-in nonces"))?;
    let fresh = book
        .send(&Command::UseNonce {
            key: siwx::replay_key(proof),
            until: siwx::remember_until(proof, siwx::DEFAULT_MAX_AGE_SECONDS),
        })
        .await
        .and_then(|v| v["fresh"].as_bool());
    match fresh {
        Some(true) => Ok(()),
        Some(false) => Err(refused(
            "siwx_nonce_replayed",
            "this sign-in message was already used",
        )),
        None => Err(unavailable("the ledger did not answer")),
    }
}

/// A smart wallet's sign-in: the wallet's contract is asked on chain (ERC-1271) whether the
/// signature its own key did not make is its signature over the message. Only with an `rpc` URL
/// for the proof's chain; without one, `local` (why the signature was refused here) stands. A
/// contract's no counts against the `client`'s address (see `Strikes`).
async fn contract_signer(
    config: &Config,
    proof: &siwx::Proof,
    local: &siwx::SiwxError,
    env: &Env,
    client: &super::Strikes<'_>,
) -> Result<Address, Refusal> {
    let (Some(url), Some(question)) = (
        config.rpc_for(proof.chain_id),
        siwx::contract_question(proof),
    ) else {
        return Err(refused(local.code(), &local.to_string()));
    };
    let deploy = question.deploy.as_ref().map(|(f, c)| (f, c.as_slice()));
    match wallet_signed(
        url,
        &proof.address,
        &question.hash,
        &question.signature,
        deploy,
    )
    .await
    {
        Some(true) => Ok(proof.address),
        Some(false) => {
            client.count(env).await;
            Err(refused(
                "siwx_signer_mismatch",
                "neither this address's key nor a wallet contract at it (ERC-1271) signed this message",
            ))
        }
        // Counted too: a made-up proof can be built for a call the node errs on (an ERC-6492
        // factory of the sender's choosing), and each costs a call all the same.
        None => {
            client.count(env).await;
            Err(unavailable("the chain did not answer"))
        }
    }
}

/// The word of the wallet contract at `wallet` on whether `signature` is its signature over `hash`
/// (ERC-1271), asked through the chain node at `url` with one `eth_call`: `Some` yes or no (no also
/// for an address without code), `None` when the node gave no usable answer. With `deploy` (a
/// factory and its call, from an ERC-6492 envelope), a wallet not deployed yet is deployed in the
/// call's simulation first, and then asked.
pub(super) async fn wallet_signed(
    url: &str,
    wallet: &Address,
    hash: &[u8; 32],
    signature: &[u8],
    deploy: Option<(&Address, &[u8])>,
) -> Option<bool> {
    let body = match deploy {
        None => crate::chain::is_valid_signature_request(wallet, hash, signature),
        // Never too long to be asked: a proof's header is at most 8 KiB.
        Some((factory, calldata)) => crate::chain::deployless_is_valid_signature_request(
            wallet, factory, calldata, hash, signature,
        )?,
    };
    js::rpc(url, &body)
        .await
        .as_deref()
        .and_then(crate::chain::read_is_valid_signature)
}

/// Lets a request in on one of its session tokens (a browser holds a cookie for each session
/// it bought): genuine, unexpired, its scope still sold and covering `path`, and the grant behind
/// it still there (revocation and delinquency end tokens too). Tokens are tried in the order of
/// `offers` (a pass for a time before a bundle), and the refusal that says most is given when
/// none gets in: a grant's, then a token's own, then that none covers the path.
async fn admit_token(
    env: &Env,
    route: &Route,
    offers: &[&SessionOffer],
    tokens: &[&str],
    secret: &str,
    path: &str,
    now: u64,
) -> Result<Admitted, Refusal> {
    let mut refusal = None;
    let mut held = Vec::with_capacity(tokens.len());
    for token in tokens {
        match checked_token(secret, token, now) {
            Ok(claims) => held.push(claims),
            Err(e) => {
                refusal.get_or_insert_with(|| refused(e.code(), &e.to_string()));
            }
        }
    }
    // The offer a token was issued for is known by its name (its scope, then the route selling
    // it), whose pattern was parsed with the configuration.
    for offer in offers.iter().filter(|o| o.scope.matches_formatted(path)) {
        for claims in held.iter().filter(|c| c.scope == offer.name) {
            match use_grant(env, &claims.wallet, offer, route, path, now).await {
                Ok(grant) => {
                    return Ok(Admitted {
                        spent: spent_from(&claims.wallet, offer, &grant),
                        wallet: claims.wallet,
                        token: None,
                    })
                }
                Err(r) if r.reason == Reason::SessionUnavailable => return Err(r),
                Err(r) => refusal = Some(r),
            }
        }
    }
    Err(refusal.unwrap_or_else(|| {
        // A token's scope is parsed only when no offer here sells it.
        match held.iter().any(|c| c.covers(path)) {
            true => refused(
                "token_out_of_scope",
                "the session token's scope does not open this route",
            ),
            false => refused(
                "token_out_of_scope",
                "the session token does not cover this path",
            ),
        }
    }))
}

/// Checks that `wallet` still holds a grant for `offer` covering `path`, and spends one request
/// of a counted grant (in the ledger, where counting is exact).
async fn use_grant(
    env: &Env,
    wallet: &Address,
    offer: &SessionOffer,
    route: &Route,
    path: &str,
    now: u64,
) -> Result<Grant, Refusal> {
    let grant = find_grant(env, wallet, offer, route, path, now).await?;
    spend_grant(env, wallet, offer, &grant, now).await?;
    Ok(grant)
}

/// The grant `wallet` holds for `offer` covering `path`, if it is in good standing.
async fn find_grant(
    env: &Env,
    wallet: &Address,
    offer: &SessionOffer,
    route: &Route,
    path: &str,
    now: u64,
) -> Result<Grant, Refusal> {
    // The KV binding is only looked up on a miss.
    let kv = || js::kv(env, super::KV_BINDING).ok_or_else(|| refused("no_store", "no KV binding"));
    let lower = wallet.to_lower_hex();
    let known_good = IN_GOOD_STANDING.with(|r| r.borrow().get(&lower, now).is_some());
    if !known_good {
        // A store that cannot be read is no proof of good standing: refused, and not remembered.
        let listed = kv()?
            .text(&format!("{DELINQUENT_PREFIX}{lower}"))
            .await
            .map_err(|_| unavailable("KV did not answer"))?
            .is_some();
        if listed {
            return Err(Refusal::new(
                Reason::WalletDelinquent,
                "its sessions are suspended until the debt is settled",
            ));
        }
        IN_GOOD_STANDING.with(|r| r.borrow_mut().put(&lower, (), now));
    }
    // Remembered by wallet and the offer's name; the KV key (which hashes the name) is only needed
    // on a miss.
    let memory_key = remembered_as(wallet, &offer.name);
    // The grant is stored under its offer's name, and names it: the offer's pattern, parsed once
    // with the configuration, decides what it covers.
    let covers = |g: &Grant| {
        g.wallet == *wallet && g.scope == offer.name && g.covers_with(&offer.scope, path, now)
    };
    // One that no longer opens this page (it ended, or was used up, a moment ago) is read again:
    // the payer may have renewed it through another isolate.
    if let Some(grant) = GRANTS
        .with(|r| r.borrow().get(&memory_key, now))
        .filter(|g| covers(g) && paid_here(g, route))
    {
        return Ok(grant);
    }
    let read = kv()?
        .text(&session::grant_key(wallet, &offer.name))
        .await
        .map_err(|_| unavailable("KV did not answer"))?
        .and_then(|j| Grant::from_json(&j).ok());
    if let Some(grant) = &read {
        GRANTS.with(|r| r.borrow_mut().put(&memory_key, grant.clone(), now));
    }
    let grant = read.filter(covers).ok_or_else(|| {
        refused(
            "no_grant",
            "this wallet has no current session for this path",
        )
    })?;
    // A session paid on one network opens only pages sold on it: one bought with a test
    // network's USDC never opens a page that takes mainnet's alone. (Grants of earlier versions
    // name no network.)
    match paid_here(&grant, route) {
        false => Err(refused(
            "session_network_not_accepted",
            "this session was paid on a network this page does not take",
        )),
        true => Ok(grant),
    }
}

/// Whether `grant` was paid on a network `route` takes (a grant of an earlier version names none).
fn paid_here(grant: &Grant, route: &Route) -> bool {
    grant
        .chain
        .is_none_or(|c| route.offers.iter().any(|o| o.asset.network.chain_id == c))
}

/// Spends one request of a counted grant (in the ledger, where counting is exact); a grant for a
/// duration has nothing to spend.
async fn spend_grant(
    env: &Env,
    wallet: &Address,
    offer: &SessionOffer,
    grant: &Grant,
    now: u64,
) -> Result<(), Refusal> {
    let lower = wallet.to_lower_hex();
    if grant.requests.is_some() {
        let book = LedgerClient::open(env, &lower)
            .ok_or_else(|| refused("no_ledger", "no ledger to count requests"))?;
        let left = book
            .send(&Command::SpendGrant {
                key: session::grant_key(wallet, &offer.name),
                now,
            })
            .await
            .and_then(|v| v["spent"].as_bool());
        match left {
            Some(true) => {}
            Some(false) => {
                return Err(refused(
                    "grant_used_up",
                    "every request this session bought has been used",
                ))
            }
            None => return Err(unavailable("the ledger did not answer")),
        }
    }
    Ok(())
}

/// Records the grant a payment bought (each store asked twice if it does not answer; the
/// ledger counts the payment `paid`, its chain, token and authorization's nonce, once), and
/// returns a token for it (none without a session secret); `Err` says which store did not record
/// it.
pub async fn grant_after_payment(
    env: &Env,
    wallet: &Address,
    chain: u64,
    offer: &SessionOffer,
    paid: &str,
    now: u64,
) -> Result<Option<(String, String)>, &'static str> {
    let mut grant = offer.grant(*wallet, now);
    grant.chain = Some(chain);
    let key = session::grant_key(wallet, &offer.name);
    // The ledger counts a counted grant's requests, and adds a timed purchase to the time left
    // on the grant, exactly.
    let book = LedgerClient::open(env, &wallet.to_lower_hex());
    let command = Command::SetGrant {
        key: key.clone(),
        requests: grant.requests.unwrap_or(0),
        until: grant.expires_at,
        paid: Some(paid.to_string()),
        seconds: offer.seconds,
    };
    let mut answer = None;
    if let Some(book) = &book {
        answer = match book.send(&command).await {
            None => book.send(&command).await,
            done => done,
        };
    }
    match answer {
        Some(a) => grant.expires_at = a["until"].as_u64().unwrap_or(grant.expires_at),
        // A timed grant is still written, from now: the time left on an earlier one is not
        // added.
        None if grant.requests.is_none() => {}
        None => return Err("the ledger did not answer"),
    }
    let kv = js::kv(env, super::KV_BINDING).ok_or("no KV namespace")?;
    // KV's expiry has a floor of 60 s; the grant's own expiry is checked on every use.
    let ttl = grant.ttl(now).max(60);
    let json = grant.to_json();
    if kv.put(&key, &json, Some(ttl)).await.is_err() {
        kv.put(&key, &json, Some(ttl))
            .await
            .map_err(|_| "KV refused the write")?;
    }
    // A grant bought again replaces the one this isolate remembers.
    GRANTS.with(|r| {
        r.borrow_mut()
            .put(&remembered_as(wallet, &offer.name), grant.clone(), now)
    });
    let Some(secret) = env.secret(SESSION_SECRET).ok().map(|s| s.to_string()) else {
        return Ok(None);
    };
    if secret.len() < session::MIN_SECRET_BYTES {
        return Ok(None);
    }
    Ok(Some(fresh_token(&secret, wallet, offer, &grant, now)))
}

/// Headers handing a session token to the client: a cookie for browsers, a header for programs.
pub fn token_headers(token: &(String, String)) -> Vec<(&'static str, String)> {
    vec![
        ("Set-Cookie", token.1.clone()),
        (TOKEN_HEADER, token.0.clone()),
    ]
}

/// Deletes every grant of a wallet from KV (revocation; the ledger forgets its counts too): the
/// number of grants it held. Each grant the configuration's offers can make is deleted by its key,
/// whether or not KV lists it (a listing lags writes: a grant bought a minute ago may not be in
/// it), and whatever else KV lists under the wallet (grants sold by offers since removed). Only
/// keys whose value is still there are counted (a listing lags deletions too).
/// Fails with what could not do its part (`kv_unavailable`, `ledger_unavailable`): sent again, the
/// revocation finishes.
pub async fn revoke_grants(
    env: &Env,
    config: Option<&Config>,
    wallet: &Address,
) -> Result<usize, &'static str> {
    let forget = || GRANTS.with(|r| r.borrow_mut().forget(&remembered_as(wallet, "")));
    forget();
    let prefix = format!("grant:{}:", wallet.to_lower_hex());
    let named = config.map(|c| c.grant_keys(wallet)).unwrap_or_default();
    let kv = js::kv(env, super::KV_BINDING).ok_or("kv_unavailable")?;
    let held = kv
        .drop_keys(&prefix, &named)
        .await
        .map_err(|_| "kv_unavailable")?;
    // A request of this isolate may have read a grant again while the keys were being deleted.
    forget();
    if let Some(book) = LedgerClient::open(env, &wallet.to_lower_hex()) {
        if book.send(&Command::ClearGrants).await.is_none() {
            book.send(&Command::ClearGrants)
                .await
                .ok_or("ledger_unavailable")?;
        }
    }
    Ok(held)
}

fn refused(code: &str, message: &str) -> Refusal {
    Refusal::new(Reason::SessionRefused, format!("{code}: {message}"))
}
