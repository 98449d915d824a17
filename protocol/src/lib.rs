//! gridcast protocol v1: the wire contract shared by the hub, the clients and the drill
//! tool.
//!
//! Everything here is pure: serde types, grid codes and validation. No tokio, no I/O, so
//! any program that speaks to a hub can depend on it. The contract is DESIGN.md §3 with
//! the extensions listed in the README ("Protocol notes"); names here match it exactly.
#![warn(missing_docs)]

pub mod api;
pub mod area;
pub mod cli;
pub mod code;
pub mod error;
pub mod frame;
pub mod fuzzing;
pub mod integral;
pub mod model;
pub mod registry;
pub mod time;

pub use code::{CodeError, GridCode, Target};
pub use error::ErrorCode;
pub use model::{Category, Level, Role, Status};

/// Reads a wire name (`"grid_lead"`, `"accepted"`, `"II"`…) as the enum that serde
/// maps it to; `None` when it is not one of its values. Used for query strings, CLI
/// flags and the registry document, which carry these names outside JSON objects.
pub fn from_wire_name<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// The wire name of an enum value that serializes as a string (the inverse of
/// [`from_wire_name`]); empty for values that do not.
pub fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Largest decoded message, in bytes, that a hub or client accepts (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
