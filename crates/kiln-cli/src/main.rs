//! The `kiln` binary: `kiln serve` runs the server; `kiln account …` administers accounts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kiln_server::Config;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Self-hosted machine images and instances behind the EC2 API")]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides the configuration file).
    #[arg(long, global = true, env = "KILN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the EC2-compatible API server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8773).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// List the instance type catalogue with its hourly price in a region.
    InstanceTypes {
        /// Region whose prices to show.
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and print its access key in AWS shared-credentials format.
    Create {
        /// Account name.
        name: String,
    },
    /// List accounts.
    List,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    Ok(config)
}

/// Writes to stdout; a closed pipe (`kiln … | head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = load_config(&cli)?;
    match &cli.command {
        Command::Serve { listen } => {
            if let Some(l) = listen {
                config.listen = *l;
            }
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(kiln_server::serve(config))
        }
        Command::InstanceTypes { region } => {
            if !config.regions.iter().any(|r| &r.name == region) {
                anyhow::bail!("region {region} is not configured");
            }
            let (kiln, _) = kiln_server::open(&config)?;
            let mut text = format!("{:<14} {:>5} {:>9} {:<7} {:>11}\n", "TYPE", "VCPUS", "MEM_MIB", "ARCH", "USD/HOUR");
            for t in &kiln.catalogue.types {
                let price = kiln.price(region, t.name).unwrap_or(f64::NAN);
                text += &format!("{:<14} {:>5} {:>9} {:<7} {:>11.6}\n", t.name, t.vcpus, t.memory_mib, t.arch, price);
            }
            print_out(&text)
        }
        Command::Account { command } => {
            let (kiln, admin) = kiln_server::open(&config)?;
            if let Some(admin) = admin {
                let path = config.data_dir.join(kiln_server::CREDENTIALS_FILE);
                kiln_server::write_atomic(&path, kiln_server::credentials_text("default", &admin).as_bytes(), 0o600)?;
                eprintln!("created the admin account; its credentials are in {}", path.display());
            }
            match command {
                AccountCommand::Create { name } => {
                    let created = kiln.create_account(name)?;
                    print_out(&kiln_server::credentials_text(name, &created))?;
                }
                AccountCommand::List => {
                    let text: String =
                        kiln.accounts()?.iter().map(|a| format!("{}\t{}\t{}\n", a.id, a.name, a.created_at)).collect();
                    print_out(&text)?;
                }
            }
            Ok(())
        }
    }
}
