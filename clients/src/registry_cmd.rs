//! `gridcast registry`: show the registry, replace it, or build it from CSV sheets.

use anyhow::Context;
use clap::Subcommand;
use gridcast_clients::console::ConsoleClient;

use crate::print_json;

#[derive(Subcommand)]
pub(crate) enum RegistryCmd {
    /// Print the registry (the part your token's jurisdiction covers) as JSON.
    Get,
    /// Replace the registry with a JSON document (admin token for the whole city).
    Put {
        /// The registry document.
        file: std::path::PathBuf,
    },
    /// Build the registry from CSV sheets, check it, print its warnings, and replace
    /// the hub's with it (or, with --dry-run, print the JSON).
    Import {
        /// grids.csv: code,name,kind,geometry (geometry: GeoJSON, [lon, lat]).
        #[arg(long)]
        grids: std::path::PathBuf,
        /// staff.csv: id,name,phone,grid,role (one row per assignment).
        #[arg(long)]
        staff: std::path::PathBuf,
        /// task_kinds.csv: id,name.
        #[arg(long)]
        task_kinds: Option<std::path::PathBuf>,
        /// areas.csv: code,name.
        #[arg(long)]
        areas: Option<std::path::PathBuf>,
        /// Check and print the document; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs one `gridcast registry` subcommand.
pub(crate) async fn run(hub: &str, token: &str, what: RegistryCmd) -> anyhow::Result<()> {
    use gridcast_clients::registry_csv::{Sheets, registry_from_csv, registry_problems};
    let c = ConsoleClient::new(hub, token);
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let doc: gridcast_protocol::registry::RegistryDoc = match what {
        RegistryCmd::Get => {
            let doc: serde_json::Value = c.get("/v1/registry").await?;
            print_json(&doc);
            return Ok(());
        }
        RegistryCmd::Put { file } => serde_json::from_str(&read(&file)?)
            .with_context(|| format!("{} is not a registry document", file.display()))?,
        RegistryCmd::Import {
            grids,
            staff,
            task_kinds,
            areas,
            dry_run,
        } => {
            let (grids, staff) = (read(&grids)?, read(&staff)?);
            let task_kinds = task_kinds.as_deref().map(read).transpose()?;
            let areas = areas.as_deref().map(read).transpose()?;
            let sheets = Sheets {
                grids: &grids,
                staff: &staff,
                task_kinds: task_kinds.as_deref(),
                areas: areas.as_deref(),
            };
            let (doc, lines) = registry_from_csv(&sheets)
                .map_err(|p| anyhow::anyhow!("the sheets were refused:\n  {}", p.join("\n  ")))?;
            let problems = registry_problems(&doc, &lines);
            if !problems.is_empty() {
                anyhow::bail!(
                    "the registry was refused ({} problem(s)); nothing was sent:\n  {}",
                    problems.len(),
                    problems.join("\n  ")
                );
            }
            if let Ok(r) = doc.validate() {
                for w in r.warnings() {
                    eprintln!("warning: {w}");
                }
            }
            if dry_run {
                print_json(&doc);
                return Ok(());
            }
            doc
        }
    };
    let answer: serde_json::Value = c
        .send_json(reqwest::Method::PUT, "/v1/registry", &doc)
        .await?;
    print_json(&answer);
    Ok(())
}
