//! What the gateway sends back: delivery statuses (recorded on the message and the
//! timeline; a temporary failure is tried again, a permanent one is not) and the leads'
//! replies (resolved to an incident and an answer; the API records them as acks).

use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{Channel, DeliveryStatus, FallbackInbound, FallbackStatus};
use gridcast_protocol::model::{IncidentState, Response, Status};

use super::Webhook;
use super::sender::{normalize, retry_wait, what};
use crate::incident::Refusal;
use crate::store::{FallbackRecord, FallbackState, StoreError};

/// Longest error text kept from a status.
const MAX_ERROR: usize = 200;

/// A gateway's error text as kept: at most [`MAX_ERROR`] characters, and any run of
/// seven or more digits (a phone number, in carriers' errors) left out.
fn scrub(error: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in error.chars().take(MAX_ERROR).chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 7 {
            out.push('…');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        out.push(c);
    }
    out.pop();
    out
}

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
    /// same status twice changes nothing, and a message only moves forward (a late
    /// `delivered` never undoes `answered`).
    pub(crate) async fn apply_status(&self, s: &FallbackStatus) -> Result<bool, Refusal> {
        let error: Option<String> = s.error.as_deref().map(scrub);
        // Another callback may come between the read and the write: read again.
        for _ in 0..5 {
            let Some(mut rec) = self.store.fallback_get(&s.message_id).await? else {
                return Ok(false);
            };
            let label = label(s, error.as_deref());
            if rec.error.as_deref() == Some(label.as_str()) {
                return Ok(true);
            }
            match rec.state {
                FallbackState::Sending => {
                    return Err(Refusal::new(
                        ErrorCode::Unavailable,
                        format!(
                            "{} is still being sent; report its status again shortly",
                            s.message_id
                        ),
                    ));
                }
                // Waiting for another send, or done with: a status of an earlier send
                // changes nothing.
                FallbackState::Queued | FallbackState::Failed | FallbackState::Cancelled => {
                    return Ok(true);
                }
                FallbackState::Sent | FallbackState::Delivered | FallbackState::Answered => {}
            }
            let Some(detail) = self.take_status(&mut rec, s, &label) else {
                return Ok(true);
            };
            rec.error = Some(label);
            let read = rec.claims;
            rec.claims += 1;
            let event = self.status_event(&rec, detail);
            if self
                .store
                .fallback_update(&rec, read, vec![event], None)
                .await?
            {
                if rec.state == FallbackState::Queued {
                    self.wake.notify_one();
                }
                return Ok(true);
            }
        }
        Err(StoreError::Io("the message kept changing; report its status again".into()).into())
    }

    /// Applies a status to a message the gateway took: its new state, and the
    /// timeline's words for it; `None` when it would move the message backwards.
    fn take_status(
        &self,
        rec: &mut FallbackRecord,
        s: &FallbackStatus,
        label: &str,
    ) -> Option<String> {
        let what = what(rec);
        let taken = rec.state == FallbackState::Sent;
        Some(match s.status {
            DeliveryStatus::Sent if taken => format!("{what} handed to the carrier"),
            DeliveryStatus::Delivered if taken => {
                rec.state = FallbackState::Delivered;
                format!("{what} delivered")
            }
            DeliveryStatus::Answered if rec.state != FallbackState::Answered => {
                rec.state = FallbackState::Answered;
                format!("{what} picked up; the message was read to the lead")
            }
            DeliveryStatus::NoAnswer if taken => format!("{what}: no answer"),
            DeliveryStatus::Busy if taken => format!("{what}: line busy"),
            // A text that did not arrive goes again, as a new send (its own key); a
            // call that failed is followed by the 叫应's next one.
            DeliveryStatus::Failed
                if taken
                    && s.temporary
                    && rec.channel == Channel::Sms
                    && rec.resends < self.config.fallback_attempts =>
            {
                let wait = retry_wait(rec.resends + 1);
                rec.state = FallbackState::Queued;
                rec.resends += 1;
                rec.next_at = self.clock.now_ms() + wait.as_millis() as u64;
                format!("{what} {label}; sent again in {} s", wait.as_secs().max(1))
            }
            DeliveryStatus::Failed if taken => {
                rec.state = FallbackState::Failed;
                format!("{what} {label}; not sent again")
            }
            _ => return None,
        })
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
                let incident = self
                    .replied_to(&lead, note.as_deref())
                    .await?
                    .ok_or_else(|| {
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

    /// The active incident a reply without `message_id` answers: the one named in
    /// `note` if any, else the one whose message the gateway took last among those the
    /// lead has not answered (or, when it answered all, among all: a change of mind).
    async fn replied_to(
        &self,
        lead: &str,
        note: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        let mut candidates = Vec::new();
        for (meta, state) in self.store.incidents_for_lead(lead, now).await? {
            if meta.state != IncidentState::Active {
                continue;
            }
            let sent = self.store.fallback_of(&meta.id).await?;
            let last = sent
                .iter()
                .filter(|m| m.lead == lead)
                .filter_map(|m| m.sent_at)
                .max();
            if let Some(at) = last {
                let open = matches!(state.status, Status::Pending | Status::Delivered);
                candidates.push((meta.id.clone(), open, at));
            }
        }
        if let Some(named) = candidates
            .iter()
            .find(|(id, _, _)| note.is_some_and(|n| n.contains(id.as_str())))
        {
            return Ok(Some(named.0.clone()));
        }
        let any_open = candidates.iter().any(|c| c.1);
        Ok(candidates
            .into_iter()
            .filter(|c| c.1 || !any_open)
            .max_by_key(|c| c.2)
            .map(|c| c.0))
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
    let after = ascii.get(word.len()..).unwrap_or("");
    // The word alone or then a separator: 接受不了 is no accept, 12 no reply 1.
    const SEPARATORS: [char; 10] = [' ', ',', '，', ':', '：', '.', '。', ';', '；', '\n'];
    if !(after.is_empty() || after.starts_with(SEPARATORS)) {
        return None;
    }
    let rest = after.trim_start_matches(SEPARATORS);
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
        assert_eq!(parse_reply("接受不了"), None);
        assert_eq!(parse_reply("2在医院"), None);
        assert_eq!(parse_reply("ok"), None);
        assert_eq!(
            scrub("DELIVRD to 13900000001, code 404"),
            "DELIVRD to …, code 404"
        );
        assert_eq!(parse_reply(""), None);
    }
}
