//! Telling agents what is for sale, without making them trigger 402s.
//!
//! Two forms of the same facts, both built from configuration only:
//! - the `bazaar` extension carried in every 402 of a discoverable route (what the route takes and
//!   returns, with a JSON Schema of that description, in the shape the official `@x402/extensions`
//!   declares, so facilitators that catalogue resources accept it);
//! - `/.well-known/x402`: every discoverable priced route with its terms. Its `version` and
//!   `resources` (a list of URLs) are the community discovery document; `items` adds, per
//!   resource, the same fields a facilitator's `/discovery/resources` listing gives.

use serde_json::{json, Map, Value};

use crate::config::{Access, Config, Route};

/// The `bazaar` extension of a route, or `None` if the route is not discoverable.
pub fn bazaar(route: &Route) -> Option<Value> {
    let d = &route.discovery;
    if !d.discoverable || route.is_free() {
        return None;
    }
    let method = route.method.clone().unwrap_or_else(|| "GET".into());
    let body_method = describes_body(Some(&method));
    let empty_schema = || json!({"properties": {}});
    let mut input = Map::new();
    input.insert("type".into(), json!("http"));
    input.insert("method".into(), json!(method));
    let mut input_props = Map::new();
    input_props.insert("type".into(), parsed(r#"{"type":"string","const":"http"}"#));
    let mut required = vec![json!("type"), json!("method")];
    if body_method {
        let body_type = d.body_type.clone().unwrap_or_else(|| "json".into());
        input.insert("bodyType".into(), json!(body_type));
        input.insert("body".into(), d.input.clone().unwrap_or_else(|| json!({})));
        input_props.insert(
            "method".into(),
            parsed(r#"{"type":"string","enum":["POST","PUT","PATCH"]}"#),
        );
        input_props.insert(
            "bodyType".into(),
            parsed(r#"{"type":"string","enum":["json","form-data","text"]}"#),
        );
        input_props.insert(
            "body".into(),
            d.input_schema.clone().unwrap_or_else(empty_schema),
        );
        required.extend([json!("bodyType"), json!("body")]);
    } else {
        input.insert(
            "queryParams".into(),
            d.input.clone().unwrap_or_else(|| json!({})),
        );
        input_props.insert(
            "method".into(),
            parsed(r#"{"type":"string","enum":["GET","HEAD","DELETE"]}"#),
        );
        let mut qp = Map::new();
        qp.insert("type".into(), json!("object"));
        if let Some(Value::Object(schema)) = &d.input_schema {
            qp.extend(schema.clone());
        }
        input_props.insert("queryParams".into(), Value::Object(qp));
    }
    let mut info = Map::new();
    info.insert("input".into(), Value::Object(input));
    let mut props = Map::new();
    props.insert(
        "input".into(),
        json!({"type": "object", "properties": input_props, "required": required, "additionalProperties": false}),
    );
    if let Some(example) = &d.output {
        info.insert("output".into(), json!({"type": "json", "example": example}));
        let mut ex = Map::new();
        ex.insert("type".into(), json!("object"));
        if let Some(Value::Object(schema)) = &d.output_schema {
            ex.extend(schema.clone());
        }
        props.insert(
            "output".into(),
            json!({"type": "object", "properties": {"type": {"type": "string"}, "example": ex}, "required": ["type"]}),
        );
    }
    let mut schema = parsed(
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["input"]}"#,
    );
    schema["properties"] = Value::Object(props);
    let mut extension = json!({ "info": info, "schema": schema });
    if let Some(template) = route.pattern.route_template() {
        extension["routeTemplate"] = Value::from(template);
    }
    Some(extension)
}

/// Whether a route of this method (`None`: any, described as GET) is described with a request
/// body (`bodyType`, `body`) rather than query parameters.
pub fn describes_body(method: Option<&str>) -> bool {
    matches!(method, Some("POST" | "PUT" | "PATCH"))
}

/// A constant fragment, parsed from its text: a `json!` literal compiles to code for each of
/// its members, which in a Worker's bundle costs more than the text.
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

/// The `/.well-known/x402` document for an origin (`https://host[:port]`).
pub fn document(config: &Config, origin: &str) -> Value {
    let mut resources = Vec::new();
    let mut items = Vec::new();
    for route in config
        .routes
        .iter()
        .filter(|r| !r.is_free() && r.discovery.discoverable)
        // For sale to those who read this document: agents, or crawlers (people use the page).
        .filter(|r| [r.access.agents, r.access.crawlers].contains(&Access::Charge))
    {
        let url = format!("{origin}{}", route.pattern.as_str());
        let mut item = json!({
            "resource": url,
            "type": "http",
            "x402Version": 2,
            "method": route.method.clone().unwrap_or_else(|| "GET".into()),
            "description": route.description,
            "mimeType": route.mime_type,
            "accepts": route.offers.iter().map(|o| &o.requirements).collect::<Vec<_>>(),
            "settlement": match route.settlement {
                crate::config::SettlementMode::Immediate => "immediate",
                crate::config::SettlementMode::Deferred => "deferred",
            },
        });
        if let Some(b) = &route.bazaar {
            item["extensions"] = json!({ "bazaar": b });
        }
        if let Some(s) = &route.session {
            item["session"] = json!({
                "scope": format!("{origin}{}", s.scope.as_str()),
                "seconds": s.seconds,
                "requests": s.requests,
                "signIn": "sign-in-with-x",
            });
        }
        resources.push(Value::from(url));
        items.push(item);
    }
    json!({
        "version": 1,
        "x402Version": 2,
        "resources": resources,
        "items": items,
        "instructions": "Each resource answers 402 with x402 terms in the PAYMENT-REQUIRED header; pay with PAYMENT-SIGNATURE (v2) or X-PAYMENT (v1). Resources with a session accept Sign-In-With-X after one payment.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_json(
            r#"{"payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","accepts":["base-sepolia"],
            "facilitator":{"url":"http://f"},
            "routes":[{"path":"/free","free":true},
              {"path":"/api/weather","method":"GET","price":"$0.01","discovery":{"input":{"city":"Paris"},"output":{"temp":12}}},
              {"path":"/api/ask","method":"POST","price":"$0.05","discovery":{"input":{"q":"?"},"bodyType":"json"}},
              {"path":"/hidden","price":"$1","discovery":{"discoverable":false}},
              {"path":"/read-free/*","price":"$1","payers":"agents","agents":"allow"},
              {"path":"/people-pay/*","price":"$1","crawlers":"block","agents":"block"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn lists_exactly_the_discoverable_priced_routes() {
        let doc = document(&config(), "https://api.example.com");
        assert_eq!(
            doc["resources"],
            json!([
                "https://api.example.com/api/weather",
                "https://api.example.com/api/ask"
            ])
        );
        assert_eq!(doc["items"][0]["accepts"][0]["amount"], "10000");
    }

    #[test]
    fn bazaar_shapes() {
        let c = config();
        let get = bazaar(&c.routes[1]).unwrap();
        assert_eq!(get["info"]["input"]["queryParams"]["city"], "Paris");
        assert_eq!(get["info"]["output"]["example"]["temp"], 12);
        let post = bazaar(&c.routes[2]).unwrap();
        assert_eq!(post["info"]["input"]["bodyType"], "json");
        assert!(bazaar(&c.routes[3]).is_none());
    }
}
