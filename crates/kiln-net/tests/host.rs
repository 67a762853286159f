//! Against the real host: network namespaces, TAPs, routes, the firewall table and DHCP. Needs
//! root, `ip` (with `ip netns`) and a working `nft` ([`kiln_net::probe`]).
//!
//! Every test works in network namespaces of its own, named with the process id, so it
//! neither sees nor disturbs a Kiln running on the same host (or another test run): that is
//! the property servers rely on to share a host. Addresses come from 198.18.0.0/15 (reserved
//! for benchmarking, never routed). In the host's namespace the tests only add the uplinks'
//! `kv…` interfaces and public-IP routes, which go with the namespaces.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_net::dhcp::DhcpServer;
use kiln_net::{
    HostNet, IngressRule, Lease, Netns, PortConfig, PortRules, Protocol, Ruleset, TapName, Uplink, IMDS_ADDR,
    UPLINK_NS_IF,
};

macro_rules! require_root_networking {
    () => {
        if let Err(e) = kiln_net::probe() {
            host_tools::cannot_run(&e.to_string());
            return;
        }
    };
}

fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `program args…` inside namespace `ns` (`ip netns exec` also mounts the namespace's sysfs).
fn in_ns(ns: &str, program: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    sh("ip", &all)
}

fn host_has_link(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Deletes the namespace and its uplink, also when an assertion fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if Path::new("/run/netns").join(&self.0).exists() {
            sh("ip", &["netns", "delete", &self.0]);
        }
        let host_if = Uplink::for_namespace(&self.0).host_if;
        if host_has_link(&host_if) {
            sh("ip", &["link", "del", "dev", &host_if]);
        }
    }
}

/// Waits for the kernel's asynchronous namespace cleanup to take the uplink away.
fn wait_gone(host_if: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_has_link(host_if) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn port(tap: &TapName, public: u8) -> PortConfig {
    PortConfig {
        tap: tap.clone(),
        mac: [0x02, 0x4b, 0x4c, 0x00, 0x4d, 0x0a],
        private_ip: Ipv4Addr::new(198, 18, 77, 10),
        prefix_len: 24,
        gateway: Ipv4Addr::new(198, 18, 77, 1),
        public_ip: Some(Ipv4Addr::new(198, 19, public, 10)),
        hostname: "ip-198-18-77-10".into(),
    }
}

/// A server stopped by SIGTERM deletes its namespace and starts again at once, while the kernel
/// may still be tearing the old uplink down: the restart makes a whole new pair.
#[test]
fn a_restart_right_after_the_namespace_was_deleted_gets_a_working_uplink() {
    require_root_networking!();
    let name = format!("kiln-test-r{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    for _ in 0..5 {
        let host = HostNet::init(&name).unwrap();
        let (ok, _) = in_ns(&name, "ip", &["link", "show", UPLINK_NS_IF]);
        assert!(ok, "the namespace end of the uplink is there");
        host.shutdown().unwrap();
        drop(host);
    }
}

/// Two servers on one host: each gets a namespace with the metadata address and port, the same
/// private IP and TAP name, and a firewall table of its own, and leaves nothing behind.
#[test]
fn two_servers_each_get_a_namespace_with_taps_routes_and_firewall_and_leave_nothing_behind() {
    require_root_networking!();
    let pid = std::process::id();
    let names = [format!("kiln-test-a{pid}"), format!("kiln-test-b{pid}")];
    let _cleanup: Vec<Cleanup> = names.iter().map(|n| Cleanup(n.clone())).collect();
    let tap = TapName::new(&format!("kt{pid}")).unwrap();

    let hosts: Vec<HostNet> = names.iter().map(|n| HostNet::init(n).unwrap()).collect();
    drop(HostNet::init(&names[0]).expect("init is idempotent"));
    let metadata = SocketAddr::from((IMDS_ADDR, 80));
    let _listeners: Vec<_> =
        hosts.iter().map(|h| h.bind_tcp(metadata).expect("each namespace has its own metadata address")).collect();

    for (i, (host, ns)) in hosts.iter().zip(&names).enumerate() {
        assert!(Path::new("/run/netns").join(ns).exists());
        assert_eq!(in_ns(ns, "cat", &["/proc/sys/net/ipv4/ip_forward"]).1.trim(), "1");
        assert!(in_ns(ns, "ip", &["-4", "addr", "show", "dev", "lo"]).1.contains("169.254.169.254/32"));
        let uplink = host.uplink();
        assert!(sh("ip", &["-4", "addr", "show", "dev", &uplink.host_if])
            .1
            .contains(&format!("{}/30", uplink.host_ip)));

        let p = port(&tap, 77 + i as u8);
        host.add_port(&p).unwrap();
        host.add_port(&p).expect("adding an existing port repairs it");
        assert_eq!(host.existing_taps().unwrap(), std::slice::from_ref(&tap));
        assert!(!host_has_link(tap.as_str()), "the TAP is in the namespace, not on the host");
        assert_eq!(in_ns(ns, "cat", &[&format!("/proc/sys/net/ipv4/conf/{tap}/proxy_arp")]).1.trim(), "1");
        assert_eq!(in_ns(ns, "cat", &[&format!("/proc/sys/net/ipv6/conf/{tap}/disable_ipv6")]).1.trim(), "1");
        for ip in [p.private_ip, p.public_ip.unwrap()] {
            let (ok, route) = in_ns(ns, "ip", &["-4", "route", "get", &ip.to_string()]);
            assert!(ok && route.contains(&format!("dev {tap} src 198.18.77.1")), "route to {ip}: {route}");
        }
        let public = p.public_ip.unwrap().to_string();
        let (ok, route) = sh("ip", &["-4", "route", "get", &public]);
        assert!(ok && route.contains(&format!("via {} dev {}", uplink.ns_ip, uplink.host_if)), "host route: {route}");

        let rules = Ruleset {
            ports: vec![PortRules {
                tap: tap.clone(),
                private_ip: p.private_ip,
                public_ip: p.public_ip,
                ingress: vec![IngressRule {
                    protocol: Protocol::Tcp,
                    from_port: 22,
                    to_port: 22,
                    sources: vec!["198.18.77.0/24".parse().unwrap()],
                }],
            }],
        };
        host.apply(&rules).unwrap();
        host.apply(&rules).expect("re-applying replaces the table");
        let (ok, table) = in_ns(ns, "nft", &["list", "table", "inet", "kiln"]);
        assert!(ok, "{table}");
        for expected in [
            format!("chain in_{tap} {{"),
            format!("oifname \"{tap}\" jump in_{tap}"),
            format!("iifname \"{tap}\" ip saddr {} jump guest_to_host", p.private_ip),
            format!("ip daddr {public} dnat ip to {}", p.private_ip),
            format!("oifname \"{UPLINK_NS_IF}\" ct state established,related accept"),
            "ip saddr 198.18.77.0/24 tcp dport 22 accept".into(),
        ] {
            assert!(table.contains(&expected), "no {expected:?} in:\n{table}");
        }
    }

    // A public IP the other server routes is refused, and leaves no TAP behind.
    let thief = TapName::new(&format!("ktx{pid}")).unwrap();
    let taken = PortConfig { tap: thief.clone(), private_ip: Ipv4Addr::new(198, 18, 77, 11), ..port(&thief, 78) };
    let err = hosts[0].add_port(&taken).unwrap_err().to_string();
    assert!(err.contains("198.19.78.10") && err.contains("public_ip_pool"), "{err}");
    assert_eq!(hosts[0].existing_taps().unwrap(), std::slice::from_ref(&tap));

    // Refused on an existing port's TAP, the TAP and its guest's address stay as they were.
    let err = hosts[0].add_port(&PortConfig { tap: tap.clone(), ..port(&tap, 78) }).unwrap_err().to_string();
    assert!(err.contains("public_ip_pool"), "{err}");
    assert_eq!(hosts[0].existing_taps().unwrap(), std::slice::from_ref(&tap));
    let (_, route) = sh("ip", &["-4", "route", "get", "198.19.77.10"]);
    assert!(route.contains(&hosts[0].uplink().host_if), "the port's own public route went: {route}");

    // Taking one server's port down leaves the other's alone.
    hosts[0].remove_port(&tap).unwrap();
    hosts[0].remove_port(&tap).expect("removing a removed port succeeds");
    assert!(hosts[0].existing_taps().unwrap().is_empty());
    assert_eq!(hosts[1].existing_taps().unwrap(), std::slice::from_ref(&tap));
    let (_, route) = sh("ip", &["-4", "route", "get", "198.19.77.10"]);
    assert!(!route.contains(&hosts[0].uplink().host_if), "public route left behind: {route}");

    drop(_listeners);
    for host in hosts {
        let name = host.netns().name().to_owned();
        let host_if = host.uplink().host_if.clone();
        host.shutdown().unwrap();
        drop(host);
        assert!(!Path::new("/run/netns").join(&name).exists());
        assert!(wait_gone(&host_if), "{host_if} outlived its namespace");
    }
}

/// busybox `udhcpc`, the client in Kiln's minimal image, gets its lease from the server over a
/// veth pair standing in for a TAP and its guest (a TAP needs a process on the other end), in a
/// namespace of the test's own.
#[test]
fn busybox_udhcpc_accepts_the_lease() {
    require_root_networking!();
    let Some(busybox) = busybox() else {
        host_tools::cannot_run("no busybox with udhcpc (set KILN_TEST_BUSYBOX)");
        return;
    };
    let pid = std::process::id();
    let name = format!("kiln-test-dhcp{pid}");
    let _cleanup = Cleanup(name.clone());
    let ns = Netns::open_or_create(&name).unwrap();
    let (server_if, client_if) = (format!("ktds{pid}"), format!("ktdc{pid}"));

    let (ok, log, env) = ns
        .run(|| {
            let (ok, out) = sh("ip", &["link", "add", &server_if, "type", "veth", "peer", "name", &client_if]);
            assert!(ok, "{out}");
            for name in [&server_if, &client_if] {
                sh("ip", &["link", "set", "dev", name, "up"]);
            }
            // The server's replies take their source address from the interface, as on a TAP.
            assert!(sh("ip", &["-4", "addr", "add", "198.18.78.1/32", "dev", &server_if]).0);
            let link = sh("ip", &["-o", "link", "show", "dev", &client_if]).1;
            let mac_text = link.split("link/ether ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap();
            let mut mac = [0u8; 6];
            for (byte, hex) in mac.iter_mut().zip(mac_text.split(':')) {
                *byte = u8::from_str_radix(hex, 16).unwrap();
            }

            let server = DhcpServer::start()?;
            let lease = Lease {
                mac,
                ip: Ipv4Addr::new(198, 18, 78, 10),
                prefix_len: 24,
                gateway: Ipv4Addr::new(198, 18, 78, 1),
                hostname: "ip-198-18-78-10".into(),
            };
            server.add(&TapName::new(&server_if).unwrap(), lease)?;

            // udhcpc hands what it got to a script; this one records it instead of configuring.
            let dir = std::env::temp_dir().join(format!("kiln-net-udhcpc-{pid}"));
            std::fs::create_dir_all(&dir).unwrap();
            let script = dir.join("script");
            let bound = dir.join("bound");
            std::fs::write(&script, format!("#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n", bound.display()))
                .unwrap();
            sh("chmod", &["+x", script.to_str().unwrap()]);
            let (ok, log) = sh(
                busybox.to_str().unwrap(),
                &["udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-i", &client_if, "-s", script.to_str().unwrap()],
            );
            let env = std::fs::read_to_string(&bound).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            Ok((ok, log, env))
        })
        .unwrap();
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
    ns.delete().unwrap();
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
