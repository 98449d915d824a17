//! Held requests of the two-person rule and events added to a timeline, through the
//! writer (durable before the answer).

use gridcast_protocol::api::{Approval, ApprovalState, TimelineEvent};
use tokio::sync::oneshot;

use super::EmbeddedStore;
use super::writer::Request;
use crate::store::StoreError;

impl EmbeddedStore {
    /// Sends `req` to the writer and waits for its durable answer.
    pub(super) async fn ask<T>(
        &self,
        req: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(req(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// See [`crate::store::Store::add_approval`].
    pub(super) async fn insert_approval(&self, approval: Approval) -> Result<Approval, StoreError> {
        self.ask(|reply| Request::AddApproval(approval, reply))
            .await
    }

    /// See [`crate::store::Store::update_approval`].
    pub(super) async fn replace_approval(
        &self,
        approval: &Approval,
        expect: ApprovalState,
    ) -> Result<bool, StoreError> {
        let approval = approval.clone();
        self.ask(|reply| Request::UpdateApproval {
            approval,
            expect,
            reply,
        })
        .await
    }

    /// See [`crate::store::Store::add_events`].
    pub(super) async fn append_events(
        &self,
        incident: &str,
        events: Vec<TimelineEvent>,
    ) -> Result<bool, StoreError> {
        let incident = incident.to_owned();
        self.ask(|reply| Request::Events {
            incident,
            events,
            reply,
        })
        .await
    }
}
