//! Who is online on this node: lead → open sessions, and grid → online leads.
//!
//! Every channel's leads are here, each session with its channel: a WebSocket session
//! queues its frames on this node; an MQTT lead's session is carried by the broker
//! ([`SessionHandle::carried_elsewhere`]): it counts as online and is listed, but
//! fan-out queues nothing for it. So `GET /v1/presence`, `online` counts and console
//! presence events read one index for every channel.
//!
//! The fan-out path reads this index once per recipient with no allocation per
//! recipient: frames are serialised once per distinct (grid, role, status) and shared.
//! DashMap guards are never held across `.await` or while touching the same map again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use gridcast_protocol::api::{Presence as PresenceBody, PresenceChild, PresenceLead};
use gridcast_protocol::frame::{Assignment, Me, ServerFrame};
use gridcast_protocol::{GridCode, Role, Status, Target};

use crate::registry::RegistryIndex;
use crate::session::{Frame, PushError, SessionHandle, encode};
use crate::store::{IncidentMeta, RecipientState};

struct LeadEntry {
    assignments: Arc<[Assignment]>,
    sessions: Vec<SessionHandle>,
}

/// The presence index of this node.
#[derive(Default)]
pub struct Presence {
    leads: DashMap<String, LeadEntry>,
    /// Grid → leads online here through any channel (console counts).
    grid_online: DashMap<GridCode, u32>,
    /// Grid → leads with a session whose frames this node queues (what the cluster
    /// subscribes to).
    grid_carried: DashMap<GridCode, u32>,
    /// Cluster mode: leads whose sessions changed since the cluster last published them.
    dirty: Option<Mutex<HashSet<String>>>,
    /// Cluster mode: leads whose sessions changed since the cluster's subscription last
    /// followed them (its lead channels).
    routed: Option<Mutex<HashSet<String>>>,
    /// Cluster mode: woken when `dirty` gains a lead.
    changed: tokio::sync::Notify,
}

/// One online lead, as `GET /v1/presence` lists it.
pub struct OnlineLead {
    /// Lead id.
    pub id: String,
    /// Its assignments.
    pub assignments: Arc<[Assignment]>,
    /// Channels of its sessions, sorted, distinct.
    pub channels: Vec<String>,
}

/// What a fan-out reached.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Recipients with at least one session here.
    pub online: usize,
    /// Frames queued.
    pub frames: usize,
    /// Sessions dropped because their queue was full.
    pub dropped: usize,
}

impl Presence {
    /// An index that remembers which leads changed, for the cluster to publish.
    pub fn tracked() -> Self {
        Self {
            dirty: Some(Mutex::default()),
            routed: Some(Mutex::default()),
            ..Self::default()
        }
    }

    fn touch(&self, lead: &str) {
        if let Some(d) = &self.dirty {
            d.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(lead.to_owned());
            self.changed.notify_one();
        }
        if let Some(r) = &self.routed {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(lead.to_owned());
        }
    }

    /// Leads whose sessions changed since the last call (tracked indexes only): what
    /// the cluster's subscription must look at again.
    pub fn take_routed(&self) -> Vec<String> {
        drain(self.routed.as_ref())
    }

    /// True when the lead has a session here whose frames this node queues.
    pub fn carries(&self, lead: &str) -> bool {
        self.leads
            .get(lead)
            .is_some_and(|e| e.sessions.iter().any(SessionHandle::queued))
    }

    /// Resolves after a lead's sessions changed (tracked indexes only).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Leads whose sessions changed since the last call (tracked indexes only).
    pub fn take_dirty(&self) -> Vec<String> {
        drain(self.dirty.as_ref())
    }

    /// True when the lead has a session here.
    pub fn has(&self, lead: &str) -> bool {
        self.leads.contains_key(lead)
    }

    /// True when the lead has the session `id` here.
    pub fn has_session(&self, lead: &str, id: u64) -> bool {
        self.leads
            .get(lead)
            .is_some_and(|e| e.sessions.iter().any(|s| s.id == id))
    }

    /// Grids with at least one lead whose frames this node queues.
    pub fn grids(&self) -> Vec<GridCode> {
        self.grid_carried.iter().map(|e| e.key().clone()).collect()
    }

    /// The channels of a lead's sessions whose frames this node queues, sorted and
    /// distinct; `None` if there are none (what the cluster publishes as this node's).
    pub fn carried_channels_of(&self, lead: &str) -> Option<Vec<String>> {
        self.leads
            .get(lead)
            .map(|e| channels(e.sessions.iter().filter(|s| s.queued())))
            .filter(|c| !c.is_empty())
    }

    /// Every lead with a session whose frames this node queues.
    pub fn carried_leads(&self) -> Vec<String> {
        self.leads
            .iter()
            .filter(|e| e.sessions.iter().any(SessionHandle::queued))
            .map(|e| e.key().clone())
            .collect()
    }

    /// Every lead with a session whose frames this node queues, with those channels.
    pub fn carried(&self) -> Vec<(String, Vec<String>)> {
        self.leads
            .iter()
            .map(|e| {
                let ch = channels(e.sessions.iter().filter(|s| s.queued()));
                (e.key().clone(), ch)
            })
            .filter(|(_, ch)| !ch.is_empty())
            .collect()
    }

    /// Every lead online here.
    pub fn online(&self) -> Vec<OnlineLead> {
        self.leads
            .iter()
            .map(|e| OnlineLead {
                id: e.key().clone(),
                assignments: e.assignments.clone(),
                channels: channels(e.sessions.iter()),
            })
            .collect()
    }

    /// Adds a session; returns true when the lead just came online, and the lead's
    /// oldest queued sessions beyond `max_sessions` (taken out of the index: the caller
    /// ends them, outside any guard of this map). A session carried elsewhere never
    /// displaces one and is never displaced. The grid counts change under the lead's
    /// guard, from the entry's own assignments, so that they always match the index.
    pub fn register(
        &self,
        lead: &str,
        assignments: Arc<[Assignment]>,
        session: SessionHandle,
        max_sessions: usize,
    ) -> (bool, Vec<SessionHandle>) {
        let mut came_online = false;
        let displaced = {
            let mut entry = self.leads.entry(lead.to_owned()).or_insert_with(|| {
                came_online = true;
                LeadEntry {
                    assignments,
                    sessions: Vec::new(),
                }
            });
            let was_carried = entry.sessions.iter().any(SessionHandle::queued);
            let queued = session.queued();
            entry.sessions.push(session);
            let mut over = entry
                .sessions
                .iter()
                .filter(|s| s.queued())
                .count()
                .saturating_sub(max_sessions.max(1));
            let mut displaced = Vec::new();
            entry.sessions.retain(|s| {
                let goes = over > 0 && s.queued();
                if goes {
                    over -= 1;
                    displaced.push(s.clone());
                }
                !goes
            });
            if came_online {
                count_in(&self.grid_online, &entry.assignments, 1);
            }
            if queued && !was_carried {
                count_in(&self.grid_carried, &entry.assignments, 1);
            }
            displaced
        };
        self.touch(lead);
        (came_online, displaced)
    }

    /// Removes a session; returns the lead's assignments when it just went offline.
    pub fn unregister(&self, lead: &str, session_id: u64) -> Option<Arc<[Assignment]>> {
        let removed = self.leads.remove_if_mut(lead, |_, e| {
            // Under the lead's guard: the counts follow the sessions exactly.
            let was_carried = e.sessions.iter().any(SessionHandle::queued);
            e.sessions.retain(|s| s.id != session_id);
            if was_carried && !e.sessions.iter().any(SessionHandle::queued) {
                count_in(&self.grid_carried, &e.assignments, -1);
            }
            let empty = e.sessions.is_empty();
            if empty {
                count_in(&self.grid_online, &e.assignments, -1);
            }
            empty
        });
        self.touch(lead);
        removed.map(|(_, e)| e.assignments)
    }

    /// Online leads with an assignment in `grid` (exact code).
    pub fn grid_online(&self, grid: &GridCode) -> u32 {
        self.grid_online.get(grid).map(|n| *n).unwrap_or(0)
    }

    /// Queues a frame to every session of one lead.
    pub fn send_to_lead(&self, lead: &str, frame: &Frame) -> Reach {
        let mut reach = Reach::default();
        if let Some(e) = self.leads.get(lead) {
            reach.online = 1;
            push_all(&e.sessions, frame, &mut reach);
        }
        reach
    }

    /// Queues a frame to every session of one lead but `except`; the frame is made only
    /// if there is such a session.
    pub(crate) fn send_to_lead_except(
        &self,
        lead: &str,
        except: Option<u64>,
        frame: impl FnOnce() -> Frame,
    ) -> Reach {
        let mut reach = Reach::default();
        if let Some(e) = self.leads.get(lead) {
            reach.online = 1;
            let others: Vec<&SessionHandle> = e
                .sessions
                .iter()
                .filter(|s| s.queued() && Some(s.id) != except)
                .collect();
            if !others.is_empty() {
                let frame = frame();
                for s in others {
                    match s.push(frame.clone()) {
                        Ok(()) => reach.frames += 1,
                        Err(PushError::Full) => reach.dropped += 1,
                        Err(PushError::Closed) => {}
                    }
                }
            }
        }
        reach
    }

    /// Queues an incident frame, with each recipient's own `me`, to every session here.
    pub fn fanout(&self, meta: &IncidentMeta, recipients: &[RecipientState]) -> Reach {
        let view = meta.view();
        let mut frames: HashMap<(&GridCode, Role, Status), Frame> = HashMap::new();
        let mut reach = Reach::default();
        for r in recipients {
            let Some(entry) = self.leads.get(&r.lead) else {
                continue;
            };
            reach.online += 1;
            let frame = frames
                .entry((&r.grid, r.role, r.status))
                .or_insert_with(|| {
                    encode(&ServerFrame::Incident {
                        incident: view.clone(),
                        me: Some(Me {
                            status: r.status,
                            grid: r.grid.clone(),
                            role: r.role,
                        }),
                    })
                });
            push_all(&entry.sessions, frame, &mut reach);
        }
        reach
    }

    /// After a registry change: new assignments for leads still known, and the sessions
    /// of leads no longer in the registry ended with `code` (their transports
    /// unregister them; sessions carried elsewhere are taken out here). Returns the
    /// assignments of the leads that went offline here.
    pub fn refresh(&self, registry: &RegistryIndex, code: u16) -> Vec<Arc<[Assignment]>> {
        let ids: Vec<String> = self.leads.iter().map(|e| e.key().clone()).collect();
        let mut offline = Vec::new();
        for id in ids {
            match registry.person(&id) {
                None => {
                    let sessions = self
                        .leads
                        .get(&id)
                        .map(|e| e.sessions.clone())
                        .unwrap_or_default();
                    for s in sessions {
                        s.end(code);
                        if !s.queued() {
                            offline.extend(self.unregister(&id, s.id));
                        }
                    }
                }
                Some(p) => {
                    let fresh = crate::registry::assignments(p);
                    if let Some(mut e) = self.leads.get_mut(&id)
                        && e.assignments != fresh
                    {
                        // Under the lead's guard, the new grids counted before the old
                        // ones are let go: a grid both have never drops to zero (which
                        // would unsubscribe it in a cluster for a moment).
                        let carried = e.sessions.iter().any(SessionHandle::queued);
                        count_in(&self.grid_online, &fresh, 1);
                        count_in(&self.grid_online, &e.assignments, -1);
                        if carried {
                            count_in(&self.grid_carried, &fresh, 1);
                            count_in(&self.grid_carried, &e.assignments, -1);
                        }
                        e.assignments = fresh;
                    }
                }
            }
        }
        offline
    }

    /// Ends, with `code`, every session this node carries for which `doomed(lead, session)` holds; returns
    /// how many. Decided on a list taken first, so no guard of this map is held while a
    /// session ends.
    pub fn end_where(
        &self,
        code: u16,
        mut doomed: impl FnMut(&str, &SessionHandle) -> bool,
    ) -> usize {
        // Only the sessions this node carries: a session carried elsewhere has nobody
        // here to end it (its transport checks tokens itself).
        let all: Vec<(String, Vec<SessionHandle>)> = self
            .leads
            .iter()
            .map(|e| {
                let carried = e.sessions.iter().filter(|s| s.queued()).cloned();
                (e.key().clone(), carried.collect())
            })
            .collect();
        let mut n = 0;
        for (lead, sessions) in all {
            for s in sessions.iter().filter(|s| doomed(&lead, s)) {
                s.end(code);
                n += 1;
            }
        }
        n
    }

    /// Ends every session with `code`.
    pub fn end_all(&self, code: u16) {
        for e in self.leads.iter() {
            e.sessions.iter().for_each(|s| s.end(code));
        }
    }

    /// Online leads in all.
    pub fn online_leads(&self) -> usize {
        self.leads.len()
    }
}

/// Empties a set of changed leads (none if it is not kept).
fn drain(set: Option<&Mutex<HashSet<String>>>) -> Vec<String> {
    set.map_or_else(Vec::new, |d| {
        std::mem::take(&mut *d.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .collect()
    })
}

/// `GET /v1/presence`: online leads inside `prefix`, per child area, optionally listed.
/// `online` may come from this node or from the whole cluster.
pub fn body(
    prefix: &Target,
    registry: &RegistryIndex,
    with_leads: bool,
    online_leads: Vec<OnlineLead>,
) -> PresenceBody {
    let children = registry.child_areas(prefix);
    let child_len = children.first().map(|(c, _)| c.len());
    let mut per_child: HashMap<&str, usize> =
        children.iter().map(|(c, _)| (c.as_str(), 0)).collect();
    let mut online = 0;
    let mut leads = Vec::new();
    for e in online_leads {
        let inside: Vec<&Assignment> = e
            .assignments
            .iter()
            .filter(|a| prefix.covers(a.grid.as_str()))
            .collect();
        let Some(first) = inside.first() else {
            continue;
        };
        online += 1;
        if let Some(len) = child_len {
            let mine: HashSet<&str> = inside
                .iter()
                .filter(|a| a.grid.as_str().len() >= len)
                .map(|a| &a.grid.as_str()[..len])
                .collect();
            for c in mine {
                if let Some(n) = per_child.get_mut(c) {
                    *n += 1;
                }
            }
        }
        if with_leads {
            leads.push(PresenceLead {
                id: e.id.clone(),
                grid: first.grid.clone(),
                role: first.role,
                channels: e.channels,
            });
        }
    }
    leads.sort_by(|a, b| a.id.cmp(&b.id));
    PresenceBody {
        prefix: prefix.to_string(),
        name: registry.name_of(prefix.as_str()),
        online,
        children: children
            .iter()
            .map(|(c, name)| PresenceChild {
                code: c.clone(),
                name: name.clone(),
                online: per_child[c.as_str()],
            })
            .collect(),
        leads: with_leads.then_some(leads),
    }
}

fn channels<'a>(sessions: impl Iterator<Item = &'a SessionHandle>) -> Vec<String> {
    let mut v: Vec<String> = sessions.map(|s| s.channel.as_str().to_owned()).collect();
    v.sort();
    v.dedup();
    v
}

/// Queues `frame` to each session this node carries without waiting, counting what
/// happened.
fn push_all(sessions: &[SessionHandle], frame: &Frame, reach: &mut Reach) {
    for s in sessions.iter().filter(|s| s.queued()) {
        match s.push(frame.clone()) {
            Ok(()) => reach.frames += 1,
            Err(PushError::Full) => reach.dropped += 1,
            Err(PushError::Closed) => {}
        }
    }
}

/// Adds `by` (±1) to the count of each distinct grid of `assignments`; a count that
/// reaches zero leaves the map.
fn count_in(map: &DashMap<GridCode, u32>, assignments: &[Assignment], by: i32) {
    for g in distinct_grids(assignments) {
        if by > 0 {
            *map.entry(g).or_insert(0) += by as u32;
            continue;
        }
        let now_zero = map.get_mut(&g).map(|mut n| {
            *n = n.saturating_sub(by.unsigned_abs());
            *n == 0
        });
        if now_zero == Some(true) {
            map.remove_if(&g, |_, n| *n == 0);
        }
    }
}

fn distinct_grids(assignments: &[Assignment]) -> Vec<GridCode> {
    let mut v: Vec<GridCode> = assignments.iter().map(|a| a.grid.clone()).collect();
    v.sort();
    v.dedup();
    v
}
