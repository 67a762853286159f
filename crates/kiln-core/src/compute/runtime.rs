//! The VMs behind instance records: the runtime (sizing, capacity, files, boot files) and
//! launching; [`crate::compute::reconciler`] writes what each VM's owner observes back.
//!
//! # Sizing (the scale-down policy)
//!
//! An instance type's vCPUs and memory are what EC2 gives it; a small host cannot. Kiln gives a
//! VM `min(type vCPUs, host CPUs)` vCPUs (one under TCG emulation, where more only slow a busy
//! host down) and `min(type memory, max_instance_memory_mib)` MiB
//! (1 GiB by default), and reports the type unchanged.
//!
//! # Capacity (allocation ratios, as OpenStack Nova's)
//!
//! Guests rarely touch all the memory they are given and rarely keep their vCPUs busy, so the
//! host is over-committed by two ratios: instances may be given up to
//! `(host memory - reserved_memory_mib) × ram_allocation_ratio` MiB (default 1.5) and
//! `host CPUs × cpu_allocation_ratio` vCPUs (default 16). A launch fits when the memory and the
//! vCPUs of every active instance plus the new ones stay within both; `RunInstances` launches as
//! many as fit up to `MaxCount`, and fails with `InsufficientInstanceCapacity` when fewer than
//! `MinCount` fit.
//!
//! # Files
//!
//! `<data dir>/instances/<id>/` holds `console.log` (the serial console; kept until the record
//! expires), `qemu.pid`, `qemu.log` (QEMU's stderr), the QMP socket, and for instance-store roots
//! `root.qcow2`. EBS volumes live with all other volumes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kiln_types::{InstanceState, RootDeviceType, ShutdownBehavior};
use kiln_vm::{AccelChoice, Disk, DiskFormat, GuestShutdownBehavior, Machine, VmConfig, VmHandle, VmSpec};

use crate::compute::instance_types::InstanceType;
use crate::compute::launch::all_instances;
use crate::compute::net::port_of;
use crate::error::{CoreError, CoreResult};
use crate::records::image::{ImageData, SNAPSHOT_LOCATION_PREFIX};
use crate::records::instance::{Boot, InstanceData, Reason};
use crate::records::item::{self, Item};
use crate::records::volume::{VolumeData, GIB};
use crate::records::vpc::SubnetData;
use crate::{Ctx, Kiln};

pub use crate::compute::net::HostNetwork;

/// The kernel command line for images booted directly (Kiln's provided images and any image
/// whose root file system carries `/boot/vmlinuz`); `kiln_vm` adds what the machine type needs.
pub const DIRECT_BOOT_CMDLINE: &str = "console=ttyS0 root=/dev/vda rw panic=-1";

/// How instances are run on this host.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// The QEMU system emulator.
    pub qemu_binary: PathBuf,
    /// The accelerator and why.
    pub accel: AccelChoice,
    /// Memory cap per VM (the scale-down policy).
    pub max_instance_memory_mib: u64,
    /// Memory kept for the host.
    pub reserved_memory_mib: u64,
    /// Memory over-commit: instances may be given this many times the host's memory (less the
    /// reserve).
    pub ram_allocation_ratio: f64,
    /// vCPU over-commit: instances may be given this many vCPUs per host CPU.
    pub cpu_allocation_ratio: f64,
    /// The host's memory.
    pub host_memory_mib: u64,
    /// The host's CPUs.
    pub host_cpus: u32,
    /// How long terminated instances stay describable.
    pub terminated_retention: Duration,
    /// How long a stop waits for the guest before forcing it off.
    pub stop_timeout: Duration,
    /// `<data dir>/instances`.
    pub run_dir: PathBuf,
    /// Machine type for images booted directly: `q35` (volumes hot-plug) or `microvm` (boots
    /// a little faster, no hot-plug). Images with their own boot loader always get `q35`.
    pub machine: Machine,
    /// Where "public" addresses come from (network and prefix length): by default 100.64.0.0/10
    /// (shared address space, never routed on the internet). Servers sharing a host need
    /// disjoint pools, since the host routes every public address to one of them.
    pub public_ip_pool: (std::net::Ipv4Addr, u8),
}

/// Nova's default memory over-commit.
pub const DEFAULT_RAM_ALLOCATION_RATIO: f64 = 1.5;
/// The default pool of public addresses, 100.64.0.0/10.
pub const DEFAULT_PUBLIC_IP_POOL: (std::net::Ipv4Addr, u8) = (std::net::Ipv4Addr::new(100, 64, 0, 0), 10);
/// Nova's default vCPU over-commit.
pub const DEFAULT_CPU_ALLOCATION_RATIO: f64 = 16.0;

/// What instances may be given on a host, all together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Memory, MiB.
    pub memory_mib: u64,
    /// vCPUs.
    pub vcpus: u64,
}

impl Capacity {
    /// The capacity of a host with this memory and these CPUs under the given reserve and
    /// ratios.
    pub fn of_host(
        host_memory_mib: u64,
        host_cpus: u32,
        reserved_memory_mib: u64,
        ram_ratio: f64,
        cpu_ratio: f64,
    ) -> Self {
        Capacity {
            memory_mib: (host_memory_mib.saturating_sub(reserved_memory_mib) as f64 * ram_ratio) as u64,
            vcpus: (host_cpus as f64 * cpu_ratio) as u64,
        }
    }

    /// How many more VMs of `vcpus` and `memory_mib` fit when `used` is already given out.
    pub fn fits(&self, used: Capacity, vcpus: u64, memory_mib: u64) -> u64 {
        let by_memory = self.memory_mib.saturating_sub(used.memory_mib) / memory_mib.max(1);
        let by_cpu = self.vcpus.saturating_sub(used.vcpus) / vcpus.max(1);
        by_memory.min(by_cpu)
    }
}

/// Empty PCIe root ports each q35 VM gets for hot-plugged volumes.
pub const HOTPLUG_SLOTS: u32 = 8;

impl ComputeConfig {
    /// Reads the host's memory and CPUs; the rest as given.
    pub fn for_host(qemu_binary: PathBuf, accel: AccelChoice, run_dir: PathBuf) -> ComputeConfig {
        let host_memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(2048, |kb| kb / 1024);
        let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        ComputeConfig {
            qemu_binary,
            accel,
            max_instance_memory_mib: 1024,
            reserved_memory_mib: 1024,
            ram_allocation_ratio: DEFAULT_RAM_ALLOCATION_RATIO,
            cpu_allocation_ratio: DEFAULT_CPU_ALLOCATION_RATIO,
            host_memory_mib,
            host_cpus,
            terminated_retention: Duration::from_secs(3600),
            stop_timeout: Duration::from_secs(30),
            run_dir,
            machine: Machine::Q35,
            public_ip_pool: DEFAULT_PUBLIC_IP_POOL,
        }
    }
}

/// The running side of instances: present once [`Kiln::enable_compute`] ran.
pub struct Runtime {
    /// Configuration.
    pub config: ComputeConfig,
    /// The host network.
    pub network: Arc<dyn HostNetwork>,
    /// The VM owner of each instance with one.
    pub(super) vms: Mutex<HashMap<String, VmHandle>>,
    /// Serialises reading boot files out of images.
    boot_files: Mutex<()>,
    /// Set when the server shuts down: the reconciler stops recording what VMs do.
    pub(super) shutting_down: std::sync::atomic::AtomicBool,
    /// Hot-plugged volumes per VM.
    pub(crate) slots: crate::compute::hotplug::Slots,
    /// Serialises lifecycle decisions (launch hand-off, stop, start, terminate) so a record and
    /// its VM never disagree about who acts next.
    lifecycle: Mutex<()>,
}

/// Holds the runtime, or why there is none.
#[derive(Default)]
pub struct Compute {
    runtime: OnceLock<Arc<Runtime>>,
    disabled: Mutex<Option<String>>,
}

impl Compute {
    /// The runtime, or `UnsupportedOperation` saying why instances cannot run here.
    pub fn runtime(&self) -> CoreResult<&Arc<Runtime>> {
        self.runtime.get().ok_or_else(|| {
            let why = self.disabled.lock().unwrap_or_else(|e| e.into_inner()).clone();
            CoreError::Unsupported(format!(
                "Instances cannot run on this server: {}",
                why.unwrap_or_else(|| "the hypervisor is not enabled".into())
            ))
        })
    }

    /// Records why instances are unavailable.
    pub fn disable(&self, reason: &str) {
        *self.disabled.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
    }
}

impl Runtime {
    /// vCPUs and memory a VM of `itype` gets here.
    pub fn sizing(&self, itype: &InstanceType) -> (u32, u64) {
        // Under emulation a second vCPU buys nothing (measured) and a busy host then starves
        // the guest's timers into RCU stalls, so TCG guests get one.
        let cpus = match self.config.accel.accel {
            kiln_vm::Accel::Tcg => 1,
            kiln_vm::Accel::Kvm => self.config.host_cpus,
        };
        (itype.vcpus.min(cpus).max(1), itype.memory_mib.min(self.config.max_instance_memory_mib))
    }

    /// What instances may be given on this host, all together.
    pub fn capacity(&self) -> Capacity {
        let c = &self.config;
        Capacity::of_host(
            c.host_memory_mib,
            c.host_cpus,
            c.reserved_memory_mib,
            c.ram_allocation_ratio,
            c.cpu_allocation_ratio,
        )
    }

    /// How many more VMs of `vcpus` and `memory_mib` fit next to the active instances.
    pub fn instances_that_fit(&self, all: &[Item<InstanceData>], vcpus: u32, memory_mib: u64) -> u64 {
        let active = all.iter().filter(|i| i.data.is_active());
        let used = active.fold(Capacity { memory_mib: 0, vcpus: 0 }, |u, i| Capacity {
            memory_mib: u.memory_mib + i.data.memory_mib,
            vcpus: u.vcpus + u64::from(i.data.vcpus),
        });
        self.capacity().fits(used, u64::from(vcpus), memory_mib)
    }

    pub(super) fn instance_dir(&self, id: &str) -> PathBuf {
        self.config.run_dir.join(id)
    }

    /// The serial console log of an instance.
    pub fn console_path(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("console.log")
    }

    pub(super) fn qmp_socket(&self, id: &str) -> PathBuf {
        let path = self.instance_dir(id).join("qmp.sock");
        if path.as_os_str().len() <= kiln_vm::argv::MAX_SOCKET_PATH {
            return path;
        }
        // Unix socket paths are short; a deep data directory gets its sockets in /tmp.
        let tag = &hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            self.config.run_dir.as_os_str().as_encoded_bytes(),
        )))[..12];
        std::env::temp_dir().join(format!("kiln-{tag}")).join(format!("{id}.qmp"))
    }

    /// The boot files of the image whose root disk is `snapshot_id`: a kernel and initramfs
    /// read out of its file system once per host, or firmware boot when it has none.
    pub fn boot_for(&self, kiln: &Kiln, region: &str, snapshot_id: &str) -> CoreResult<Boot> {
        // Launches of one image run in parallel; one of them extracts, the others wait for it.
        let _extracting = self.boot_files.lock().unwrap_or_else(|e| e.into_inner());
        let index = crate::records::snapshot::index_bytes(kiln.store.read()?.as_mut(), snapshot_id)?;
        let base = kiln.storage.ensure_base(region, snapshot_id, &index)?;
        let dir = base.with_extension("boot");
        let kernel = dir.join("vmlinuz");
        let initrd = dir.join("initrd.img");
        if !kernel.exists() {
            let scratch = dir.with_extension(format!("boot.tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).map_err(|e| CoreError::Storage(format!("boot files: {e}")))?;
            for (name, out) in [("/boot/vmlinuz", "vmlinuz"), ("/boot/initrd.img", "initrd.img")] {
                let target = scratch.join(out);
                // debugfs reads ext2/3/4 without mounting; a disk that is not a bare ext4 file
                // system (a partitioned image with a boot loader) simply yields nothing.
                let _ = std::process::Command::new("debugfs")
                    .arg("-R")
                    .arg(format!("dump -p {name} {}", target.display()))
                    .arg(&base)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            let found = std::fs::metadata(scratch.join("vmlinuz")).is_ok_and(|m| m.len() > 0);
            if !found {
                let _ = std::fs::remove_dir_all(&scratch);
                return Ok(Boot { kernel: None, initrd: None, cmdline: String::new() });
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&scratch, &dir).map_err(|e| CoreError::Storage(format!("boot files: {e}")))?;
        }
        Ok(Boot {
            kernel: Some(kernel.display().to_string()),
            initrd: initrd.exists().then(|| initrd.display().to_string()),
            cmdline: DIRECT_BOOT_CMDLINE.into(),
        })
    }

    pub(super) fn handle(&self, id: &str) -> Option<VmHandle> {
        self.vms.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// How many volumes can be hot-plugged into the instance's VM.
    pub fn hotplug_capacity(&self, inst: &Item<InstanceData>) -> u32 {
        if inst.data.machine == Machine::Q35.as_str() {
            HOTPLUG_SLOTS
        } else {
            0
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn vm_error(id: &str, e: kiln_vm::VmError) -> CoreError {
    match e {
        kiln_vm::VmError::IncorrectState { current, .. } => CoreError::IncorrectInstanceState(format!(
            "The instance '{id}' is not in a state from which it can be changed this way (it is {current})."
        )),
        other => CoreError::Internal(format!("{id}: {other}")),
    }
}

fn sigkill(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Kills a QEMU a previous run of Kiln left behind, if the pid still names it.
fn kill_leftover(pidfile: &Path, id: &str) {
    let Ok(pid) = std::fs::read_to_string(pidfile) else { return };
    let pid = pid.trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains(id) {
        tracing::warn!(instance = id, pid, "killing a QEMU left over from before the restart");
        if let Ok(pid) = pid.parse::<i32>() {
            sigkill(pid);
        }
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(pidfile);
}

impl Kiln {
    /// Turns instances on: records the runtime, brings back instances a previous run left
    /// active, and starts the reconciler.
    pub fn enable_compute(self: &Arc<Self>, config: ComputeConfig, network: Arc<dyn HostNetwork>) -> CoreResult<()> {
        std::fs::create_dir_all(&config.run_dir).map_err(|e| CoreError::Storage(format!("instances dir: {e}")))?;
        tracing::info!(
            accel = config.accel.accel.as_str(),
            reason = %config.accel.reason,
            network = %network.mode(),
            "instances enabled"
        );
        let runtime = Arc::new(Runtime {
            config,
            network,
            vms: Mutex::new(HashMap::new()),
            slots: Default::default(),
            boot_files: Mutex::new(()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            lifecycle: Mutex::new(()),
        });
        if self.compute.runtime.set(Arc::clone(&runtime)).is_err() {
            return Err(CoreError::Internal("instances enabled twice".into()));
        }
        self.recover_instances()?;
        self.refresh_network();
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("kiln-reconciler".into())
            .spawn(move || crate::compute::reconciler::reconcile_loop(weak))
            .map_err(|e| CoreError::Internal(format!("reconciler thread: {e}")))?;
        Ok(())
    }

    /// Instances a crash or restart left active: their QEMU (if it survived us) is killed, and
    /// they are launched again from their disks, which persisted; ones on their way out finish.
    fn recover_instances(self: &Arc<Self>) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        let instances = all_instances(self.store.read()?.as_mut())?;
        for inst in instances
            .iter()
            .filter(|i| i.data.state != InstanceState::Terminated && i.data.state != InstanceState::Stopped)
        {
            kill_leftover(&runtime.instance_dir(&inst.id).join("qemu.pid"), &inst.id);
            match inst.data.state {
                InstanceState::ShuttingDown => self.finish_termination(&inst.id, None)?,
                InstanceState::Stopping => self.record_state(&inst.id, InstanceState::Stopped, None)?,
                _ => {
                    self.record_state(&inst.id, InstanceState::Pending, None)?;
                    self.start_launch(inst.id.clone(), false);
                }
            }
        }
        Ok(())
    }

    /// Launches the instance's VM on a worker thread: disks, boot files, network, QEMU.
    pub(crate) fn start_launch(self: &Arc<Self>, id: String, _first: bool) {
        let kiln = Arc::clone(self);
        let _ = std::thread::Builder::new().name(format!("launch-{id}")).spawn(move || {
            if let Err(e) = kiln.launch(&id) {
                tracing::error!(instance = %id, error = %e, "launch failed");
                let reason = Reason {
                    code: "Server.InternalError".into(),
                    message: "Server.InternalError: the instance could not be launched".into(),
                };
                if let Err(e) = kiln.finish_termination(&id, Some(reason)) {
                    tracing::error!(instance = %id, error = %e, "could not clean up a failed launch");
                }
            }
        });
    }

    fn launch(self: &Arc<Self>, id: &str) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        let inst = self.load_instance(id)?;
        let dir = runtime.instance_dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::Storage(format!("instance dir: {e}")))?;

        // Disks: create what does not exist yet (first launch, or a crash before it finished).
        let mut disks = Vec::new();
        let mut instance_store_snapshot = None;
        if inst.data.root_device_type == RootDeviceType::InstanceStore {
            let image = item::get_in_region::<ImageData>(
                self.store.read()?.as_mut(),
                &Ctx { account: inst.account.clone(), region: inst.region.clone() },
                &inst.data.image_id,
            )
            .or_else(|_| self.any_image(&inst.data.image_id))?;
            let snap = image
                .data
                .image_location
                .as_deref()
                .and_then(|l| l.strip_prefix(SNAPSHOT_LOCATION_PREFIX))
                .ok_or_else(|| CoreError::Internal("instance-store image without a root snapshot".into()))?
                .to_string();
            let root = dir.join("root.qcow2");
            if !root.exists() {
                let index = crate::records::snapshot::index_bytes(self.store.read()?.as_mut(), &snap)?;
                let base = self.storage.ensure_base(&inst.region, &snap, &index)?;
                let size = std::fs::metadata(&base).map(|m| m.len()).unwrap_or(GIB);
                kiln_disk::create_overlay(&base, kiln_disk::Format::Raw, &root, size)
                    .map_err(|e| CoreError::Storage(e.to_string()))?;
            }
            disks.push(Disk {
                id: "root".into(),
                path: root,
                format: DiskFormat::Qcow2,
                read_only: false,
                serial: None,
            });
            instance_store_snapshot = Some(snap);
        }
        for dev in &inst.data.devices {
            let path = self.storage.volume_path(&inst.region, &dev.volume_id);
            if !path.exists() {
                let vol = item::Item::<VolumeData>::from_record(self.store.read()?.get(&dev.volume_id)?.ok_or_else(
                    || CoreError::NotFound { kind: kiln_types::ResourceKind::Volume, id: dev.volume_id.clone() },
                )?)?;
                let size = vol.data.size as u64 * GIB;
                match &vol.data.snapshot_id {
                    Some(snap) => {
                        let index = crate::records::snapshot::index_bytes(self.store.read()?.as_mut(), snap)?;
                        self.storage.create_from_snapshot(&inst.region, &vol.id, snap, &index, size)?;
                    }
                    None => self.storage.create_empty(&inst.region, &vol.id, size)?,
                }
            }
            disks.push(Disk {
                id: dev.volume_id.clone(),
                path,
                format: DiskFormat::Qcow2,
                read_only: false,
                serial: Some(dev.volume_id.replace('-', "")),
            });
        }

        // Boot files come from the image's root snapshot.
        let boot = if inst.data.boot.kernel.as_deref().is_some_and(|k| Path::new(k).exists()) {
            inst.data.boot.clone()
        } else {
            let root_snapshot = match instance_store_snapshot {
                Some(snap) => snap,
                None => self.root_snapshot_of(&inst)?,
            };
            let boot = runtime.boot_for(self, &inst.region, &root_snapshot)?;
            self.update_instance(id, |d| d.boot = boot.clone())?;
            boot
        };

        // Network.
        let subnet = item::Item::<SubnetData>::from_record(
            self.store
                .read()?
                .get(&inst.data.subnet_id)?
                .ok_or_else(|| CoreError::Internal(format!("subnet {} vanished", inst.data.subnet_id)))?,
        )?;
        let nic = match port_of(&inst, &subnet.data.cidr_block) {
            Some(port) => runtime.network.plug(&port)?,
            None => None,
        };
        self.refresh_network();

        let machine = if boot.kernel.is_some() { runtime.config.machine } else { Machine::Q35 };
        let spec = VmSpec {
            name: id.to_string(),
            machine,
            accel: runtime.config.accel.accel,
            vcpus: inst.data.vcpus.max(1),
            memory_mib: inst.data.memory_mib.max(64) as u32,
            kernel: boot.kernel.as_ref().map(PathBuf::from),
            initrd: boot.initrd.as_ref().map(PathBuf::from),
            kernel_cmdline: boot.cmdline.clone(),
            disks,
            nics: nic.into_iter().collect(),
            serial_log: dir.join("console.log"),
            qmp_socket: runtime.qmp_socket(id),
            pidfile: dir.join("qemu.pid"),
            fw_cfg: vec![],
            smbios_type11: vec![],
            start_paused: true,
            hotplug_slots: if machine == Machine::Q35 { HOTPLUG_SLOTS } else { 0 },
        };
        if let Some(parent) = spec.qmp_socket.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CoreError::Storage(format!("socket dir: {e}")))?;
        }
        let config = VmConfig {
            qemu_binary: runtime.config.qemu_binary.clone(),
            stop_timeout: runtime.config.stop_timeout,
            stderr_log: Some(dir.join("qemu.log")),
            on_guest_shutdown: if inst.data.shutdown_behavior == ShutdownBehavior::Terminate {
                GuestShutdownBehavior::Terminate
            } else {
                GuestShutdownBehavior::Stop
            },
            ..VmConfig::default()
        };
        let _held = runtime.lock();
        // Terminated while the disks were being prepared: nothing to start.
        if self.load_instance(id)?.data.state != InstanceState::Pending {
            drop(_held);
            return self.finish_termination(id, None);
        }
        self.update_instance(id, |d| d.machine = machine.as_str().to_string())?;
        runtime.slots.reset(id);
        let handle = kiln_vm::spawn_vm(spec, config).map_err(|e| CoreError::Internal(e.to_string()))?;
        runtime.vms.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), handle);
        Ok(())
    }

    fn any_image(&self, id: &str) -> CoreResult<Item<ImageData>> {
        let rec = self
            .store
            .read()?
            .get(id)?
            .ok_or_else(|| CoreError::NotFound { kind: kiln_types::ResourceKind::Image, id: id.to_string() })?;
        Item::from_record(rec)
    }

    /// The snapshot an instance's root volume was made from.
    fn root_snapshot_of(&self, inst: &Item<InstanceData>) -> CoreResult<String> {
        let root = inst
            .data
            .devices
            .iter()
            .find(|d| d.device_name == inst.data.root_device_name)
            .ok_or_else(|| CoreError::Internal(format!("{} has no root volume", inst.id)))?;
        let rec = self.store.read()?.get(&root.volume_id)?;
        let vol =
            Item::<VolumeData>::from_record(rec.ok_or_else(|| CoreError::Internal("root volume vanished".into()))?)?;
        vol.data.snapshot_id.ok_or_else(|| CoreError::Internal("root volume without a snapshot".into()))
    }

    pub(crate) fn load_instance(&self, id: &str) -> CoreResult<Item<InstanceData>> {
        let rec = self
            .store
            .read()?
            .get(id)?
            .ok_or_else(|| CoreError::NotFound { kind: kiln_types::ResourceKind::Instance, id: id.to_string() })?;
        Item::from_record(rec)
    }

    pub(crate) fn update_instance(
        &self,
        id: &str,
        f: impl FnOnce(&mut InstanceData),
    ) -> CoreResult<Item<InstanceData>> {
        let mut txn = self.store.begin()?;
        let rec = txn
            .get(id)?
            .ok_or_else(|| CoreError::NotFound { kind: kiln_types::ResourceKind::Instance, id: id.to_string() })?;
        let mut inst = Item::<InstanceData>::from_record(rec)?;
        f(&mut inst.data);
        inst.save(txn.as_mut())?;
        txn.commit()?;
        Ok(inst)
    }

    /// Server shutdown: stops recording VM state, then kills every QEMU. The records keep
    /// their state, so the next start launches the instances that were running again from
    /// their disks (as after a host restart); nothing is left running without its owner.
    pub fn shutdown_instances(&self) {
        let Ok(runtime) = self.compute.runtime() else { return };
        runtime.shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        let handles: Vec<VmHandle> = runtime.vms.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for handle in handles {
            if let Some(pid) = handle.status().qemu_pid {
                sigkill(pid as i32);
            }
        }
    }

    /// The running VM of an instance, for `CreateImage` and volume hot-plug.
    pub(crate) fn vm_of(&self, id: &str) -> Option<VmHandle> {
        self.compute.runtime().ok()?.handle(id)
    }
}

#[cfg(test)]
mod tests {
    use super::Capacity;

    #[test]
    fn capacity_over_commits_by_both_ratios() {
        // A 24 GiB, 2-CPU host with Nova's ratios: 23 GiB × 1.5 of memory, 32 vCPUs.
        let cap = Capacity::of_host(24 * 1024, 2, 1024, 1.5, 16.0);
        assert_eq!(cap, Capacity { memory_mib: 35328, vcpus: 32 });
        let none = Capacity { memory_mib: 0, vcpus: 0 };
        // t3.micro-sized VMs (1 GiB after the cap, one vCPU under TCG): vCPUs run out first.
        assert_eq!(cap.fits(none, 1, 1024), 32);
        assert_eq!(cap.fits(Capacity { memory_mib: 31 * 1024, vcpus: 31 }, 1, 1024), 1);
        assert_eq!(cap.fits(Capacity { memory_mib: 32 * 1024, vcpus: 32 }, 1, 1024), 0, "exhausted stays exhausted");
        // Memory-bound when the VMs are big.
        assert_eq!(cap.fits(none, 1, 8192), 4);
        // Ratios of 1 are the host as it is.
        assert_eq!(Capacity::of_host(4096, 2, 1024, 1.0, 1.0), Capacity { memory_mib: 3072, vcpus: 2 });
    }
}
