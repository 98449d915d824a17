//! The session protocol, once for every framing: what a lead's upstream frame costs,
//! how it is decoded, what a `hello` must carry, what the welcome and the sync are, and
//! what every other frame does. The transports (`transport/ws.rs`, `transport/mqtt.rs`)
//! keep only bytes, buffers and keepalive: they hand each payload to [`admit`], a
//! `hello`'s token to [`hello`], every other frame to [`answer`], and send back what
//! these return.

use std::sync::Arc;

use gridcast_protocol::ErrorCode;
use gridcast_protocol::error::close;
use gridcast_protocol::frame::{Assignment, ClientFrame, ServerFrame, decode_client};

use crate::Hub;
use crate::auth::{Claims, TokenRole};
use crate::incident::Refusal;
use crate::ratelimit::Over;
use crate::session::{Frame, encode};
use crate::store::{Mark, StoreError};

/// One upstream payload as the wire delivered it.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A text frame (WebSocket) or a UTF-8 payload (MQTT).
    Text(&'a str),
    /// Anything else, of this many bytes.
    Other(usize),
}

/// What an admitted payload asks for.
#[derive(Debug)]
pub enum Upstream {
    /// A `hello` with this token: the transport checks it with [`hello`].
    Hello(String),
    /// Any other frame, for [`answer`].
    Frame(ClientFrame),
    /// Refused (over budget, not JSON text, not a frame): send this error.
    Refused(ServerFrame),
}

/// Charges a payload to `budget` (before anything is decoded: a malformed frame costs
/// what a good one does) and decodes it.
pub fn admit(hub: &Hub, budget: &str, payload: Payload<'_>) -> Upstream {
    hub.metrics
        .frames_in
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let len = match payload {
        Payload::Text(t) => t.len(),
        Payload::Other(n) => n,
    };
    if let Err(over) = hub.lead_limits.charge_frame(budget, len) {
        hub.metrics
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reference = match payload {
            Payload::Text(t) => gridcast_protocol::frame::reference_of(t),
            Payload::Other(_) => None,
        };
        let m = match over {
            Over::Frames => "over the upstream frame rate; slow down and retry",
            Over::Bytes => "over the upstream byte rate; slow down and retry",
        };
        return Upstream::Refused(error(hub, reference, ErrorCode::RateLimited, m));
    }
    let Payload::Text(text) = payload else {
        let m = "frames are UTF-8 JSON text";
        return Upstream::Refused(error(hub, None, ErrorCode::BadRequest, m));
    };
    match decode_client(text) {
        Ok(ClientFrame::Hello { token, .. }) => Upstream::Hello(token),
        Ok(frame) => Upstream::Frame(frame),
        Err(e) => Upstream::Refused(error(hub, e.reference, e.code, &e.message)),
    }
}

/// An error reply, counted.
pub fn error(hub: &Hub, reference: Option<String>, code: ErrorCode, message: &str) -> ServerFrame {
    hub.metrics
        .frame_errors
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ServerFrame::Error {
        reference,
        code,
        message: message.to_owned(),
    }
}

/// A good `hello`: the lead's claims and assignments.
#[derive(Debug)]
pub struct Opened {
    /// The token's claims (the session lives until `exp`).
    pub claims: Claims,
    /// The lead's assignments in the registry in force.
    pub assignments: Arc<[Assignment]>,
}

/// Why a `hello` was refused: the error to send and the close code of a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Contract error code.
    pub code: ErrorCode,
    /// What to tell the phone.
    pub message: String,
    /// The WebSocket close code that goes with it.
    pub close: u16,
}

impl Refused {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let close = match code {
            ErrorCode::Unauthorized => close::UNAUTHORIZED,
            ErrorCode::Forbidden => close::FORBIDDEN,
            _ => close::BAD_REQUEST,
        };
        Self {
            code,
            message: message.into(),
            close,
        }
    }

    /// The `error` frame to send (counted).
    pub fn frame(&self, hub: &Hub) -> ServerFrame {
        error(hub, None, self.code, &self.message)
    }
}

/// Checks a `hello`'s token: well signed, not revoked, a lead's, of `lead` when the
/// channel already names one (an open session, an MQTT topic), and in the registry.
pub fn hello(hub: &Hub, token: &str, lead: Option<&str>) -> Result<Opened, Refused> {
    let claims = hub
        .authenticate(token)
        .map_err(|e| Refused::new(ErrorCode::Unauthorized, e.to_string()))?;
    if claims.role != TokenRole::Lead {
        return Err(Refused::new(ErrorCode::Forbidden, "not a lead token"));
    }
    if let Some(lead) = lead
        && claims.sub != lead
    {
        return Err(Refused::new(
            ErrorCode::Forbidden,
            format!("this token is not lead {lead}'s"),
        ));
    }
    match hub.registry.current().person(&claims.sub) {
        Some(p) => Ok(Opened {
            assignments: crate::registry::assignments(p),
            claims,
        }),
        None => Err(Refused::new(
            ErrorCode::Forbidden,
            format!("lead {} is not in the registry", claims.sub),
        )),
    }
}

/// The first frame of a connection, which must be a good `hello`.
pub fn first_hello(hub: &Hub, payload: Payload<'_>) -> Result<Opened, Refused> {
    let bad = |m: String| Refused::new(ErrorCode::BadRequest, m);
    let Payload::Text(text) = payload else {
        return Err(bad("the first frame must be a text hello frame".into()));
    };
    match decode_client(text) {
        Ok(ClientFrame::Hello { token, .. }) => hello(hub, &token, None),
        Ok(_) => Err(bad("the first frame must be hello".into())),
        Err(e) => Err(bad(format!("the first frame must be hello: {}", e.message))),
    }
}

/// The `welcome` after a good `hello`.
pub fn welcome(hub: &Hub, opened: &Opened) -> Frame {
    encode(&ServerFrame::Welcome {
        lead: opened.claims.sub.clone(),
        assignments: opened.assignments.to_vec(),
        heartbeat_s: hub.config.heartbeat_s,
    })
}

/// The sync after the welcome: every active and recently closed incident of the lead
/// with its own status, then `synced`.
pub async fn sync(hub: &Hub, lead: &str) -> Result<Vec<Frame>, StoreError> {
    let mut frames = hub.core.sync_frames(lead).await?;
    frames.push(encode(&ServerFrame::Synced));
    Ok(frames)
}

/// What a frame of an open session does, and the reply it gets: `ok`/`pong` or `error`, or nothing (no `ref`).
///
/// `origin` is the session the frame came by, when it is one this node queues frames to
/// (a WebSocket session): the status an ack makes is not sent back to it.
pub async fn answer(
    hub: &Hub,
    lead: &str,
    frame: ClientFrame,
    origin: Option<u64>,
) -> Option<ServerFrame> {
    let reference = frame.reference().map(str::to_owned);
    let result = match frame {
        ClientFrame::Ping { reference } => return Some(ServerFrame::Pong { reference }),
        ClientFrame::Hello { .. } => {
            Err(Refusal::new(ErrorCode::BadRequest, "already authenticated"))
        }
        ClientFrame::Receipt { incident, .. } => {
            if reference.is_none() && hub.receipt_later(lead, &incident) {
                return None;
            }
            hub.core.mark(lead, &incident, Mark::Receipt, origin).await
        }
        ClientFrame::Ack {
            incident,
            response,
            note,
            ..
        } => {
            use tracing::Instrument;
            let span = tracing::info_span!("ack", lead, incident = %incident);
            hub.core
                .mark(lead, &incident, Mark::Ack { response, note }, origin)
                .instrument(span)
                .await
        }
        ClientFrame::TaskUpdate {
            task, status, note, ..
        } => hub.core.update_task(lead, &task, status, note).await,
        ClientFrame::Checkin {
            incident,
            location,
            note,
            ..
        } => hub.core.checkin(lead, &incident, location, note).await,
        ClientFrame::Report {
            category,
            title,
            detail,
            grid,
            location,
            ..
        } => {
            hub.core
                .report(lead, category, title, detail, grid, location)
                .await
        }
    };
    match (result, reference) {
        (Ok(()), Some(reference)) => Some(ServerFrame::Ok { reference }),
        (Ok(()), None) => None,
        (Err(e), reference) => Some(error(hub, reference, e.code, &e.message)),
    }
}

#[cfg(test)]
mod tests {
    //! The protocol over a real hub (embedded store in a temporary directory) and no
    //! socket at all: what each framing gets back for what a phone sends.
    use super::*;
    use crate::Config;
    use tokio_util::sync::CancellationToken;

    async fn hub(burst: u32) -> (Hub, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "gridcast-protocol-{}-{}",
            std::process::id(),
            crate::random_hex(4).unwrap()
        ));
        let mut config = Config::with_data_dir(&dir);
        config.jwt_secret = Some("protocol-test-secret-0123456789".into());
        config.upstream_burst = burst;
        let hub = Hub::open(config, CancellationToken::new()).await.unwrap();
        (hub, dir)
    }

    fn lead_of(hub: &Hub) -> String {
        hub.registry.current().registry.staff[0].id.clone()
    }

    fn token(hub: &Hub, sub: &str, role: TokenRole) -> String {
        hub.auth.sign(&Claims {
            sub: sub.into(),
            role,
            scope: String::new(),
            exp: crate::now_ms() / 1000 + 600,
            jti: None,
        })
    }

    fn code_of(frame: &ServerFrame) -> Option<ErrorCode> {
        match frame {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_hello_is_checked_once_for_every_framing() {
        let (hub, dir) = hub(20).await;
        let lead = lead_of(&hub);
        let good = token(&hub, &lead, TokenRole::Lead);
        let opened = hello(&hub, &good, None).unwrap();
        assert_eq!(opened.claims.sub, lead);
        assert!(!opened.assignments.is_empty());
        assert!(matches!(
            decode(&welcome(&hub, &opened)),
            ServerFrame::Welcome { lead: l, .. } if l == lead
        ));
        // The same token on a channel that names another lead (an MQTT topic, an open
        // session of someone else) is refused, as are an operator's token and garbage.
        let other = hello(&hub, &good, Some("someone-else")).unwrap_err();
        assert_eq!(
            (other.code, other.close),
            (ErrorCode::Forbidden, close::FORBIDDEN)
        );
        let op = token(&hub, "op", TokenRole::Operator);
        assert_eq!(
            hello(&hub, &op, None).unwrap_err().code,
            ErrorCode::Forbidden
        );
        let forged = hello(&hub, "not.a.token", Some(&lead)).unwrap_err();
        assert_eq!(
            (forged.code, forged.close),
            (ErrorCode::Unauthorized, close::UNAUTHORIZED)
        );
        let stranger = token(&hub, "not-in-the-registry", TokenRole::Lead);
        let gone = hello(&hub, &stranger, None).unwrap_err();
        assert!(gone.message.contains("not in the registry"), "{gone:?}");
        // The first frame of a connection must be a text hello.
        let first = first_hello(&hub, Payload::Text(r#"{"type":"ping"}"#)).unwrap_err();
        assert_eq!(
            (first.code, first.close),
            (ErrorCode::BadRequest, close::BAD_REQUEST)
        );
        assert!(first_hello(&hub, Payload::Other(12)).is_err());
        let hello_frame = format!(r#"{{"type":"hello","token":"{good}"}}"#);
        assert!(first_hello(&hub, Payload::Text(&hello_frame)).is_ok());
        drop(hub);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn decode(f: &Frame) -> ServerFrame {
        serde_json::from_str(f.as_str()).unwrap()
    }

    #[tokio::test]
    async fn frames_are_charged_before_they_are_decoded_and_refusals_keep_their_ref() {
        let (hub, dir) = hub(3).await;
        let lead = lead_of(&hub);
        let ping = r#"{"type":"ping","ref":"p1"}"#;
        let Upstream::Frame(frame) = admit(&hub, &lead, Payload::Text(ping)) else {
            panic!("a ping is a frame");
        };
        assert!(matches!(
            answer(&hub, &lead, frame, None).await,
            Some(ServerFrame::Pong { reference: Some(r) }) if r == "p1"
        ));
        let Upstream::Refused(e) = admit(&hub, &lead, Payload::Other(40)) else {
            panic!("binary is refused");
        };
        assert_eq!(code_of(&e), Some(ErrorCode::BadRequest));
        // Malformed JSON costs what a good frame does: the budget of 3 is spent now.
        let Upstream::Refused(e) = admit(&hub, &lead, Payload::Text("{nope")) else {
            panic!("garbage is refused");
        };
        assert_eq!(code_of(&e), Some(ErrorCode::BadRequest));
        let ack = r#"{"type":"ack","ref":"a9","incident":"INC-000001","response":"accept"}"#;
        match admit(&hub, &lead, Payload::Text(ack)) {
            Upstream::Refused(ServerFrame::Error {
                code, reference, ..
            }) => assert_eq!(
                (code, reference.as_deref()),
                (ErrorCode::RateLimited, Some("a9"))
            ),
            other => panic!("over budget: {other:?}"),
        }
        // Another budget (an MQTT lead not yet verified) is untouched; a hello is
        // handed back for the framing to check, and an ack for an unknown incident is
        // answered with its ref.
        let hello_frame = r#"{"type":"hello","token":"t"}"#;
        assert!(matches!(
            admit(&hub, &format!("?{lead}"), Payload::Text(hello_frame)),
            Upstream::Hello(t) if t == "t"
        ));
        let Upstream::Frame(frame) = admit(&hub, &format!("?{lead}"), Payload::Text(ack)) else {
            panic!("an ack is a frame");
        };
        match answer(&hub, &lead, frame, None).await {
            Some(ServerFrame::Error {
                code, reference, ..
            }) => assert_eq!(
                (code, reference.as_deref()),
                (ErrorCode::NotRecipient, Some("a9")),
                "nobody is a recipient of an incident that does not exist"
            ),
            other => panic!("{other:?}"),
        }
        // The sync of a lead with nothing active is just `synced`.
        let frames = sync(&hub, &lead).await.unwrap();
        assert!(matches!(
            frames.iter().map(decode).collect::<Vec<_>>().as_slice(),
            [ServerFrame::Synced]
        ));
        drop(hub);
        let _ = std::fs::remove_dir_all(dir);
    }
}
