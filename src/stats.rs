//! Publisher statistics: what was sold, by route and by day, and who bought it.
//!
//! Kept by one Durable Object for the whole Worker (the numbers a publisher looks at are small and
//! must add up exactly, which a single strongly consistent owner guarantees), fed one event per
//! paid request or session sold, off the request path. Revenue counts payments that were served:
//! for immediate routes those settled before the answer; for deferred routes those accepted, whose
//! settlement the ledgers track (a failed one shows there as owed). Amounts are micro-USD.

use crate::sorted::SortedMap;

use serde::Serialize;
use serde_json::Value;

use crate::evm::decimal;
use crate::json::{self, Fields, Read};

// u128 amounts travel as decimal strings (JavaScript would round numbers), as in the ledger.
use crate::settlement::dec;

/// How many days of history are kept, by the calendar: a day older than this many days before
/// the newest event is dropped for every route at once (each route's all-time figures stay).
pub const DAYS_KEPT: usize = 90;
/// How many payers are tracked for the top list.
pub const PAYERS_KEPT: usize = 500;
/// How many payers beyond [`PAYERS_KEPT`] are kept before the smallest are dropped.
pub const PAYERS_SLACK: usize = 100;

/// Something worth counting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A paid request was served.
    Payment {
        route: String,
        payer: String,
        #[serde(with = "dec")]
        amount_micro_usd: u128,
        deferred: bool,
        /// Unix seconds.
        at: u64,
    },
    /// A payment bought a session.
    Session {
        route: String,
        payer: String,
        at: u64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub payments: u64,
    #[serde(with = "dec")]
    pub revenue_micro_usd: u128,
    pub sessions: u64,
}

/// Everything counted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// route (its [`crate::config::Route::stats_name`]) → day (YYYY-MM-DD) → tally.
    pub by_route_day: SortedMap<SortedMap<Tally>>,
    /// route → tally since the first event: what a route earned is not lost with its days.
    pub by_route: SortedMap<Tally>,
    /// payer (lowercase) → tally.
    pub by_payer: SortedMap<Tally>,
    pub total: Tally,
    pub deferred_payments: u64,
    /// When the newest event counted happened (Unix seconds): days are kept up to
    /// [`DAYS_KEPT`] before it.
    pub latest: u64,
}

impl Read for Event {
    fn read(value: &Value) -> Result<Self, json::Error> {
        json::read_variant(value, &["payment", "session"], |name, f| {
            let (route, payer, at) = (f.get("route")?, f.get("payer")?, f.get("at")?);
            Ok(match name {
                "payment" => Event::Payment {
                    route,
                    payer,
                    amount_micro_usd: f.decimal("amount_micro_usd")?,
                    deferred: f.get("deferred")?,
                    at,
                },
                _ => Event::Session { route, payer, at },
            })
        })
    }
}

impl Read for Tally {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        Ok(Tally {
            payments: f.get("payments")?,
            revenue_micro_usd: f.decimal("revenue_micro_usd")?,
            sessions: f.get("sessions")?,
        })
    }
}

impl Read for Stats {
    fn read(value: &Value) -> Result<Self, json::Error> {
        let f = Fields::new(value)?;
        let by_route_day: SortedMap<SortedMap<Tally>> = f.get("by_route_day")?;
        // Tallies stored before routes had all-time figures: their kept days are all there is.
        let by_route = match f.maybe("by_route")? {
            Some(r) => r,
            None => {
                let mut all = SortedMap::new();
                for (route, days) in by_route_day.iter() {
                    let sum = all.or_default(route);
                    days.iter().for_each(|(_, t)| add(sum, t));
                }
                all
            }
        };
        Ok(Stats {
            by_route_day,
            by_route,
            by_payer: f.get("by_payer")?,
            total: f.get("total")?,
            deferred_payments: f.get("deferred_payments")?,
            latest: f.or_default("latest")?,
        })
    }
}

impl Stats {
    pub fn record(&mut self, event: &Event) {
        self.record_by(event, u64::MAX);
    }

    /// Counts an event, its time taken as `clock` at the latest (a sender's clock far ahead
    /// would otherwise push every kept day out). A day older than the kept ones counts in the
    /// all-time figures only.
    pub fn record_by(&mut self, event: &Event, clock: u64) {
        let (route, payer, at) = match event {
            Event::Payment {
                route, payer, at, ..
            }
            | Event::Session { route, payer, at } => (route, payer, *at),
        };
        let at = at.min(clock);
        self.latest = self.latest.max(at);
        let day = day_of(at);
        if day >= self.first_day() {
            apply(self.by_route_day.or_default(route).or_default(&day), event);
        }
        apply(self.by_route.or_default(route), event);
        apply(self.by_payer.or_default(&payer.to_ascii_lowercase()), event);
        apply(&mut self.total, event);
        if let Event::Payment { deferred: true, .. } = event {
            self.deferred_payments = self.deferred_payments.saturating_add(1);
        }
        self.trim();
    }

    /// The first day kept.
    fn first_day(&self) -> String {
        day_of(self.latest.saturating_sub(86_400 * (DAYS_KEPT as u64 - 1)))
    }

    /// Keeps the stored value small: the last [`DAYS_KEPT`] days up to the newest event, the
    /// [`PAYERS_KEPT`] biggest payers.
    fn trim(&mut self) {
        let first = self.first_day();
        self.by_route_day.retain(|_, days| {
            days.retain(|day, _| day >= first.as_str());
            !days.is_empty()
        });
        // Trimmed only once well over: a payer new to the list is not dropped at its first
        // payment, whatever its size, and has the time of many others' to climb.
        if self.by_payer.len() > PAYERS_KEPT + PAYERS_SLACK {
            let mut ranked: Vec<(String, u128)> = self
                .by_payer
                .iter()
                .map(|(k, t)| (k.clone(), t.revenue_micro_usd))
                .collect();
            crate::sorted::sort_by_order(&mut ranked, |r| (u128::MAX - r.1, 0, 0));
            for (k, _) in ranked.into_iter().skip(PAYERS_KEPT) {
                self.by_payer.remove(&k);
            }
        }
    }

    /// The publisher's view: totals, per route, per day, top payers.
    pub fn view(&self, top: usize) -> serde_json::Value {
        // Highest revenue first; ties by address, the map's own order.
        let mut payers: Vec<(&String, &Tally)> = self.by_payer.iter().collect();
        crate::sorted::sort_by_order(&mut payers, |p| (u128::MAX - p.1.revenue_micro_usd, 0, 0));
        let mut days: SortedMap<Tally> = SortedMap::new();
        let none = SortedMap::new();
        let routes: Vec<serde_json::Value> = self
            .by_route
            .iter()
            .map(|(route, sum)| {
                let by_day = self.by_route_day.get(route).unwrap_or(&none);
                for (day, t) in by_day.iter() {
                    add(days.or_default(day), t);
                }
                serde_json::json!({
                    "route": route,
                    "payments": sum.payments,
                    "revenueMicroUsd": decimal(sum.revenue_micro_usd),
                    "revenue": usd(sum.revenue_micro_usd),
                    "sessions": sum.sessions,
                    "days": by_day.iter().map(|(d, t)| day_json(d, t)).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "payments": self.total.payments,
            "deferredPayments": self.deferred_payments,
            "revenueMicroUsd": decimal(self.total.revenue_micro_usd),
            "revenue": usd(self.total.revenue_micro_usd),
            "sessionsSold": self.total.sessions,
            "routes": routes,
            "days": days.iter().map(|(d, t)| day_json(d, t)).collect::<Vec<_>>(),
            "topPayers": payers.iter().take(top).map(|(p, t)| serde_json::json!({
                "payer": p,
                "payments": t.payments,
                "revenueMicroUsd": decimal(t.revenue_micro_usd),
                "revenue": usd(t.revenue_micro_usd),
                "sessions": t.sessions,
            })).collect::<Vec<_>>(),
        })
    }
}

fn apply(t: &mut Tally, event: &Event) {
    match event {
        Event::Payment {
            amount_micro_usd, ..
        } => {
            t.payments = t.payments.saturating_add(1);
            t.revenue_micro_usd = t.revenue_micro_usd.saturating_add(*amount_micro_usd);
        }
        Event::Session { .. } => t.sessions = t.sessions.saturating_add(1),
    }
}

fn add(into: &mut Tally, t: &Tally) {
    into.payments = into.payments.saturating_add(t.payments);
    into.revenue_micro_usd = into.revenue_micro_usd.saturating_add(t.revenue_micro_usd);
    into.sessions = into.sessions.saturating_add(t.sessions);
}

fn day_json(day: &str, t: &Tally) -> serde_json::Value {
    serde_json::json!({
        "day": day,
        "payments": t.payments,
        "revenueMicroUsd": decimal(t.revenue_micro_usd),
        "revenue": usd(t.revenue_micro_usd),
        "sessions": t.sessions,
    })
}

/// Micro-USD as dollars with cents and more when needed: `$0.015`, `$12.00`. The ledger's six
/// decimals ([`crate::settlement::usd`]), cut after the last digit that is not zero, but never
/// to fewer than two.
pub fn usd(micro: u128) -> String {
    let six = crate::settlement::usd(micro);
    let keep = six.trim_end_matches('0').len().max(six.len() - 4);
    format!("${}", &six[..keep])
}

/// The UTC day of a unix time, `YYYY-MM-DD`.
pub fn day_of(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pay(route: &str, payer: &str, micro: u128, at: u64) -> Event {
        Event::Payment {
            route: route.into(),
            payer: payer.into(),
            amount_micro_usd: micro,
            deferred: false,
            at,
        }
    }

    #[test]
    fn adds_up_to_the_cent() {
        let mut s = Stats::default();
        let day1 = 1_763_700_000; // 2025-11-21
        s.record(&pay("/a/*", "0xAA", 10_000, day1));
        s.record(&pay("/a/*", "0xaa", 10_000, day1 + 60));
        s.record(&pay("/b", "0xbb", 5_000, day1 + 86_400));
        s.record(&Event::Session {
            route: "/a/*".into(),
            payer: "0xaa".into(),
            at: day1,
        });
        let v = s.view(10);
        assert_eq!(v["payments"], 3);
        assert_eq!(v["revenue"], "$0.025");
        assert_eq!(v["sessionsSold"], 1);
        assert_eq!(v["routes"][0]["revenue"], "$0.02");
        assert_eq!(v["days"][0]["day"], "2025-11-21");
        assert_eq!(v["days"][1]["day"], "2025-11-22");
        assert_eq!(v["topPayers"][0]["payer"], "0xaa");
        assert_eq!(v["topPayers"][0]["payments"], 2);
        let back: Stats = json::parse(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// Days are dropped by the calendar, for every route at once; what a route earned in all is
    /// kept, so routes add up to the totals however old their payments.
    #[test]
    fn routes_keep_their_all_time_figures_when_their_days_go() {
        let mut s = Stats::default();
        let day1 = 1_763_700_000; // 2025-11-21
        s.record(&pay("/old", "0xaa", 7_000, day1));
        s.record(&pay("GET /a", "0xaa", 1_000, day1 + 86_400));
        s.record(&pay("POST /a", "0xbb", 5_000, day1 + 86_400 * 89));
        let v = s.view(10);
        assert_eq!(v["days"].as_array().unwrap().len(), 3);
        // Ninety days after the first payment, its day goes; /old is still counted.
        s.record(&pay("GET /a", "0xbb", 2_000, day1 + 86_400 * 90));
        let v = s.view(10);
        let routes: Vec<(&str, &str, usize)> = v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let days = r["days"].as_array().unwrap().len();
                (
                    r["route"].as_str().unwrap(),
                    r["revenueMicroUsd"].as_str().unwrap(),
                    days,
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                ("/old", "7000", 0),
                ("GET /a", "3000", 2),
                ("POST /a", "5000", 1)
            ]
        );
        assert_eq!(v["revenueMicroUsd"], "15000");
        let days: Vec<&str> = v["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["day"].as_str().unwrap())
            .collect();
        assert_eq!(days, ["2025-11-22", "2026-02-18", "2026-02-19"]);
        let back: Stats = json::parse(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // A late event from a day no longer kept counts in all but the days.
        s.record(&pay("/old", "0xaa", 1_000, day1));
        let v = s.view(10);
        assert_eq!(v["routes"][0]["revenueMicroUsd"], "8000");
        assert_eq!(v["routes"][0]["days"].as_array().unwrap().len(), 0);
        assert_eq!(v["days"][0]["day"], "2025-11-22");
        // A sender's clock far ahead is taken as the receiver's: no day is pushed out by it.
        s.record_by(
            &pay("/old", "0xaa", 1_000, u64::MAX / 2),
            day1 + 86_400 * 90,
        );
        let days = s.view(10)["days"].as_array().unwrap().len();
        assert_eq!(days, 3);
        // Stored before routes had all-time figures: their kept days are what they earned.
        let old = r#"{"by_route_day":{"/a":{"2025-11-21":{"payments":2,"revenue_micro_usd":"30","sessions":1}}},
            "by_payer":{},"total":{"payments":2,"revenue_micro_usd":"30","sessions":1},"deferred_payments":0}"#;
        let old: Stats = json::parse(old).unwrap();
        assert_eq!(old.view(1)["routes"][0]["revenueMicroUsd"], "30");
        assert_eq!(old.view(1)["routes"][0]["payments"], 2);
    }

    /// With the list of payers full of big early payers, a small payer that keeps paying still
    /// climbs into it (it is not dropped at each payment), while one-off small payers go.
    #[test]
    fn a_new_payer_can_climb_a_full_list() {
        let mut s = Stats::default();
        for i in 0..PAYERS_KEPT {
            s.record(&pay("/a", &format!("0x{i:040x}"), 50_000, 7));
        }
        let regular = format!("0x{:040x}", 1u128 << 100);
        for n in 0..PAYERS_SLACK as u128 * 3 {
            s.record(&pay("/a", &regular, 10_000, 8));
            s.record(&pay("/a", &format!("0x{:040x}", (1u128 << 120) + n), 10, 8));
        }
        assert!(s.by_payer.len() <= PAYERS_KEPT + PAYERS_SLACK);
        assert_eq!(
            s.view(1)["topPayers"][0]["payer"],
            serde_json::json!(regular),
            "$3 in 300 payments: the biggest"
        );
        assert_eq!(s.view(1)["topPayers"][0]["payments"], 300);
    }

    /// A counter read back at its limit stays there instead of wrapping to zero (or panicking).
    #[test]
    fn counters_saturate() {
        let mut s = Stats::default();
        s.record(&pay("/a/*", "0xaa", u128::MAX, 7));
        let mut text = serde_json::to_value(&s).unwrap();
        text["total"]["payments"] = serde_json::json!(u64::MAX);
        let mut s: Stats = json::parse(&text.to_string()).unwrap();
        s.record(&pay("/a/*", "0xaa", 1, 8));
        assert_eq!(s.total.payments, u64::MAX);
        assert_eq!(s.total.revenue_micro_usd, u128::MAX);
    }

    #[test]
    fn events_read_back_as_written() {
        let events = vec![
            pay("/a/*", "0xaa", u128::from(u64::MAX) * 4, 7),
            Event::Session {
                route: "/s".into(),
                payer: "0xbb".into(),
                at: 9,
            },
        ];
        let text = serde_json::to_string(&events).unwrap();
        assert_eq!(json::parse::<Vec<Event>>(&text).unwrap(), events);
        let e = json::parse::<Event>(r#"{"refund":{"route":"/","payer":"0x","at":1}}"#);
        assert!(e
            .unwrap_err()
            .problem
            .starts_with("unknown variant \"refund\""));
        let e = json::parse::<Event>(r#"{"payment":{"route":"/","payer":"0x","at":1}}"#);
        assert_eq!(
            e.unwrap_err().to_string(),
            "payment.amount_micro_usd: missing"
        );
    }

    #[test]
    fn days_and_dollars() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400), "2000-02-29");
        assert_eq!(usd(12_000_000), "$12.00");
        assert_eq!(usd(1), "$0.000001");
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(15_000), "$0.015");
        assert_eq!(usd(10_010_000), "$10.01");
        assert_eq!(usd(123_456_789), "$123.456789");
        assert_eq!(usd(100_000), "$0.10");
        assert_eq!(usd(120_000), "$0.12");
        assert_eq!(usd(123_000), "$0.123");
        assert_eq!(
            usd(u128::MAX),
            format!("${}.{}", u128::MAX / 1_000_000, u128::MAX % 1_000_000)
        );
        assert_eq!(decimal(u128::MAX), u128::MAX.to_string());
    }
}
