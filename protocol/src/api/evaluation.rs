//! Evaluation (Art. 24) beyond response times: residents' satisfaction with tasks,
//! and the service team counted apart.

use serde::{Deserialize, Serialize};

/// A resident's satisfaction with a task, as an operator recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Satisfaction {
    /// The task.
    pub task: String,
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: u8,
}

/// `POST /v1/tasks/{id}/satisfaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateTask {
    /// 1 to 5.
    #[schemars(range(min = 1, max = 5))]
    #[serde(deserialize_with = "crate::integral::u8")]
    pub score: u8,
    /// What the resident said (at most 1,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub note: Option<String>,
}

/// Satisfaction scores added up: `count` scores summing to `sum` (the mean is
/// `sum / count`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Rated {
    /// Scores.
    pub count: usize,
    /// Their sum.
    pub sum: usize,
}

impl Rated {
    /// One more score.
    pub fn add(&mut self, score: u8) {
        self.count += 1;
        self.sum += usize::from(score);
    }
    /// Another total.
    pub fn merge(&mut self, other: Rated) {
        self.count += other.count;
        self.sum += other.sum;
    }
}

/// The service team (网格服务团队) of a group of incidents, counted apart from the
/// grid staff.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct TeamCounts {
    /// Recipients of role `service_team`.
    pub recipients: usize,
    /// Of them, delivered.
    pub delivered: usize,
    /// Of them, answered.
    pub acked: usize,
    /// Satisfaction with the tasks they finished.
    #[serde(default)]
    pub satisfaction: Rated,
}
