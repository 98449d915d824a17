//! `GET /v1/openapi.json`: the HTTP API as OpenAPI 3.1, built once from the table
//! below and the wire types' JSON Schemas (derived from the Rust types with schemars:
//! a field added to a body is in the document without anyone editing it). Every
//! operation also documents the contract's error body as its `default` answer.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gridcast_protocol::api as wire;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

mod operations;

use operations::{Auth, operations};

/// The media type of an answer that is not JSON.
fn text_answer(id: &str) -> Option<&'static str> {
    match id {
        "healthz" | "readyz" => Some("text/plain"),
        "getCap" => Some("application/cap+xml"),
        "consoleEvents" => Some("text/event-stream"),
        "openapi" => Some("application/json"),
        _ => None,
    }
}

/// The document; the gateway's callbacks only where the fallback channel is on.
fn build(fallback: bool) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    // Answers as the hub writes them; bodies as it reads them.
    settings.contract = Contract::Serialize;
    let mut out_gen = settings.clone().into_generator();
    settings.contract = Contract::Deserialize;
    settings.inline_subschemas = true;
    let mut in_gen = settings.into_generator();
    let error = out_gen.subschema_for::<wire::ErrorBody>();
    let mut paths: Map<String, Value> = Map::new();
    for op in operations() {
        if op.tag == "fallback" && !fallback {
            continue;
        }
        let mut responses = Map::new();
        for (code, desc, schema) in op.ok {
            let mut r = json!({ "description": desc });
            if let Some(sch) = schema {
                r["content"] = json!({"application/json": {"schema": sch(&mut out_gen)}});
            } else if let Some(media) = text_answer(op.id) {
                r["content"] = json!({media: {"schema": {"type": "string"}}});
            }
            responses.insert(code.to_string(), r);
        }
        if op.id == "getAfterAction" {
            responses["200"]["content"]["text/csv"] = json!({"schema": {"type": "string"}});
        }
        responses.insert(
            "default".into(),
            json!({"description": "A refusal: the contract's error code and a message for people",
                   "content": {"application/json": {"schema": error}}}),
        );
        let mut params: Vec<Value> = Vec::new();
        if op.path.contains("{id}") {
            params.push(
                json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
        for (name, desc, schema) in op.query {
            let schema: Value = serde_json::from_str(schema).expect("a query schema is JSON");
            params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema}));
        }
        let mut o = json!({
            "operationId": op.id, "tags": [op.tag], "summary": op.summary,
            "parameters": params, "responses": responses,
        });
        if let Some(body) = op.body {
            o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body(&mut in_gen)}}});
        }
        o["security"] = match op.auth {
            Auth::Operator => json!([{"bearer": []}]),
            Auth::Public | Auth::Own => json!([]),
        };
        paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(op.method.into(), o);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "gridcast hub API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The command center's HTTP API (DESIGN.md §3 and the README's extensions). Errors are always {\"error\": {\"code\", \"message\"}}.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "paths": paths,
        "components": {
            "schemas": out_gen.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}

/// `GET /v1/openapi.json`.
pub(super) async fn get_openapi(State(hub): State<crate::Hub>) -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let fallback = hub.config.fallback.fallback_webhook.is_some();
    let doc = DOC.get_or_init(|| build(fallback).to_string());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        doc.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_builds_with_and_without_the_gateway() {
        let with = super::build(true);
        let without = super::build(false);
        assert!(with["paths"]["/v1/fallback/status"].is_object());
        assert!(without["paths"].get("/v1/fallback/status").is_none());
        assert_eq!(with["openapi"], "3.1.0");
    }
}
