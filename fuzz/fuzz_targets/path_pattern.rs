//! Route patterns: `pattern::PathPattern::parse`, `matches` and `matches_formatted`.
//!
//! Input: `[mode] [selector] pattern 0xFF path`; the mode is unused.
//!
//! Invariants besides "no panic": every pattern that parses covers its own text; matching ignores
//! ASCII case, repeated slashes and percent-encoding of letters (the normalisation that keeps a
//! priced path from being walked around); `as_str` is the text parsed; what a pattern matches it
//! matches with a format suffix allowed, and a name it covers so stays covered with a suffix added.

#![no_main]

use libfuzzer_sys::fuzz_target;
use x402_edge::pattern::PathPattern;
use x402_edge_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let input = Framed::new(data);
    let f = input.strings();
    let pattern = f.first().cloned().unwrap_or_default();
    let path = f.get(1).cloned().unwrap_or_default();
    let Ok(p) = PathPattern::parse(&pattern) else {
        return;
    };
    assert_eq!(p.as_str(), pattern);
    assert!(
        p.matches(&pattern),
        "{pattern:?} does not cover its own text"
    );

    let m = p.matches(&path);
    let formatted = p.matches_formatted(&path);
    assert!(!m || formatted, "format: {pattern:?} {path:?}");
    if formatted && path.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        assert!(
            p.matches_formatted(&format!("{path}.json")),
            "suffix: {pattern:?} {path:?}"
        );
    }
    if path.is_ascii() {
        assert_eq!(
            m,
            p.matches(&path.to_ascii_uppercase()),
            "case: {pattern:?} {path:?}"
        );
        assert_eq!(
            m,
            p.matches(&path.to_ascii_lowercase()),
            "case: {pattern:?} {path:?}"
        );
    }
    assert_eq!(
        m,
        p.matches(&path.replace('/', "//")),
        "slashes: {pattern:?} {path:?}"
    );
    if !path.contains('%') {
        // Percent-encode every ASCII letter.
        let encoded: String = path
            .chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("%{:02X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect();
        assert_eq!(
            m,
            p.matches(&encoded),
            "escapes: {pattern:?} {path:?} {encoded:?}"
        );
    }
});
