//! Our JSON shapes, read by hand from a parsed [`Value`].
//!
//! Everything the Worker reads (its parts' messages to each other, its stored records, the
//! facilitator's answers, a payment's fields, the configuration) is parsed once into a `Value` and
//! then read through this small reader, instead of by a derived deserialiser per type: each of
//! those was another copy of serde's machinery in the bundle, and their number handling pulled in
//! float formatting for its error messages. A problem names where it is, from the top
//! (`payload.authorization.value: expected a string, found a number`), and costs nothing until
//! there is one: the key is assembled on the way out of a failed read.

use serde_json::{Map, Value};

/// What was wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Where, from the top (`routes[0].price`); empty for the value itself.
    pub key: String,
    pub problem: String,
}

impl Error {
    pub fn new(problem: impl Into<String>) -> Error {
        Error {
            key: String::new(),
            problem: problem.into(),
        }
    }

    /// The same problem, seen from the object that holds it under `name`.
    pub fn at(mut self, name: &str) -> Error {
        self.key = match self.key.as_str() {
            "" => name.to_string(),
            k if k.starts_with('[') => format!("{name}{k}"),
            k => format!("{name}.{k}"),
        };
        self
    }

    /// The same problem, seen from the list that holds it at `index`.
    pub fn at_index(self, index: usize) -> Error {
        self.at(&format!("[{index}]"))
    }

    /// A value of the wrong JSON type.
    pub fn expected(what: &str, found: &Value) -> Error {
        Error::new(format!("expected {what}, found {}", kind(found)))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for Error {}

/// A JSON type, as a problem names it.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A type read from JSON.
pub trait Read: Sized {
    fn read(value: &Value) -> Result<Self, Error>;
}

/// Parses JSON text and reads it as `T`.
pub fn parse<T: Read>(text: &str) -> Result<T, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::new(e.to_string()))?;
    T::read(&value)
}

impl Read for Value {
    fn read(value: &Value) -> Result<Self, Error> {
        Ok(value.clone())
    }
}

/// The text of a JSON string.
pub fn text(value: &Value) -> Result<&str, Error> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(Error::expected("a string", other)),
    }
}

/// A JSON string read by `parse` (an address, a big number); its error becomes the problem.
pub fn parsed<T, E: std::fmt::Display>(
    value: &Value,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, Error> {
    parse(text(value)?).map_err(|e| Error::new(e.to_string()))
}

impl Read for String {
    fn read(value: &Value) -> Result<Self, Error> {
        text(value).map(str::to_string)
    }
}

/// Any JSON object, as it is.
impl Read for Map<String, Value> {
    fn read(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Object(m) => Ok(m.clone()),
            other => Err(Error::expected("an object", other)),
        }
    }
}

impl Read for bool {
    fn read(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Bool(b) => Ok(*b),
            other => Err(Error::expected("true or false", other)),
        }
    }
}

impl Read for u64 {
    fn read(value: &Value) -> Result<Self, Error> {
        value
            .as_u64()
            .ok_or_else(|| Error::expected("a whole number of at least 0", value))
    }
}

impl Read for u32 {
    fn read(value: &Value) -> Result<Self, Error> {
        u32::try_from(u64::read(value)?).map_err(|_| Error::new("too large"))
    }
}

/// An amount too large for a JavaScript number: a string of decimal digits (what we write), or a
/// whole number of at least 0.
pub struct Decimal(pub u128);

impl Read for Decimal {
    fn read(value: &Value) -> Result<Self, Error> {
        if let Some(n) = value.as_u64() {
            return Ok(Decimal(n.into()));
        }
        match value {
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map(Decimal).map_err(|_| Error::new("too large"))
            }
            other => Err(Error::expected("a decimal integer", other)),
        }
    }
}

impl<T: Read> Read for Option<T> {
    fn read(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            v => T::read(v).map(Some),
        }
    }
}

impl<T: Read> Read for Vec<T> {
    fn read(value: &Value) -> Result<Self, Error> {
        list(value)?
            .iter()
            .enumerate()
            .map(|(i, v)| T::read(v).map_err(|e| e.at_index(i)))
            .collect()
    }
}

impl<A: Read, B: Read> Read for (A, B) {
    fn read(value: &Value) -> Result<Self, Error> {
        match list(value)? {
            [a, b] => Ok((
                A::read(a).map_err(|e| e.at_index(0))?,
                B::read(b).map_err(|e| e.at_index(1))?,
            )),
            other => Err(Error::new(format!(
                "expected a list of 2, found {} items",
                other.len()
            ))),
        }
    }
}

/// The items of a list.
pub fn list(value: &Value) -> Result<&[Value], Error> {
    match value {
        Value::Array(a) => Ok(a),
        other => Err(Error::expected("a list", other)),
    }
}

/// Reads an enum written as serde writes one by default: a variant without fields as its name
/// (`"view"`), any other as an object of one key (`{"admit": {…}}`). `read` is given the variant's
/// name, one of `known`, and the fields of its body (none for a bare name); its problems are named
/// from the enum's value (`admit.wallet: missing`).
pub fn read_variant<T>(
    value: &Value,
    known: &[&str],
    read: impl for<'f> FnOnce(&str, Fields<'f>) -> Result<T, Error>,
) -> Result<T, Error> {
    let (name, body) = match value {
        Value::String(name) => (name, None),
        Value::Object(m) if m.len() == 1 => {
            let (name, body) = m.iter().next().expect("one entry");
            (name, Some(body).filter(|b| !b.is_null()))
        }
        other => return Err(Error::expected("a name, or an object of one key", other)),
    };
    if !known.contains(&name.as_str()) {
        return Err(Error::new(format!(
            "unknown variant {name:?}; the known ones are {}",
            known.join(", ")
        )));
    }
    let empty = Value::Object(Map::new());
    Fields::new(body.unwrap_or(&empty))
        .and_then(|f| read(name, f))
        .map_err(|e| e.at(name))
}

/// The fields of a JSON object.
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(value: &'a Value) -> Result<Fields<'a>, Error> {
        match value {
            Value::Object(map) => Ok(Fields { map }),
            other => Err(Error::expected("an object", other)),
        }
    }

    /// Refuses any field not in `known`.
    pub fn only(self, known: &[&str]) -> Result<Fields<'a>, Error> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(Error::new(format!(
                "unknown key; the known ones are {}",
                known.join(", ")
            ))
            .at(unknown)),
            None => Ok(self),
        }
    }

    /// The field's value; a missing field and `null` are both absent.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A field that must be there.
    pub fn get<T: Read>(&self, name: &str) -> Result<T, Error> {
        match self.value(name) {
            Some(v) => T::read(v).map_err(|e| e.at(name)),
            None => Err(Error::new("missing").at(name)),
        }
    }

    /// A field that may be absent.
    pub fn maybe<T: Read>(&self, name: &str) -> Result<Option<T>, Error> {
        self.value(name)
            .map(|v| T::read(v).map_err(|e| e.at(name)))
            .transpose()
    }

    /// A field that reads as its type's default when absent.
    pub fn or_default<T: Read + Default>(&self, name: &str) -> Result<T, Error> {
        Ok(self.maybe(name)?.unwrap_or_default())
    }

    /// A required [`Decimal`].
    pub fn decimal(&self, name: &str) -> Result<u128, Error> {
        self.get::<Decimal>(name).map(|d| d.0)
    }

    /// The fields of a nested object that may be absent; its problems are named from here.
    pub fn object(&self, name: &str) -> Result<Option<Fields<'a>>, Error> {
        self.value(name)
            .map(|v| Fields::new(v).map_err(|e| e.at(name)))
            .transpose()
    }

    /// One of a few words, or absent.
    pub fn choice<T: Copy>(&self, name: &str, words: &[(&str, T)]) -> Result<Option<T>, Error> {
        let Some(given) = self.maybe::<String>(name)? else {
            return Ok(None);
        };
        match words.iter().find(|(w, _)| *w == given) {
            Some((_, t)) => Ok(Some(*t)),
            None => {
                let names: Vec<String> = words.iter().map(|(w, _)| format!("{w:?}")).collect();
                Err(Error::new(format!("{given:?} is not one of {}", names.join(", "))).at(name))
            }
        }
    }

    /// Every field, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq)]
    struct Pair {
        name: String,
        sizes: Vec<u64>,
        big: u128,
        on: bool,
        note: Option<String>,
    }

    impl Read for Pair {
        fn read(value: &Value) -> Result<Self, Error> {
            let f = Fields::new(value)?;
            Ok(Pair {
                name: f.get("name")?,
                sizes: f.or_default("sizes")?,
                big: f.decimal("big")?,
                on: f.or_default("on")?,
                note: f.maybe("note")?,
            })
        }
    }

    #[test]
    fn reads_fields_defaults_and_nulls() {
        let p: Pair =
            parse(r#"{"name":"a","sizes":[1,2],"big":"340282366920938463463374607431768211455","note":null,"extra":1}"#)
                .unwrap();
        assert_eq!(
            p,
            Pair {
                name: "a".into(),
                sizes: vec![1, 2],
                big: u128::MAX,
                on: false,
                note: None
            }
        );
        let p: Pair = parse(r#"{"name":"a","big":7,"on":true}"#).unwrap();
        assert_eq!((p.big, p.on, p.sizes.len()), (7, true, 0));
    }

    #[test]
    fn every_problem_names_its_key() {
        let problem = |v: Value| Vec::<Pair>::read(&json!([{"name":"a","big":1}, v])).unwrap_err();
        let e = problem(json!({"big": 1}));
        assert_eq!(e.to_string(), "[1].name: missing");
        let e = problem(json!({"name": "a", "big": 1, "sizes": [1, -1]}));
        assert_eq!(
            e.to_string(),
            "[1].sizes[1]: expected a whole number of at least 0, found a number"
        );
        let e = problem(json!({"name": "a", "big": "1.5"}));
        assert_eq!(
            e.to_string(),
            "[1].big: expected a decimal integer, found a string"
        );
        let e = problem(json!({"name": "a", "big": "340282366920938463463374607431768211456"}));
        assert_eq!(e.to_string(), "[1].big: too large");
        let e = problem(json!({"name": 2.5, "big": 1}));
        assert_eq!(e.to_string(), "[1].name: expected a string, found a number");
        assert_eq!(
            parse::<Pair>("{").unwrap_err().key,
            "",
            "a syntax error has no key"
        );
        let two = json!({"a": 1, "b": 2});
        let f = Fields::new(&two).unwrap();
        assert_eq!(
            f.only(&["a"]).err().unwrap().to_string(),
            "b: unknown key; the known ones are a"
        );
        assert_eq!(
            u32::read(&json!(1u64 << 32)).unwrap_err().problem,
            "too large"
        );
        assert_eq!(
            <(u64, u64)>::read(&json!([1])).unwrap_err().problem,
            "expected a list of 2, found 1 items"
        );
    }

    #[test]
    fn variants_as_serde_writes_them() {
        let read = |v: Value| {
            read_variant(&v, &["view", "admit"], |name, f| {
                Ok((name.to_string(), f.maybe::<u64>("x")?))
            })
        };
        assert_eq!(read(json!("view")).unwrap(), ("view".into(), None));
        assert_eq!(
            read(json!({"admit": {"x": 1}})).unwrap(),
            ("admit".into(), Some(1))
        );
        assert_eq!(read(json!({"view": null})).unwrap(), ("view".into(), None));
        assert_eq!(
            read(json!({"admit": {"x": "1"}})).unwrap_err().to_string(),
            "admit.x: expected a whole number of at least 0, found a string"
        );
        assert_eq!(
            read(json!("sweep")).unwrap_err().to_string(),
            "unknown variant \"sweep\"; the known ones are view, admit"
        );
        assert!(read(json!({"view": 1, "admit": {}})).is_err());
        assert!(read(json!({"admit": 1})).is_err());
        assert!(read(json!(1)).is_err());
    }
}
