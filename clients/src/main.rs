//! `gridcast`: the command line for operators and for testing as a phone.
//!
//! ```text
//! gridcast activate --title "Flood" --level II --category natural --codes 330106004
//! gridcast incident show INC-000001
//! gridcast lead --token "$LEAD" --ack accept
//! ```

use gridcast_protocol::{out, out_raw};

mod registry_cmd;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_protocol::api::CreateIncident;
use gridcast_protocol::area::{Area, Circle};
use gridcast_protocol::frame::{ClientFrame, ServerFrame, Targets};
use gridcast_protocol::model::Response;
use gridcast_protocol::{Category, Level, Role, Target};

#[derive(Parser)]
#[command(name = "gridcast", version, about = "gridcast command line")]
struct Cli {
    /// Hub base URL.
    #[arg(
        long,
        env = "GRIDCAST_HUB",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    hub: String,
    /// Token (an operator's for activate/incident, a lead's for lead).
    #[arg(long, env = "GRIDCAST_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Issue an activation.
    Activate {
        /// Title.
        #[arg(long)]
        title: String,
        /// Body.
        #[arg(long, default_value = "")]
        body: String,
        /// Level: I, II, III or IV.
        #[arg(long, value_parser = parse_json::<Level>)]
        level: Level,
        /// Category: natural, accident, public_health or social_safety.
        #[arg(long, value_parser = parse_json::<Category>)]
        category: Category,
        /// Target codes (comma separated).
        #[arg(long, value_delimiter = ',', required_unless_present_any = ["polygon", "circle"], value_parser = parse_target)]
        codes: Vec<Target>,
        /// Target the grids a polygon touches: "lat,lon lat,lon lat,lon …" (CAP's
        /// order and form, WGS 84).
        #[arg(long, value_parser = parse_polygon)]
        polygon: Option<Area>,
        /// Target the grids a circle touches: "lat,lon radius_m" (metres, WGS 84).
        #[arg(long, value_parser = parse_circle)]
        circle: Option<Area>,
        /// Only these roles (comma separated).
        #[arg(long, value_delimiter = ',', value_parser = parse_json::<Role>)]
        roles: Vec<Role>,
        /// Mark as a drill.
        #[arg(long)]
        drill: bool,
        /// Ack window in seconds.
        #[arg(long)]
        ack_within_s: Option<u32>,
    },
    /// The registry: show it, replace it, or build it from spreadsheets.
    Registry {
        #[command(subcommand)]
        what: registry_cmd::RegistryCmd,
    },
    /// Look at incidents.
    Incident {
        #[command(subcommand)]
        what: IncidentCmd,
    },
    /// Assistance tasks.
    Task {
        #[command(subcommand)]
        what: TaskCmd,
    },
    /// Upward reports from leads, newest first; --promote opens an incident from one.
    Reports {
        /// Report id to promote.
        #[arg(long, requires = "level")]
        promote: Option<String>,
        /// Level of the incident opened by --promote.
        #[arg(long, value_parser = parse_json::<Level>)]
        level: Option<Level>,
    },
    /// Response figures over a period (real incidents and drills apart).
    Stats {
        /// Area prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// From (RFC 3339 or a date).
        #[arg(long, default_value = "")]
        from: String,
        /// To (RFC 3339 or a date).
        #[arg(long, default_value = "")]
        to: String,
    },
    /// Connect as a lead's phone and print every frame as a JSON line.
    Lead {
        /// Do not send receipts automatically.
        #[arg(long)]
        no_receipt: bool,
        /// Answer every active incident with accept or decline.
        #[arg(long, value_parser = parse_json::<Response>)]
        ack: Option<Response>,
        /// Leave once synced and every receipt and ack is answered.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum IncidentCmd {
    /// Counts and per-grid rollup of one incident.
    Show {
        /// Incident id.
        id: String,
    },
    /// Incidents, newest first.
    List {
        /// active or closed.
        #[arg(long)]
        state: Option<String>,
    },
    /// Recipients of an incident, optionally of one status.
    Recipients {
        /// Incident id.
        id: String,
        /// pending, delivered, accepted or declined.
        #[arg(long)]
        status: Option<String>,
    },
    /// Timeline of an incident.
    Timeline {
        /// Incident id.
        id: String,
    },
    /// Send an update (new body, rev + 1) to every recipient.
    Update {
        /// Incident id.
        id: String,
        /// The new body.
        #[arg(long)]
        body: String,
    },
    /// Approve a request held under the two-person rule (a supervisor or admin, not
    /// the one who asked); it is then issued.
    Approve {
        /// Request id (APR-…).
        id: String,
        /// Bind the approval to this content digest (as the request shows it).
        #[arg(long)]
        digest: Option<String>,
    },
    /// Reject a request held under the two-person rule.
    Reject {
        /// Request id (APR-…).
        id: String,
        /// Why (kept with the request).
        #[arg(long)]
        reason: String,
    },
    /// Close an incident (refused while tasks are open, unless --force).
    Close {
        /// Incident id.
        id: String,
        /// Why (kept on the timeline).
        #[arg(long)]
        reason: String,
        /// Close even with open tasks.
        #[arg(long)]
        force: bool,
    },
    /// After-action report: JSON, or one row per person with --csv.
    Report {
        /// Incident id.
        id: String,
        /// CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
    /// Tasks of an incident.
    Tasks {
        /// Incident id.
        id: String,
    },
}

#[derive(Subcommand)]
enum TaskCmd {
    /// Give an assistance task to a lead (--lead) or to any lead of a grid (--grid).
    Create {
        /// Incident id.
        incident: String,
        /// A kind from the published list (gridcast-hub's GET /v1/task-kinds).
        #[arg(long)]
        kind: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// What to do.
        #[arg(long, default_value = "")]
        detail: String,
        /// The lead.
        #[arg(long, conflicts_with = "grid", required_unless_present = "grid")]
        lead: Option<String>,
        /// The grid (first accept wins).
        #[arg(long)]
        grid: Option<String>,
        /// Seconds until due.
        #[arg(long)]
        due_in_s: Option<u32>,
    },
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    gridcast_protocol::from_wire_name(s).ok_or_else(|| format!("{s:?} is not a valid value"))
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).map_err(|e| e.to_string())
}

fn lat_lon(pair: &str) -> Result<[f64; 2], String> {
    let (lat, lon) = pair
        .split_once(',')
        .ok_or_else(|| format!("{pair:?} is not lat,lon"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .map_err(|_| format!("{s:?} is not a number of degrees"))
    };
    Ok([num(lat)?, num(lon)?])
}

fn parse_polygon(s: &str) -> Result<Area, String> {
    let polygon = s
        .split_whitespace()
        .map(lat_lon)
        .collect::<Result<_, _>>()?;
    let area = Area {
        polygon: Some(polygon),
        circle: None,
        datum: Default::default(),
    };
    area.check("--polygon")?;
    Ok(area)
}

fn parse_circle(s: &str) -> Result<Area, String> {
    let (centre, radius) = s
        .split_once(' ')
        .ok_or_else(|| format!("{s:?} is not \"lat,lon radius_m\""))?;
    let [lat, lon] = lat_lon(centre)?;
    let radius_m = radius
        .trim()
        .parse()
        .map_err(|_| format!("{radius:?} is not a radius in metres"))?;
    let area = Area {
        polygon: None,
        circle: Some(Circle { lat, lon, radius_m }),
        datum: Default::default(),
    };
    area.check("--circle")?;
    Ok(area)
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // One line for people, not a backtrace (anyhow prints one when RUST_BACKTRACE is set).
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let token = cli
        .token
        .clone()
        .context("a token is needed: --token or GRIDCAST_TOKEN")?;
    match cli.command {
        Command::Activate {
            title,
            body,
            level,
            category,
            codes,
            polygon,
            circle,
            roles,
            drill,
            ack_within_s,
        } => {
            let c = ConsoleClient::new(&cli.hub, &token);
            let req = CreateIncident {
                title,
                body,
                level,
                category,
                drill,
                targets: Targets {
                    codes,
                    roles,
                    area: polygon.into_iter().chain(circle).collect(),
                },
                ack_within_s,
                approval_override: None,
                fallback: false,
            };
            // 201 with the incident, or 202 when it waits for a second person.
            let answer: serde_json::Value = c
                .send_json(reqwest::Method::POST, "/v1/incidents", &req)
                .await?;
            if answer["state"] == "pending_approval" {
                eprintln!(
                    "held for a second person's approval: gridcast incident approve {}",
                    answer["id"].as_str().unwrap_or_default()
                );
            }
            print_json(&answer);
        }
        Command::Registry { what } => registry_cmd::run(&cli.hub, &token, what).await?,
        Command::Incident { what } => {
            let c = ConsoleClient::new(&cli.hub, &token);
            match what {
                IncidentCmd::Show { id } => {
                    let d = c.incident(&id).await?;
                    let n = d.counts;
                    out!(
                        "{} rev {} {:?} {:?} level {:?}{}: {}",
                        d.incident.id,
                        d.incident.rev,
                        d.incident.state,
                        d.incident.category,
                        d.incident.level,
                        if d.incident.drill { " DRILL" } else { "" },
                        d.incident.title
                    );
                    out!(
                        "recipients {}  pending {}  delivered {}  accepted {}  declined {}",
                        n.total(),
                        n.pending,
                        n.delivered,
                        n.accepted,
                        n.declined
                    );
                    out!(
                        "{:<20} {:>10} {:>10} {:>9} {:>9}",
                        "grid",
                        "recipients",
                        "delivered",
                        "accepted",
                        "declined"
                    );
                    for g in d.grids {
                        out!(
                            "{:<20} {:>10} {:>10} {:>9} {:>9}",
                            g.code.as_str(),
                            g.recipients,
                            g.delivered,
                            g.accepted,
                            g.declined
                        );
                    }
                }
                IncidentCmd::List { state } => print_json(&c.incidents(state.as_deref()).await?),
                IncidentCmd::Recipients { id, status } => {
                    print_json(&c.recipients(&id, status.as_deref()).await?)
                }
                IncidentCmd::Timeline { id } => print_json(&c.timeline(&id).await?),
                IncidentCmd::Update { id, body } => {
                    let d: serde_json::Value = c
                        .send_json(
                            reqwest::Method::POST,
                            &format!("/v1/incidents/{id}/updates"),
                            &serde_json::json!({ "body": body }),
                        )
                        .await?;
                    print_json(&d);
                }
                IncidentCmd::Approve { id, digest } => {
                    let body = match digest {
                        Some(d) => serde_json::json!({ "digest": d }),
                        None => serde_json::json!({}),
                    };
                    let d: serde_json::Value = c
                        .send_json(
                            reqwest::Method::POST,
                            &format!("/v1/incidents/{id}/approve"),
                            &body,
                        )
                        .await?;
                    print_json(&d);
                }
                IncidentCmd::Reject { id, reason } => {
                    let d: serde_json::Value = c
                        .send_json(
                            reqwest::Method::POST,
                            &format!("/v1/incidents/{id}/reject"),
                            &serde_json::json!({ "reason": reason }),
                        )
                        .await?;
                    print_json(&d);
                }
                IncidentCmd::Close { id, reason, force } => {
                    let d: serde_json::Value = c
                        .send_json(
                            reqwest::Method::POST,
                            &format!("/v1/incidents/{id}/close"),
                            &serde_json::json!({ "reason": reason, "force": force }),
                        )
                        .await?;
                    print_json(&d);
                }
                IncidentCmd::Report { id, csv } => {
                    let path = format!("/v1/incidents/{id}/report");
                    if csv {
                        out_raw!("{}", c.get_text(&path, "text/csv").await?);
                    } else {
                        print_json(&c.get::<serde_json::Value>(&path).await?);
                    }
                }
                IncidentCmd::Tasks { id } => print_json(
                    &c.get::<serde_json::Value>(&format!("/v1/incidents/{id}/tasks"))
                        .await?,
                ),
            }
        }
        Command::Task {
            what:
                TaskCmd::Create {
                    incident,
                    kind,
                    title,
                    detail,
                    lead,
                    grid,
                    due_in_s,
                },
        } => {
            let c = ConsoleClient::new(&cli.hub, &token);
            let assignee = match (lead, grid) {
                (Some(l), _) => serde_json::json!({ "lead": l }),
                (None, Some(g)) => serde_json::json!({ "grid": g }),
                (None, None) => anyhow::bail!("--lead or --grid"),
            };
            let mut body = serde_json::json!({
                "kind": kind, "title": title, "detail": detail, "assignee": assignee,
            });
            if let Some(d) = due_in_s {
                body["due_in_s"] = d.into();
            }
            let created: serde_json::Value = c
                .send_json(
                    reqwest::Method::POST,
                    &format!("/v1/incidents/{incident}/tasks"),
                    &body,
                )
                .await?;
            print_json(&created);
        }
        Command::Reports { promote, level } => {
            let c = ConsoleClient::new(&cli.hub, &token);
            match (promote, level) {
                (Some(id), Some(level)) => {
                    let created: serde_json::Value = c
                        .send_json(
                            reqwest::Method::POST,
                            &format!("/v1/reports/{id}/promote"),
                            &serde_json::json!({ "level": level }),
                        )
                        .await?;
                    print_json(&created);
                }
                _ => print_json(&c.get::<serde_json::Value>("/v1/reports").await?),
            }
        }
        Command::Stats { prefix, from, to } => {
            let c = ConsoleClient::new(&cli.hub, &token);
            let path = format!("/v1/stats?prefix={prefix}&from={from}&to={to}");
            print_json(&c.get::<serde_json::Value>(&path).await?);
        }
        Command::Lead {
            no_receipt,
            ack,
            once,
        } => {
            let url = format!("{}/v1/lead/ws", cli.hub.replacen("http", "ws", 1));
            let (mut lead, welcome) = LeadClient::connect(&url, &token).await?;
            eprintln!(
                "connected as {} ({} assignments)",
                welcome.lead,
                welcome.assignments.len()
            );
            let mut n = 0u64;
            let mut synced = false;
            // Refs sent and not yet answered; `--once` waits for them.
            let mut outstanding = std::collections::HashSet::new();
            loop {
                let frame = lead.next().await?;
                out!("{}", serde_json::to_string(&frame)?);
                match &frame {
                    ServerFrame::Synced => synced = true,
                    ServerFrame::Ok { reference } => {
                        outstanding.remove(reference);
                    }
                    ServerFrame::Error {
                        reference: Some(r), ..
                    } => {
                        outstanding.remove(r);
                    }
                    ServerFrame::Incident { incident, me } => {
                        n += 1;
                        if !no_receipt {
                            let r = format!("r{n}");
                            let f = ClientFrame::Receipt {
                                incident: incident.id.clone(),
                                rev: incident.rev,
                                reference: Some(r.clone()),
                            };
                            lead.send(&f).await?;
                            outstanding.insert(r);
                        }
                        let answered = me.as_ref().is_some_and(|m| {
                            m.status.as_str() == "accepted" || m.status.as_str() == "declined"
                        });
                        let active =
                            incident.state == gridcast_protocol::model::IncidentState::Active;
                        if let (Some(response), false, true) = (ack, answered, active) {
                            let r = format!("a{n}");
                            let f = ClientFrame::Ack {
                                incident: incident.id.clone(),
                                response,
                                note: None,
                                reference: Some(r.clone()),
                            };
                            lead.send(&f).await?;
                            outstanding.insert(r);
                        }
                    }
                    _ => {}
                }
                if once && synced && outstanding.is_empty() {
                    break;
                }
            }
            lead.close().await;
        }
    }
    Ok(())
}
