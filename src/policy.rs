//! Who pays: a route's per-class policy applied to what is known of the client.
//!
//! The rule that makes lying useless: only strong evidence (a verified Web Bot Auth signature,
//! Cloudflare's own bot verdicts) may make a request cheaper or more welcome than an unknown
//! client. Weak evidence (a User-Agent naming a crawler or a browser) can only make it pay as much
//! or more: it gets the stricter of its claimed class's policy and the policy for agents, which is
//! what an unidentified client gets. The one exception is a publisher's explicit choice,
//! `trustBrowsers = true`, for "people read free" on sites without Cloudflare's bot verdicts.

use serde_json::Value;

use crate::config::{Access, AccessPolicy};
use crate::crawlers::{is_strong, Class, CloudflareBot, Evidence, AUTOMATED_SCORE_BELOW};

/// What happens to this request on a route with `policy`.
pub fn access(
    policy: &AccessPolicy,
    class: Class,
    evidence: &Evidence,
    cloudflare: Option<&CloudflareBot>,
) -> Access {
    let claimed = match class {
        Class::Human => policy.humans,
        Class::Crawler => policy.crawlers,
        Class::Agent => policy.agents,
    };
    if is_strong(evidence) {
        return claimed;
    }
    let cloudflare_says_human = cloudflare
        .and_then(|cf| cf.score)
        .is_some_and(|s| s >= AUTOMATED_SCORE_BELOW);
    if class == Class::Human && (policy.trust_browsers || cloudflare_says_human) {
        return claimed;
    }
    claimed.max(policy.agents)
}

/// Cloudflare's bot fields from `request.cf`, when the zone has Bot Management.
pub fn cloudflare_bot(cf: &Value) -> Option<CloudflareBot> {
    let bm = cf.get("botManagement");
    let category = cf
        .get("verifiedBotCategory")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if bm.is_none() && category.is_none() {
        return None;
    }
    Some(CloudflareBot {
        verified_bot: bm
            .and_then(|b| b.get("verifiedBot"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        verified_bot_category: category,
        score: bm
            .and_then(|b| b.get("score"))
            .and_then(Value::as_u64)
            .and_then(|s| u8::try_from(s).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(humans: Access, crawlers: Access, agents: Access, trust: bool) -> AccessPolicy {
        AccessPolicy {
            humans,
            crawlers,
            agents,
            trust_browsers: trust,
        }
    }

    #[test]
    fn weak_claims_never_pay_less() {
        use Access::*;
        let bots_pay = policy(Allow, Charge, Charge, false);
        let wba = Evidence::WebBotAuth {
            agent: "crawler.example".into(),
        };
        let ua = Evidence::DeclaredUserAgent { name: "GPTBot" };
        assert_eq!(access(&bots_pay, Class::Crawler, &wba, None), Charge);
        assert_eq!(
            access(&bots_pay, Class::Human, &Evidence::BrowserHeuristic, None),
            Charge,
            "untrusted browser claim"
        );
        let trusted = policy(Allow, Charge, Charge, true);
        assert_eq!(
            access(&trusted, Class::Human, &Evidence::BrowserHeuristic, None),
            Allow
        );
        let cf = CloudflareBot {
            verified_bot: false,
            verified_bot_category: None,
            score: Some(80),
        };
        assert_eq!(
            access(
                &bots_pay,
                Class::Human,
                &Evidence::BrowserHeuristic,
                Some(&cf)
            ),
            Allow
        );
        // Crawlers allowed, agents charged: claiming GPTBot in the User-Agent gains nothing.
        let crawlers_free = policy(Charge, Allow, Charge, false);
        assert_eq!(access(&crawlers_free, Class::Crawler, &ua, None), Charge);
        assert_eq!(access(&crawlers_free, Class::Crawler, &wba, None), Allow);
        // Blocking applies to claims too: a weak claim gets the stricter.
        let block_crawlers = policy(Charge, Block, Charge, false);
        assert_eq!(access(&block_crawlers, Class::Crawler, &ua, None), Block);
    }

    #[test]
    fn reads_cloudflare_fields() {
        let cf = json!({"botManagement": {"verifiedBot": true, "score": 1}, "verifiedBotCategory": "AI Crawler"});
        let b = cloudflare_bot(&cf).unwrap();
        assert!(b.verified_bot);
        assert_eq!(b.score, Some(1));
        assert!(cloudflare_bot(&json!({"colo": "AMS"})).is_none());
    }
}
