//! Kiln's server: configuration, start-up, and the HTTP routes that carry EC2 Query requests
//! to `kiln-core`. This is the only crate that meets both the wire and the domain.

pub mod auth;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod ebs;
pub mod error;
pub mod http;
pub mod imds;
pub mod netadapter;
pub mod rbin;
pub mod render;
pub mod rest;
pub mod state;
pub mod sts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kiln_core::identity::accounts::NewAccount;
use kiln_core::Kiln;
use kiln_meta::SqliteStore;
use tracing::info;

pub use config::Config;

/// File name of the metadata database inside the data directory.
pub const META_FILE: &str = "meta.db";
/// File name of the admin credentials inside the data directory.
pub const CREDENTIALS_FILE: &str = "credentials";

/// Opens the data directory and the service over it, applying configured accounts. Returns
/// the admin account when this call created it.
pub fn open(config: &Config) -> anyhow::Result<(Arc<Kiln>, Option<NewAccount>)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let store = SqliteStore::open(&config.data_dir.join(META_FILE)).context("opening the metadata store")?;
    let kiln =
        Kiln::new(Arc::new(store), config.region_specs(), config.catalogue(), config.endpoint_host(), &config.data_dir)
            .with_quotas(config.quotas.quotas())
            .with_recycle_bin_day_secs(config.recycle_bin_day_secs);
    let admin = kiln.bootstrap(&config.declared_accounts()?).context("applying configured accounts")?;
    Ok((Arc::new(kiln), admin))
}

/// Writes a file atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The AWS shared-credentials text for an account's key.
pub fn credentials_text(profile: &str, account: &NewAccount) -> String {
    format!(
        "# Kiln account {} ({})\n[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        account.account.name, account.account.id, account.key.id, account.key.secret
    )
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let (kiln, admin) = open(&config)?;
    if let Some(admin) = admin {
        let path = config.data_dir.join(CREDENTIALS_FILE);
        write_atomic(&path, credentials_text("default", &admin).as_bytes(), 0o600)
            .with_context(|| format!("writing {}", path.display()))?;
        info!(path = %path.display(), account = %admin.account.id, "created the admin account; its credentials are in this file");
    }
    kiln.resume_jobs().context("resuming interrupted volume and snapshot work")?;
    let host_network = match enable_instances(&kiln, &config)? {
        Some(chosen) => {
            if let Some(listener) = chosen.metadata {
                let local = listener.local_addr()?;
                listener.set_nonblocking(true)?;
                let listener =
                    conn::LimitedListener::new(tokio::net::TcpListener::from_std(listener)?, config.conn_limits());
                let app = imds::router(Arc::clone(&kiln));
                tokio::spawn(async move {
                    let service = app.into_make_service_with_connect_info::<conn::Peer>();
                    if let Err(e) = axum::serve(listener, service).await {
                        tracing::error!(error = %e, "the instance metadata service stopped");
                    }
                });
                info!(listen = %local, netns = %config.netns(), "serving instance metadata to guests");
            }
            chosen.host
        }
        None => None,
    };
    spawn_garbage_collector(Arc::clone(&kiln), &config);
    spawn_provided_images(Arc::clone(&kiln), &config);
    let state = Arc::new(state::AppState::new(Arc::clone(&kiln), &config));
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let listener = conn::LimitedListener::new(listener, config.conn_limits());
    info!(listen = %axum::serve::Listener::local_addr(&listener)?, data_dir = %config.data_dir.display(), "kiln is serving the EC2 API");
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown).await?;
    kiln.shutdown_instances();
    if let Some(host) = host_network {
        host.shutdown();
    }
    info!("stopped");
    Ok(())
}

/// Turns instances on when this host can run them, and says why not otherwise (the API then
/// refuses `RunInstances` with that reason). Returns the network chosen, with the metadata
/// service's socket when guests have a network to reach it on.
pub fn enable_instances(kiln: &Arc<Kiln>, config: &Config) -> anyhow::Result<Option<netadapter::Chosen>> {
    let settings = &config.instances;
    if !settings.enabled {
        kiln.compute().disable("instances are disabled in the configuration ([instances] enabled = false)");
        return Ok(None);
    }
    let qemu = kiln_vm::argv::QEMU_SYSTEM;
    match std::process::Command::new(qemu).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => {
            let why = format!(
                "{qemu} is not installed; install it with `apt-get install -t bookworm-backports --no-install-recommends qemu-system-x86`"
            );
            tracing::warn!("{why}; instances are unavailable");
            kiln.compute().disable(&why);
            return Ok(None);
        }
    }
    let chosen = netadapter::choose(&settings.network, &config.netns(), settings.metadata_listen)?;
    let accel = kiln_vm::detect_host();
    if accel.accel != kiln_vm::Accel::Kvm {
        tracing::warn!(reason = %accel.reason, "no usable KVM: instances run under QEMU's TCG emulation, several times slower");
    }
    let mut compute = kiln_core::compute::runtime::ComputeConfig::for_host(
        std::path::PathBuf::from(qemu),
        accel,
        config.data_dir.join("instances"),
    );
    compute.max_instance_memory_mib = settings.max_instance_memory_mib;
    compute.reserved_memory_mib = settings.reserved_memory_mib;
    compute.ram_allocation_ratio = settings.ram_allocation_ratio;
    compute.cpu_allocation_ratio = settings.cpu_allocation_ratio;
    compute.public_ip_pool = settings.public_pool()?;
    compute.terminated_retention = std::time::Duration::from_secs(settings.terminated_retention_secs);
    compute.stop_timeout = std::time::Duration::from_secs(settings.stop_timeout_secs);
    compute.machine = match settings.machine.as_str() {
        "q35" => kiln_vm::Machine::Q35,
        "microvm" => kiln_vm::Machine::Microvm,
        other => anyhow::bail!("[instances] machine must be q35 or microvm, not {other:?}"),
    };
    kiln.enable_compute(compute, Arc::clone(&chosen.network)).context("enabling instances")?;
    Ok(Some(chosen))
}

/// Builds the configured provided images (cached by content version) and publishes any new
/// version in every region, in the background: the API serves meanwhile, and a host without
/// access to Debian's packages only logs why it has none. Images are built one after another,
/// smallest first, so the minimal image is offered as soon as possible.
fn spawn_provided_images(kiln: Arc<Kiln>, config: &Config) {
    if config.provided_images.is_empty() {
        return;
    }
    let cache = config.image_cache();
    let names = config.provided_images.clone();
    let regions = config.provided_regions();
    std::thread::spawn(move || {
        for name in &names {
            let built =
                kiln_images::build_named(name, &cache, &|step| info!(image = %name, step, "building a provided image"));
            let image = match built {
                Ok(image) => image,
                Err(e) => {
                    tracing::warn!(image = %name, error = %e, "could not build a provided image; it will not be offered");
                    continue;
                }
            };
            let family = format!("kiln-{name}");
            let description = match name.as_str() {
                "minimal" => "Kiln minimal: Debian cloud kernel, busybox and dropbear",
                "debian-12" => "Debian 12 (bookworm) with systemd, OpenSSH and Kiln's first-boot agent",
                _ => "Kiln provided image",
            };
            let disk = kiln_core::images::provided::ProvidedDisk {
                family: &family,
                version: &image.version,
                path: &image.root_disk,
                description,
                architecture: "x86_64",
            };
            for region in &regions {
                match kiln.publish_provided(region, &disk) {
                    Ok(Some(id)) => {
                        info!(%region, image = %id, name = %family, version = %image.version, "published a provided image")
                    }
                    Ok(None) => {
                        info!(%region, name = %family, version = %image.version, "the provided image is already published")
                    }
                    Err(e) => tracing::warn!(%region, name = %family, error = %e, "could not publish a provided image"),
                }
            }
        }
    });
}

/// Collects unreferenced chunks of every region on a fixed interval.
fn spawn_garbage_collector(kiln: Arc<Kiln>, config: &Config) {
    let grace = std::time::Duration::from_secs(config.gc_grace_secs);
    let interval = std::time::Duration::from_secs(config.gc_interval_secs.max(1));
    let regions: Vec<String> = config.regions.iter().map(|r| r.name.clone()).collect();
    let data_dir = config.data_dir.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        // The Recycle Bin is purged at start-up and before every collection.
        purge_recycle_bin(&kiln).await;
        loop {
            ticker.tick().await;
            purge_recycle_bin(&kiln).await;
            // Only regions that hold bytes have anything to collect (most of AWS's never do).
            for region in regions.iter().filter(|r| data_dir.join("regions").join(r).exists()) {
                let kiln = Arc::clone(&kiln);
                let name = region.clone();
                let outcome = tokio::task::spawn_blocking(move || kiln.collect_garbage(&name, grace)).await;
                match outcome {
                    // One line per region and pass (every 10 minutes by default), so a pass that
                    // kept everything can be seen to have run.
                    Ok(Ok(report)) => info!(region = %region, ?report, "garbage collection pass"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "garbage collection failed"),
                    Err(e) => tracing::warn!(error = %e, "garbage collection task failed"),
                }
            }
        }
    });
}

async fn purge_recycle_bin(kiln: &Arc<Kiln>) {
    let kiln = Arc::clone(kiln);
    match tokio::task::spawn_blocking(move || kiln.purge_recycle_bin()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "recycle bin purge failed"),
        Err(e) => tracing::warn!(error = %e, "recycle bin purge task failed"),
    }
}

/// Registers the SIGINT and SIGTERM handlers now, so a signal that arrives once the listener
/// accepts connections (and before the server first waits for one) stops it cleanly instead of
/// killing it; the returned future completes on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        info!("shutdown requested; finishing in-flight requests");
    })
}
