//! The registry document: grids, micro-grids, staff and the published list of task kinds
//! (`--registry FILE`, `PUT /v1/registry`).
//!
//! The document is read with plain strings so that validation can list *every* problem
//! at once; an invalid document is refused whole. [`RegistryDoc::validate`] turns it into
//! a typed [`Registry`].

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::code::GridCode;
use crate::frame::Assignment;
use crate::model::Role;

/// The registry document as written by people and tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegistryDoc {
    /// Grids (16 digits) and micro-grids (19 digits).
    #[serde(default)]
    pub grids: Vec<GridDoc>,
    /// People and their assignments.
    #[serde(default)]
    pub staff: Vec<StaffDoc>,
    /// The published list of task kinds (Art. 11–13).
    #[serde(default)]
    pub task_kinds: Vec<TaskKind>,
    /// Names of the administrative areas above the grids (province, city, county,
    /// town or street, community or village: codes of 2, 4, 6, 9 or 12 digits), shown
    /// by the console; optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<AreaDoc>,
}

/// An administrative area's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AreaDoc {
    /// 2, 4, 6, 9 or 12 digits.
    pub code: String,
    /// Display name (e.g. 南山区).
    pub name: String,
}

/// A grid or micro-grid in the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GridDoc {
    /// 16- or 19-digit code.
    pub code: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// `community`, `rural` or `dedicated`; required for a grid, inherited by a micro-grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// What it covers on the map: a GeoJSON Polygon or MultiPolygon in WGS 84,
    /// `[lon, lat]` as GeoJSON orders it; a grid without one is never matched by an
    /// area target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub geometry: Option<geojson::Geometry>,
    /// The grid's supervision phone (监督电话), published in the directory (Art. 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervision_phone: Option<String>,
}

/// A person in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StaffDoc {
    /// Lead id (what lead tokens name in `sub`).
    pub id: String,
    /// Name (personal data: only shown to operators whose jurisdiction covers the person).
    #[serde(default)]
    pub name: String,
    /// Phone number (personal data, likewise).
    #[serde(default)]
    pub phone: String,
    /// A work contact (office phone, work mobile) that may be published in the
    /// directory for the roles it lists; never the personal `phone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_contact: Option<String>,
    /// Assignments in order; the first that matches an activation is the recipient's `me`.
    #[serde(default)]
    pub assignments: Vec<AssignmentDoc>,
}

/// One assignment in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssignmentDoc {
    /// Grid or micro-grid code.
    pub grid: String,
    /// Role name.
    pub role: String,
}

/// A kind of assistance task on the published list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskKind {
    /// Stable id used in task requests.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// Kind of a grid, from the 13th digit of its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GridKind {
    /// 城市社区网格 (digit 1).
    Community,
    /// 农村网格 (digit 2).
    Rural,
    /// 专属网格 (digit 3).
    Dedicated,
}

impl GridKind {
    /// The kind a code's 13th digit names.
    pub fn of(code: &GridCode) -> GridKind {
        match code.as_str().as_bytes()[12] {
            b'1' => Self::Community,
            b'2' => Self::Rural,
            _ => Self::Dedicated,
        }
    }

    fn parse(s: &str) -> Option<GridKind> {
        match s {
            "community" => Some(Self::Community),
            "rural" => Some(Self::Rural),
            "dedicated" => Some(Self::Dedicated),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Community => "community",
            Self::Rural => "rural",
            Self::Dedicated => "dedicated",
        }
    }
}

/// A validated grid or micro-grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Code.
    pub code: GridCode,
    /// Display name.
    pub name: String,
    /// Kind (a micro-grid has its parent's).
    pub kind: GridKind,
    /// Its geometry as given (checked; see [`crate::area::grid_shape`]).
    pub geometry: Option<geojson::Geometry>,
    /// Supervision phone.
    pub supervision_phone: Option<String>,
}

/// A validated person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Lead id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Phone.
    pub phone: String,
    /// Work contact (publishable).
    pub work_contact: Option<String>,
    /// Assignments in registry order.
    pub assignments: Vec<Assignment>,
}

/// A validated registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    /// Grids and micro-grids in document order.
    pub grids: Vec<Grid>,
    /// People in document order (the order that decides `me`).
    pub staff: Vec<Person>,
    /// Published task kinds.
    pub task_kinds: Vec<TaskKind>,
    /// Named administrative areas, by code.
    pub areas: Vec<AreaDoc>,
}

/// Longest id, name or phone accepted.
const MAX_TEXT: usize = 200;

fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl RegistryDoc {
    /// Checks the whole document and returns the typed registry, or every problem found.
    pub fn validate(&self) -> Result<Registry, Vec<String>> {
        let mut problems = Vec::new();
        let mut grids = Vec::with_capacity(self.grids.len());
        let mut seen = HashSet::new();
        for (i, g) in self.grids.iter().enumerate() {
            let code = match GridCode::parse(&g.code) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("grids[{i}]: {e}"));
                    continue;
                }
            };
            if !seen.insert(g.code.clone()) {
                problems.push(format!("grids[{i}]: code {} appears twice", g.code));
            }
            if g.name.chars().count() > MAX_TEXT
                || g.supervision_phone.as_deref().unwrap_or("").chars().count() > MAX_TEXT
            {
                problems.push(format!(
                    "grids[{i}]: name longer than {MAX_TEXT} characters"
                ));
            }
            let from_code = GridKind::of(&code);
            match g.kind.as_deref().map(|k| (k, GridKind::parse(k))) {
                None if !code.is_micro() => {
                    problems.push(format!(
                        "grids[{i}]: grid {code} needs a kind (community, rural or dedicated)"
                    ));
                }
                Some((k, None)) => {
                    problems.push(format!(
                        "grids[{i}]: kind {k:?} is not community, rural or dedicated"
                    ));
                }
                Some((_, Some(k))) if k != from_code => problems.push(format!(
                    "grids[{i}]: kind {} does not match the kind digit of {code} ({})",
                    k.as_str(),
                    from_code.as_str()
                )),
                _ => {}
            }
            if let Some(geometry) = &g.geometry
                && let Err(e) = crate::area::grid_shape(geometry)
            {
                problems.push(format!("grids[{i}] ({code}): {e}"));
            }
            grids.push(Grid {
                code,
                name: g.name.clone(),
                kind: from_code,
                geometry: g.geometry.clone(),
                supervision_phone: g.supervision_phone.clone(),
            });
        }
        for (i, g) in grids.iter().enumerate() {
            if let Some(parent) = g.code.parent()
                && !seen.contains(parent.as_str())
            {
                problems.push(format!(
                    "grids: micro-grid {} (#{i}) has no parent grid {parent}",
                    g.code
                ));
            }
        }

        let mut staff = Vec::with_capacity(self.staff.len());
        let mut ids = HashSet::new();
        for (i, s) in self.staff.iter().enumerate() {
            if !id_ok(&s.id) {
                problems.push(format!(
                    "staff[{i}]: id {:?} must be 1-64 characters of letters, digits, '-', '_' or '.'",
                    s.id
                ));
            } else if !ids.insert(s.id.clone()) {
                problems.push(format!("staff[{i}]: id {} appears twice", s.id));
            }
            let contact = s.work_contact.as_deref().unwrap_or("");
            if s.name.chars().count() > MAX_TEXT
                || s.phone.chars().count() > MAX_TEXT
                || contact.chars().count() > MAX_TEXT
            {
                problems.push(format!(
                    "staff[{i}]: name or phone longer than {MAX_TEXT} characters"
                ));
            }
            if s.assignments.is_empty() {
                problems.push(format!("staff[{i}] ({}): has no assignment", s.id));
            }
            let mut assignments = Vec::with_capacity(s.assignments.len());
            for (j, a) in s.assignments.iter().enumerate() {
                let role = match crate::from_wire_name::<Role>(&a.role) {
                    Some(r) => r,
                    None => {
                        problems.push(format!(
                            "staff[{i}].assignments[{j}]: role {:?} is not grid_lead, full_time, part_time, instructor, micro_lead or service_team",
                            a.role
                        ));
                        continue;
                    }
                };
                if !seen.contains(&a.grid) {
                    problems.push(format!(
                        "staff[{i}].assignments[{j}]: grid {:?} is not in the registry",
                        a.grid
                    ));
                    continue;
                }
                let Ok(grid) = GridCode::parse(&a.grid) else {
                    continue;
                };
                let a = Assignment { grid, role };
                if assignments.contains(&a) {
                    problems.push(format!(
                        "staff[{i}].assignments[{j}]: the same assignment appears twice"
                    ));
                }
                assignments.push(a);
            }
            staff.push(Person {
                id: s.id.clone(),
                name: s.name.clone(),
                phone: s.phone.clone(),
                work_contact: s.work_contact.clone(),
                assignments,
            });
        }

        let mut kinds = HashSet::new();
        for (i, k) in self.task_kinds.iter().enumerate() {
            if !id_ok(&k.id) {
                problems.push(format!("task_kinds[{i}]: id {:?} is not a valid id", k.id));
            } else if !kinds.insert(k.id.clone()) {
                problems.push(format!("task_kinds[{i}]: id {} appears twice", k.id));
            }
        }

        let mut area_codes = HashSet::new();
        for (i, a) in self.areas.iter().enumerate() {
            let boundary = [2, 4, 6, 9, 12].contains(&a.code.len());
            if !boundary || !a.code.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(format!(
                    "areas[{i}]: code {:?} must have 2, 4, 6, 9 or 12 digits",
                    a.code
                ));
            } else if !area_codes.insert(a.code.clone()) {
                problems.push(format!("areas[{i}]: code {} appears twice", a.code));
            }
            if a.name.is_empty() || a.name.chars().count() > MAX_TEXT {
                problems.push(format!(
                    "areas[{i}]: name must have 1 to {MAX_TEXT} characters"
                ));
            }
        }

        if problems.is_empty() {
            Ok(Registry {
                grids,
                staff,
                task_kinds: self.task_kinds.clone(),
                areas: self.areas.clone(),
            })
        } else {
            Err(problems)
        }
    }
}

impl Registry {
    /// What is accepted but worth an operator's look: grids without geometry (an area
    /// target never matches them). Not errors: a registry may be coded before it is
    /// mapped.
    pub fn warnings(&self) -> Vec<String> {
        const LISTED: usize = 10;
        // A micro-grid without a geometry has its grid's.
        let mapped: HashSet<&str> = self
            .grids
            .iter()
            .filter(|g| g.geometry.is_some())
            .map(|g| g.code.as_str())
            .collect();
        let without: Vec<&str> = self
            .grids
            .iter()
            .filter(|g| g.geometry.is_none())
            .filter(|g| !g.code.parent().is_some_and(|p| mapped.contains(p.as_str())))
            .map(|g| g.code.as_str())
            .collect();
        if without.is_empty() {
            return Vec::new();
        }
        let mut listed = without[..without.len().min(LISTED)].join(", ");
        if without.len() > LISTED {
            listed.push_str(&format!(" and {} more", without.len() - LISTED));
        }
        vec![format!(
            "{} of {} grids have no geometry, so no area target reaches them: {listed}",
            without.len(),
            self.grids.len()
        )]
    }

    /// The registry as a document (for `GET /v1/registry` and persistence).
    pub fn to_doc(&self) -> RegistryDoc {
        RegistryDoc {
            grids: self
                .grids
                .iter()
                .map(|g| GridDoc {
                    code: g.code.to_string(),
                    name: g.name.clone(),
                    kind: Some(g.kind.as_str().to_owned()),
                    geometry: g.geometry.clone(),
                    supervision_phone: g.supervision_phone.clone(),
                })
                .collect(),
            staff: self
                .staff
                .iter()
                .map(|p| StaffDoc {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    phone: p.phone.clone(),
                    work_contact: p.work_contact.clone(),
                    assignments: p
                        .assignments
                        .iter()
                        .map(|a| AssignmentDoc {
                            grid: a.grid.to_string(),
                            role: a.role.as_str().to_owned(),
                        })
                        .collect(),
                })
                .collect(),
            task_kinds: self.task_kinds.clone(),
            areas: self.areas.clone(),
        }
    }

    /// Counts per role, for summaries.
    pub fn role_counts(&self) -> HashMap<Role, usize> {
        let mut m = HashMap::new();
        for p in &self.staff {
            for a in &p.assignments {
                *m.entry(a.role).or_insert(0) += 1;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: serde_json::Value) -> RegistryDoc {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_good_document_validates_and_round_trips() {
        let d = doc(serde_json::json!({
            "grids": [
                {"code": "3301060040051012", "name": "A", "kind": "community"},
                {"code": "3301060040051012003", "name": "A-3"}
            ],
            "staff": [{"id": "L1", "name": "Li", "phone": "1", "assignments": [
                {"grid": "3301060040051012", "role": "grid_lead"},
                {"grid": "3301060040051012003", "role": "micro_lead"}
            ]}],
            "task_kinds": [{"id": "evacuation", "name": "Evacuation"}]
        }));
        let r = d.validate().unwrap();
        assert_eq!(r.grids[1].kind, GridKind::Community);
        assert_eq!(r.to_doc().validate().unwrap(), r);
    }

    #[test]
    fn geometries_are_checked_and_grids_without_one_are_a_warning() {
        let square = |lon: f64, lat: f64| {
            serde_json::json!({"type": "Polygon", "coordinates": [[
                [lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]
            ]]})
        };
        let good = doc(serde_json::json!({
            "grids": [
                {"code": "3301060040051012", "kind": "community", "geometry": square(120.1, 30.2)},
                {"code": "3301060040051013", "kind": "community", "geometry": {
                    "type": "MultiPolygon", "coordinates": [square(120.2, 30.2)["coordinates"]]
                }},
                {"code": "3301060040051012001"},
                {"code": "3301060040051014", "kind": "community"},
                {"code": "3301060040051014001"}
            ]
        }));
        let r = good.validate().unwrap();
        let w = r.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        // The micro-grid of a mapped grid has its grid's geometry: not listed.
        assert!(
            w[0].contains("2 of 5 grids have no geometry")
                && w[0].contains("3301060040051014, 3301060040051014001")
                && !w[0].contains("3301060040051012001"),
            "{w:?}"
        );
        // The document round-trips with its geometries as given.
        assert_eq!(r.to_doc().grids[1].geometry, good.grids[1].geometry);

        let bad = doc(serde_json::json!({
            "grids": [
                // lat, lon: the GeoJSON order mistake (lat 120 is out of range).
                {"code": "3301060040051012", "kind": "community", "geometry": {"type": "Polygon", "coordinates": [[
                    [30.2, 120.1], [30.2, 120.2], [30.3, 120.2], [30.2, 120.1]
                ]]}},
                {"code": "3301060040051013", "kind": "community", "geometry": {"type": "Point", "coordinates": [120.1, 30.2]}},
                {"code": "3301060040051014", "kind": "community", "geometry": {"type": "Polygon", "coordinates": [[
                    [120.1, 30.2], [120.2, 30.2], [120.2, 30.3]
                ]]}}
            ]
        }));
        let all = bad.validate().unwrap_err().join("\n");
        for needle in [
            "3301060040051012): geometry: polygon 0 ring 0: [30.2, 120.1] is not [lon, lat]",
            "3301060040051013): geometry must be a GeoJSON Polygon or MultiPolygon, not Point",
            "3301060040051014): geometry: polygon 0 ring 0 must be closed",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn every_problem_is_listed() {
        let d = doc(serde_json::json!({
            "grids": [
                {"code": "3301060040051012", "kind": "rural"},
                {"code": "33010600400510", "kind": "community"},
                {"code": "3301060040051099003"},
                {"code": "3301060040051012", "kind": "community"}
            ],
            "staff": [
                {"id": "L1", "assignments": [{"grid": "3301060040051012", "role": "boss"}]},
                {"id": "L1", "assignments": [{"grid": "9999999999991999", "role": "grid_lead"}]},
                {"id": "", "assignments": []}
            ],
            "task_kinds": [{"id": "a"}, {"id": "a"}]
        }));
        let problems = d.validate().unwrap_err();
        let all = problems.join("\n");
        for needle in [
            "does not match the kind digit",
            "16 (grid) or 19 (micro-grid) digits",
            "has no parent grid 3301060040051099",
            "3301060040051012 appears twice",
            "role \"boss\"",
            "id L1 appears twice",
            "\"9999999999991999\" is not in the registry",
            "has no assignment",
            "id a appears twice",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }
}
