//! The built-in sample city, used when no `--registry` is given: one county of Hangzhou
//! with two streets (towns), community, rural and dedicated grids, micro-grids, 300 staff
//! in every role (some with several assignments) and a list of task kinds. Deterministic,
//! so the README's walk-through can name real ids (`L0001` is the first grid lead).

use gridcast_protocol::registry::{AssignmentDoc, GridDoc, RegistryDoc, StaffDoc, TaskKind};

/// County prefix of the sample city.
pub const COUNTY: &str = "330106";

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
    for (town, town_name, parts) in layout {
        for &(community, kind, n) in parts {
            for serial in 1..=n {
                let code = format!("{COUNTY}{town}{community}{kind}{serial:03}");
                let kind_name = match kind {
                    '1' => "community",
                    '2' => "rural",
                    _ => "dedicated",
                };
                grids.push(GridDoc {
                    code: code.clone(),
                    name: format!("{town_name} {community}-{kind}{serial:03}"),
                    kind: Some(kind_name.into()),
                });
                grid_codes.push(code);
            }
        }
    }
    // Every grid gets a grid lead, a full-time and a part-time member and two micro-grids
    // with a micro-grid lead each: 42 × 5 = 210 people.
    for code in &grid_codes {
        person("Grid lead", vec![(code.clone(), "grid_lead")], &mut staff);
        person("Full-time", vec![(code.clone(), "full_time")], &mut staff);
        person("Part-time", vec![(code.clone(), "part_time")], &mut staff);
        for micro in 1..=2 {
            let m = format!("{code}{micro:03}");
            grids.push(GridDoc {
                code: m.clone(),
                name: format!("micro-grid {micro}"),
                kind: None,
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
