//! The table of the API's operations: method, path, who may call, query, body and
//! answers (their schemas come from the wire types).

use gridcast_protocol::api as wire;
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// A schema from a generator.
pub(super) type Sch = fn(&mut SchemaGenerator) -> Schema;

fn s<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn any_object(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({"type": "object"})
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Auth {
    /// Anyone.
    Public,
    /// An operator, supervisor or admin token (`Authorization: Bearer …`).
    Operator,
    /// The broker's hook key or the gateway's signature (their own schemes).
    Own,
}

/// One operation.
pub(super) struct Op {
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    pub(super) id: &'static str,
    pub(super) tag: &'static str,
    pub(super) summary: &'static str,
    pub(super) auth: Auth,
    /// Query parameters: name, description, schema (JSON).
    pub(super) query: &'static [(&'static str, &'static str, &'static str)],
    pub(super) body: Option<Sch>,
    pub(super) ok: &'static [(u16, &'static str, Option<Sch>)],
}

const OK: &str = "Done";

/// An RFC 3339 UTC time or a date (the schema names days 1–28 only, so that every
/// string it allows is a real day; the hub takes every real day).
const DAY_OR_TIME: &str = r#"{"type": "string", "pattern": "^((19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?Z)?)?$"}"#;

/// A code prefix, or nothing.
const PREFIX: &str = r#"{"type": "string", "pattern": "^([0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12}|[0-9]{12}[123]|[0-9]{12}[123][0-9]{3}|[0-9]{12}[123][0-9]{6})?$"}"#;

/// The API, operation by operation (the router in `api.rs` and the transports').
pub(super) fn operations() -> Vec<Op> {
    use Auth::*;
    let op = |method, path, id, tag, summary, auth| Op {
        method,
        path,
        id,
        tag,
        summary,
        auth,
        query: &[],
        body: None,
        ok: &[],
    };
    vec![
        Op {
            body: Some(s::<wire::CreateIncident>),
            ok: &[
                (201, "Issued", Some(s::<wire::CreatedIncident>)),
                (
                    202,
                    "Held for a second person (the two-person rule)",
                    Some(s::<wire::Approval>),
                ),
            ],
            ..op(
                "post",
                "/v1/incidents",
                "createIncident",
                "incidents",
                "Issue an activation (JSON, or a CAP 1.2 alert as application/cap+xml)",
                Operator,
            )
        },
        Op {
            query: &[
                (
                    "state",
                    "active or closed",
                    r#"{"type": "string", "enum": ["", "active", "closed"]}"#,
                ),
                (
                    "limit",
                    "at most this many, newest first",
                    r#"{"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10000}, {"type": "string", "maxLength": 0}]}"#,
                ),
            ],
            ok: &[(200, OK, Some(s::<wire::IncidentList>))],
            ..op(
                "get",
                "/v1/incidents",
                "listIncidents",
                "incidents",
                "Incidents in the operator's jurisdiction",
                Operator,
            )
        },
        Op {
            ok: &[(
                200,
                "The incident, or a held request (APR-…)",
                Some(s::<wire::IncidentDetail>),
            )],
            ..op(
                "get",
                "/v1/incidents/{id}",
                "getIncident",
                "incidents",
                "One incident with its counts and per-grid rollup",
                Operator,
            )
        },
        Op {
            query: &[
                (
                    "status",
                    "pending, delivered, accepted or declined",
                    r#"{"type": "string", "enum": ["", "pending", "delivered", "accepted", "declined"]}"#,
                ),
                (
                    "limit",
                    "page size",
                    r#"{"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5000}, {"type": "string", "maxLength": 0}]}"#,
                ),
                (
                    "offset",
                    "page start",
                    r#"{"anyOf": [{"type": "integer", "minimum": 0, "maximum": 1000000000}, {"type": "string", "maxLength": 0}]}"#,
                ),
            ],
            ok: &[(200, OK, Some(s::<wire::RecipientList>))],
            ..op(
                "get",
                "/v1/incidents/{id}/recipients",
                "getRecipients",
                "incidents",
                "An incident's recipients, a page at a time",
                Operator,
            )
        },
        Op {
            query: &[(
                "limit",
                "the latest this many events",
                r#"{"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5000}, {"type": "string", "maxLength": 0}]}"#,
            )],
            ok: &[(200, OK, Some(s::<wire::Timeline>))],
            ..op(
                "get",
                "/v1/incidents/{id}/timeline",
                "getTimeline",
                "incidents",
                "An incident's timeline",
                Operator,
            )
        },
        Op {
            body: Some(s::<crate::api::UpdateBody>),
            ok: &[(200, OK, Some(s::<wire::IncidentDetail>))],
            ..op(
                "post",
                "/v1/incidents/{id}/updates",
                "updateIncident",
                "incidents",
                "A new body: rev + 1 to every recipient",
                Operator,
            )
        },
        Op {
            body: Some(s::<crate::api::CloseBody>),
            ok: &[(200, OK, Some(s::<wire::IncidentDetail>))],
            ..op(
                "post",
                "/v1/incidents/{id}/close",
                "closeIncident",
                "incidents",
                "Close an incident",
                Operator,
            )
        },
        Op {
            body: Some(s::<wire::CreateTask>),
            ok: &[(201, "Created", Some(s::<wire::CreatedTask>))],
            ..op(
                "post",
                "/v1/incidents/{id}/tasks",
                "createTask",
                "tasks",
                "An assistance task for a lead or a grid",
                Operator,
            )
        },
        Op {
            ok: &[(200, OK, Some(s::<wire::TaskList>))],
            ..op(
                "get",
                "/v1/incidents/{id}/tasks",
                "listTasks",
                "tasks",
                "An incident's tasks",
                Operator,
            )
        },
        Op {
            body: Some(s::<wire::RateTask>),
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "post",
                "/v1/tasks/{id}/satisfaction",
                "rateTask",
                "tasks",
                "A resident's satisfaction with a finished task (Art. 24)",
                Operator,
            )
        },
        Op {
            ok: &[(
                200,
                "The report (or text/csv, one row per person)",
                Some(s::<wire::AfterAction>),
            )],
            ..op(
                "get",
                "/v1/incidents/{id}/report",
                "getAfterAction",
                "evaluation",
                "The after-action report",
                Operator,
            )
        },
        Op {
            query: &[(
                "profile",
                "cap (default) or gbt35965 for the national profile",
                r#"{"type": "string", "enum": ["", "cap", "gbt35965"]}"#,
            )],
            ok: &[(200, "The alert (application/cap+xml)", None)],
            ..op(
                "get",
                "/v1/incidents/{id}/cap",
                "getCap",
                "cap",
                "The incident as a CAP 1.2 alert",
                Operator,
            )
        },
        Op {
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "get",
                "/v1/incidents/{id}/map",
                "getMap",
                "incidents",
                "Where an incident reached: its area, grid outlines, check-ins",
                Operator,
            )
        },
        Op {
            body: Some(s::<crate::api::approvals::ApproveBody>),
            ok: &[(200, OK, Some(s::<wire::Approval>))],
            ..op(
                "post",
                "/v1/incidents/{id}/approve",
                "approve",
                "approvals",
                "A second person approves a held request; it is issued",
                Operator,
            )
        },
        Op {
            body: Some(s::<crate::api::approvals::RejectBody>),
            ok: &[(200, OK, Some(s::<wire::Approval>))],
            ..op(
                "post",
                "/v1/incidents/{id}/reject",
                "reject",
                "approvals",
                "A second person rejects a held request",
                Operator,
            )
        },
        Op {
            query: &[(
                "state",
                "pending_approval, approving, active, rejected, expired or failed",
                r#"{"type": "string", "enum": ["", "pending_approval", "approving", "active", "rejected", "expired", "failed"]}"#,
            )],
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "get",
                "/v1/approvals",
                "listApprovals",
                "approvals",
                "Held requests the operator may see",
                Operator,
            )
        },
        Op {
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "get",
                "/v1/escalations",
                "listEscalations",
                "incidents",
                "Escalation steps of active and recent incidents",
                Operator,
            )
        },
        Op {
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "get",
                "/v1/limits",
                "getLimits",
                "meta",
                "Field lengths the hub accepts",
                Public,
            )
        },
        Op {
            query: &[("prefix", "code prefix", PREFIX)],
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "get",
                "/v1/directory",
                "getDirectory",
                "public",
                "The published grid directory (Art. 14)",
                Public,
            )
        },
        Op {
            body: None,
            ok: &[
                (200, "Imported, updated or cancelled", Some(any_object)),
                (201, "Issued", Some(any_object)),
                (202, "Held for approval", Some(any_object)),
            ],
            ..op(
                "post",
                "/v1/cap",
                "postCap",
                "cap",
                "Import a CAP 1.2 or GB/T 35965.1 alert (application/cap+xml)",
                Operator,
            )
        },
        Op {
            query: &[
                ("prefix", "code prefix", PREFIX),
                ("from", "RFC 3339", DAY_OR_TIME),
                ("to", "RFC 3339", DAY_OR_TIME),
            ],
            ok: &[(200, OK, Some(s::<wire::Stats>))],
            ..op(
                "get",
                "/v1/stats",
                "getStats",
                "evaluation",
                "Response figures over a period",
                Operator,
            )
        },
        Op {
            query: &[
                (
                    "limit",
                    "page size",
                    r#"{"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"type": "string", "maxLength": 0}]}"#,
                ),
                (
                    "before",
                    "report id: only older ones",
                    r#"{"type": "string", "pattern": "^(REP-[0-9]{1,18})?$"}"#,
                ),
            ],
            ok: &[(200, OK, Some(s::<wire::ReportList>))],
            ..op(
                "get",
                "/v1/reports",
                "listReports",
                "reports",
                "Upward reports, newest first",
                Operator,
            )
        },
        Op {
            body: Some(s::<wire::PromoteReport>),
            ok: &[
                (201, "Issued", Some(any_object)),
                (202, "Held for approval", Some(any_object)),
            ],
            ..op(
                "post",
                "/v1/reports/{id}/promote",
                "promoteReport",
                "reports",
                "Open an incident from a report",
                Operator,
            )
        },
        Op {
            query: &[
                ("prefix", "code prefix", PREFIX),
                (
                    "leads",
                    "true to list online leads",
                    r#"{"type": "boolean"}"#,
                ),
            ],
            ok: &[(200, OK, Some(s::<wire::Presence>))],
            ..op(
                "get",
                "/v1/presence",
                "getPresence",
                "presence",
                "Who is online, one level of the grid tree",
                Operator,
            )
        },
        Op {
            ok: &[(200, OK, Some(s::<gridcast_protocol::registry::RegistryDoc>))],
            ..op(
                "get",
                "/v1/registry",
                "getRegistry",
                "registry",
                "The registry in force",
                Operator,
            )
        },
        Op {
            body: Some(s::<gridcast_protocol::registry::RegistryDoc>),
            ok: &[(200, "Replaced", Some(any_object))],
            ..op(
                "put",
                "/v1/registry",
                "putRegistry",
                "registry",
                "Replace the registry (admin)",
                Operator,
            )
        },
        Op {
            ok: &[(200, OK, Some(any_object))],
            ..op(
                "get",
                "/v1/task-kinds",
                "listTaskKinds",
                "registry",
                "The published task kinds",
                Operator,
            )
        },
        Op {
            ok: &[(200, "Server-sent events (text/event-stream)", None)],
            ..op(
                "get",
                "/v1/console/events",
                "consoleEvents",
                "console",
                "The console's live events",
                Operator,
            )
        },
        Op {
            body: Some(s::<wire::FallbackStatus>),
            ok: &[(200, OK, Some(s::<wire::StatusRecorded>))],
            ..op(
                "post",
                "/v1/fallback/status",
                "fallbackStatus",
                "fallback",
                "The gateway reports what became of messages (one or a list; signed)",
                Own,
            )
        },
        Op {
            body: Some(s::<wire::FallbackInbound>),
            ok: &[(200, OK, Some(s::<wire::InboundRecorded>))],
            ..op(
                "post",
                "/v1/fallback/inbound",
                "fallbackInbound",
                "fallback",
                "A lead's reply by SMS or keypad, counted as its ack (signed)",
                Own,
            )
        },
        Op {
            ok: &[(200, "ok", None)],
            ..op(
                "get",
                "/healthz",
                "healthz",
                "meta",
                "The process is alive",
                Public,
            )
        },
        Op {
            ok: &[(200, "Ready to serve", None)],
            ..op(
                "get",
                "/readyz",
                "readyz",
                "meta",
                "Ready to take sessions and writes",
                Public,
            )
        },
        Op {
            ok: &[(200, "This document", None)],
            ..op(
                "get",
                "/v1/openapi.json",
                "openapi",
                "meta",
                "This API description",
                Public,
            )
        },
    ]
}
