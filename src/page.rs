//! The paywall page for people: what a browser sees when it asks for a priced page.
//!
//! An agent or a script gets the 402 as JSON with the terms in `PAYMENT-REQUIRED`. A person in a
//! browser gets this page instead: one small HTML document (no framework, no external resource;
//! inline CSS and one inline script) that says what the resource is, what it costs on each network
//! offered, and offers to pay with the wallet the browser has injected (EIP-1193, `window.ethereum`).
//! Plain Rust, no I/O: the shell decides who gets it and copies the bytes.
//!
//! # Who gets it
//!
//! Only requests whose `Accept` contains `text/html` **and** whose `User-Agent` contains `Mozilla`
//! ([`is_browser`]), the same test as the reference servers, and only on the unpaid 402 (a request
//! that carried a payment header gets the JSON refusal, so a paying program always reads the reason
//! it expects). The 402 for a refused session token gets the page too, with the reason shown.
//!
//! # What differs from the reference paywall
//!
//! The page is served with status **402** and **still carries the `PAYMENT-REQUIRED` header**
//! (the reference `@x402/paywall` drops it on HTML answers, so a browser-like agent that sends
//! `Accept: text/html` gets no machine-readable terms). [`for_browser`] turns a challenge
//! [`Reply`] into the page, keeping its status and every header but `Content-Type`.
//!
//! The terms the page pays are exactly those of the header: the same base64 value is embedded
//! (HTML-escaped, in a `data-` attribute) and decoded by the script, which pays the chosen offer
//! verbatim as `accepted`. The price is computed exactly from the offer's atomic amount and the
//! token's decimals (no float, no 6-decimal assumption).
//!
//! # How paying works
//!
//! The script asks the wallet for an account (`eth_requestAccounts`), for the offer's chain
//! (`wallet_switchEthereumChain`; a wallet that cannot switch is told so and still asked to sign),
//! then for an `eth_signTypedData_v4` signature of the EIP-3009 `TransferWithAuthorization`, built
//! as the official client builds it: domain `{name, version}` from the offer's `extra`, the chain
//! id and `verifyingContract` = the asset; message `{from, to: payTo, value: amount,
//! validAfter: now − 600, validBefore: now + maxTimeoutSeconds, nonce: 32 random bytes}`, numbers
//! as decimal strings. It sends the v2 payload `{x402Version: 2, resource, accepted, payload:
//! {signature, authorization}}`, base64-encoded in `PAYMENT-SIGNATURE`, on a same-origin `GET` of
//! the same URL (`credentials: "same-origin"`). On success an HTML answer replaces the document;
//! anything else is offered as a link. Refusals (no wallet, declined, the 402's `message`) are
//! read out from an `aria-live` region. Every string the page shows is escaped (server side) or
//! set as text (client side).
//!
//! # Staying in
//!
//! When the route sells a session (`session = { scope, seconds | requests }`), the paid answer
//! sets a session cookie (`x402_session_…`, one per session; HttpOnly, `SameSite=Lax`); the browser keeps it from the fetch,
//! and every later request for a path of the session's scope is served without paying again, until
//! the session ends. The page says so, with the scope and the duration.
//!
//! # Content Security Policy
//!
//! The page has no inline event handlers, no `eval` and one script and one style block, so it runs
//! under the strict policy of [`content_security_policy`] (hash-pinned). It is not set by default:
//! after paying, the page swaps in the article with `document.write`, and the article then lives
//! under the paywall page's policy, which would block its own inline scripts and third-party
//! resources. No setting sends it yet; the tests hold the page to it, so that one can.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::config::{Offer, Route};
use crate::evm::U256;
use crate::paywall::Reply;
use crate::x402;

/// The `Content-Type` of the page.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Whether a request is a person's browser asking for a page: `Accept` contains `text/html` and
/// `User-Agent` contains `Mozilla` (the reference servers' test).
pub fn is_browser(accept: Option<&str>, user_agent: Option<&str>) -> bool {
    accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
        && user_agent.is_some_and(|u| u.contains("Mozilla"))
}

/// The page version of a challenge: same status and headers (`PAYMENT-REQUIRED` included), an
/// HTML body and `Content-Type`. Anything that is not a 402 carrying terms comes back unchanged.
/// The page shows the `message` of the challenge's JSON body when there is more to say than
/// "payment required" (a refused or expired session, say).
pub fn for_browser(reply: Reply, route: &Route, url: &str) -> Reply {
    let terms = reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(x402::PAYMENT_REQUIRED))
        .map(|(_, v)| v.clone());
    let Some(terms) = terms.filter(|_| reply.status == 402) else {
        return reply;
    };
    let body = serde_json::from_str::<serde_json::Value>(&reply.body).unwrap_or_default();
    let plain = body.get("reason").and_then(|r| r.as_str()) == Some("payment_required");
    let message = match body.get("message").and_then(|m| m.as_str()) {
        Some(m) if !plain => m.to_string(),
        _ => String::new(),
    };
    let mut headers: Vec<_> = reply
        .headers
        .into_iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("Content-Type"))
        .collect();
    headers.push(("Content-Type", CONTENT_TYPE.into()));
    Reply {
        status: reply.status,
        headers,
        body: render(route, url, &terms, &message),
        reason: reply.reason,
    }
}

/// The page for `route` at `url`. `payment_required_b64` is the `PAYMENT-REQUIRED` header's value
/// (the terms the script pays); `refusal_message`, when not empty, the sentence saying why the page
/// is shown (pass `""` for a plain "payment required").
pub fn render(
    route: &Route,
    url: &str,
    payment_required_b64: &str,
    refusal_message: &str,
) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let description = route.description.trim();
    let heading = if description.is_empty() {
        "This page is for sale"
    } else {
        description
    };
    let first = route.offers.first();
    let price_line = first.map(price).unwrap_or_else(|| "a payment".into());

    h.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<meta name=\"robots\" content=\"noindex\">\n");
    let _ = write!(
        h,
        "<title>Payment required: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(heading)
    );
    let _ = write!(
        h,
        "<p class=\"kicker\">Payment required</p>\n<h1>{}</h1>\n<p class=\"lead\">This page costs \
         <strong>{}</strong>{}. Pay with your wallet and it opens here, with no account and no \
         card.</p>\n",
        esc(heading),
        esc(&price_line),
        if route.offers.len() > 1 {
            " or the same on another network"
        } else {
            ""
        },
    );

    // What it is.
    h.push_str("<section aria-labelledby=\"what\">\n<h2 id=\"what\">What you get</h2>\n<dl>\n");
    if !description.is_empty() {
        let _ = writeln!(h, "<dt>Resource</dt><dd>{}</dd>", esc(description));
    }
    let _ = writeln!(h, "<dt>Address</dt><dd><code>{}</code></dd>", esc(url));
    if !route.mime_type.is_empty() {
        let _ = writeln!(h, "<dt>Type</dt><dd>{}</dd>", esc(&route.mime_type));
    }
    h.push_str("</dl>\n");
    if let Some(session) = &route.session {
        let span = match (session.seconds, session.requests) {
            (Some(s), _) => format!("for {}", duration(s)),
            (None, Some(n)) => format!("for {n} more request{}", if n == 1 { "" } else { "s" }),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            h,
            "<p>One payment also lets this browser read every page matching <code>{}</code> {} \
             without paying again.</p>",
            esc(session.scope.as_str()),
            esc(&span),
        );
    }
    h.push_str("</section>\n");

    // What it costs.
    h.push_str("<section aria-labelledby=\"cost\">\n<h2 id=\"cost\">What it costs</h2>\n");
    match route.offers.as_slice() {
        [] => h.push_str("<p>Nothing can be paid here.</p>\n"),
        [offer] => {
            let _ = writeln!(
                h,
                "<p class=\"price\" data-offer=\"0\" data-network=\"{}\">{}</p>",
                esc(&network_label(offer.asset.network.chain_id)),
                esc(&price(offer)),
            );
        }
        offers => {
            h.push_str("<fieldset>\n<legend>Pay with</legend>\n");
            for (i, offer) in offers.iter().enumerate() {
                let _ = writeln!(
                    h,
                    "<label><input type=\"radio\" name=\"offer\" value=\"{i}\"{}> <span \
                     data-offer=\"{i}\" data-network=\"{}\">{}</span></label>",
                    if i == 0 { " checked" } else { "" },
                    esc(&network_label(offer.asset.network.chain_id)),
                    esc(&price(offer)),
                );
            }
            h.push_str("</fieldset>\n");
        }
    }
    let mut seen = Vec::new();
    for offer in &route.offers {
        let id = offer.asset.network.chain_id;
        if is_testnet(id) && !seen.contains(&id) {
            seen.push(id);
            let _ = writeln!(
                h,
                "<p class=\"note\">{} is a test network: its tokens have no value.</p>",
                esc(&capitalise(&network_label(id)))
            );
        }
    }
    if let Some(offer) = first {
        let _ = writeln!(
            h,
            "<p>Your wallet signs a USDC transfer authorization (EIP-3009) of exactly this amount \
             to <code>{}</code>. Nothing moves until you sign, and you pay no gas.</p>",
            esc(&offer.pay_to.to_checksum())
        );
    }
    h.push_str("</section>\n");

    // Paying.
    h.push_str("<section aria-labelledby=\"pay\">\n<h2 id=\"pay\">Pay</h2>\n");
    h.push_str(
        "<button id=\"x402-pay\" type=\"button\" hidden>Pay with your wallet</button>\n\
         <noscript><p class=\"note\">Paying from this page needs JavaScript and a browser \
         wallet. Programs can pay with any x402 client: the terms are in this answer's \
         <code>PAYMENT-REQUIRED</code> header.</p></noscript>\n\
         <p id=\"x402-status\" aria-live=\"polite\" aria-atomic=\"true\"></p>\n\
         <p id=\"x402-content\" hidden></p>\n</section>\n",
    );
    if !refusal_message.trim().is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"fine\">Why you see this page: {}</p>",
            esc(refusal_message.trim())
        );
    }
    h.push_str(
        "<p class=\"fine\">HTTP 402 Payment Required, paid with \
         <a href=\"https://x402.org\">x402</a>.</p>\n</main>\n",
    );
    let _ = write!(
        h,
        "<div id=\"x402-terms\" data-terms=\"{}\" hidden></div>\n<script>{}</script>\n\
         </body>\n</html>\n",
        esc(payment_required_b64),
        SCRIPT
    );
    h
}

/// A strict policy the page runs under: nothing but its own script and style (pinned by hash),
/// same-origin fetches and no framing. See the module documentation before sending it.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(SCRIPT),
        csp_hash(CSS)
    )
}

fn csp_hash(block: &str) -> String {
    format!(
        "sha256-{}",
        crate::x402::codec::base64(&Sha256::digest(block.as_bytes()), false)
    )
}

/// A human price: `$0.01 USDC on Base Sepolia`. Exact, from the atomic amount and the token's
/// decimals; a `$` only for dollar tokens.
pub fn price(offer: &Offer) -> String {
    let amount = format_units(&offer.amount, offer.asset.decimals);
    let symbol = offer.asset.symbol.as_str();
    let dollar = symbol.to_ascii_uppercase().contains("USD") || symbol == "DAI";
    format!(
        "{}{amount} {symbol} on {}",
        if dollar { "$" } else { "" },
        network_label(offer.asset.network.chain_id)
    )
}

/// `amount / 10^decimals` in decimal, exactly: thousands separated, trailing zeros dropped but at
/// least two decimals (`10000`, 6 → `0.01`; `5000`, 6 → `0.005`; `1234500000`, 6 → `1,234.50`).
pub fn format_units(amount: &U256, decimals: u8) -> String {
    let digits = amount.to_string();
    let d = usize::from(decimals);
    let padded = if digits.len() <= d {
        format!("{}{digits}", "0".repeat(d + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - d);
    let mut out = String::with_capacity(int.len() + int.len() / 3 + d + 1);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let keep = frac.trim_end_matches('0').len().max(2.min(d));
    if keep > 0 {
        out.push('.');
        out.push_str(&frac[..keep]);
    }
    out
}

/// The name of a chain, for people: `Base Sepolia`, or `chain 31337` for one we do not know.
pub fn network_label(chain_id: u64) -> String {
    network_name(chain_id)
        .map(str::to_string)
        .unwrap_or_else(|| format!("chain {chain_id}"))
}

/// The names of the chains x402 is paid on.
pub fn network_name(chain_id: u64) -> Option<&'static str> {
    Some(match chain_id {
        1 => "Ethereum",
        10 => "OP Mainnet",
        137 => "Polygon",
        8453 => "Base",
        42161 => "Arbitrum One",
        43114 => "Avalanche",
        84532 => "Base Sepolia",
        80002 => "Polygon Amoy",
        421614 => "Arbitrum Sepolia",
        11155111 => "Sepolia",
        11155420 => "OP Sepolia",
        43113 => "Avalanche Fuji",
        _ => return None,
    })
}

fn is_testnet(chain_id: u64) -> bool {
    matches!(
        chain_id,
        84532 | 80002 | 421614 | 11155111 | 11155420 | 43113 | 31337 | 1337
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// `3600` → `1 hour`, `5400` → `90 minutes`, `86400 * 2` → `2 days`.
fn duration(seconds: u64) -> String {
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(u, _)| seconds >= *u && seconds.is_multiple_of(*u))
        .map(|(u, name)| (seconds / u, name))
        .unwrap_or((seconds, "second"));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Escapes text for HTML text and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
:root{color-scheme:light dark;--fg:#1a1a1a;--bg:#fff;--mute:#4b5563;--line:#d1d5db;--acc:#1d4ed8;--err:#b91c1c;--card:#f9fafb}\
@media (prefers-color-scheme:dark){:root{--fg:#f3f4f6;--bg:#111827;--mute:#c4c9d1;--line:#374151;--acc:#2563eb;--err:#fca5a5;--card:#1f2937}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font:1.0625rem/1.55 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\
main{max-width:40rem;margin:0 auto;padding:2.5rem 1.25rem 3rem}\
h1{font-size:1.75rem;line-height:1.25;margin:.25rem 0 .75rem}\
h2{font-size:1.125rem;margin:2rem 0 .5rem}\
.kicker{margin:0;color:var(--mute);font-size:.875rem;font-weight:600;letter-spacing:.06em;text-transform:uppercase}\
.lead{font-size:1.125rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}\
dt{color:var(--mute)}dd{margin:0;min-width:0}\
code{font:.9em ui-monospace,'DejaVu Sans Mono',monospace;overflow-wrap:anywhere}\
.price{font-size:1.375rem;font-weight:700;margin:.25rem 0}\
fieldset{border:1px solid var(--line);border-radius:.5rem;padding:.5rem 1rem}\
label{display:block;padding:.35rem 0;font-weight:600}\
.note,.fine{color:var(--mute)}.fine{font-size:.875rem;margin-top:2rem}\
button{font:inherit;font-weight:700;color:#fff;background:var(--acc);border:0;border-radius:.5rem;padding:.8rem 1.5rem;cursor:pointer}\
button:disabled{opacity:.6;cursor:progress}\
:focus-visible{outline:3px solid var(--acc);outline-offset:3px}\
a{color:inherit}\
#x402-status:not(:empty){background:var(--card);border-left:4px solid var(--acc);padding:.6rem .9rem}\
#x402-status.err{border-color:var(--err);color:var(--err)}\
";

/// The page's script: src/paywall-page.js as esbuild minifies it (`scripts/build` writes the
/// minified file from the source, which is what to read and change).
const SCRIPT: &str = include_str!("paywall-page.min.js");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

    fn config(route: serde_json::Value, accepts: serde_json::Value) -> Config {
        let v = json!({
            "payTo": PAY_TO,
            "accepts": accepts,
            "facilitator": {"url": "http://127.0.0.1:4021/"},
            "routes": [route],
        });
        Config::from_json(&v.to_string()).expect("valid config")
    }

    fn one(route: serde_json::Value) -> Config {
        config(route, json!(["eip155:84532"]))
    }

    fn page(c: &Config) -> String {
        let route = &c.routes[0];
        render(
            route,
            "https://news.example/articles/hello",
            "eyJ4IjoxfQ==",
            "",
        )
    }

    #[test]
    fn says_what_it_is_and_what_it_costs() {
        let c = one(
            json!({"path": "/articles/*", "price": "$0.01", "description": "One article",
                           "mimeType": "text/html",
                           "session": {"scope": "/articles/*", "seconds": 3600}}),
        );
        let p = page(&c);
        assert!(p.starts_with("<!doctype html>\n<html lang=\"en\">"));
        assert!(p.contains("<title>Payment required: One article</title>"));
        assert!(p.contains("<main>") && p.contains("<h1>One article</h1>"));
        assert!(p.contains(">$0.01 USDC on Base Sepolia</p>"), "{p}");
        assert!(p.contains("<code>https://news.example/articles/hello</code>"));
        assert!(p.contains("Pay with your wallet</button>"));
        assert!(p.contains("<noscript>"));
        assert!(p.contains("aria-live=\"polite\""));
        assert!(p.contains("Base Sepolia is a test network"));
        assert!(p.contains("matching <code>/articles/*</code> for 1 hour"));
        assert!(p.contains("data-terms=\"eyJ4IjoxfQ==\""));
        assert!(p.contains(PAY_TO));
        // Nothing from elsewhere: no external script, style, image or font.
        for external in ["src=", "<link", "@import", "url("] {
            assert!(!p.contains(external), "{external}");
        }
    }

    #[test]
    fn hostile_descriptions_are_escaped() {
        let evil = "</script><script>alert(\"x\")</script>'\"&<b>";
        let c = one(json!({"path": "/a", "price": "$0.01", "description": evil,
                           "mimeType": "text/html\"><img src=x onerror=alert(1)>"}));
        let route = &c.routes[0];
        let p = render(
            route,
            "https://x.example/a?q=\"><script>alert(1)</script>",
            "\"><script>alert(2)</script>",
            "</p><script>alert(3)</script>",
        );
        // The only script element is ours, and it is the last thing on the page.
        assert_eq!(p.matches("<script").count(), 1, "{p}");
        assert_eq!(p.matches("</script>").count(), 1);
        assert!(p.contains("<script>(function(){"));
        assert!(!p.contains("<img"));
        assert!(!p.contains("<b>"));
        assert!(p.contains(
            "&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&quot;&amp;&lt;b&gt;"
        ));
        assert!(p.contains("data-terms=\"&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;\""));
        // And the script itself cannot be closed early by anything we embed.
        assert!(!SCRIPT.contains("</"));
        assert_eq!(esc("a'b\"c<d>e&f"), "a&#39;b&quot;c&lt;d&gt;e&amp;f");
    }

    #[test]
    fn prices_are_exact() {
        let amount = |s: &str| U256::from_dec_str(s).unwrap();
        assert_eq!(format_units(&amount("10000"), 6), "0.01");
        assert_eq!(format_units(&amount("5000"), 6), "0.005");
        assert_eq!(format_units(&amount("1"), 6), "0.000001");
        assert_eq!(format_units(&amount("1000000"), 6), "1.00");
        assert_eq!(format_units(&amount("1234500000"), 6), "1,234.50");
        assert_eq!(format_units(&amount("0"), 6), "0.00");
        assert_eq!(format_units(&amount("10000000000000000"), 18), "0.01");
        assert_eq!(format_units(&amount("1234567"), 0), "1,234,567");
        assert_eq!(format_units(&amount("5"), 1), "0.5");
        assert_eq!(
            format_units(&U256::MAX, 6),
            "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457,584,007,913,129.639935"
        );

        let c = config(
            json!({"path": "/a", "price": "$0.005"}),
            json!(["eip155:8453", "eip155:84532", "eip155:421614"]),
        );
        let prices: Vec<String> = c.routes[0].offers.iter().map(price).collect();
        assert_eq!(
            prices,
            [
                "$0.005 USDC on Base",
                "$0.005 USDC on Base Sepolia",
                "$0.005 USDC on Arbitrum Sepolia"
            ]
        );
        assert_eq!(network_label(31337), "chain 31337");
        assert_eq!(network_label(137), "Polygon");
        let p = page(&c);
        assert_eq!(p.matches("type=\"radio\"").count(), 3);
        assert_eq!(p.matches(" checked").count(), 1);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(3600), "1 hour");
        assert_eq!(duration(5400), "90 minutes");
        assert_eq!(duration(172_800), "2 days");
        assert_eq!(duration(45), "45 seconds");
        assert_eq!(duration(1), "1 second");
    }

    #[test]
    fn the_page_is_small() {
        let c = config(
            json!({"path": "/articles/*", "price": "$0.01",
                   "description": "A long description of what this is. ".repeat(6),
                   "mimeType": "text/html",
                   "session": {"scope": "/articles/*", "requests": 10}}),
            json!(["eip155:8453", "eip155:84532", "eip155:137", "eip155:42161"]),
        );
        let terms = "A".repeat(2400); // a PAYMENT-REQUIRED header of four offers
        let p = render(
            &c.routes[0],
            "https://news.example/articles/a-rather-long-slug-for-an-article",
            &terms,
            "This resource costs money: pay with one of the offers in the PAYMENT-REQUIRED header.",
        );
        let without_terms = p.len() - terms.len();
        assert!(without_terms < 12 * 1024, "{without_terms} bytes");
        // One offer, with the real header of one offer (about 700 bytes).
        let c = one(json!({"path": "/a", "price": "$0.01", "description": "One article"}));
        let reply = crate::paywall::challenge(
            &c.routes[0],
            "https://news.example/articles/hello",
            &crate::reason::Reason::PaymentRequired.into(),
            None,
        );
        let single = for_browser(reply, &c.routes[0], "https://news.example/articles/hello");
        assert!(single.body.len() < 11 * 1024, "{} bytes", single.body.len());
    }

    #[test]
    fn browsers_are_told_apart() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/148 Safari/537.36";
        let nav = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(is_browser(Some(nav), Some(chrome)));
        assert!(!is_browser(Some("*/*"), Some(chrome)));
        assert!(!is_browser(Some(nav), Some("curl/8.5.0")));
        assert!(!is_browser(None, Some(chrome)));
        assert!(!is_browser(Some(nav), None));
    }

    #[test]
    fn a_challenge_becomes_the_page_and_keeps_its_terms() {
        use crate::reason::Reason;
        let c = one(json!({"path": "/a", "price": "$0.01", "description": "A"}));
        let route = &c.routes[0];
        let url = "https://x.example/a";
        let challenge =
            crate::paywall::challenge(route, url, &Reason::PaymentRequired.into(), None);
        let terms = challenge
            .headers
            .iter()
            .find(|(k, _)| *k == x402::PAYMENT_REQUIRED)
            .unwrap()
            .1
            .clone();
        let paged = for_browser(challenge.clone(), route, url);
        assert_eq!(paged.status, 402);
        assert!(paged
            .headers
            .contains(&(x402::PAYMENT_REQUIRED, terms.clone())));
        assert!(paged
            .headers
            .contains(&("Content-Type", CONTENT_TYPE.into())));
        assert!(!paged
            .headers
            .contains(&("Content-Type", "application/json".into())));
        assert!(paged
            .body
            .contains(&format!("data-terms=\"{}\"", esc(&terms))));
        assert!(!paged.body.contains("Why you see this page"));
        // A refused session says why.
        let refusal = crate::reason::Refusal::new(
            Reason::SessionRefused,
            "session_token_expired: the session token expired",
        );
        let expired = crate::paywall::challenge(route, url, &refusal, None);
        let paged = for_browser(expired, route, url);
        assert!(paged.body.contains(
            "Why you see this page: The session proof was refused, so this request needs a \
             payment. (session_token_expired: the session token expired)"
        ));
        // A preflight, or anything without terms, is left alone.
        let pre = crate::paywall::preflight();
        assert_eq!(for_browser(pre.clone(), route, url), pre);
    }

    #[test]
    fn the_policy_pins_the_page_s_own_blocks() {
        let p = page(&one(json!({"path": "/a", "price": "$0.01"})));
        assert!(p.contains(&format!("<script>{}</script>", SCRIPT)));
        assert!(p.contains(&format!("<style>{CSS}</style>")));
        for handler in [" onclick=", " onload=", " onerror=", "javascript:"] {
            assert!(!p.contains(handler), "{handler}");
        }
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(csp.contains(&csp_hash(SCRIPT)) && csp.contains(&csp_hash(CSS)));
    }
}
