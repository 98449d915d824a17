//! The sender: claims due messages, checks each is still worth sending (the lead still
//! silent, the incident active, the 叫应 not yet answered), holds it back while its
//! number had a message within `--fallback-number-gap-s`, paces what leaves to
//! `--fallback-rate`, posts it, and records what the gateway said together with its
//! timeline events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use gridcast_protocol::api::{Channel, FallbackSend, ReplyCodes, TimelineEvent};
use gridcast_protocol::time::rfc3339;
use tokio_util::sync::CancellationToken;

use super::text::Fill;
use super::{Webhook, is_silent, sign};
use crate::store::{FallbackRecord, FallbackState, IncidentMeta, IncidentSnapshot};

/// How often the queue is looked at when nothing wakes the sender.
const TICK: Duration = Duration::from_millis(250);
/// How long a claimed message is this sender's before another may send it again.
/// Three times [`TIMEOUT`]: a live sender has always recorded its answer by then.
const LEASE_MS: u64 = 15_000;
/// Messages claimed, and requests in flight, at a time: a round is done (every answer
/// recorded) well inside the lease even on a gateway that never answers.
const BATCH: usize = 8;
/// How long the gateway has to answer one request (inside the hub's drain deadline).
const TIMEOUT: Duration = Duration::from_secs(4);
/// First and longest wait before a message is tried again.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(120);

/// Runs until `shutdown`: see the module docs.
pub(super) async fn run(gw: Arc<Webhook>, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "fallback: no HTTP client; nothing will be sent");
            return;
        }
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let period = Duration::from_secs(1) / gw.config.fallback_rate.max(1);
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut numbers: HashMap<String, u64> = HashMap::new();
    tracing::info!(rate = gw.config.fallback_rate, "fallback sender started");
    let mut full = false;
    loop {
        // A full round may have left more: the next one at once.
        if !full {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                () = gw.wake.notified() => {}
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        let now = gw.clock.now_ms();
        let claimed = match gw.store.fallback_claim(now, LEASE_MS, BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "fallback: queue unavailable");
                continue;
            }
        };
        full = claimed.len() == BATCH;
        // Read once a round: a round lasts at most the pacing of BATCH messages, so a
        // lead's answer is seen within that.
        let mut snaps: HashMap<String, Option<IncidentSnapshot>> = HashMap::new();
        let mut flying = FuturesUnordered::new();
        let mut pending = claimed.into_iter();
        while let Some(rec) = pending.next() {
            if !snaps.contains_key(&rec.incident) {
                let snap = gw.store.incident(&rec.incident).await.ok().flatten();
                snaps.insert(rec.incident.clone(), snap);
            }
            let snap = snaps.get(&rec.incident).and_then(Option::as_ref);
            match gw.decide(rec, snap, &numbers).await {
                Decision::Record(rec, events) => gw.record(&rec, events, None).await,
                Decision::Send(rec, body) => {
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => {
                            // Left for the next start at once, not after the lease.
                            gw.release(rec).await;
                            for rec in pending.by_ref() {
                                gw.release(rec).await;
                            }
                            break;
                        }
                        _ = pace.tick() => {}
                    }
                    let key = gw.number_key(&rec);
                    if let Some(k) = &key {
                        numbers.insert(k.clone(), gw.clock.now_ms());
                    }
                    let (gw, http) = (&gw, &http);
                    flying.push(async move { (key, gw.send(http, rec, body).await) });
                }
            }
        }
        while let Some(done) = flying.next().await {
            forget_refused(Some(done), &mut numbers);
        }
        // A number past its gap needs no entry: the map holds only the numbers texted
        // in the last gap, not every number ever texted.
        let gap = gw.config.fallback_number_gap_s * 1000;
        let now = gw.clock.now_ms();
        numbers.retain(|_, last| *last + gap > now);
    }
}

/// A number whose message the gateway did not take may have the next one at once.
fn forget_refused(done: Option<(Option<String>, bool)>, numbers: &mut HashMap<String, u64>) {
    if let Some((Some(key), false)) = done {
        numbers.remove(&key);
    }
}

/// What to do with a claimed message.
enum Decision {
    /// Record it as it now is (cancelled, failed, held back) with these events.
    Record(FallbackRecord, Vec<TimelineEvent>),
    /// Send this body.
    Send(FallbackRecord, Box<FallbackSend>),
}

/// What the gateway's answer means.
enum Answer {
    Accepted,
    /// 429, 5xx or no answer: worth another try (after at least this long).
    Again(String, Option<Duration>),
    /// Anything else: final.
    Refused(String),
}

/// When the escalation chain of `meta` ends (its last step, the console alert).
fn chain_end(meta: &IncidentMeta) -> u64 {
    let window = meta.ack_by.saturating_sub(meta.issued_at);
    meta.ack_by + 2 * window
}

/// What a message is called on the timeline.
pub(super) fn what(rec: &FallbackRecord) -> String {
    match rec.channel {
        Channel::Sms => "text".to_owned(),
        Channel::Voice => format!("call {}", rec.call),
    }
}

impl Webhook {
    fn event(&self, rec: &FallbackRecord, kind: &str, detail: String) -> TimelineEvent {
        TimelineEvent {
            at: rfc3339(self.clock.now_ms()),
            kind: kind.into(),
            actor: "hub".into(),
            lead: Some(rec.lead.clone()),
            detail: Some(detail),
            place: None,
            satisfaction: None,
        }
    }

    /// The throttle key of a message's number and channel (a digest: numbers stay out
    /// of keys and logs).
    fn number_key(&self, rec: &FallbackRecord) -> Option<String> {
        use hmac::Mac;
        let registry = self.registry.current();
        let phone = &registry.person(&rec.lead)?.phone;
        let channel = match rec.channel {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        };
        // Keyed with the shared secret: an 11-digit number is not read back from it.
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.secret).ok()?;
        mac.update(format!("{}:{channel}", normalize(phone)).as_bytes());
        let tag = mac.finalize().into_bytes();
        Some(tag.iter().take(12).map(|b| format!("{b:02x}")).collect())
    }

    /// `rec` given up (refused, or out of tries): its timeline event.
    fn give_up(&self, rec: &mut FallbackRecord, why: String, detail: String) -> TimelineEvent {
        self.metrics.fallback_failed.fetch_add(1, Relaxed);
        rec.state = FallbackState::Failed;
        rec.error = Some(why);
        self.event(rec, "fallback_failed", detail)
    }

    /// `rec` not sent (`verb`: "not sent", "not made") because `why`, on the timeline.
    fn cancel(&self, mut rec: FallbackRecord, verb: &str, why: String) -> Decision {
        rec.state = FallbackState::Cancelled;
        let e = self.event(
            &rec,
            "fallback_cancelled",
            format!("{} {verb}: {why}", what(&rec)),
        );
        rec.error = Some(why);
        Decision::Record(rec, vec![e])
    }

    async fn decide(
        &self,
        mut rec: FallbackRecord,
        snap: Option<&IncidentSnapshot>,
        numbers: &HashMap<String, u64>,
    ) -> Decision {
        let now = self.clock.now_ms();
        let Some(snap) =
            snap.filter(|s| s.meta.state == gridcast_protocol::model::IncidentState::Active)
        else {
            return self.cancel(rec, "not sent", "the incident is closed".into());
        };
        let state = snap.recipients.iter().find(|r| r.lead == rec.lead);
        let answered = match state {
            None => Some("the lead is no longer a recipient".to_owned()),
            Some(r) if !is_silent(r.status) => {
                Some(format!("the lead answered ({}) first", r.status.as_str()))
            }
            Some(_) => None,
        };
        if let Some(why) = answered {
            return self.cancel(rec, "not sent", why);
        }
        if rec.channel == Channel::Voice {
            let previous = format!(
                "{}:{}:call{}",
                rec.incident,
                rec.lead,
                rec.call.saturating_sub(1)
            );
            let answered = rec.call > 1
                && matches!(
                    self.store.fallback_get(&previous).await,
                    Ok(Some(p)) if p.state == FallbackState::Answered
                );
            let why = if answered {
                Some(format!("call {} was picked up", rec.call - 1))
            } else if now > chain_end(&snap.meta) {
                Some("the escalation chain has ended".to_owned())
            } else {
                None
            };
            if let Some(why) = why {
                return self.cancel(rec, "not made", why);
            }
        }
        let registry = self.registry.current();
        let person = registry
            .person(&rec.lead)
            .filter(|p| !p.phone.trim().is_empty());
        let Some(person) = person else {
            rec.state = FallbackState::Failed;
            rec.error = Some("no phone number registered".into());
            let e = self.event(
                &rec,
                "fallback_failed",
                format!(
                    "{} not sent: no phone number registered for the lead",
                    what(&rec)
                ),
            );
            return Decision::Record(rec, vec![e]);
        };
        // One number, one message per gap: a later one waits (the carrier would block
        // a sender that floods a number). In a cluster a short lock covers every node.
        let gap = self.config.fallback_number_gap_s * 1000;
        if let Some(key) = self.number_key(&rec) {
            let local = numbers.get(&key).is_some_and(|last| last + gap > now);
            let free = !local
                && self
                    .store
                    .try_lock(&format!("fb-number:{key}"), &rec.id, gap.max(1))
                    .await
                    // A store that cannot say sends rather than holds a text back.
                    .unwrap_or(true);
            if !free {
                self.metrics.fallback_throttled.fetch_add(1, Relaxed);
                rec.state = FallbackState::Queued;
                rec.next_at = numbers
                    .get(&key)
                    .map_or(now + gap, |last| last + gap)
                    .max(now + 1);
                return Decision::Record(rec, Vec::new());
            }
        }
        let meta = &snap.meta;
        let lang = self.config.fallback_lang.clone();
        let text = self.templates.render(
            &lang,
            rec.channel,
            &Fill {
                level: meta.level,
                title: &meta.title,
                incident: &meta.id,
                name: &person.name,
                drill: meta.drill,
            },
        );
        let body = FallbackSend {
            message_id: rec.id.clone(),
            channel: rec.channel,
            to: person.phone.trim().to_owned(),
            text,
            lang,
            incident: meta.id.clone(),
            lead: rec.lead.clone(),
            level: meta.level,
            drill: meta.drill,
            attempt: rec.attempts + 1,
            reply_codes: ReplyCodes::default(),
            status_url: format!("{}/v1/fallback/status", self.public_url),
            inbound_url: format!("{}/v1/fallback/inbound", self.public_url),
        };
        Decision::Send(rec, Box::new(body))
    }

    /// Posts one message and records what came of it; true when the gateway took it.
    async fn send(
        &self,
        http: &reqwest::Client,
        mut rec: FallbackRecord,
        body: Box<FallbackSend>,
    ) -> bool {
        let bytes = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(message_id = %rec.id, error = %e, "fallback: body not encoded");
                return false;
            }
        };
        let ts = (self.clock.now_ms() / 1000).to_string();
        let signature = sign::sign(&self.secret, &ts, &bytes);
        let answer = match http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", rec.key())
            .header(sign::TIMESTAMP, &ts)
            .header(sign::SIGNATURE, signature)
            .body(bytes)
            .send()
            .await
        {
            Ok(r) => classify(&r),
            Err(e) => Answer::Again(format!("no answer ({})", e.without_url()), None),
        };
        let now = self.clock.now_ms();
        rec.attempts += 1;
        let event = match answer {
            Answer::Accepted => {
                self.metrics.fallback_sent.fetch_add(1, Relaxed);
                rec.state = FallbackState::Sent;
                rec.sent_at = Some(now);
                rec.error = None;
                self.event(
                    &rec,
                    "fallback_sent",
                    format!(
                        "{} taken by the gateway (try {}; not yet known to be delivered)",
                        what(&rec),
                        rec.attempts
                    ),
                )
            }
            Answer::Again(why, after) if rec.attempts < self.config.fallback_attempts => {
                self.metrics.fallback_retries.fetch_add(1, Relaxed);
                let _ = self
                    .store
                    .unlock(
                        &format!("fb-number:{}", self.number_key(&rec).unwrap_or_default()),
                        &rec.id,
                    )
                    .await;
                let wait = retry_wait(rec.attempts).max(after.unwrap_or_default().min(MAX_RETRY));
                rec.state = FallbackState::Queued;
                rec.next_at = now + wait.as_millis() as u64;
                rec.error = Some(why.clone());
                self.event(
                    &rec,
                    "fallback_retry",
                    format!(
                        "{} try {}: {why}; tried again in {} s",
                        what(&rec),
                        rec.attempts,
                        wait.as_secs().max(1)
                    ),
                )
            }
            Answer::Again(why, _) => {
                let detail = format!(
                    "{} given up after {} tries (last: {why})",
                    what(&rec),
                    rec.attempts
                );
                self.give_up(&mut rec, why, detail)
            }
            Answer::Refused(why) => {
                let detail = format!(
                    "{} refused by the gateway ({why}); not tried again",
                    what(&rec)
                );
                self.give_up(&mut rec, why, detail)
            }
        };
        // A 叫应 goes on after a call the gateway took or gave up on, until the lead
        // answers, a call is picked up, or the calls or the chain run out.
        let mut next = None;
        let done_with = matches!(rec.state, FallbackState::Sent | FallbackState::Failed);
        if rec.channel == Channel::Voice && done_with && rec.call < self.config.callout_max {
            let at = now + self.config.callout_interval_s * 1000;
            if let Ok(Some(snap)) = self.store.incident(&rec.incident).await
                && at <= chain_end(&snap.meta)
            {
                next = Some(FallbackRecord::new(
                    &rec.incident,
                    &rec.lead,
                    Channel::Voice,
                    rec.call + 1,
                    at,
                ));
            }
        }
        tracing::info!(message_id = %rec.id, state = ?rec.state, attempts = rec.attempts, "fallback message");
        self.record(&rec, vec![event], next).await;
        rec.state == FallbackState::Sent
    }

    /// Records a message as it now is.
    async fn record(
        &self,
        rec: &FallbackRecord,
        events: Vec<TimelineEvent>,
        next: Option<FallbackRecord>,
    ) {
        match self
            .store
            .fallback_update(rec, rec.claims, events, next)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(message_id = %rec.id, "fallback: the message was claimed again meanwhile; its newer claim stands")
            }
            Err(e) => {
                tracing::warn!(message_id = %rec.id, error = %e, "fallback: outcome not recorded; the message is sent again after its lease (same idempotency key)")
            }
        }
    }

    /// Gives a claimed message back, due at once.
    async fn release(&self, mut rec: FallbackRecord) {
        rec.state = FallbackState::Queued;
        rec.next_at = self.clock.now_ms();
        self.record(&rec, Vec::new(), None).await;
    }
}

fn classify(r: &reqwest::Response) -> Answer {
    let status = r.status();
    let code = format!("HTTP {}", status.as_u16());
    if status.is_success() {
        Answer::Accepted
    } else if matches!(status.as_u16(), 408 | 409 | 425 | 429) || status.is_server_error() {
        // 409: the gateway still works on this key (our earlier try timed out).
        let after = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Answer::Again(code, after)
    } else {
        Answer::Refused(code)
    }
}

/// The jittered wait before try `attempts + 1`.
pub(super) fn retry_wait(attempts: u32) -> Duration {
    let mut b = crate::backoff::Backoff::new(FIRST_RETRY, MAX_RETRY);
    let mut wait = b.next_wait();
    for _ in 1..attempts {
        wait = b.next_wait();
    }
    wait
}

/// A phone number as digits only, without China's country code: `+86 138-0000-0000`
/// and `13800000000` are one number.
pub(super) fn normalize(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix("86") {
        Some(rest) if digits.len() == 13 => rest.to_owned(),
        _ => digits,
    }
}
