//! The registry in force: grids, staff and task kinds, indexed for the hot paths
//! (lead by id, recipients of a target).
//!
//! The registry is replaced whole (`PUT /v1/registry`): readers hold an `Arc` of the
//! index they started with, so a change never shows half-applied, and incidents keep the
//! recipients they were issued to because those are stored with the incident.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use gridcast_protocol::frame::{Assignment, Targets};
use gridcast_protocol::registry::{Person, Registry};
use gridcast_protocol::{GridCode, Role, Target};

/// Why targets resolve to nobody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No target given.
    #[error("targets must name at least one code (targets.codes) or shape (targets.area)")]
    NoTargets,
    /// The shapes touch no grid with a geometry.
    #[error("targets.area touches no grid of the registry ({0} grids have a geometry)")]
    AreaEmpty(usize),
    /// A target names no grid of the registry.
    #[error("target {0} names no grid of the registry")]
    UnknownArea(String),
    /// Every target is known but nobody matches (e.g. the role filter).
    #[error("the activation resolves to nobody: no staff with a matching assignment")]
    Nobody,
}

/// A registry with its lookup tables.
#[derive(Debug, Default)]
pub struct RegistryIndex {
    /// The registry.
    pub registry: Registry,
    leads: HashMap<String, usize>,
    /// Grid code → staff (indices) with an assignment in exactly that grid.
    grid_people: HashMap<GridCode, Vec<usize>>,
    /// Grid code → index in `registry.grids`.
    grid_index: HashMap<GridCode, usize>,
    /// The grids' geometries.
    shapes: crate::area::GridShapes,
}

/// The recipients of an activation and the grids its shapes reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Recipients in registry order, each with its first matching assignment.
    pub recipients: Vec<(String, GridCode, Role)>,
    /// Grids and micro-grids whose geometry intersects `targets.area`, in registry order.
    pub area_grids: Vec<GridCode>,
}

impl RegistryIndex {
    /// Indexes a validated registry.
    pub fn new(registry: Registry) -> Self {
        let leads = registry
            .staff
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let mut grid_people: HashMap<GridCode, Vec<usize>> = HashMap::new();
        for (i, p) in registry.staff.iter().enumerate() {
            let mut grids: Vec<&GridCode> = p.assignments.iter().map(|a| &a.grid).collect();
            grids.dedup();
            for g in grids {
                let v = grid_people.entry(g.clone()).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        let grid_index = registry
            .grids
            .iter()
            .enumerate()
            .map(|(i, g)| (g.code.clone(), i))
            .collect();
        let shapes = crate::area::GridShapes::new(&registry.grids);
        Self {
            registry,
            leads,
            grid_people,
            grid_index,
            shapes,
        }
    }

    /// Ids of the staff with an assignment in exactly `grid` (who may read its topic).
    pub fn people_in(&self, grid: &GridCode) -> impl Iterator<Item = &str> {
        self.grid_people
            .get(grid)
            .into_iter()
            .flatten()
            .map(|&i| self.registry.staff[i].id.as_str())
    }

    /// A person by lead id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.leads.get(id).map(|&i| &self.registry.staff[i])
    }

    /// True when some grid of the registry lies inside `target`.
    pub fn area_exists(&self, target: &Target) -> bool {
        self.registry
            .grids
            .iter()
            .any(|g| target.covers(g.code.as_str()))
    }

    /// The recipients of an activation, in registry order, each with the first of its
    /// assignments that matches (grid inside a code target or reached by a shape and,
    /// with a role filter, the role). `targets.area` must be in WGS 84
    /// ([`crate::area::normalise`]).
    pub fn resolve(&self, targets: &Targets) -> Result<Resolved, ResolveError> {
        if targets.codes.is_empty() && targets.area.is_empty() {
            return Err(ResolveError::NoTargets);
        }
        if let Some(t) = targets.codes.iter().find(|t| !self.area_exists(t)) {
            return Err(ResolveError::UnknownArea(t.to_string()));
        }
        let area_grids: Vec<GridCode> = if targets.area.is_empty() {
            Vec::new()
        } else {
            let shape = crate::area::Shape::new(&targets.area);
            let hit = self.shapes.intersecting(&shape);
            if hit.is_empty() {
                return Err(ResolveError::AreaEmpty(self.shapes.len()));
            }
            hit.into_iter()
                .map(|i| self.registry.grids[i].code.clone())
                .collect()
        };
        let in_area: std::collections::HashSet<&GridCode> = area_grids.iter().collect();
        let recipients: Vec<_> = self
            .registry
            .staff
            .iter()
            .filter_map(|p| {
                p.assignments
                    .iter()
                    .find(|a| {
                        (targets.roles.is_empty() || targets.roles.contains(&a.role))
                            && (in_area.contains(&a.grid)
                                || targets.codes.iter().any(|t| t.covers(a.grid.as_str())))
                    })
                    .map(|a| (p.id.clone(), a.grid.clone(), a.role))
            })
            .collect();
        if recipients.is_empty() {
            return Err(ResolveError::Nobody);
        }
        Ok(Resolved {
            recipients,
            area_grids,
        })
    }

    /// A grid or micro-grid by code.
    pub fn grid(&self, code: &GridCode) -> Option<&gridcast_protocol::registry::Grid> {
        self.grid_index.get(code).map(|&i| &self.registry.grids[i])
    }

    /// The geometry of a grid or micro-grid, if the registry gives it one.
    pub(crate) fn shape_of(&self, grid: &GridCode) -> Option<&geo::MultiPolygon<f64>> {
        self.shapes.shape(*self.grid_index.get(grid)?)
    }

    /// The child areas of `prefix` (at the next boundary) that hold at least one grid,
    /// with the registry's name for each where it has one.
    pub fn child_areas(&self, prefix: &Target) -> Vec<(String, Option<String>)> {
        let Some(len) = prefix.child_len() else {
            return Vec::new();
        };
        let mut children: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        for g in &self.registry.grids {
            let c = g.code.as_str();
            if prefix.covers(c) && c.len() >= len {
                let name = children.entry(&c[..len]).or_default();
                if c.len() == len {
                    *name = Some(&g.name);
                }
            }
        }
        for a in &self.registry.areas {
            if let Some(name) = children.get_mut(a.code.as_str()) {
                *name = Some(&a.name);
            }
        }
        children
            .into_iter()
            .map(|(c, n)| (c.to_owned(), n.filter(|n| !n.is_empty()).map(str::to_owned)))
            .collect()
    }

    /// The registry's name for an area, grid or micro-grid code, where it has one.
    pub fn name_of(&self, code: &str) -> Option<String> {
        let named = |n: &str| (!n.is_empty()).then(|| n.to_owned());
        if code.len() >= 16 {
            return self
                .registry
                .grids
                .iter()
                .find(|g| g.code.as_str() == code)
                .and_then(|g| named(&g.name));
        }
        self.registry
            .areas
            .iter()
            .find(|a| a.code == code)
            .and_then(|a| named(&a.name))
    }

    /// Number of grids and micro-grids, staff, per role (for logs and `/readyz`).
    pub fn summary(&self) -> String {
        let roles: BTreeMap<&str, usize> = self
            .registry
            .role_counts()
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect();
        format!(
            "{} grids, {} staff, {} task kinds, assignments {roles:?}",
            self.registry.grids.len(),
            self.registry.staff.len(),
            self.registry.task_kinds.len()
        )
    }
}

/// The registry in force; cheap to read, replaced whole.
#[derive(Debug, Default)]
pub struct RegistryHandle {
    current: RwLock<Arc<RegistryIndex>>,
}

impl RegistryHandle {
    /// A handle holding `index`.
    pub fn new(index: RegistryIndex) -> Self {
        Self {
            current: RwLock::new(Arc::new(index)),
        }
    }

    /// The registry in force now.
    pub fn current(&self) -> Arc<RegistryIndex> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new registry in force.
    pub fn replace(&self, index: RegistryIndex) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
    }
}

/// A lead's assignments, shared with its sessions.
pub fn assignments(p: &Person) -> Arc<[Assignment]> {
    p.assignments.clone().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridcast_protocol::registry::RegistryDoc;

    fn index() -> RegistryIndex {
        let doc: RegistryDoc = serde_json::from_value(serde_json::json!({
            "grids": [
                {"code": "3301060040051012", "kind": "community"},
                {"code": "3301060040051012001", "name": "micro 1"},
                {"code": "3301060050002001", "kind": "rural"}
            ],
            "areas": [{"code": "330106004", "name": "西溪街道"}],
            "staff": [
                {"id": "A", "assignments": [{"grid": "3301060040051012", "role": "grid_lead"}]},
                {"id": "B", "assignments": [{"grid": "3301060040051012001", "role": "micro_lead"}]},
                {"id": "C", "assignments": [
                    {"grid": "3301060050002001", "role": "instructor"},
                    {"grid": "3301060040051012", "role": "instructor"}
                ]}
            ]
        }))
        .unwrap();
        RegistryIndex::new(doc.validate().unwrap())
    }

    fn targets(codes: &[&str], roles: &[Role]) -> Targets {
        Targets {
            codes: codes.iter().map(|c| Target::parse(c).unwrap()).collect(),
            roles: roles.to_vec(),
            area: Vec::new(),
        }
    }

    #[test]
    fn resolve_takes_the_first_matching_assignment() {
        let idx = index();
        let r = idx
            .resolve(&targets(&["330106004"], &[]))
            .unwrap()
            .recipients;
        let ids: Vec<(&str, &str)> = r.iter().map(|(l, g, _)| (l.as_str(), g.as_str())).collect();
        assert_eq!(
            ids,
            [
                ("A", "3301060040051012"),
                ("B", "3301060040051012001"),
                ("C", "3301060040051012")
            ]
        );
        let r = idx
            .resolve(&targets(&["330106"], &[Role::Instructor]))
            .unwrap()
            .recipients;
        assert_eq!(
            r,
            vec![(
                "C".into(),
                GridCode::parse("3301060050002001").unwrap(),
                Role::Instructor
            )]
        );
    }

    #[test]
    fn a_micro_grid_without_geometry_is_reached_with_its_mapped_grid() {
        let doc: RegistryDoc = serde_json::from_value(serde_json::json!({
            "grids": [
                {"code": "3301060040051012", "kind": "community", "geometry": {"type": "Polygon",
                    "coordinates": [[[120.0, 30.0], [120.01, 30.0], [120.01, 30.01], [120.0, 30.01], [120.0, 30.0]]]}},
                {"code": "3301060040051012001"},
                {"code": "3301060040051013", "kind": "community"}
            ],
            "staff": [
                {"id": "A", "assignments": [{"grid": "3301060040051012", "role": "grid_lead"}]},
                {"id": "B", "assignments": [{"grid": "3301060040051012001", "role": "micro_lead"}]},
                {"id": "C", "assignments": [{"grid": "3301060040051013", "role": "grid_lead"}]}
            ]
        }))
        .unwrap();
        let idx = RegistryIndex::new(doc.validate().unwrap());
        let area = gridcast_protocol::area::Area {
            polygon: None,
            circle: Some(gridcast_protocol::area::Circle {
                lat: 30.005,
                lon: 120.005,
                radius_m: 100.0,
            }),
            datum: Default::default(),
        };
        let r = idx
            .resolve(&Targets {
                codes: vec![],
                roles: vec![],
                area: vec![area],
            })
            .unwrap();
        let ids: Vec<&str> = r.recipients.iter().map(|(l, _, _)| l.as_str()).collect();
        assert_eq!(
            ids,
            ["A", "B"],
            "C's grid has no geometry: never reached by an area"
        );
    }

    #[test]
    fn unknown_areas_and_empty_fan_outs_are_refused() {
        let idx = index();
        assert_eq!(
            idx.resolve(&targets(&["34"], &[])),
            Err(ResolveError::UnknownArea("34".into()))
        );
        assert_eq!(
            idx.resolve(&targets(&["330106005"], &[Role::MicroLead])),
            Err(ResolveError::Nobody)
        );
        assert_eq!(
            idx.resolve(&targets(&[], &[])),
            Err(ResolveError::NoTargets)
        );
    }

    #[test]
    fn child_areas_stop_at_the_next_boundary() {
        let idx = index();
        let codes = |t: &str| -> Vec<String> {
            let t = Target::parse(t).unwrap();
            idx.child_areas(&t).into_iter().map(|(c, _)| c).collect()
        };
        assert_eq!(codes("330106"), ["330106004", "330106005"]);
        assert_eq!(codes("3301060040051012"), ["3301060040051012001"]);
        // A grid's child carries its registry name; an area without one has none.
        let named = idx.child_areas(&Target::parse("3301060040051012").unwrap());
        assert_eq!(named[0].1.as_deref(), Some("micro 1"));
        let towns = idx.child_areas(&Target::parse("330106").unwrap());
        assert_eq!(towns[0].1.as_deref(), Some("西溪街道"));
        assert_eq!(towns[1].1, None);
    }
}
