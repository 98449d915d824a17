//! The registry from spreadsheets: `grids.csv` and `staff.csv` (and optionally
//! `task_kinds.csv`, `areas.csv`), as districts keep them, into the registry document
//! that `PUT /v1/registry` takes.
//!
//! - `grids.csv`: `code,name,kind,geometry[,supervision_phone]` — `kind` empty for a
//!   micro-grid, `geometry` a GeoJSON Polygon or MultiPolygon (`[lon, lat]`) written as
//!   JSON in the cell, or empty.
//! - `staff.csv`: `id,name,phone,grid,role[,work_contact]` — one row per assignment;
//!   the rows of one id are one person, their assignments in row order.
//! - `task_kinds.csv`: `id,name`; `areas.csv`: `code,name`.
//!
//! Columns are found by their header (any order, extra columns ignored). Problems name
//! the file and line.

use std::collections::HashMap;

use gridcast_protocol::registry::{
    AreaDoc, AssignmentDoc, GridDoc, RegistryDoc, StaffDoc, TaskKind,
};

/// The CSV texts of one registry.
#[derive(Debug, Default)]
pub struct Sheets<'a> {
    /// `grids.csv`.
    pub grids: &'a str,
    /// `staff.csv`.
    pub staff: &'a str,
    /// `task_kinds.csv`, if any.
    pub task_kinds: Option<&'a str>,
    /// `areas.csv`, if any.
    pub areas: Option<&'a str>,
}

/// One row: its line number and its values by (lower-case) header.
type Row = (u64, HashMap<String, String>);

/// Rows of one sheet as header → value maps, with their line numbers.
fn rows(name: &str, text: &str, required: &[&str]) -> Result<Vec<Row>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
        Err(e) => return Err(vec![format!("{name}: {e}")]),
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !headers.iter().any(|h| h == r))
        .collect();
    if !missing.is_empty() {
        return Err(vec![format!(
            "{name}: the header needs the column(s) {} (it has {})",
            missing.join(", "),
            headers.join(", ")
        )]);
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let map = headers
                    .iter()
                    .cloned()
                    .zip(r.iter().map(|v| v.trim().to_owned()))
                    .collect();
                out.push((line, map));
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The registry document the sheets describe, or every problem found (each naming its
/// file and line). The document still has to pass the hub's validation, which
/// [`registry_problems`] runs with the same file and line names.
pub fn registry_from_csv(sheets: &Sheets<'_>) -> Result<(RegistryDoc, Lines), Vec<String>> {
    let mut problems = Vec::new();
    let mut lines = Lines::default();
    let mut doc = RegistryDoc::default();
    match rows("grids.csv", sheets.grids, &["code"]) {
        Ok(grids) => {
            for (line, r) in grids {
                let get = |k: &str| r.get(k).cloned().unwrap_or_default();
                let geometry = match get("geometry") {
                    g if g.is_empty() => None,
                    g => match serde_json::from_str(&g) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            problems.push(format!(
                                "grids.csv line {line}: geometry is not a GeoJSON geometry ({e})"
                            ));
                            None
                        }
                    },
                };
                let kind = get("kind");
                lines.grids.push(line);
                doc.grids.push(GridDoc {
                    code: get("code"),
                    name: get("name"),
                    kind: (!kind.is_empty()).then_some(kind),
                    geometry,
                    supervision_phone: Some(get("supervision_phone")).filter(|p| !p.is_empty()),
                });
            }
        }
        Err(p) => problems.extend(p),
    }
    match rows("staff.csv", sheets.staff, &["id", "grid", "role"]) {
        Ok(staff) => {
            let mut at: HashMap<String, usize> = HashMap::new();
            for (line, r) in staff {
                let get = |k: &str| r.get(k).cloned().unwrap_or_default();
                let id = get("id");
                let i = *at.entry(id.clone()).or_insert_with(|| {
                    lines.staff.push(line);
                    doc.staff.push(StaffDoc {
                        id: id.clone(),
                        name: get("name"),
                        phone: get("phone"),
                        work_contact: Some(get("work_contact")).filter(|c| !c.is_empty()),
                        assignments: Vec::new(),
                    });
                    doc.staff.len() - 1
                });
                doc.staff[i].assignments.push(AssignmentDoc {
                    grid: get("grid"),
                    role: get("role"),
                });
            }
        }
        Err(p) => problems.extend(p),
    }
    if let Some(text) = sheets.task_kinds {
        match rows("task_kinds.csv", text, &["id"]) {
            Ok(kinds) => {
                doc.task_kinds = kinds
                    .into_iter()
                    .map(|(_, r)| TaskKind {
                        id: r.get("id").cloned().unwrap_or_default(),
                        name: r.get("name").cloned().unwrap_or_default(),
                    })
                    .collect()
            }
            Err(p) => problems.extend(p),
        }
    }
    if let Some(text) = sheets.areas {
        match rows("areas.csv", text, &["code", "name"]) {
            Ok(areas) => {
                doc.areas = areas
                    .into_iter()
                    .map(|(_, r)| AreaDoc {
                        code: r.get("code").cloned().unwrap_or_default(),
                        name: r.get("name").cloned().unwrap_or_default(),
                    })
                    .collect()
            }
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok((doc, lines))
    } else {
        Err(problems)
    }
}

/// Where each grid and person of a converted document came from.
#[derive(Debug, Default)]
pub struct Lines {
    grids: Vec<u64>,
    staff: Vec<u64>,
}

/// The hub's validation of a converted document, its problems naming the CSV line
/// (`grids[3]: …` becomes `grids.csv line 5: …`).
pub fn registry_problems(doc: &RegistryDoc, lines: &Lines) -> Vec<String> {
    let Err(problems) = doc.validate() else {
        return Vec::new();
    };
    problems
        .into_iter()
        .map(|p| {
            for (prefix, file, at) in [
                ("grids[", "grids.csv", &lines.grids),
                ("staff[", "staff.csv", &lines.staff),
            ] {
                if let Some(rest) = p.strip_prefix(prefix)
                    && let Some((n, tail)) = rest.split_once(']')
                    && let Ok(n) = n.parse::<usize>()
                    && let Some(line) = at.get(n)
                {
                    return format!("{file} line {line}{tail}");
                }
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRIDS: &str = "code,name,kind,geometry\n\
        3301060040051001,西溪 1,community,\"{\"\"type\"\":\"\"Polygon\"\",\"\"coordinates\"\":[[[120.07,30.27],[120.076,30.27],[120.076,30.275],[120.07,30.275],[120.07,30.27]]]}\"\n\
        3301060040051001001,微网格 1,,\n";
    const STAFF: &str = "id,name,phone,grid,role\n\
        L1,张三,13800000001,3301060040051001,grid_lead\n\
        L2,李四,13800000002,3301060040051001001,micro_lead\n\
        L1,张三,13800000001,3301060040051001001,instructor\n";

    #[test]
    fn sheets_become_a_registry_with_geometry_and_merged_assignments() {
        let (doc, lines) = registry_from_csv(&Sheets {
            grids: GRIDS,
            staff: STAFF,
            ..Sheets::default()
        })
        .unwrap();
        assert!(registry_problems(&doc, &lines).is_empty());
        let r = doc.validate().unwrap();
        assert!(r.grids[0].geometry.is_some() && r.grids[1].geometry.is_none());
        assert!(
            r.warnings().is_empty(),
            "the micro-grid has its grid's geometry"
        );
        assert_eq!(doc.staff.len(), 2);
        assert_eq!(
            doc.staff[0].assignments.len(),
            2,
            "L1's two rows are one person"
        );
        assert_eq!(doc.staff[0].name, "张三");
    }

    #[test]
    fn problems_name_the_file_and_line() {
        let grids = GRIDS.replace("[120.07,30.27],[120.076", "[30.27,120.07],[120.076");
        let staff = format!("{STAFF}L3,王五,,3301069999991999,grid_lead\n");
        let (doc, lines) = registry_from_csv(&Sheets {
            grids: &grids,
            staff: &staff,
            ..Sheets::default()
        })
        .unwrap();
        let p = registry_problems(&doc, &lines).join("\n");
        assert!(
            p.contains("grids.csv line 2 (3301060040051001): geometry"),
            "{p}"
        );
        assert!(
            p.contains("staff.csv line 5") && p.contains("not in the registry"),
            "{p}"
        );

        let bad = registry_from_csv(&Sheets {
            grids: "code,geometry\n3301060040051001,{nope\n",
            staff: "id\nL1\n",
            ..Sheets::default()
        })
        .unwrap_err()
        .join("\n");
        assert!(
            bad.contains("grids.csv line 2: geometry is not a GeoJSON geometry"),
            "{bad}"
        );
        assert!(
            bad.contains("staff.csv: the header needs the column(s) grid, role"),
            "{bad}"
        );
    }
}
