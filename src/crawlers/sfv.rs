//! The part of RFC 8941 (Structured Field Values) that HTTP Message Signatures need: dictionaries,
//! inner lists, items with parameters, and canonical serialization of one member.
//!
//! Private to [`crate::crawlers`]. Every function returns an error instead of panicking; the parser
//! is a single forward pass over the bytes, a dictionary's repeated key is found by a binary
//! search, and an item has at most [`MAX_PARAMS`] parameters (a dictionary at most
//! [`MAX_MEMBERS`] members), so a header's cost does not grow with the square of its length; the
//! callers also bound the input in length.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::ops::Range;

/// Standard base64, with or without `=` padding on input (RFC 8941 §4.2.7 asks parsers to be
/// lenient about padding), canonical padded output.
const BYTES: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A bare item. Decimals are kept in thousandths (RFC 8941 allows at most three fractional digits
/// and twelve integer digits, so this is exact and fits in an `i64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bare {
    Integer(i64),
    Decimal(i64),
    String(String),
    Token(String),
    Bytes(Vec<u8>),
    Boolean(bool),
}

/// Parameters in order of first appearance; a repeated name overwrites the value in place.
pub(crate) type Params = Vec<(String, Bare)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub bare: Bare,
    pub params: Params,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    Item(Item),
    InnerList(Vec<Item>, Params),
}

/// One dictionary member, with the byte range of its value (inner list or item, parameters
/// included) in the parsed input, so a caller can reuse the exact text it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub member: Member,
    pub raw: Range<usize>,
}

/// Why a structured field did not parse. The callers attach their own context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SfError;

pub(crate) fn param<'p>(params: &'p Params, name: &str) -> Option<&'p Bare> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The most parameters one item or inner list may have, and members one dictionary may have:
/// RFC 9651 asks parsers for at least 256 and 1024. The first bound keeps the search for a
/// repeated parameter name from growing with the square of a header's length.
pub(crate) const MAX_PARAMS: usize = 256;
/// See [`MAX_PARAMS`].
pub(crate) const MAX_MEMBERS: usize = 1024;

fn set_param(params: &mut Params, key: String, value: Bare) -> Result<(), SfError> {
    if let Some(slot) = params.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else if params.len() >= MAX_PARAMS {
        return Err(SfError);
    } else {
        params.push((key, value));
    }
    Ok(())
}

/// Parses a dictionary (RFC 8941 §4.2.2). A repeated key overwrites the earlier member in place.
pub(crate) fn parse_dictionary(input: &str) -> Result<Vec<Entry>, SfError> {
    let mut p = Parser::new(input);
    p.skip_sp();
    let mut out: Vec<Entry> = Vec::new();
    // Where each key is in `out` (the project's sorted vector of pairs, whose code with `u64`
    // values the Worker carries already): a repeated key is found by a binary search.
    let mut at: crate::sorted::SortedMap<u64> = crate::sorted::SortedMap::new();
    while !p.at_end() {
        let key = p.key()?;
        let (member, raw) = if p.peek() == Some(b'=') {
            p.pos += 1;
            let start = p.pos;
            let member = p.member()?;
            (member, start..p.pos)
        } else {
            let start = p.pos;
            let params = p.params()?;
            let item = Item {
                bare: Bare::Boolean(true),
                params,
            };
            (Member::Item(item), start..p.pos)
        };
        if let Some(existing) = at.get(&key).and_then(|&i| out.get_mut(i as usize)) {
            existing.member = member;
            existing.raw = raw;
        } else if out.len() >= MAX_MEMBERS {
            return Err(SfError);
        } else {
            at.insert(key.clone(), out.len() as u64);
            out.push(Entry { key, member, raw });
        }
        p.skip_ows();
        if p.at_end() {
            break;
        }
        if p.peek() != Some(b',') {
            return Err(SfError);
        }
        p.pos += 1;
        p.skip_ows();
        if p.at_end() {
            return Err(SfError); // trailing comma
        }
    }
    Ok(out)
}

/// Parses a single item (RFC 8941 §4.2.3).
pub(crate) fn parse_item(input: &str) -> Result<Item, SfError> {
    let mut p = Parser::new(input);
    p.skip_sp();
    let item = p.item()?;
    p.skip_sp();
    if p.at_end() {
        Ok(item)
    } else {
        Err(SfError)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            s: input.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn key(&mut self) -> Result<String, SfError> {
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => {}
            _ => return Err(SfError),
        }
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'.' | b'*')
            {
                key.push(char::from(c));
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(key)
    }

    fn member(&mut self) -> Result<Member, SfError> {
        if self.peek() == Some(b'(') {
            self.inner_list()
        } else {
            self.item().map(Member::Item)
        }
    }

    fn inner_list(&mut self) -> Result<Member, SfError> {
        self.pos += 1; // '('
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            match self.peek() {
                None => return Err(SfError),
                Some(b')') => {
                    self.pos += 1;
                    let params = self.params()?;
                    return Ok(Member::InnerList(items, params));
                }
                Some(_) => {
                    items.push(self.item()?);
                    match self.peek() {
                        Some(b' ' | b')') => {}
                        _ => return Err(SfError),
                    }
                }
            }
        }
    }

    fn item(&mut self) -> Result<Item, SfError> {
        let bare = self.bare()?;
        let params = self.params()?;
        Ok(Item { bare, params })
    }

    fn params(&mut self) -> Result<Params, SfError> {
        let mut params = Params::new();
        while self.peek() == Some(b';') {
            self.pos += 1;
            self.skip_sp();
            let key = self.key()?;
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.bare()?
            } else {
                Bare::Boolean(true)
            };
            set_param(&mut params, key, value)?;
        }
        Ok(params)
    }

    fn bare(&mut self) -> Result<Bare, SfError> {
        match self.peek() {
            Some(b'-') => self.number(),
            Some(c) if c.is_ascii_digit() => self.number(),
            Some(b'"') => self.string(),
            Some(b':') => self.bytes(),
            Some(b'?') => self.boolean(),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => Ok(self.token()),
            _ => Err(SfError),
        }
    }

    fn number(&mut self) -> Result<Bare, SfError> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(SfError);
        }
        let mut int: i64 = 0;
        let mut int_digits = 0usize;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            int_digits += 1;
            if int_digits > 15 {
                return Err(SfError);
            }
            int = int * 10 + i64::from(c - b'0');
            self.pos += 1;
        }
        if self.peek() != Some(b'.') {
            return Ok(Bare::Integer(if negative { -int } else { int }));
        }
        if int_digits > 12 {
            return Err(SfError);
        }
        self.pos += 1;
        let mut frac: i64 = 0;
        let mut frac_digits = 0u32;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            frac_digits += 1;
            if frac_digits > 3 {
                return Err(SfError);
            }
            frac = frac * 10 + i64::from(c - b'0');
            self.pos += 1;
        }
        if frac_digits == 0 {
            return Err(SfError);
        }
        let milli = int * 1000 + frac * 10i64.pow(3 - frac_digits);
        Ok(Bare::Decimal(if negative { -milli } else { milli }))
    }

    fn string(&mut self) -> Result<Bare, SfError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or(SfError)?;
            self.pos += 1;
            match c {
                b'\\' => {
                    let next = self.peek().ok_or(SfError)?;
                    if next != b'"' && next != b'\\' {
                        return Err(SfError);
                    }
                    out.push(char::from(next));
                    self.pos += 1;
                }
                b'"' => return Ok(Bare::String(out)),
                0x20..=0x7e => out.push(char::from(c)),
                _ => return Err(SfError),
            }
        }
    }

    fn token(&mut self) -> Bare {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if is_tchar(c) || c == b':' || c == b'/' {
                out.push(char::from(c));
                self.pos += 1;
            } else {
                break;
            }
        }
        Bare::Token(out)
    }

    fn bytes(&mut self) -> Result<Bare, SfError> {
        self.pos += 1; // ':'
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b':') => break,
                Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') => {
                    self.pos += 1;
                }
                _ => return Err(SfError),
            }
        }
        let encoded = self.s.get(start..self.pos).ok_or(SfError)?;
        self.pos += 1; // ':'
        BYTES.decode(encoded).map(Bare::Bytes).map_err(|_| SfError)
    }

    fn boolean(&mut self) -> Result<Bare, SfError> {
        self.pos += 1; // '?'
        let value = match self.peek() {
            Some(b'1') => true,
            Some(b'0') => false,
            _ => return Err(SfError),
        };
        self.pos += 1;
        Ok(Bare::Boolean(value))
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Serializes a string item (RFC 8941 §4.1.6). The caller guarantees printable ASCII; anything
/// else is dropped rather than emitted.
pub(crate) fn serialize_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if (' '..='~').contains(&c) {
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn serialize_bare(bare: &Bare, out: &mut String) {
    match bare {
        Bare::Integer(i) => out.push_str(&i.to_string()),
        Bare::Decimal(milli) => {
            if *milli < 0 {
                out.push('-');
            }
            let abs = milli.unsigned_abs();
            out.push_str(&(abs / 1000).to_string());
            out.push('.');
            let frac = format!("{:03}", abs % 1000);
            let trimmed = frac.trim_end_matches('0');
            out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
        }
        Bare::String(s) => out.push_str(&serialize_string(s)),
        Bare::Token(t) => out.push_str(t),
        Bare::Bytes(b) => {
            out.push(':');
            crate::x402::codec::base64_into(b, false, out);
            out.push(':');
        }
        Bare::Boolean(b) => out.push_str(if *b { "?1" } else { "?0" }),
    }
}

pub(crate) fn serialize_params(params: &Params, out: &mut String) {
    for (key, value) in params {
        out.push(';');
        out.push_str(key);
        if *value != Bare::Boolean(true) {
            out.push('=');
            serialize_bare(value, out);
        }
    }
}

fn serialize_item(item: &Item, out: &mut String) {
    serialize_bare(&item.bare, out);
    serialize_params(&item.params, out);
}

/// Canonical serialization of one dictionary member value (RFC 8941 §4.1), as RFC 9421 §2.1.2
/// uses for a `key`-selected component.
pub(crate) fn serialize_member(member: &Member) -> String {
    let mut out = String::new();
    match member {
        Member::Item(item) => serialize_item(item, &mut out),
        Member::InnerList(items, params) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                serialize_item(item, &mut out);
            }
            out.push(')');
            serialize_params(params, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_round_trip_and_spans() {
        let input = r#"sig1=("@authority" "signature-agent";key="agent1");created=1;tag="web-bot-auth", b=?0, c, d=1.50;x"#;
        let dict = parse_dictionary(input).expect("parses");
        assert_eq!(dict.len(), 4);
        let first = &dict[0];
        assert_eq!(
            input.get(first.raw.clone()),
            Some(r#"("@authority" "signature-agent";key="agent1");created=1;tag="web-bot-auth""#)
        );
        assert_eq!(
            serialize_member(&first.member),
            r#"("@authority" "signature-agent";key="agent1");created=1;tag="web-bot-auth""#
        );
        assert_eq!(serialize_member(&dict[1].member), "?0");
        assert_eq!(
            dict[2].member,
            Member::Item(Item {
                bare: Bare::Boolean(true),
                params: vec![]
            })
        );
        assert_eq!(serialize_member(&dict[3].member), "1.5;x");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "a=",
            "a=(",
            "a=(1",
            "a=1,",
            "A=1",
            "a=\"unterminated",
            "a=:!!:",
            "a=?2",
            "a=1.",
            "a=1.2345",
            "a=1234567890123456",
            "a=\"\\x\"",
            "a=(1)(2)",
            "a=1 b=2",
            "a=@1",
        ] {
            assert!(parse_dictionary(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_keys_overwrite_in_place() {
        let dict = parse_dictionary("a=1, b=2, a=3").expect("parses");
        assert_eq!(dict.len(), 2);
        assert_eq!(dict[0].key, "a");
        assert_eq!(
            dict[0].member,
            Member::Item(Item {
                bare: Bare::Integer(3),
                params: vec![]
            })
        );
    }

    #[test]
    fn items() {
        assert_eq!(
            parse_item(r#" "https://a.test" "#).map(|i| i.bare),
            Ok(Bare::String("https://a.test".into()))
        );
        assert_eq!(
            parse_item("https://a.test").map(|i| i.bare),
            Ok(Bare::Token("https://a.test".into()))
        );
        assert_eq!(
            parse_item(":AQID:").map(|i| i.bare),
            Ok(Bare::Bytes(vec![1, 2, 3]))
        );
        assert_eq!(
            parse_item("-12.5").map(|i| i.bare),
            Ok(Bare::Decimal(-12500))
        );
        assert!(parse_item("a b").is_err());
    }
}
