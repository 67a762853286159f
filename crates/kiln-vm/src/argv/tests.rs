//! Exact-argv tests of the parent module.
use super::*;

fn microvm_tcg() -> VmSpec {
    VmSpec {
        name: "i-0123456789abcdef0".into(),
        machine: Machine::Microvm,
        accel: Accel::Tcg,
        vcpus: 1,
        memory_mib: 512,
        kernel: Some("/var/lib/kiln/kernels/vmlinuz".into()),
        initrd: Some("/var/lib/kiln/kernels/initrd.img".into()),
        kernel_cmdline: "console=ttyS0 root=/dev/vda".into(),
        disks: vec![Disk {
            id: "vol-0123456789abcdef0".into(),
            path: "/data/volumes/vol-0123456789abcdef0.qcow2".into(),
            format: DiskFormat::Qcow2,
            read_only: false,
            serial: Some("vol0123456789abcdef0".into()),
        }],
        nics: vec![Nic::User {
            host_forwards: vec![HostForward { host_addr: Ipv4Addr::LOCALHOST, host_port: 2222, guest_port: 22 }],
        }],
        serial_log: "/run/kiln/i-0123456789abcdef0/console.log".into(),
        qmp_socket: "/run/kiln/i-0123456789abcdef0/qmp.sock".into(),
        pidfile: "/run/kiln/i-0123456789abcdef0/qemu.pid".into(),
        fw_cfg: vec![FwCfgFile { name: "opt/kiln/user-data".into(), file: "/run/kiln/i-0/user-data".into() }],
        smbios_type11: vec!["io.systemd.credential:hostname=web1".into()],
        start_paused: false,
        hotplug_slots: 0,
    }
}

fn q35_kvm() -> VmSpec {
    VmSpec {
        name: "i-00000000000000001".into(),
        machine: Machine::Q35,
        accel: Accel::Kvm,
        vcpus: 2,
        memory_mib: 2048,
        kernel: None,
        initrd: None,
        kernel_cmdline: String::new(),
        disks: vec![
            Disk {
                id: "root".into(),
                path: "/data/volumes/root.qcow2".into(),
                format: DiskFormat::Qcow2,
                read_only: false,
                serial: None,
            },
            Disk {
                id: "seed".into(),
                path: "/data/seed.raw".into(),
                format: DiskFormat::Raw,
                read_only: true,
                serial: Some("cidata".into()),
            },
        ],
        nics: vec![Nic::Tap {
            ifname: "kiln-tap0".into(),
            mac: MacAddr([0x02, 0x4b, 0x69, 0x00, 0x00, 0x01]),
            netns: None,
        }],
        serial_log: "/run/kiln/vm1/console.log".into(),
        qmp_socket: "/run/kiln/vm1/qmp.sock".into(),
        pidfile: "/run/kiln/vm1/qemu.pid".into(),
        fw_cfg: vec![],
        smbios_type11: vec![],
        start_paused: true,
        hotplug_slots: 0,
    }
}

fn args(spec: &VmSpec) -> Vec<String> {
    build(spec).expect("valid spec").args_lossy()
}

#[test]
fn microvm_tcg_boot_with_qcow2_disk_and_user_net() {
    let cmd = build(&microvm_tcg()).unwrap();
    assert_eq!(cmd.program, "qemu-system-x86_64");
    let expected = [
        "-name",
        "guest=i-0123456789abcdef0",
        "-machine",
        "microvm",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "1",
        "-m",
        "512M",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-pidfile",
        "/run/kiln/i-0123456789abcdef0/qemu.pid",
        "-chardev",
        "socket,id=qmp,path=/run/kiln/i-0123456789abcdef0/qmp.sock,server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
        "-chardev",
        "file,id=serial0,path=/run/kiln/i-0123456789abcdef0/console.log,append=on",
        "-serial",
        "chardev:serial0",
        "-kernel",
        "/var/lib/kiln/kernels/vmlinuz",
        "-initrd",
        "/var/lib/kiln/kernels/initrd.img",
        "-append",
        "console=ttyS0 root=/dev/vda tsc_early_khz=2600000 tsc=reliable",
        "-blockdev",
        "driver=qcow2,node-name=vol-0123456789abcdef0,read-only=off,file.driver=file,\
         file.filename=/data/volumes/vol-0123456789abcdef0.qcow2",
        "-device",
        "virtio-blk-device,drive=vol-0123456789abcdef0,id=vol-0123456789abcdef0,serial=vol0123456789abcdef0",
        "-netdev",
        "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
        "-device",
        "virtio-net-device,netdev=net0,id=net0",
        "-fw_cfg",
        "name=opt/kiln/user-data,file=/run/kiln/i-0/user-data",
        "-smbios",
        "type=11,value=io.systemd.credential:hostname=web1",
    ];
    assert_eq!(cmd.args_lossy(), expected);
}

#[test]
fn q35_kvm_boot_with_two_disks_and_a_tap_nic() {
    let expected = [
        "-name",
        "guest=i-00000000000000001",
        "-machine",
        "q35",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-smp",
        "2",
        "-m",
        "2048M",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-pidfile",
        "/run/kiln/vm1/qemu.pid",
        "-chardev",
        "socket,id=qmp,path=/run/kiln/vm1/qmp.sock,server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
        "-chardev",
        "file,id=serial0,path=/run/kiln/vm1/console.log,append=on",
        "-serial",
        "chardev:serial0",
        "-blockdev",
        "driver=qcow2,node-name=root,read-only=off,file.driver=file,file.filename=/data/volumes/root.qcow2",
        "-device",
        "pcie-root-port,id=disk-port0,chassis=1",
        "-device",
        "virtio-blk-pci,drive=root,id=root,bus=disk-port0",
        "-blockdev",
        "driver=raw,node-name=seed,read-only=on,file.driver=file,file.filename=/data/seed.raw",
        "-device",
        "pcie-root-port,id=disk-port1,chassis=2",
        "-device",
        "virtio-blk-pci,drive=seed,id=seed,bus=disk-port1,serial=cidata",
        "-netdev",
        "tap,id=net0,ifname=kiln-tap0,script=no,downscript=no",
        "-device",
        "virtio-net-pci,netdev=net0,id=net0,mac=02:4b:69:00:00:01",
        "-S",
    ];
    assert_eq!(args(&q35_kvm()), expected);
}

#[test]
fn hotplug_ports_follow_the_disks_and_need_q35() {
    let spec = VmSpec { hotplug_slots: 2, ..q35_kvm() };
    let joined = args(&spec).join(" ");
    assert!(joined.contains("pcie-root-port,id=hp0,chassis=3"), "{joined}");
    assert!(joined.contains("pcie-root-port,id=hp1,chassis=4"), "{joined}");
    assert_eq!(build(&VmSpec { hotplug_slots: 1, ..microvm_tcg() }), Err(SpecError::NoHotplug));
}

#[test]
fn tsc_params_are_not_repeated_when_already_given() {
    let mut spec = microvm_tcg();
    spec.kernel_cmdline = "console=ttyS0 tsc=reliable".into();
    let argv = args(&spec);
    let append = &argv[argv.iter().position(|a| a == "-append").unwrap() + 1];
    assert_eq!(append, "console=ttyS0 tsc=reliable tsc_early_khz=2600000");
}

#[test]
fn tsc_params_are_only_for_microvm_under_tcg() {
    let mut spec = microvm_tcg();
    spec.accel = Accel::Kvm;
    assert!(args(&spec).contains(&"console=ttyS0 root=/dev/vda".to_owned()));
    spec.accel = Accel::Tcg;
    spec.machine = Machine::Q35;
    assert!(args(&spec).contains(&"console=ttyS0 root=/dev/vda".to_owned()));
}

#[test]
fn microvm_tcg_kernel_with_empty_cmdline_still_gets_tsc_params() {
    let mut spec = microvm_tcg();
    spec.kernel_cmdline = String::new();
    assert!(args(&spec).contains(&"tsc_early_khz=2600000 tsc=reliable".to_owned()));
}

#[test]
fn commas_in_values_are_doubled() {
    let mut spec = microvm_tcg();
    spec.disks[0].path = "/data/a,b.qcow2".into();
    spec.serial_log = "/run/x,y.log".into();
    spec.smbios_type11 = vec!["k=a,b".into()];
    let argv = args(&spec);
    assert!(argv.iter().any(|a| a.ends_with("file.filename=/data/a,,b.qcow2")), "{argv:?}");
    assert!(argv.contains(&"file,id=serial0,path=/run/x,,y.log,append=on".to_owned()));
    assert!(argv.contains(&"type=11,value=k=a,,b".to_owned()));
}

#[test]
fn initrd_without_kernel_is_refused() {
    let mut spec = microvm_tcg();
    spec.kernel = None;
    assert_eq!(build(&spec), Err(SpecError::NoKernel { what: "initrd" }));
    spec.initrd = None;
    assert_eq!(build(&spec), Err(SpecError::NoKernel { what: "kernel_cmdline" }));
}

#[test]
fn relative_paths_are_refused() {
    let mut spec = microvm_tcg();
    spec.disks[0].path = "volumes/v.qcow2".into();
    assert!(matches!(build(&spec), Err(SpecError::RelativePath { what: "disk path", .. })));
}

#[test]
fn bad_and_duplicate_disk_ids_are_refused() {
    let mut spec = q35_kvm();
    spec.disks[1].id = "root".into();
    assert_eq!(build(&spec), Err(SpecError::DuplicateDiskId { id: "root".into() }));
    for bad in ["", "0disk", "a b", "a,b", "x".repeat(32).as_str()] {
        spec.disks[1].id = bad.into();
        assert_eq!(build(&spec), Err(SpecError::InvalidDiskId { id: bad.into() }), "{bad:?}");
    }
}

#[test]
fn a_serial_qemu_would_truncate_is_refused() {
    let mut spec = microvm_tcg();
    spec.disks[0].serial = Some("vol-0123456789abcdef0".into());
    assert!(matches!(build(&spec), Err(SpecError::BadLength { what: "disk serial", max: 20, .. })));
}

#[test]
fn a_socket_path_longer_than_sun_path_is_refused() {
    let mut spec = microvm_tcg();
    spec.qmp_socket = PathBuf::from(format!("/{}", "s".repeat(107)));
    assert!(matches!(build(&spec), Err(SpecError::BadLength { what: "qmp_socket", .. })));
}

#[test]
fn fw_cfg_names_stay_in_the_opt_namespace() {
    let mut spec = microvm_tcg();
    spec.fw_cfg[0].name = "etc/acpi".into();
    assert_eq!(build(&spec), Err(SpecError::FwCfgNamespace { name: "etc/acpi".into() }));
}

#[test]
fn zero_vcpus_or_memory_is_refused() {
    let mut spec = microvm_tcg();
    spec.vcpus = 0;
    assert_eq!(build(&spec), Err(SpecError::Zero { field: "vcpus" }));
    spec.vcpus = 1;
    spec.memory_mib = 0;
    assert_eq!(build(&spec), Err(SpecError::Zero { field: "memory_mib" }));
}

#[test]
fn tap_ifname_longer_than_ifnamsiz_is_refused() {
    let mut spec = q35_kvm();
    spec.nics = vec![Nic::Tap { ifname: "a-very-long-tap-name".into(), mac: MacAddr([2, 0, 0, 0, 0, 1]), netns: None }];
    assert!(matches!(build(&spec), Err(SpecError::BadLength { what: "tap ifname", .. })));
}
