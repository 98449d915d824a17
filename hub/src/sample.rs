//! The built-in sample city, used when no `--registry` is given: one county of Hangzhou
//! with two streets (towns), community, rural and dedicated grids, micro-grids, 300 staff
//! in every role (some with several assignments) and a list of task kinds. Deterministic,
//! so the README's walk-through can name real ids (`L0001` is the first grid lead).

use gridcast_protocol::registry::{AssignmentDoc, GridDoc, RegistryDoc, StaffDoc, TaskKind};

/// County prefix of the sample city.
pub const COUNTY: &str = "330106";

/// Grids per street in the sample city (laid out 7 × 3 on the map).
const TOWN_GRIDS: usize = 21;
/// Columns of a street's block of grids.
const COLUMNS: usize = 7;
/// South-west corner (lon, lat) of each street's block: Xixi Street, then Sandun Town
/// to its north-east, around Xihu district (西湖区) of Hangzhou.
const ORIGINS: [(f64, f64); 2] = [(120.0700, 30.2700), (120.0950, 30.3050)];
/// A grid's width and height in degrees (about 580 m × 555 m).
const CELL: (f64, f64) = (0.0060, 0.0050);

/// A corner of the street's lattice, moved a little (the same for the neighbours that
/// share it), so that the grids look drawn rather than ruled.
fn corner(town: usize, i: usize, j: usize) -> (f64, f64) {
    let wobble = |a: usize, b: usize| ((a * 7 + b * 13 + town * 5) % 9) as f64 / 9.0 - 0.45;
    let (lon0, lat0) = ORIGINS[town];
    (
        lon0 + CELL.0 * (i as f64 + 0.25 * wobble(i, j)),
        lat0 + CELL.1 * (j as f64 + 0.25 * wobble(j, i)),
    )
}

/// The GeoJSON polygon of grid `cell` (street, index in the street), or of the part of
/// it between fractions `from` and `to` of its width (a micro-grid).
fn quad(cell: (usize, usize), from: f64, to: f64) -> geojson::Geometry {
    let (town, n) = cell;
    let (i, j) = (n % COLUMNS, n / COLUMNS);
    let (sw, se, ne, nw) = (
        corner(town, i, j),
        corner(town, i + 1, j),
        corner(town, i + 1, j + 1),
        corner(town, i, j + 1),
    );
    let along = |a: (f64, f64), b: (f64, f64), t: f64| {
        let round = |x: f64| (x * 1e6).round() / 1e6;
        vec![round(a.0 + (b.0 - a.0) * t), round(a.1 + (b.1 - a.1) * t)]
    };
    let ring = vec![
        along(sw, se, from),
        along(sw, se, to),
        along(nw, ne, to),
        along(nw, ne, from),
        along(sw, se, from),
    ];
    geojson::Geometry::new(geojson::GeometryValue::Polygon {
        coordinates: vec![ring.into_iter().map(geojson::Position::from).collect()],
    })
}

/// Builds the sample registry document.
pub fn sample_city() -> RegistryDoc {
    let mut grids = Vec::new();
    let mut staff = Vec::new();
    let mut next_id = 0usize;
    let mut person = |name: &str, assignments: Vec<(String, &str)>, staff: &mut Vec<StaffDoc>| {
        next_id += 1;
        staff.push(StaffDoc {
            id: format!("L{next_id:04}"),
            name: format!("{name} {next_id}"),
            phone: format!("1380000{next_id:04}"),
            work_contact: Some(format!("0571-8765{next_id:04}")),
            assignments: assignments
                .into_iter()
                .map(|(grid, role)| AssignmentDoc {
                    grid,
                    role: role.into(),
                })
                .collect(),
        });
    };
    // Two streets × two communities/villages × kinds, 42 grids in all.
    /// (community or village, kind digit, grids)
    type Part = (&'static str, char, usize);
    let layout: [(&str, &str, &[Part]); 2] = [
        (
            "004",
            "Xixi Street",
            &[
                ("005", '1', 8),
                ("006", '1', 6),
                ("006", '3', 4),
                ("000", '3', 3),
            ],
        ),
        (
            "101",
            "Sandun Town",
            &[
                ("201", '2', 8),
                ("202", '2', 7),
                ("202", '1', 3),
                ("000", '3', 3),
            ],
        ),
    ];
    let mut grid_codes = Vec::new();
    for (town_index, (town, town_name, parts)) in layout.into_iter().enumerate() {
        for &(community, kind, n) in parts {
            for serial in 1..=n {
                let code = format!("{COUNTY}{town}{community}{kind}{serial:03}");
                let kind_name = match kind {
                    '1' => "community",
                    '2' => "rural",
                    _ => "dedicated",
                };
                let cell = (town_index, grid_codes.len() % TOWN_GRIDS);
                grids.push(GridDoc {
                    code: code.clone(),
                    name: format!("{town_name} {community}-{kind}{serial:03}"),
                    kind: Some(kind_name.into()),
                    geometry: Some(quad(cell, 0.0, 1.0)),
                    supervision_phone: Some(format!("0571-8800{:04}", grid_codes.len() + 1)),
                });
                grid_codes.push(code);
            }
        }
    }
    // Every grid gets a grid lead, a full-time and a part-time member and two micro-grids
    // with a micro-grid lead each: 42 × 5 = 210 people.
    for (n, code) in grid_codes.iter().enumerate() {
        let cell = (n / TOWN_GRIDS, n % TOWN_GRIDS);
        person("Grid lead", vec![(code.clone(), "grid_lead")], &mut staff);
        person("Full-time", vec![(code.clone(), "full_time")], &mut staff);
        person("Part-time", vec![(code.clone(), "part_time")], &mut staff);
        for micro in 1..=2 {
            let m = format!("{code}{micro:03}");
            let half = f64::from(micro - 1) / 2.0;
            grids.push(GridDoc {
                code: m.clone(),
                name: format!("micro-grid {micro}"),
                kind: None,
                geometry: Some(quad(cell, half, half + 0.5)),
                supervision_phone: None,
            });
            person("Micro-grid lead", vec![(m, "micro_lead")], &mut staff);
        }
    }
    // Instructors cover three grids each: 14 people.
    for chunk in grid_codes.chunks(3) {
        person(
            "Instructor",
            chunk.iter().map(|c| (c.clone(), "instructor")).collect(),
            &mut staff,
        );
    }
    // A service team member (网格服务团队) for every third grid: 14 people.
    for chunk in grid_codes.chunks(3) {
        person(
            "Service team",
            vec![(chunk[0].clone(), "service_team")],
            &mut staff,
        );
    }
    // Part-time members who also serve in a neighbouring grid, to 300 people in all.
    let mut i = 0;
    while staff.len() < 300 {
        let a = &grid_codes[i % grid_codes.len()];
        let b = &grid_codes[(i + 1) % grid_codes.len()];
        person(
            "Volunteer",
            vec![(a.clone(), "part_time"), (b.clone(), "part_time")],
            &mut staff,
        );
        i += 1;
    }
    let task_kinds = [
        ("evacuation", "Evacuation"),
        ("door_to_door", "Door-to-door notice"),
        ("headcount", "Headcount of residents"),
        ("traffic_control", "Traffic and access control"),
        ("supply_distribution", "Supply distribution"),
        ("vulnerable_check", "Check on vulnerable residents"),
        ("hazard_watch", "Watch a hazard and report"),
    ]
    .into_iter()
    .map(|(id, name)| TaskKind {
        id: id.into(),
        name: name.into(),
    })
    .collect();
    let areas = [
        ("33", "浙江省"),
        ("3301", "杭州市"),
        (COUNTY, "西湖区"),
        ("330106004", "西溪街道"),
        ("330106101", "三墩镇"),
    ]
    .into_iter()
    .map(|(code, name)| gridcast_protocol::registry::AreaDoc {
        code: code.into(),
        name: name.into(),
    })
    .collect();
    RegistryDoc {
        grids,
        staff,
        task_kinds,
        areas,
    }
}

/// The sample city grown to `people` staff for drills and benchmarks: the 300 sample
/// people plus drill volunteers `D000001`… spread over every grid in turn, as grid
/// leads, full-time and part-time members.
pub fn drill_city(people: usize) -> RegistryDoc {
    let mut doc = sample_city();
    let grids: Vec<String> = doc
        .grids
        .iter()
        .filter(|g| g.kind.is_some())
        .map(|g| g.code.clone())
        .collect();
    let roles = ["grid_lead", "full_time", "part_time"];
    for i in 0..people.saturating_sub(doc.staff.len()) {
        doc.staff.push(StaffDoc {
            id: format!("D{:06}", i + 1),
            name: format!("Drill volunteer {}", i + 1),
            phone: format!("137{i:08}"),
            work_contact: None,
            assignments: vec![AssignmentDoc {
                grid: grids[i % grids.len()].clone(),
                role: roles[i % roles.len()].into(),
            }],
        });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridcast_protocol::Role;
    use gridcast_protocol::registry::GridKind;

    #[test]
    fn the_drill_city_is_valid_and_as_large_as_asked() {
        let r = drill_city(10_000).validate().unwrap();
        assert_eq!(r.staff.len(), 10_000);
        assert_eq!(
            drill_city(10).staff.len(),
            300,
            "never smaller than the sample"
        );
    }

    #[test]
    fn the_sample_city_is_valid_and_complete() {
        let r = sample_city().validate().unwrap();
        let grids = r.grids.iter().filter(|g| !g.code.is_micro()).count();
        assert!(grids >= 40, "{grids} grids");
        assert!(r.grids.iter().any(|g| g.code.is_micro()));
        for k in [GridKind::Community, GridKind::Rural, GridKind::Dedicated] {
            assert!(r.grids.iter().any(|g| g.kind == k), "{k:?}");
        }
        let towns: std::collections::HashSet<&str> =
            r.grids.iter().map(|g| &g.code.as_str()[..9]).collect();
        assert!(towns.len() >= 2);
        assert_eq!(r.staff.len(), 300);
        let roles = r.role_counts();
        assert!(
            Role::ALL
                .iter()
                .all(|role| roles.get(role).copied().unwrap_or(0) > 0)
        );
        assert!(r.staff.iter().any(|p| p.assignments.len() > 1));
        assert!(!r.task_kinds.is_empty());
        assert_eq!(r.staff[0].id, "L0001");
        assert_eq!(r.staff[0].assignments[0].role, Role::GridLead);
    }
}
