//! Transports translate frames between a wire and the core's sessions. WebSocket is here;
//! MQTT joins it behind the same session and presence logic.

pub mod ws;
