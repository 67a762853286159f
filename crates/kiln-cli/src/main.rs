//! The `kiln` binary: `kiln serve` runs the server; `kiln account …` administers accounts.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kiln_server::Config;
use tracing_subscriber::EnvFilter;

mod client;
mod doctor;
mod image;
mod instances;
mod xml;

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
    /// Import and export images (talks to a running server).
    Image {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Report what this host offers Kiln: accelerator, QEMU tools, kernel, networking, capacity.
    Doctor,
    /// List the images you own and the provided ones (from a running server), or build
    /// provided images into the server's cache (`kiln images build`; the server publishes a new
    /// version when it next starts).
    Images {
        #[command(flatten)]
        api: ApiArgs,
        /// Owners to list (`self`, `kiln`, an account id).
        #[arg(long = "owner", default_values_t = ["self".to_string(), "kiln".to_string()])]
        owners: Vec<String>,
        #[command(subcommand)]
        command: Option<ImagesCommand>,
    },
    /// List instances (talks to a running server).
    Instances {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Key pairs whose private keys `kiln ssh` can use.
    Keys {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Log into an instance with the private key saved when its key pair was created.
    Ssh {
        #[command(flatten)]
        api: ApiArgs,
        /// Instance id.
        instance_id: String,
        /// User to log in as.
        #[arg(long, short = 'l', default_value = "root")]
        user: String,
        /// Private key file (default: the saved key of the instance's key pair).
        #[arg(long, short = 'i')]
        identity: Option<PathBuf>,
        /// Command to run instead of a shell.
        #[arg(trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Print an instance's serial console; `--follow` keeps printing.
    Console {
        #[command(flatten)]
        api: ApiArgs,
        /// Instance id.
        instance_id: String,
        /// Keep printing new output until the instance terminates.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Storage statistics.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
}

/// How to reach a running server.
#[derive(Args)]
struct ApiArgs {
    /// Server endpoint (default: http:// plus the configured listen address).
    #[arg(long, global = true, env = "KILN_ENDPOINT")]
    endpoint: Option<String>,
    /// Region to work in.
    #[arg(long, global = true, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    region: String,
    /// Access key id (default: the admin key in <data dir>/credentials).
    #[arg(long, global = true, env = "AWS_ACCESS_KEY_ID")]
    access_key: Option<String>,
    /// Secret access key.
    #[arg(long, global = true, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import a raw or qcow2 disk image as a snapshot and register an image over it.
    Import {
        /// The disk image file.
        file: PathBuf,
        /// Image name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Architecture.
        #[arg(long, default_value = "x86_64")]
        architecture: String,
        /// Boot mode (legacy-bios, uefi).
        #[arg(long)]
        boot_mode: Option<String>,
    },
    /// Write an image's root volume to a file.
    Export {
        /// Image id.
        image_id: String,
        /// Output file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Raw)]
        format: ExportFormat,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key pair and save its private key where `kiln ssh` finds it.
    Create {
        /// Key pair name.
        name: String,
        /// `ed25519` or `rsa`.
        #[arg(long, default_value = "ed25519")]
        key_type: String,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build a provided image (cached by the versions of the Debian packages it is made of).
    Build {
        /// Which image.
        #[arg(value_enum, default_value_t = ProvidedImage::Minimal)]
        name: ProvidedImage,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProvidedImage {
    /// Debian's cloud kernel, busybox and dropbear.
    Minimal,
    /// Debian 12 with systemd, OpenSSH and Kiln's first-boot agent.
    #[value(name = "debian-12")]
    Debian12,
}

impl ProvidedImage {
    fn name(self) -> &'static str {
        match self {
            ProvidedImage::Minimal => "minimal",
            ProvidedImage::Debian12 => "debian-12",
        }
    }
}

/// How log lines are written, from `KILN_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LogFormat {
    /// Human-readable lines (the default); coloured only when stderr is a terminal.
    Text,
    /// One JSON object a line, with `timestamp`, `level`, `target`, `fields` and the spans.
    Json,
}

impl LogFormat {
    /// Unset or empty means text; anything but `text` or `json` is refused rather than guessed.
    fn parse(value: Option<&std::ffi::OsStr>) -> anyhow::Result<LogFormat> {
        match value.map(|v| v.to_str()) {
            None | Some(Some("" | "text")) => Ok(LogFormat::Text),
            Some(Some("json")) => Ok(LogFormat::Json),
            Some(other) => {
                anyhow::bail!("KILN_LOG_FORMAT must be `text` or `json`, not {:?}", other.unwrap_or("(not UTF-8)"))
            }
        }
    }
}

/// Logs to stderr at the level `KILN_LOG` (an `EnvFilter` directive) asks for, `info` by default.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // Escape codes are noise in a file or a journal, so colour only a terminal.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Raw,
    Qcow2,
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Logical size, stored size and dedup ratio per region.
    Stats,
}

/// A signed client from flags, environment or the admin credentials file.
fn api_client(config: &Config, api: &ApiArgs) -> anyhow::Result<client::Client> {
    let endpoint = api.endpoint.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let (key, secret) = match (&api.access_key, &api.secret_key) {
        (Some(k), Some(s)) => (k.clone(), s.clone()),
        _ => {
            let path = config.data_dir.join(kiln_server::CREDENTIALS_FILE);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("no --access-key/--secret-key given and {} is unreadable", path.display()))?;
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| {
                        l.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim().to_string())
                    })
                    .with_context(|| format!("{name} missing from {}", path.display()))
            };
            (field("aws_access_key_id")?, field("aws_secret_access_key")?)
        }
    };
    client::Client::new(&endpoint, &api.region, &key, &secret)
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
    init_logging(LogFormat::parse(std::env::var_os("KILN_LOG_FORMAT").as_deref())?);
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
            for t in &kiln.catalogue().types {
                let price = kiln.price(region, t.name).unwrap_or(f64::NAN);
                text += &format!("{:<14} {:>5} {:>9} {:<7} {:>11.6}\n", t.name, t.vcpus, t.memory_mib, t.arch, price);
            }
            print_out(&text)
        }
        Command::Image { api, command } => {
            let client = api_client(&config, api)?;
            match command {
                ImageCommand::Import { file, name, description, architecture, boot_mode } => {
                    let default_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("imported").to_string();
                    let spec = image::ImportSpec {
                        name: name.as_deref().unwrap_or(&default_name),
                        description: description.as_deref(),
                        architecture,
                        boot_mode: boot_mode.as_deref(),
                    };
                    let (image_id, snapshot_id) = image::import(&client, file, &spec)?;
                    print_out(&format!("{image_id}\t{snapshot_id}\n"))
                }
                ImageCommand::Export { image_id, file, format } => {
                    let fmt = match format {
                        ExportFormat::Raw => kiln_disk::Format::Raw,
                        ExportFormat::Qcow2 => kiln_disk::Format::Qcow2,
                    };
                    let size = image::export(&client, image_id, file, fmt)?;
                    print_out(&format!("{}\t{size}\n", file.display()))
                }
            }
        }
        Command::Instances { api } => print_out(&instances::list_instances(&api_client(&config, api)?)?),
        Command::Images { api, owners, command: None } => {
            print_out(&instances::list_images(&api_client(&config, api)?, owners)?)
        }
        Command::Keys { api, command: KeysCommand::Create { name, key_type } } => {
            let path = instances::create_key(&api_client(&config, api)?, name, key_type)?;
            print_out(&format!("{name}\t{}\n", path.display()))
        }
        Command::Ssh { api, instance_id, user, identity, command } => {
            let client = api_client(&config, api)?;
            let status = instances::ssh_command(&client, instance_id, user, identity.as_ref(), command)?
                .status()
                .context("running ssh")?;
            std::process::exit(status.code().unwrap_or(255));
        }
        Command::Console { api, instance_id, follow } => {
            instances::console(&api_client(&config, api)?, instance_id, *follow)
        }
        Command::Doctor => print_out(&doctor::report(&config)),
        Command::Images { command: Some(ImagesCommand::Build { name }), .. } => {
            let cache = config.image_cache();
            let started = std::time::Instant::now();
            let image = kiln_images::build_named(name.name(), &cache, &|step| eprintln!("  {step}"))?;
            eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
            print_out(&format!(
                "kiln-{}-{}\t{}\t{}\t{}\n",
                name.name(),
                image.version,
                image.root_disk.display(),
                image.kernel.display(),
                image.initrd.display()
            ))
        }
        Command::Storage { command: StorageCommand::Stats } => {
            let (kiln, _) = kiln_server::open(&config)?;
            let mut text = format!(
                "{:<14} {:>16} {:>16} {:>10} {:>8}\n",
                "REGION", "LOGICAL_BYTES", "STORED_BYTES", "CHUNKS", "DEDUP"
            );
            for region in &config.regions {
                let (logical, chunks, stored) = kiln.storage_stats(&region.name)?;
                let ratio = if stored == 0 { 1.0 } else { logical as f64 / stored as f64 };
                text += &format!("{:<14} {:>16} {:>16} {:>10} {:>7.2}x\n", region.name, logical, stored, chunks, ratio);
            }
            let transfers = kiln.transfers()?;
            if !transfers.is_empty() {
                text += &format!(
                    "\n{:<14} {:>16} {:>16} {:>8}   copies between regions\n",
                    "ACCOUNT", "MOVED_BYTES", "LOGICAL_BYTES", "COPIES"
                );
                for (account, t) in transfers {
                    text += &format!("{:<14} {:>16} {:>16} {:>8}\n", account, t.moved_bytes, t.logical_bytes, t.copies);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_text_unless_json_is_asked_for() {
        let parse = |v: &str| LogFormat::parse(Some(std::ffi::OsStr::new(v)));
        assert_eq!(LogFormat::parse(None).unwrap(), LogFormat::Text);
        assert_eq!(parse("").unwrap(), LogFormat::Text);
        assert_eq!(parse("text").unwrap(), LogFormat::Text);
        assert_eq!(parse("json").unwrap(), LogFormat::Json);
        let err = parse("JSON").unwrap_err().to_string();
        assert!(err.contains("KILN_LOG_FORMAT") && err.contains("\"JSON\""), "{err}");
    }
}
