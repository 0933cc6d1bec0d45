//! Who is asking: a person with a browser, a crawler, or an agent (a program acting for someone
//! right now, or a script).
//!
//! # Order of trust
//!
//! 1. **Verified Web Bot Auth** ([`Evidence::WebBotAuth`], strong). [`Class::Crawler`], unless the
//!    signing agent is a user-directed agent: its `Signature-Agent` host is in
//!    [`KNOWN_AGENT_HOSTS`] (or a subdomain of one), the publisher lists the signer as an agent
//!    ([`ClassifyInput::agent_signers`]), or Cloudflare puts the same request in an agent
//!    category (below). The User-Agent is *not* consulted: a verified signer cannot pick
//!    its class by changing a header it does not sign.
//! 2. **Cloudflare verified bot** (`cf.botManagement.verifiedBot`, [`Evidence::CloudflareVerifiedBot`],
//!    strong). [`Class::Agent`] for the categories that fetch because a person just asked
//!    (`AI Assistant`, `Page Preview`, `Webhooks`, `Accessibility`, and any category naming an
//!    agent), [`Class::Crawler`] for everything else, including `AI Crawler`, `AI Search` and
//!    `Search Engine Crawler`: those fetch ahead of any request, to build an index or a corpus.
//! 3. **Declared User-Agent of a known bot** ([`Evidence::DeclaredUserAgent`], weak): the AI
//!    crawlers (`GPTBot`, `ClaudeBot`, `CCBot`, …) are crawlers; their user-triggered fetchers
//!    (`ChatGPT-User`, `Claude-User`, `Perplexity-User`, …) are agents; then generic `…bot/`,
//!    `crawler`, `spider` UAs are crawlers.
//! 4. **Scripts and HTTP libraries** (`curl`, `python-requests`, `node`/`undici`, `Go-http-client`,
//!    `axios`, headless browsers, …) are agents ([`Evidence::DeclaredUserAgent`], weak).
//! 5. **A browser**: a `Mozilla/` UA that accepts `text/html` is [`Class::Human`]
//!    ([`Evidence::BrowserHeuristic`], weak), unless Cloudflare's bot score says automated
//!    (`score < 30`), which makes it an agent with [`Evidence::None`].
//! 6. Anything else (no UA, a browser UA fetching JSON, an unknown string) is an agent with
//!    [`Evidence::None`].
//!
//! # The rule the shell applies: a claim can only make a request pay more
//!
//! Only [`is_strong`] evidence (a verified signature, or Cloudflare's verification) may make a
//! request *cheaper or more allowed* than an unknown client. Weak evidence is a claim anyone can
//! type, so for a weak class the shell takes the **stricter** of the policy for the claimed class
//! and the policy for an unknown agent ([`Class::Agent`] with [`Evidence::None`]): the higher
//! price, and blocked if either blocks. A UA that says "GPTBot" may therefore be charged the
//! crawler price if that is higher, but never let in cheaper than an anonymous script.
//!
//! The one exception is people: "claims to be a browser" is treated no better than "unknown"
//! **unless the route allows humans by heuristic** (its configuration opts in to serving the
//! [`Class::Human`] policy, e.g. a free or HTML-paywall page, on [`Evidence::BrowserHeuristic`]).
//! A publisher who opts in accepts that a script can pretend to be a browser for that route.

use super::wba::VerifiedAgent;

/// What kind of client is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A person with a browser.
    Human,
    /// A program that fetches ahead of any user request (indexing, training, archiving).
    Crawler,
    /// A program acting for someone now (an AI assistant's fetch, a script, an API client), or
    /// anything unidentified.
    Agent,
}

/// Why [`classify`] chose its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A verified Web Bot Auth signature from this agent (host of its `Signature-Agent`).
    WebBotAuth {
        /// [`VerifiedAgent::agent`].
        agent: String,
    },
    /// Cloudflare verified the bot (`cf.botManagement.verifiedBot`).
    CloudflareVerifiedBot {
        /// `cf.verifiedBotCategory`, if Cloudflare gave one.
        category: Option<String>,
    },
    /// The User-Agent names a known bot, fetcher or HTTP library.
    DeclaredUserAgent {
        /// The canonical name of what was matched (`GPTBot`, `curl`, …).
        name: &'static str,
    },
    /// A browser-looking User-Agent that accepts HTML.
    BrowserHeuristic,
    /// Nothing identifies the client.
    None,
}

/// Cloudflare's bot fields from `request.cf`, when the zone has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudflareBot {
    /// `cf.botManagement.verifiedBot`.
    pub verified_bot: bool,
    /// `cf.verifiedBotCategory` (e.g. `"AI Crawler"`, `"Search Engine Crawler"`).
    pub verified_bot_category: Option<String>,
    /// `cf.botManagement.score` (1 = automated … 99 = human).
    pub score: Option<u8>,
}

/// What [`classify`] looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassifyInput<'a> {
    /// The outcome of Web Bot Auth, if the request carried a signature that verified.
    pub web_bot_auth: Option<&'a VerifiedAgent>,
    /// Cloudflare's bot fields, if present.
    pub cloudflare: Option<&'a CloudflareBot>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The `Accept` header.
    pub accept: Option<&'a str>,
    /// Signers the publisher classes as agents (`agentSigners`, as [`signer_trusted`] reads them).
    pub agent_signers: &'a [String],
}

/// Hosts (and their subdomains) of Web Bot Auth signers that act for a user in real time.
/// `chatgpt.com` is ChatGPT's agent mode, which signs with `Signature-Agent: "https://chatgpt.com"`.
pub const KNOWN_AGENT_HOSTS: &[&str] = &["chatgpt.com"];

/// Cloudflare bot scores below this are "automated" or "likely automated".
pub const AUTOMATED_SCORE_BELOW: u8 = 30;

/// Whether the evidence is cryptographic or Cloudflare's own verification, i.e. may make a
/// request cheaper or more allowed than an unknown client. See the module notes.
pub fn is_strong(evidence: &Evidence) -> bool {
    matches!(
        evidence,
        Evidence::WebBotAuth { .. } | Evidence::CloudflareVerifiedBot { .. }
    )
}

/// Classifies a request. See the module notes for the order of trust.
pub fn classify(input: &ClassifyInput<'_>) -> (Class, Evidence) {
    let cf_verified = input.cloudflare.filter(|cf| cf.verified_bot);
    let cf_agent = cf_verified
        .and_then(|cf| cf.verified_bot_category.as_deref())
        .is_some_and(is_agent_category);

    if let Some(agent) = input.web_bot_auth {
        // Listed as `trustSigners` lists it: by host, or by URL for a key set named by URL.
        let listed = signer_trusted(
            &agent.agent,
            agent.key_set_url.as_deref(),
            input.agent_signers,
        );
        let class = if is_known_agent_host(&agent.agent) || cf_agent || listed {
            Class::Agent
        } else {
            Class::Crawler
        };
        return (
            class,
            Evidence::WebBotAuth {
                agent: agent.agent.clone(),
            },
        );
    }

    if let Some(cf) = cf_verified {
        let class = if cf_agent {
            Class::Agent
        } else {
            Class::Crawler
        };
        return (
            class,
            Evidence::CloudflareVerifiedBot {
                category: cf.verified_bot_category.clone(),
            },
        );
    }

    let ua = input.user_agent.map(str::trim).unwrap_or("");
    if ua.is_empty() {
        return (Class::Agent, Evidence::None);
    }
    let lower = ua.to_ascii_lowercase();

    if let Some((name, class)) = declared_bot(&lower) {
        return (class, Evidence::DeclaredUserAgent { name });
    }
    if let Some(name) = declared_script(&lower) {
        return (Class::Agent, Evidence::DeclaredUserAgent { name });
    }

    let accepts_html = input
        .accept
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
    if lower.starts_with("mozilla/") && accepts_html {
        let automated = input
            .cloudflare
            .and_then(|cf| cf.score)
            .is_some_and(|s| s < AUTOMATED_SCORE_BELOW);
        if automated {
            return (Class::Agent, Evidence::None);
        }
        return (Class::Human, Evidence::BrowserHeuristic);
    }
    (Class::Agent, Evidence::None)
}

fn is_known_agent_host(agent: &str) -> bool {
    let agent = agent.to_ascii_lowercase();
    let (host, _) = split_port(&agent);
    KNOWN_AGENT_HOSTS.iter().any(|known| within(host, known))
}

/// Whether a Web Bot Auth signer is one the publisher trusts (`trustSigners`, as the
/// configuration keeps them). `agent` is the signer's `host[:port]`, as in
/// [`VerifiedAgent::agent`]; `jwks` is the key set's URL when the `Signature-Agent` named one
/// (`type=jwks_uri`) instead of a directory at its host's well-known path.
///
/// - An entry `host` covers that host, on any port; `host:port` only that port.
/// - `*.host` covers its subdomains (not the host itself): a host's subdomains may be other
///   people's (customer sites, user pages), so they are trusted only when written so.
/// - A key set named by URL is trusted only when that URL is an entry itself: a host serves
///   many paths, some of them perhaps someone else's files, while its well-known directory is
///   its own.
///
/// Anyone can publish a key directory, so a signature proves only who signed; it is worth
/// something only from a signer on this list.
pub fn signer_trusted(agent: &str, jwks: Option<&str>, trusted: &[String]) -> bool {
    if let Some(url) = jwks {
        return trusted
            .iter()
            .any(|entry| entry.contains("://") && same_url(entry, url));
    }
    let agent = agent.to_ascii_lowercase();
    let (host, port) = split_port(&agent);
    trusted
        .iter()
        .filter(|entry| !entry.contains("://"))
        .any(|entry| {
            let (trusted_host, trusted_port) = split_port(entry);
            let host_ok = match trusted_host.strip_prefix("*.") {
                Some(parent) => host != parent && within(host, parent),
                None => host == trusted_host,
            };
            (trusted_port.is_none() || trusted_port == port) && host_ok
        })
}

/// Whether two URLs are the same: scheme and authority in any case, the rest exactly.
fn same_url(a: &str, b: &str) -> bool {
    fn split(url: &str) -> (&str, &str) {
        let start = url.find("://").map_or(0, |i| i + 3);
        let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        url.split_at(end)
    }
    let ((a_origin, a_rest), (b_origin, b_rest)) = (split(a), split(b));
    a_origin.eq_ignore_ascii_case(b_origin) && a_rest == b_rest
}

/// `host[:port]` split at a port made of digits.
fn split_port(agent: &str) -> (&str, Option<&str>) {
    match agent.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (agent, None),
    }
}

/// Whether `host` is `parent` or one of its subdomains.
fn within(host: &str, parent: &str) -> bool {
    host == parent
        || host
            .strip_suffix(parent)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// Whether a Cloudflare verified-bot category is one of programs fetching for a person now.
fn is_agent_category(category: &str) -> bool {
    let norm: String = category
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(
        norm.as_str(),
        "aiassistant" | "pagepreview" | "webhooks" | "webhook" | "accessibility"
    ) || norm.contains("agent")
}

/// Known bots by User-Agent substring (lowercase), most specific first.
const BOTS: &[(&str, &str, Class)] = &[
    // User-triggered fetchers of AI products: agents.
    ("chatgpt-user", "ChatGPT-User", Class::Agent),
    ("claude-user", "Claude-User", Class::Agent),
    ("perplexity-user", "Perplexity-User", Class::Agent),
    ("mistralai-user", "MistralAI-User", Class::Agent),
    ("meta-externalfetcher", "meta-externalfetcher", Class::Agent),
    ("duckassistbot", "DuckAssistBot", Class::Agent),
    ("google-notebooklm", "Google-NotebookLM", Class::Agent),
    ("facebookexternalhit", "facebookexternalhit", Class::Agent),
    (
        "slackbot-linkexpanding",
        "Slackbot-LinkExpanding",
        Class::Agent,
    ),
    ("discordbot", "Discordbot", Class::Agent),
    // AI crawlers.
    ("gptbot", "GPTBot", Class::Crawler),
    ("oai-searchbot", "OAI-SearchBot", Class::Crawler),
    ("claudebot", "ClaudeBot", Class::Crawler),
    ("claude-searchbot", "Claude-SearchBot", Class::Crawler),
    ("claude-web", "Claude-Web", Class::Crawler),
    ("anthropic-ai", "anthropic-ai", Class::Crawler),
    ("ccbot", "CCBot", Class::Crawler),
    ("perplexitybot", "PerplexityBot", Class::Crawler),
    ("google-extended", "Google-Extended", Class::Crawler),
    (
        "google-cloudvertexbot",
        "Google-CloudVertexBot",
        Class::Crawler,
    ),
    ("bytespider", "Bytespider", Class::Crawler),
    ("amazonbot", "Amazonbot", Class::Crawler),
    ("applebot-extended", "Applebot-Extended", Class::Crawler),
    ("applebot", "Applebot", Class::Crawler),
    ("meta-externalagent", "meta-externalagent", Class::Crawler),
    ("facebookbot", "FacebookBot", Class::Crawler),
    (
        "cohere-training-data-crawler",
        "cohere-training-data-crawler",
        Class::Crawler,
    ),
    ("cohere-ai", "cohere-ai", Class::Crawler),
    ("diffbot", "Diffbot", Class::Crawler),
    ("youbot", "YouBot", Class::Crawler),
    ("ai2bot", "AI2Bot", Class::Crawler),
    ("timpibot", "Timpibot", Class::Crawler),
    ("imagesiftbot", "ImagesiftBot", Class::Crawler),
    ("omgilibot", "Omgilibot", Class::Crawler),
    ("petalbot", "PetalBot", Class::Crawler),
    ("firecrawl", "Firecrawl", Class::Crawler),
    ("scrapy", "Scrapy", Class::Crawler),
    // Search engines and archives.
    ("googlebot", "Googlebot", Class::Crawler),
    ("bingbot", "bingbot", Class::Crawler),
    ("duckduckbot", "DuckDuckBot", Class::Crawler),
    ("yandexbot", "YandexBot", Class::Crawler),
    ("baiduspider", "Baiduspider", Class::Crawler),
    ("ia_archiver", "ia_archiver", Class::Crawler),
];

fn declared_bot(lower: &str) -> Option<(&'static str, Class)> {
    if let Some((_, name, class)) = BOTS.iter().find(|(needle, _, _)| lower.contains(needle)) {
        return Some((name, *class));
    }
    let generic = ["bot/", "bot;", "crawler", "spider"]
        .iter()
        .any(|needle| lower.contains(needle));
    generic.then_some(("generic-bot", Class::Crawler))
}

/// HTTP libraries, command-line tools and headless browsers, by lowercase substring.
const SCRIPTS: &[(&str, &str)] = &[
    ("curl/", "curl"),
    ("wget/", "Wget"),
    ("python-requests", "python-requests"),
    ("python-urllib", "python-urllib"),
    ("python-httpx", "python-httpx"),
    ("aiohttp", "aiohttp"),
    ("node-fetch", "node-fetch"),
    ("undici", "undici"),
    ("axios/", "axios"),
    ("got (", "got"),
    ("go-http-client", "Go-http-client"),
    ("okhttp", "okhttp"),
    ("apache-httpclient", "Apache-HttpClient"),
    ("java/", "Java"),
    ("libwww-perl", "libwww-perl"),
    ("postmanruntime", "PostmanRuntime"),
    ("insomnia", "insomnia"),
    ("reqwest", "reqwest"),
    ("deno/", "Deno"),
    ("bun/", "Bun"),
    ("dart/", "Dart"),
    ("ruby", "Ruby"),
    ("headlesschrome", "HeadlessChrome"),
    ("phantomjs", "PhantomJS"),
];

fn declared_script(lower: &str) -> Option<&'static str> {
    // Node's built-in fetch sends exactly "node".
    if lower == "node" {
        return Some("node");
    }
    SCRIPTS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, name)| *name)
}
