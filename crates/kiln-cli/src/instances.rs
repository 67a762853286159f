//! `kiln instances`, `kiln images`, `kiln keys create`, `kiln ssh` and `kiln console`: the
//! everyday views of a running server, through its EC2 API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;

use crate::client::Client;
use crate::xml;

/// One instance as the CLI needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceRow {
    /// Instance id.
    pub id: String,
    /// State name.
    pub state: String,
    /// Instance type.
    pub instance_type: String,
    /// Image id.
    pub image_id: String,
    /// Private address.
    pub private_ip: String,
    /// Public address.
    pub public_ip: String,
    /// Key pair name.
    pub key_name: String,
    /// `Name` tag.
    pub name: String,
}

/// Parses a `DescribeInstances` response.
pub fn parse_instances(doc: &str) -> anyhow::Result<Vec<InstanceRow>> {
    let doc = xml::parse(doc)?;
    let mut rows = Vec::new();
    for reservation in xml::items(doc.root_element(), "reservationSet") {
        for inst in xml::items(reservation, "instancesSet") {
            let field = |name: &str| xml::text(inst, name).unwrap_or_default();
            rows.push(InstanceRow {
                id: field("instanceId"),
                state: xml::find(inst, "instanceState").and_then(|s| xml::text(s, "name")).unwrap_or_default(),
                instance_type: field("instanceType"),
                image_id: field("imageId"),
                private_ip: field("privateIpAddress"),
                public_ip: field("ipAddress"),
                key_name: field("keyName"),
                name: xml::tag(inst, "Name").unwrap_or_default(),
            });
        }
    }
    Ok(rows)
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `kiln instances`.
pub fn list_instances(client: &Client) -> anyhow::Result<String> {
    let doc = client.ec2("DescribeInstances", &[])?;
    let mut text = format!(
        "{:<20} {:<14} {:<12} {:<22} {:<15} {:<15} {:<12} {}\n",
        "INSTANCE", "STATE", "TYPE", "IMAGE", "PRIVATE_IP", "PUBLIC_IP", "KEY", "NAME"
    );
    for r in parse_instances(&doc)? {
        text += &format!(
            "{:<20} {:<14} {:<12} {:<22} {:<15} {:<15} {:<12} {}\n",
            r.id,
            r.state,
            r.instance_type,
            r.image_id,
            or_dash(&r.private_ip),
            or_dash(&r.public_ip),
            or_dash(&r.key_name),
            r.name
        );
    }
    Ok(text)
}

/// `kiln images`: images the caller owns, plus the provided ones.
pub fn list_images(client: &Client, owners: &[String]) -> anyhow::Result<String> {
    let params: Vec<(String, String)> =
        owners.iter().enumerate().map(|(i, o)| (format!("Owner.{}", i + 1), o.clone())).collect();
    let params: Vec<(&str, String)> = params.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let doc = client.ec2("DescribeImages", &params)?;
    let mut text =
        format!("{:<22} {:<10} {:<14} {:<8} {:<15} {}\n", "IMAGE", "STATE", "OWNER", "PUBLIC", "ROOT", "NAME");
    let doc = xml::parse(&doc)?;
    for image in xml::items(doc.root_element(), "imagesSet") {
        let field = |name: &str| xml::text(image, name).unwrap_or_default();
        let owner = xml::text(image, "imageOwnerAlias").unwrap_or_else(|| field("imageOwnerId"));
        text += &format!(
            "{:<22} {:<10} {:<14} {:<8} {:<15} {}\n",
            field("imageId"),
            field("imageState"),
            owner,
            field("isPublic"),
            field("rootDeviceType"),
            field("name"),
        );
    }
    Ok(text)
}

/// Where `kiln keys create` saves private keys and `kiln ssh` finds them:
/// `$KILN_KEYS_DIR`, else `$XDG_CONFIG_HOME/kiln/keys`, else `~/.config/kiln/keys`.
pub fn keys_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KILN_KEYS_DIR") {
        return PathBuf::from(dir);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".config"));
    config.join("kiln").join("keys")
}

/// `kiln keys create NAME`: creates the key pair and saves its private key (mode 0600).
pub fn create_key(client: &Client, name: &str, key_type: &str) -> anyhow::Result<PathBuf> {
    let doc = client.ec2("CreateKeyPair", &[("KeyName", name.to_string()), ("KeyType", key_type.to_string())])?;
    let material = xml::text_of(&doc, "keyMaterial").context("the response has no key material")?;
    let dir = keys_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.pem"));
    kiln_server::write_atomic(&path, format!("{}\n", material.trim_end()).as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn describe_one(client: &Client, id: &str) -> anyhow::Result<InstanceRow> {
    let doc = client.ec2("DescribeInstances", &[("InstanceId.1", id.to_string())])?;
    parse_instances(&doc)?.into_iter().next().with_context(|| format!("no instance {id}"))
}

/// The `ssh` command line that logs into `id` (not run, so it can be shown or exec'd).
pub fn ssh_command(
    client: &Client,
    id: &str,
    user: &str,
    identity: Option<&PathBuf>,
    command: &[String],
) -> anyhow::Result<std::process::Command> {
    let inst = describe_one(client, id)?;
    if inst.state != "running" {
        bail!("{id} is {}, not running", inst.state);
    }
    let address = [&inst.public_ip, &inst.private_ip]
        .into_iter()
        .find(|a| !a.is_empty())
        .with_context(|| format!("{id} has no address (is the server's networking off?)"))?;
    let key = match identity {
        Some(p) => p.clone(),
        None if inst.key_name.is_empty() => bail!("{id} was launched without a key pair; pass -i KEY"),
        None => {
            let path = keys_dir().join(format!("{}.pem", inst.key_name));
            if !path.exists() {
                bail!(
                    "no saved private key for key pair {} at {} (kiln keys create saves them there); pass -i KEY",
                    inst.key_name,
                    path.display()
                );
            }
            path
        }
    };
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-i")
        .arg(key)
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .arg(format!("{user}@{address}"))
        .args(command);
    Ok(cmd)
}

/// `kiln console ID`: prints the serial console, and with `follow` keeps printing what is new.
pub fn console(client: &Client, id: &str, follow: bool) -> anyhow::Result<()> {
    let fetch = || -> anyhow::Result<String> {
        let doc = client.ec2("GetConsoleOutput", &[("InstanceId", id.to_string())])?;
        let encoded = xml::text_of(&doc, "output").unwrap_or_default();
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(encoded.trim()).context("decoding the console output")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let mut shown = fetch()?;
    crate::print_out(&shown)?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = fetch()?;
        // The server returns the log's last 64 KiB: print what follows the longest overlap.
        let overlap = (0..=shown.len().min(now.len()))
            .rev()
            .find(|&n| {
                shown.is_char_boundary(shown.len() - n)
                    && now.is_char_boundary(n)
                    && shown[shown.len() - n..] == now[..n]
            })
            .unwrap_or(0);
        crate::print_out(&now[overlap..])?;
        shown = now;
        if describe_one(client, id)?.state == "terminated" {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "<DescribeInstancesResponse><reservationSet><item><reservationId>r-1</reservationId>\
        <groupSet><item><groupId>sg-1</groupId></item></groupSet><instancesSet><item><instanceId>i-1</instanceId>\
        <imageId>ami-1</imageId><instanceState><code>16</code><name>running</name></instanceState>\
        <instanceType>t3.micro</instanceType><privateIpAddress>172.31.0.4</privateIpAddress>\
        <groupSet><item><groupId>sg-1</groupId></item></groupSet>\
        <tagSet><item><key>Name</key><value>web</value></item></tagSet></item>\
        <item><instanceId>i-2</instanceId><instanceState><name>stopped</name></instanceState></item>\
        </instancesSet></item></reservationSet></DescribeInstancesResponse>";

    #[test]
    fn instances_parse_with_nested_items() {
        let rows = parse_instances(DOC).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, "i-1");
        assert_eq!(rows[0].state, "running");
        assert_eq!(rows[0].name, "web");
        assert_eq!(rows[0].private_ip, "172.31.0.4");
        assert_eq!(rows[1].state, "stopped");
    }
}
