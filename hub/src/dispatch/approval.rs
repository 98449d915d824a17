//! The two-person rule (四眼原则): real activations of the configured levels, or that
//! cover a whole county or more, are held until a second person — a supervisor or admin
//! whose jurisdiction covers the targets, never the one who asked — approves the very
//! content that was asked (its digest), and only then issued. The lesson of the 2018
//! Hawaii false alert: one person alone could send, and test and live looked alike.
//!
//! A held request is durable (the store's approvals), reaches no phone, expires after
//! `--approval-expiry-s`, and is decided once: the store changes its state only from the
//! one it was read in, so two approvers racing (also on two nodes) make one incident. A
//! request nobody else could approve (with `--approvers`) is refused at once, never let
//! through. An admin may issue at once with a reason, loudly.

use std::collections::{HashMap, HashSet};

use gridcast_protocol::api::{
    Approval, ApprovalState, CreateIncident, CreatedIncident, TimelineEvent,
};
use gridcast_protocol::time::{parse_rfc3339, rfc3339};
use gridcast_protocol::{ErrorCode, GridCode};
use sha2::Digest;

use super::Dispatch;
use super::incident::{MAX_NOTE, Prepared, Refusal, check_text};
use crate::auth::{Claims, TokenRole};

/// How long a request may stay `approving` (being issued) before it is taken for the
/// mark of a hub that stopped halfway: issuing takes milliseconds, and this leaves room
/// for a stalled process and for clocks of nodes that disagree.
const STUCK_MS: u64 = 300_000;

/// What `POST /v1/incidents` did.
#[derive(Debug)]
pub(crate) enum Requested {
    /// Issued at once.
    Issued(CreatedIncident),
    /// Held for a second person.
    Held(Box<Approval>),
}

/// The SHA-256 of a request as held (what an approval binds to), hex.
fn digest(req: &CreateIncident) -> String {
    let json = serde_json::to_vec(req).unwrap_or_default();
    sha2::Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when everything `p` targets lies inside `scope`.
fn within(p: &Prepared, scope: &str) -> bool {
    p.req
        .targets
        .codes
        .iter()
        .all(|t| t.as_str().starts_with(scope))
        && p.area_grids.iter().all(|g| g.as_str().starts_with(scope))
}

fn event(kind: &str, actor: &str, at: u64, detail: String) -> TimelineEvent {
    TimelineEvent {
        at: rfc3339(at),
        kind: kind.into(),
        actor: actor.into(),
        lead: None,
        detail: Some(detail),
        place: None,
        satisfaction: None,
    }
}

impl Dispatch {
    /// True when a prepared real activation needs a second person: its level is on
    /// the list, or (with `--approval-county-wide`) it covers every grid of a county.
    fn needs_approval(&self, p: &Prepared) -> bool {
        if p.req.drill {
            return false;
        }
        if self.config.needs_approval(p.req.level) {
            return true;
        }
        if !self.config.approval_county_wide {
            return false;
        }
        if p.req.targets.codes.iter().any(|t| t.as_str().len() <= 6) {
            return true;
        }
        // Every grid of some county covered, by codes and area together.
        let registry = self.registry.current();
        let in_area: HashSet<&GridCode> = p.area_grids.iter().collect();
        let mut all: HashMap<&str, (usize, usize)> = HashMap::new();
        for g in &registry.registry.grids {
            let county = &g.code.as_str()[..6];
            let covered = in_area.contains(&g.code)
                || p.req
                    .targets
                    .codes
                    .iter()
                    .any(|t| t.covers(g.code.as_str()));
            let e = all.entry(county).or_default();
            e.0 += 1;
            e.1 += usize::from(covered);
        }
        all.values().any(|&(n, covered)| n > 0 && covered == n)
    }

    /// The configured approvers as `(sub, scope)`.
    fn approvers(&self) -> Vec<(&str, &str)> {
        self.config
            .approvers
            .iter()
            .map(|a| a.split_once('@').unwrap_or((a.as_str(), "")))
            .collect()
    }

    /// `POST /v1/incidents`: issued at once, or held under the two-person rule.
    pub(crate) async fn request(
        &self,
        operator: &Claims,
        mut req: CreateIncident,
        cap: Option<crate::store::CapOrigin>,
    ) -> Result<Requested, Refusal> {
        let overridden = req.approval_override.take();
        let prepared = self.prepare(operator, req).await?;
        if !self.needs_approval(&prepared) {
            return Ok(Requested::Issued(
                self.commit(operator, prepared, cap, Vec::new(), None)
                    .await?,
            ));
        }
        let now = self.clock.now_ms();
        let reach: Vec<String> = prepared
            .req
            .targets
            .codes
            .iter()
            .cloned()
            .chain(crate::store::reach_of(&prepared.area_grids))
            .map(|t| t.to_string())
            .collect();
        if let Some(o) = overridden {
            if operator.role != TokenRole::Admin {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    "only an admin may issue without a second person",
                ));
            }
            check_text("override.reason", &o.reason, 1, MAX_NOTE)?;
            tracing::warn!(admin = %operator.sub, reason = %o.reason, "two-person rule overridden");
            let events = vec![event(
                "approval_overridden",
                &operator.sub,
                now,
                format!("issued without a second person: {}", o.reason),
            )];
            let created = self.commit(operator, prepared, cap, events, None).await?;
            let data = serde_json::json!({
                "incident": created.id, "by": operator.sub, "reason": o.reason,
            });
            self.delivery
                .console("approval_overridden", reach.clone(), data)
                .await;
            return Ok(Requested::Issued(created));
        }
        let approvers = self.approvers();
        if !approvers.is_empty()
            && !approvers
                .iter()
                .any(|(sub, scope)| *sub != operator.sub && within(&prepared, scope))
        {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "nobody else on the approvers' list may approve this activation; it was not issued",
            ));
        }
        let held = Approval {
            id: String::new(),
            state: ApprovalState::PendingApproval,
            digest: digest(&prepared.req),
            request: prepared.req.clone(),
            requested_by: operator.sub.clone(),
            requested_scope: operator.scope.clone(),
            requested_at: rfc3339(now),
            expires_at: rfc3339(now + self.config.approval_expiry_s * 1000),
            recipients: prepared.recipients.len(),
            reach,
            decided_by: None,
            decided_at: None,
            reason: None,
            incident: None,
            report: None,
            cap: cap.map(|c| serde_json::to_value(c).unwrap_or_default()),
        };
        let held = self.store.add_approval(held).await?;
        tracing::info!(request = %held.id, operator = %operator.sub, recipients = held.recipients, "activation held for approval");
        self.announce(&held).await;
        Ok(Requested::Held(Box::new(held)))
    }

    /// Tells the consoles that a held request changed.
    pub(crate) async fn announce(&self, a: &Approval) {
        let codes = a.reach.clone();
        let data = serde_json::json!({ "approval": a });
        self.delivery.console("approval", codes, data).await;
    }

    /// The held requests `op` may see (inside its jurisdiction), the ones past their
    /// time marked expired first.
    pub(crate) async fn approvals_for(&self, op: &Claims) -> Result<Vec<Approval>, Refusal> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for a in self.store.approvals().await? {
            let a = self.recover(a, now).await?;
            let a = self.expire(a, now).await?;
            let inside = a.reach.iter().all(|t| t.starts_with(&op.scope));
            if inside {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// `a`, if a hub stopped between approving and issuing it (it stayed `approving`
    /// past [`STUCK_MS`]): `active` with its incident if that was issued, else back to
    /// `pending_approval` for a person to approve again (nothing was sent).
    async fn recover(&self, mut a: Approval, now: u64) -> Result<Approval, Refusal> {
        let since = a.decided_at.as_deref().and_then(parse_rfc3339);
        if a.state != ApprovalState::Approving || since.is_some_and(|t| now < t + STUCK_MS) {
            return Ok(a);
        }
        let day = now.saturating_sub(24 * 3_600_000);
        let issued = self
            .store
            .recent_metas(day)
            .await?
            .into_iter()
            .find(|m| m.approval.as_deref() == Some(a.id.as_str()));
        match issued {
            Some(meta) => {
                a.state = ApprovalState::Active;
                a.incident = Some(meta.id.clone());
            }
            None => {
                a.state = ApprovalState::PendingApproval;
                a.decided_by = None;
                a.decided_at = None;
                a.reason = Some(
                    "a hub stopped while issuing it; nothing was sent: approve it again".into(),
                );
            }
        }
        if self
            .store
            .update_approval(&a, ApprovalState::Approving)
            .await?
        {
            tracing::warn!(request = %a.id, state = ?a.state, incident = ?a.incident, "held activation recovered after a hub stopped while issuing it");
            self.announce(&a).await;
        }
        Ok(a)
    }

    /// `a`, marked expired (durably) if it waited past its time.
    async fn expire(&self, mut a: Approval, now: u64) -> Result<Approval, Refusal> {
        let late = parse_rfc3339(&a.expires_at).is_some_and(|t| t <= now);
        if a.state == ApprovalState::PendingApproval && late {
            a.state = ApprovalState::Expired;
            a.decided_at = Some(rfc3339(now));
            if self
                .store
                .update_approval(&a, ApprovalState::PendingApproval)
                .await?
            {
                tracing::info!(request = %a.id, "held activation expired unapproved");
                self.announce(&a).await;
            }
        }
        Ok(a)
    }

    /// The held request `id` as `op` may act on it.
    async fn held(&self, op: &Claims, id: &str) -> Result<Approval, Refusal> {
        self.approvals_for(op)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no request {id:?}")))
    }

    /// Checks that `op` may decide `a`: a supervisor or admin (on the approvers' list,
    /// when there is one), not the one who asked, the request still pending.
    fn may_decide(&self, op: &Claims, a: &Approval) -> Result<(), Refusal> {
        if !matches!(op.role, TokenRole::Supervisor | TokenRole::Admin) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "only a supervisor or admin may approve or reject",
            ));
        }
        if op.sub == a.requested_by {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "the person who asked cannot approve or reject their own request",
            ));
        }
        let approvers = self.approvers();
        if !approvers.is_empty()
            && !approvers
                .iter()
                .any(|(sub, scope)| *sub == op.sub && op.scope.starts_with(scope))
        {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "you are not on the approvers' list",
            ));
        }
        match a.state {
            ApprovalState::PendingApproval => Ok(()),
            ApprovalState::Expired => Err(Refusal::new(
                ErrorCode::Conflict,
                format!("request {} expired unapproved; nothing was sent", a.id),
            )),
            s => Err(Refusal::new(
                ErrorCode::Conflict,
                format!(
                    "request {} was decided already ({})",
                    a.id,
                    gridcast_protocol::wire_name(&s)
                ),
            )),
        }
    }

    /// Records `op`'s decision on `a` (its new state already set), durably, only if
    /// `a` is still pending: one decision, whoever comes first.
    async fn decide_once(&self, a: &mut Approval, op: &Claims, now: u64) -> Result<(), Refusal> {
        a.decided_by = Some(op.sub.clone());
        a.decided_at = Some(rfc3339(now));
        if !self
            .store
            .update_approval(a, ApprovalState::PendingApproval)
            .await?
        {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("request {} was decided already", a.id),
            ));
        }
        Ok(())
    }

    /// `POST /v1/incidents/{id}/approve`: a second person approves the content asked
    /// (`digest`, when given, must be it); then it is issued for the one who asked.
    pub(crate) async fn approve(
        &self,
        op: &Claims,
        id: &str,
        want_digest: Option<String>,
    ) -> Result<Approval, Refusal> {
        let mut a = self.held(op, id).await?;
        self.may_decide(op, &a)?;
        if want_digest.as_ref().is_some_and(|d| *d != a.digest) {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("request {id} is not the content you approved (its digest differs)"),
            ));
        }
        let requester = Claims {
            sub: a.requested_by.clone(),
            role: TokenRole::Operator,
            scope: a.requested_scope.clone(),
            exp: 0,
            jti: None,
        };
        // Resolved again (the registry may have changed), and the approver's own
        // jurisdiction must cover it.
        let prepared = self.prepare(&requester, a.request.clone()).await?;
        if digest(&prepared.req) != a.digest {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("request {id} no longer reads as it was asked; ask again"),
            ));
        }
        if !within(&prepared, &op.scope) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("request {id} reaches outside your jurisdiction"),
            ));
        }
        let now = self.clock.now_ms();
        if parse_rfc3339(&a.expires_at).is_some_and(|t| t <= now) {
            self.expire(a, now).await?;
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("request {id} expired unapproved; nothing was sent"),
            ));
        }
        a.state = ApprovalState::Approving;
        self.decide_once(&mut a, op, now).await?;
        let asked = parse_rfc3339(&a.requested_at).unwrap_or(now);
        let events = vec![
            event(
                "approval_requested",
                &a.requested_by,
                asked,
                format!("{id}: {} recipients", a.recipients),
            ),
            event(
                "approved",
                &op.sub,
                now,
                format!("{id} (digest {})", &a.digest[..12]),
            ),
        ];
        let cap = a.cap.clone().and_then(|c| serde_json::from_value(c).ok());
        match self
            .commit(&requester, prepared, cap, events, Some(a.id.clone()))
            .await
        {
            Ok(created) => {
                a.state = ApprovalState::Active;
                a.incident = Some(created.id.clone());
                if let Some(report) = &a.report
                    && !self.store.link_report(report, &created.id).await?
                {
                    tracing::warn!(report, incident = %created.id, "report was promoted twice");
                }
            }
            Err(e) => {
                a.state = ApprovalState::Failed;
                a.reason = Some(e.message.clone());
                self.store
                    .update_approval(&a, ApprovalState::Approving)
                    .await?;
                self.announce(&a).await;
                return Err(e);
            }
        }
        // Issued: a failure to record that now is logged, not answered as a failure
        // (the incident stands; the request stays `approving` for a person to see).
        match self
            .store
            .update_approval(&a, ApprovalState::Approving)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(request = %id, incident = ?a.incident, "approved request changed while it was issued (recovered as stuck?); its incident stands")
            }
            Err(e) => {
                tracing::error!(request = %id, incident = ?a.incident, error = %e, "approved request not marked active")
            }
        }
        tracing::info!(request = %id, approver = %op.sub, incident = ?a.incident, "held activation approved and issued");
        self.announce(&a).await;
        Ok(a)
    }

    /// `POST /v1/incidents/{id}/reject`: a second person says no, with a reason.
    pub(crate) async fn reject(
        &self,
        op: &Claims,
        id: &str,
        reason: String,
    ) -> Result<Approval, Refusal> {
        check_text("reason", &reason, 1, MAX_NOTE)?;
        let mut a = self.held(op, id).await?;
        self.may_decide(op, &a)?;
        a.state = ApprovalState::Rejected;
        a.reason = Some(reason);
        self.decide_once(&mut a, op, self.clock.now_ms()).await?;
        tracing::info!(request = %id, by = %op.sub, "held activation rejected");
        self.announce(&a).await;
        Ok(a)
    }
}
