//! The firewall script, pinned byte for byte, and checked by the real `nft` where it can be.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use kiln_net::{render, IngressRule, PortRules, Protocol, Ruleset, TapName};

fn cidrs(list: &[&str]) -> Vec<kiln_net::Ipv4Cidr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn rule(protocol: Protocol, from_port: i32, to_port: i32, sources: &[&str]) -> IngressRule {
    IngressRule { protocol, from_port, to_port, sources: cidrs(sources) }
}

/// Two ports in one subnet, one with a public IP, listed out of order; every kind of rule.
fn sample() -> Ruleset {
    Ruleset {
        ports: vec![
            PortRules {
                tap: TapName::new("kt0b2f").unwrap(),
                private_ip: Ipv4Addr::new(10, 0, 0, 6),
                public_ip: None,
                ingress: vec![
                    // Another group as the peer: expanded to its members' /32s.
                    rule(Protocol::All, -1, -1, &["10.0.0.5", "10.0.0.6"]),
                    // A group with no members: matches nothing, renders nothing.
                    rule(Protocol::Tcp, 22, 22, &[]),
                ],
            },
            PortRules {
                tap: TapName::new("kt0a1e").unwrap(),
                private_ip: Ipv4Addr::new(10, 0, 0, 5),
                public_ip: Some(Ipv4Addr::new(198, 51, 100, 7)),
                ingress: vec![
                    rule(Protocol::Tcp, 22, 22, &["0.0.0.0/0"]),
                    rule(Protocol::Tcp, 8000, 8080, &["10.0.0.0/16", "192.168.7.1/32", "10.0.4.0/24"]),
                    rule(Protocol::Udp, 0, 65535, &["10.0.0.0/16"]),
                    rule(Protocol::Icmp, 8, -1, &["0.0.0.0/0"]),
                    rule(Protocol::Icmp, 3, 4, &["10.0.0.0/16"]),
                    rule(Protocol::Icmp, -1, -1, &["10.0.0.1"]),
                    rule(Protocol::Number(47), -1, -1, &["10.0.0.0/8"]),
                ],
            },
        ],
    }
}

const GOLDEN: &str = r#"table inet kiln {}
delete table inet kiln
table inet kiln {
	chain dnat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 198.51.100.7 dnat ip to 10.0.0.5
	}

	chain dnat_output {
		type nat hook output priority -100; policy accept;
		ip daddr 198.51.100.7 dnat ip to 10.0.0.5
	}

	chain input {
		type filter hook input priority filter; policy accept;
		iifname "kt0a1e" ip saddr 10.0.0.5 jump guest_to_host
		iifname "kt0b2f" ip saddr 10.0.0.6 jump guest_to_host
		iifname "kt*" ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
		iifname "kt*" drop
	}

	chain guest_to_host {
		ct state established,related accept
		udp dport 67 accept
		ip daddr 169.254.169.254 tcp dport 80 accept
		icmp type echo-request accept
		drop
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "kt*" oifname "kiln-up" ct state established,related accept
		iifname "kt*" oifname != "kt*" drop
		iifname "kt0a1e" ip saddr 10.0.0.5 jump to_guest
		iifname "kt0b2f" ip saddr 10.0.0.6 jump to_guest
		iifname "kt*" drop
		oifname "kt*" jump to_guest
	}

	chain output {
		type filter hook output priority filter; policy accept;
		oifname "kt*" udp sport 67 udp dport 68 accept
		oifname "kt*" jump to_guest
	}

	chain to_guest {
		ct state established,related accept
		oifname "kt0a1e" jump in_kt0a1e
		oifname "kt0b2f" jump in_kt0b2f
		drop
	}

	chain in_kt0a1e {
		ip saddr 0.0.0.0/0 tcp dport 22 accept
		ip saddr { 10.0.0.0/16, 192.168.7.1 } tcp dport 8000-8080 accept
		ip saddr 10.0.0.0/16 meta l4proto udp accept
		ip saddr 0.0.0.0/0 icmp type 8 accept
		ip saddr 10.0.0.0/16 icmp type 3 icmp code 4 accept
		ip saddr 10.0.0.1 meta l4proto icmp accept
		ip saddr 10.0.0.0/8 meta l4proto 47 accept
		drop
	}

	chain in_kt0b2f {
		ip saddr { 10.0.0.5, 10.0.0.6 } accept
		drop
	}
}
"#;

const EMPTY: &str = r#"table inet kiln {}
delete table inet kiln
table inet kiln {
	chain dnat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain dnat_output {
		type nat hook output priority -100; policy accept;
	}

	chain input {
		type filter hook input priority filter; policy accept;
		iifname "kt*" ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
		iifname "kt*" drop
	}

	chain guest_to_host {
		ct state established,related accept
		udp dport 67 accept
		ip daddr 169.254.169.254 tcp dport 80 accept
		icmp type echo-request accept
		drop
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "kt*" oifname "kiln-up" ct state established,related accept
		iifname "kt*" oifname != "kt*" drop
		iifname "kt*" drop
		oifname "kt*" jump to_guest
	}

	chain output {
		type filter hook output priority filter; policy accept;
		oifname "kt*" udp sport 67 udp dport 68 accept
		oifname "kt*" jump to_guest
	}

	chain to_guest {
		ct state established,related accept
		drop
	}
}
"#;

#[test]
fn two_ports_render_to_the_golden_script() {
    let got = render(&sample());
    assert_eq!(got, GOLDEN, "rendered:\n{got}");
}

#[test]
fn no_ports_render_the_bare_table() {
    let got = render(&Ruleset::default());
    assert_eq!(got, EMPTY, "rendered:\n{got}");
}

#[test]
fn port_order_does_not_change_the_script() {
    let mut reversed = sample();
    reversed.ports.reverse();
    assert_eq!(render(&reversed), render(&sample()));
}

/// Whether `nft` can talk to the kernel here (root, nf_tables present).
fn nft_usable() -> bool {
    kiln_net::probe().is_ok()
}

/// `nft -c` parses the script and runs it through the kernel without committing anything, so
/// it catches syntax the kernel would refuse without touching the host's firewall.
fn nft_check(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child.stdin.take().unwrap().write_all(script.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn nft_accepts_the_golden_scripts() {
    if !nft_usable() {
        host_tools::cannot_run(&format!("needs root and a working nft ({:?})", kiln_net::probe()));
        return;
    }
    for script in [GOLDEN, EMPTY] {
        if let Err(e) = nft_check(script) {
            panic!("nft rejected the script: {e}\n{script}");
        }
    }
}
