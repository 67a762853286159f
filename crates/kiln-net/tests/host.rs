//! Against the real host: TAPs, routes, the firewall table and DHCP. Needs root, `ip` and a
//! working `nft` ([`kiln_net::probe`]); skipped with a reason otherwise.
//!
//! The host is shared, so these tests only create interfaces with Kiln's prefix and the
//! process id in their names, use addresses from 198.18.0.0/15 (reserved for benchmarking,
//! never routed), send nothing beyond their own interfaces, and put back what they changed:
//! the interfaces, the table, `ip_forward` and the metadata address on `lo`. They hold a
//! host-wide lock (an abstract socket, released when the process dies) because the table is
//! one per host and another test run may be going on at the same time. The firewall test is
//! skipped when the table already exists: a Kiln running on this host owns it.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kiln_net::dhcp::DhcpServer;
use kiln_net::{
    existing_taps, remove_table, HostNet, IngressRule, Lease, PortConfig, PortRules, Protocol, Ruleset, TapName,
};

macro_rules! require_root_networking {
    () => {
        if let Err(e) = kiln_net::probe() {
            host_tools::cannot_run(&e.to_string());
            return;
        }
    };
}

/// Held for the whole test: one test at a time per host touches the table and `lo`.
fn host_lock() -> UnixListener {
    let addr = SocketAddr::from_abstract_name(b"kiln-net-host-tests").unwrap();
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(lock) => return lock,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("host test lock: {e}"),
        }
    }
}

fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Puts the host back as it was, also when an assertion fails half-way.
struct Restore {
    ip_forward: String,
    had_imds: bool,
    interfaces: Vec<String>,
}

impl Restore {
    fn record(interfaces: &[&str]) -> Restore {
        Restore {
            ip_forward: read(IP_FORWARD),
            had_imds: sh("ip", &["-4", "addr", "show", "dev", "lo"]).1.contains("169.254.169.254/32"),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        for name in &self.interfaces {
            if Path::new("/sys/class/net").join(name).exists() {
                sh("ip", &["link", "del", "dev", name]);
            }
        }
        let _ = remove_table();
        let _ = std::fs::write(IP_FORWARD, &self.ip_forward);
        if !self.had_imds {
            sh("ip", &["-4", "addr", "del", "169.254.169.254/32", "dev", "lo"]);
        }
    }
}

#[test]
fn a_port_gets_its_tap_routes_and_firewall_chain_and_leaves_nothing_behind() {
    require_root_networking!();
    let _lock = host_lock();
    // Test runs hold the lock and delete the table, so one that exists belongs to a running Kiln.
    if sh("nft", &["list", "table", "inet", "kiln"]).0 {
        host_tools::cannot_run("table inet kiln exists, so a Kiln on this host is using it");
        return;
    }
    let tap = TapName::new(&format!("kttest{}", std::process::id())).unwrap();
    let restore = Restore::record(&[tap.as_str()]);

    let host = HostNet::init().unwrap();
    assert_eq!(read(IP_FORWARD), "1");
    assert!(sh("ip", &["-4", "addr", "show", "dev", "lo"]).1.contains("169.254.169.254/32"));
    HostNet::init().expect("init is idempotent");

    let private_ip = Ipv4Addr::new(198, 18, 77, 10);
    let public_ip = Ipv4Addr::new(198, 19, 77, 10);
    let port = PortConfig {
        tap: tap.clone(),
        mac: [0x02, 0x4b, 0x4c, 0x00, 0x4d, 0x0a],
        private_ip,
        prefix_len: 24,
        gateway: Ipv4Addr::new(198, 18, 77, 1),
        public_ip: Some(public_ip),
        hostname: "ip-198-18-77-10".into(),
    };
    host.add_port(&port).unwrap();
    host.add_port(&port).expect("adding an existing port repairs it");
    assert!(existing_taps().unwrap().contains(&tap));
    assert_eq!(read(&format!("/proc/sys/net/ipv4/conf/{tap}/proxy_arp")), "1");
    assert_eq!(read(&format!("/proc/sys/net/ipv6/conf/{tap}/disable_ipv6")), "1");
    for ip in [private_ip, public_ip] {
        let (ok, route) = sh("ip", &["-4", "route", "get", &ip.to_string()]);
        assert!(ok && route.contains(&format!("dev {tap} src 198.18.77.1")), "route to {ip}: {route}");
    }

    let rules = Ruleset {
        ports: vec![PortRules {
            tap: tap.clone(),
            private_ip,
            public_ip: Some(public_ip),
            ingress: vec![IngressRule {
                protocol: Protocol::Tcp,
                from_port: 22,
                to_port: 22,
                sources: vec!["198.18.77.0/24".parse().unwrap()],
            }],
        }],
    };
    host.apply(&rules).unwrap();
    let (ok, table) = sh("nft", &["list", "table", "inet", "kiln"]);
    assert!(ok, "{table}");
    for expected in [
        format!("chain in_{tap} {{"),
        format!("oifname \"{tap}\" jump in_{tap}"),
        format!("iifname \"{tap}\" ip saddr {private_ip} jump guest_to_host"),
        format!("ip daddr {public_ip} dnat ip to {private_ip}"),
        "ip saddr 198.18.77.0/24 tcp dport 22 accept".into(),
    ] {
        assert!(table.contains(&expected), "no {expected:?} in:\n{table}");
    }
    host.apply(&rules).expect("re-applying replaces the table");

    host.remove_port(&tap).unwrap();
    assert!(!Path::new("/sys/class/net").join(tap.as_str()).exists());
    let (_, route) = sh("ip", &["-4", "route", "get", &private_ip.to_string()]);
    assert!(!route.contains(tap.as_str()), "route left behind: {route}");
    host.remove_port(&tap).expect("removing a removed port succeeds");

    host.apply(&Ruleset::default()).unwrap();
    drop(host);
    remove_table().unwrap();
    assert!(!sh("nft", &["list", "tables"]).1.contains("inet kiln"));
    remove_table().expect("removing a missing table succeeds");
    drop(restore);
}

/// Finds a busybox with `udhcpc`: `KILN_TEST_BUSYBOX`, else `busybox` on the PATH.
fn busybox() -> Option<PathBuf> {
    let candidate = std::env::var_os("KILN_TEST_BUSYBOX").map(PathBuf::from).unwrap_or_else(|| "busybox".into());
    Command::new(&candidate)
        .args(["udhcpc", "--help"])
        .output()
        .ok()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("udhcpc") || o.status.success())
        .map(|_| candidate)
}

/// busybox `udhcpc`, the client in Kiln's minimal image, gets its lease from the server over a
/// veth pair standing in for a TAP and its guest (a TAP needs a process on the other end).
#[test]
fn busybox_udhcpc_accepts_the_lease() {
    require_root_networking!();
    let Some(busybox) = busybox() else {
        host_tools::cannot_run("no busybox with udhcpc (set KILN_TEST_BUSYBOX)");
        return;
    };
    let _lock = host_lock();
    let pid = std::process::id();
    let (server_if, client_if) = (format!("ktds{pid}"), format!("ktdc{pid}"));
    let _restore = Restore::record(&[&server_if, &client_if]);

    let (ok, out) = sh("ip", &["link", "add", &server_if, "type", "veth", "peer", "name", &client_if]);
    assert!(ok, "{out}");
    for name in [&server_if, &client_if] {
        sh("ip", &["link", "set", "dev", name, "up"]);
    }
    // The server's replies take their source address from the interface, as on a TAP.
    assert!(sh("ip", &["-4", "addr", "add", "198.18.78.1/32", "dev", &server_if]).0);
    let mac_text = read(&format!("/sys/class/net/{client_if}/address"));
    let mut mac = [0u8; 6];
    for (byte, hex) in mac.iter_mut().zip(mac_text.split(':')) {
        *byte = u8::from_str_radix(hex, 16).unwrap();
    }

    let server = DhcpServer::start().unwrap();
    let lease = Lease {
        mac,
        ip: Ipv4Addr::new(198, 18, 78, 10),
        prefix_len: 24,
        gateway: Ipv4Addr::new(198, 18, 78, 1),
        hostname: "ip-198-18-78-10".into(),
    };
    server.add(&TapName::new(&server_if).unwrap(), lease).unwrap();

    // udhcpc hands what it got to a script; this one records it instead of configuring.
    let dir = std::env::temp_dir().join(format!("kiln-net-udhcpc-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script");
    let bound = dir.join("bound");
    std::fs::write(&script, format!("#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n", bound.display())).unwrap();
    sh("chmod", &["+x", script.to_str().unwrap()]);
    let (ok, log) = sh(
        busybox.to_str().unwrap(),
        &["udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-i", &client_if, "-s", script.to_str().unwrap()],
    );
    let env = std::fs::read_to_string(&bound).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "udhcpc got no lease:\n{log}");
    for expected in [
        "ip=198.18.78.10",
        "subnet=255.255.255.0",
        "router=198.18.78.1",
        "serverid=198.18.78.1",
        "lease=86400",
        "hostname=ip-198-18-78-10",
    ] {
        assert!(env.lines().any(|l| l == expected), "no {expected} in udhcpc's environment:\n{env}\n{log}");
    }
}
