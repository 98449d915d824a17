//! `gridcast-hub`: runs a hub (`gridcast-hub [serve] …`) or mints a token
//! (`gridcast-hub token --sub L0001 --role lead`).

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gridcast_hub::Config;
use gridcast_hub::auth::{Auth, Claims, TokenRole};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "gridcast-hub",
    version,
    about = "gridcast emergency dispatch hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (the default).
    Serve,
    /// Mint a token signed with the hub's key (--jwt-secret, or the data dir's key).
    Token {
        /// Lead or operator id.
        #[arg(long)]
        sub: String,
        /// lead, operator, supervisor or admin.
        #[arg(long, value_parser = parse_role)]
        role: TokenRole,
        /// An operator's jurisdiction prefix (empty = whole city).
        #[arg(long, default_value = "")]
        scope: String,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
    /// Print a Mosquitto ACL file for the registry (--registry FILE, else the sample city).
    MqttAcl {
        /// The broker username of the hub nodes.
        #[arg(long, default_value = "gridcast-hub")]
        hub_user: String,
    },
}

fn parse_role(s: &str) -> Result<TokenRole, String> {
    gridcast_protocol::from_wire_name(s)
        .ok_or_else(|| format!("{s:?} is not lead, operator, supervisor or admin"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token {
            sub,
            role,
            scope,
            ttl_hours,
        }) => {
            if !scope.is_empty() {
                gridcast_protocol::Target::parse(&scope).context("--scope")?;
            }
            let secret = gridcast_hub::load_or_create_secret(
                cli.config.jwt_secret.as_deref(),
                &cli.config.data_dir,
            )
            .context("reading the token key")?;
            if ttl_hours > cli.config.max_token_lifetime_h {
                anyhow::bail!(
                    "--ttl-hours {ttl_hours} is over the hub's --max-token-lifetime-h {}: the hub would refuse this token",
                    cli.config.max_token_lifetime_h
                );
            }
            let exp = gridcast_hub::now_ms() / 1000 + ttl_hours * 3600;
            // Every minted token has an id, so that it can be revoked alone (`jti:ID`).
            let jti = gridcast_hub::random_hex(12).context("making a token id")?;
            let auth = Auth::with_keys(&secret, None, cli.config.max_token_lifetime_h);
            eprintln!("token id (jti): {jti}");
            gridcast_protocol::out!(
                "{}",
                auth.sign(&Claims {
                    sub,
                    role,
                    scope,
                    exp,
                    jti: Some(jti),
                })
            );
            Ok(())
        }
        Some(Command::MqttAcl { hub_user }) => {
            let doc = match &cli.config.registry {
                Some(path) => serde_json::from_slice(
                    &std::fs::read(path).with_context(|| format!("{}", path.display()))?,
                )
                .with_context(|| format!("{}", path.display()))?,
                None => gridcast_hub::sample::sample_city(),
            };
            let registry = doc
                .validate()
                .map_err(|p| anyhow::anyhow!("invalid registry:\n  {}", p.join("\n  ")))?;
            gridcast_protocol::out_raw!(
                "{}",
                gridcast_hub::transport::mqtt::mosquitto_acl(&registry, &hub_user)
            );
            Ok(())
        }
        None | Some(Command::Serve) => serve(cli.config),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stdout().is_terminal();
    let json = match config.log_format.as_deref() {
        Some(f) => f == "json",
        None => !terminal,
    };
    if json {
        // One object per line: `timestamp`, `level`, `target`, `message` and the
        // event's own fields at the top level, `span` (the innermost) and `spans`.
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_ansi(terminal)
            .with_env_filter(filter)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Past a file-size limit (`ulimit -f`) the kernel's default for SIGXFSZ kills the
        // process; handled, the write fails with EFBIG instead and the store refuses that
        // one batch with a clear error (linux and the BSDs number it 25).
        let _file_too_large =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(25)).ok();
        let listener = gridcast_hub::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        #[allow(clippy::disallowed_methods, reason = "before any hub exists; ends with the process")]
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("shutting down");
            signal.cancel();
        });
        gridcast_hub::run(config, listener, shutdown).await?;
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
