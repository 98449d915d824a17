//! What the gateway sends back: delivery statuses (recorded on the message and the
//! timeline; a temporary failure is tried again, a permanent one is not) and the leads'
//! replies (resolved to an incident and an answer; the API records them as acks).

use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{Channel, DeliveryStatus, FallbackInbound, FallbackStatus};
use gridcast_protocol::model::{IncidentState, Response};

use super::Webhook;
use super::sender::{normalize, retry_wait, what};
use crate::incident::Refusal;
use crate::store::{FallbackRecord, FallbackState, StoreError};

/// Longest error text kept from a status.
const MAX_ERROR: usize = 200;

/// A reply resolved: who answered what to which incident.
pub(crate) struct Reply {
    pub(crate) incident: String,
    pub(crate) lead: String,
    pub(crate) response: Response,
    pub(crate) note: Option<String>,
    /// How it came (`text`, `call 2`, `reply`), for the timeline.
    pub(crate) via: String,
}

impl Webhook {
    /// Records one status; false when it names no message of this hub. Recording the
    /// same status twice changes nothing.
    pub(crate) async fn apply_status(&self, s: &FallbackStatus) -> Result<bool, Refusal> {
        let error: Option<String> = s
            .error
            .as_deref()
            .map(|e| e.chars().take(MAX_ERROR).collect());
        // A claim may come between the read and the write: read again.
        for _ in 0..3 {
            let Some(mut rec) = self.store.fallback_get(&s.message_id).await? else {
                return Ok(false);
            };
            if rec.state.is_due_kind() {
                return Err(Refusal::new(
                    ErrorCode::Unavailable,
                    format!(
                        "{} is still being sent; report its status again shortly",
                        s.message_id
                    ),
                ));
            }
            let label = label(s, error.as_deref());
            if rec.error.as_deref() == Some(label.as_str()) {
                return Ok(true);
            }
            let detail = self.take_status(&mut rec, s, &label);
            rec.error = Some(label);
            let event = self.status_event(&rec, detail);
            if self.store.fallback_update(&rec, vec![event], None).await? {
                if rec.state == FallbackState::Queued {
                    self.wake.notify_one();
                }
                return Ok(true);
            }
        }
        Err(StoreError::Io("the message kept changing; report its status again".into()).into())
    }

    /// Applies a status to `rec`: its new state, and the timeline's words for it.
    fn take_status(&self, rec: &mut FallbackRecord, s: &FallbackStatus, label: &str) -> String {
        let what = what(rec);
        match s.status {
            DeliveryStatus::Sent => format!("{what} handed to the carrier"),
            DeliveryStatus::Delivered => {
                rec.state = FallbackState::Delivered;
                format!("{what} delivered")
            }
            DeliveryStatus::Answered => {
                rec.state = FallbackState::Answered;
                format!("{what} picked up; the message was read to the lead")
            }
            DeliveryStatus::NoAnswer => format!("{what}: no answer"),
            DeliveryStatus::Busy => format!("{what}: line busy"),
            DeliveryStatus::Failed
                if s.temporary && rec.attempts < self.config.fallback_attempts =>
            {
                let wait = retry_wait(rec.attempts);
                rec.state = FallbackState::Queued;
                rec.next_at = self.clock.now_ms() + wait.as_millis() as u64;
                format!("{what} {label}; tried again in {} s", wait.as_secs().max(1))
            }
            DeliveryStatus::Failed => {
                rec.state = FallbackState::Failed;
                format!("{what} {label}; not tried again")
            }
        }
    }

    fn status_event(
        &self,
        rec: &FallbackRecord,
        detail: String,
    ) -> gridcast_protocol::api::TimelineEvent {
        gridcast_protocol::api::TimelineEvent {
            at: gridcast_protocol::time::rfc3339(self.clock.now_ms()),
            kind: "fallback_status".into(),
            actor: "gateway".into(),
            lead: Some(rec.lead.clone()),
            detail: Some(detail),
            place: None,
            satisfaction: None,
        }
    }

    /// Resolves a lead's reply to an incident and an answer.
    pub(crate) async fn resolve_reply(&self, r: &FallbackInbound) -> Result<Reply, Refusal> {
        let (response, note) = parse_reply(&r.body).ok_or_else(|| {
            Refusal::new(
                ErrorCode::BadRequest,
                "a reply is 1 (接受, accept) or 2 (无法前往, decline), optionally followed by a note",
            )
        })?;
        let from = normalize(&r.from);
        if from.is_empty() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "from must be a phone number",
            ));
        }
        let registry = self.registry.current();
        let (incident, lead, via) = match &r.message_id {
            Some(id) => {
                let rec = self.store.fallback_get(id).await?.ok_or_else(|| {
                    Refusal::new(ErrorCode::NotFound, format!("no message {id:?}"))
                })?;
                let theirs = registry
                    .person(&rec.lead)
                    .is_some_and(|p| normalize(&p.phone) == from);
                if !theirs {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        format!("the reply to {id} comes from a number that is not its lead's"),
                    ));
                }
                let via = match rec.channel {
                    Channel::Sms => "text reply".to_owned(),
                    Channel::Voice => format!("keypad, call {}", rec.call),
                };
                (rec.incident, rec.lead, via)
            }
            None => {
                let mut leads = registry
                    .registry
                    .staff
                    .iter()
                    .filter(|p| normalize(&p.phone) == from)
                    .map(|p| p.id.clone());
                let lead = leads
                    .next()
                    .ok_or_else(|| Refusal::new(ErrorCode::NotFound, "no lead has this number"))?;
                if leads.next().is_some() {
                    return Err(Refusal::new(
                        ErrorCode::Conflict,
                        "several leads share this number: the gateway must give message_id",
                    ));
                }
                let incident = self.newest_messaged(&lead).await?.ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::NotFound,
                        "no active activation was sent to this number",
                    )
                })?;
                (incident, lead, "text reply".to_owned())
            }
        };
        Ok(Reply {
            incident,
            lead,
            response,
            note,
            via,
        })
    }

    /// The newest active incident whose fallback messages went to `lead`.
    async fn newest_messaged(&self, lead: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        let mine = self.store.incidents_for_lead(lead, now).await?;
        for (meta, _) in mine.iter().rev() {
            if meta.state != IncidentState::Active {
                continue;
            }
            let sent = self.store.fallback_of(&meta.id).await?;
            if sent.iter().any(|m| m.lead == lead) {
                return Ok(Some(meta.id.clone()));
            }
        }
        Ok(None)
    }
}

/// The words a status is kept and compared by.
fn label(s: &FallbackStatus, error: Option<&str>) -> String {
    let name = gridcast_protocol::wire_name(&s.status);
    match (s.status, error) {
        (DeliveryStatus::Failed, Some(e)) if s.temporary => format!("failed (temporary: {e})"),
        (DeliveryStatus::Failed, None) if s.temporary => "failed (temporary)".into(),
        (DeliveryStatus::Failed, Some(e)) => format!("failed ({e})"),
        (_, _) => name,
    }
}

/// `1`/接受/accept or `2`/无法前往/decline (full-width digits too), then an optional
/// note.
pub(crate) fn parse_reply(body: &str) -> Option<(Response, Option<String>)> {
    let ascii: String = body
        .trim()
        .chars()
        .map(|c| match c {
            '１' => '1',
            '２' => '2',
            c => c,
        })
        .collect();
    let words: [(&str, Response); 6] = [
        ("无法前往", Response::Decline),
        ("decline", Response::Decline),
        ("接受", Response::Accept),
        ("accept", Response::Accept),
        ("1", Response::Accept),
        ("2", Response::Decline),
    ];
    let lower = ascii.to_lowercase();
    let (word, response) = words.into_iter().find(|(w, _)| lower.starts_with(w))?;
    let rest = ascii
        .get(word.len()..)
        .unwrap_or("")
        .trim_start_matches([' ', ',', '，', ':', '：', '.', '。']);
    // `12` is not a reply `1` with the note `2`.
    if word.len() == 1 && rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let note = Some(rest.trim().to_owned()).filter(|n| !n.is_empty());
    Some((response, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_in_chinese_and_english() {
        assert_eq!(parse_reply(" 1 "), Some((Response::Accept, None)));
        assert_eq!(parse_reply("１"), Some((Response::Accept, None)));
        assert_eq!(parse_reply("接受"), Some((Response::Accept, None)));
        assert_eq!(
            parse_reply("2 在医院"),
            Some((Response::Decline, Some("在医院".into())))
        );
        assert_eq!(
            parse_reply("无法前往，车坏了"),
            Some((Response::Decline, Some("车坏了".into())))
        );
        assert_eq!(parse_reply("Decline"), Some((Response::Decline, None)));
        assert_eq!(parse_reply("12"), None);
        assert_eq!(parse_reply("ok"), None);
        assert_eq!(parse_reply(""), None);
    }
}
