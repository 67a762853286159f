//! An instance's record: what it was launched from, its devices, network and state.

use base64::Engine;
use kiln_types::{Architecture, InstanceState, ResourceKind, RootDeviceType, ShutdownBehavior};
use serde::{Deserialize, Serialize};

use crate::records::item::Body;

/// Why an instance is in its state (EC2's `stateReason`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reason {
    /// e.g. `Client.UserInitiatedShutdown`.
    pub code: String,
    /// e.g. `Client.UserInitiatedShutdown: User initiated shutdown`.
    pub message: String,
}

/// A security group an instance is in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupRef {
    /// Group id.
    pub id: String,
    /// Group name.
    pub name: String,
}

/// A volume attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InstanceDevice {
    /// Device name, e.g. `/dev/xvda`.
    pub device_name: String,
    /// The volume.
    pub volume_id: String,
    /// Delete the volume when the instance terminates.
    pub delete_on_termination: bool,
    /// When it was attached.
    pub attach_time: String,
}

/// How the instance's disk boots.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Boot {
    /// A kernel read out of the image's root file system, booted directly on `microvm`;
    /// `None` boots the disk's own boot loader through firmware on `q35`.
    pub kernel: Option<String>,
    /// Its initramfs.
    pub initrd: Option<String>,
    /// Its command line.
    pub cmdline: String,
}

/// An instance's stored fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceData {
    /// The reservation (one `RunInstances` call).
    pub reservation_id: String,
    /// Position within the reservation.
    pub launch_index: u32,
    /// Image launched.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// EC2 state name.
    pub state: InstanceState,
    /// Why it is in that state.
    pub state_reason: Option<Reason>,
    /// EC2's `stateTransitionReason` text.
    pub transition_reason: String,
    /// Launch (or last start) time.
    pub launch_time: String,
    /// Key pair name.
    pub key_name: Option<String>,
    /// The key pair's public key (OpenSSH line), kept with the instance as EC2 does.
    pub public_key: Option<String>,
    /// Security groups.
    pub groups: Vec<GroupRef>,
    /// VPC.
    pub vpc_id: String,
    /// Subnet.
    pub subnet_id: String,
    /// Zone.
    pub availability_zone: String,
    /// Private IPv4 address.
    pub private_ip: String,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// Address reachable from the host (EC2's public address).
    pub public_ip: Option<String>,
    /// NIC MAC address.
    pub mac: String,
    /// User data, base64.
    pub user_data: Option<String>,
    /// Root device name.
    pub root_device_name: String,
    /// `ebs` or `instance-store`.
    pub root_device_type: RootDeviceType,
    /// Attached volumes.
    pub devices: Vec<InstanceDevice>,
    /// `stop` or `terminate`.
    pub shutdown_behavior: ShutdownBehavior,
    /// Termination protection.
    pub disable_api_termination: bool,
    /// The launch's idempotency token.
    pub client_token: Option<String>,
    /// Architecture.
    pub architecture: Architecture,
    /// vCPUs given to the VM (see the scale-down policy in [`runtime`]).
    pub vcpus: u32,
    /// Memory given to the VM, MiB.
    pub memory_mib: u64,
    /// How it boots.
    pub boot: Boot,
    /// Unix time it became `terminated`, for expiry.
    pub ended_at: Option<i64>,
    /// IMDS: `required` when the image demands IMDSv2.
    pub http_tokens: String,
    /// The QEMU machine type its VM runs on (`q35` or `microvm`).
    #[serde(default)]
    pub machine: String,
}

impl Body for InstanceData {
    const KIND: ResourceKind = ResourceKind::Instance;

    fn state(&self) -> &str {
        self.state.as_str()
    }
}

impl InstanceData {
    /// EC2's private DNS name for the private address.
    pub fn private_dns_name(&self, region: &str) -> String {
        if self.private_ip.is_empty() {
            return String::new();
        }
        let dashed = self.private_ip.replace('.', "-");
        if region == "us-east-1" {
            format!("ip-{dashed}.ec2.internal")
        } else {
            format!("ip-{dashed}.{region}.compute.internal")
        }
    }

    /// The state's EC2 code.
    pub fn state_code(&self) -> u16 {
        self.state.code()
    }

    /// Whether the instance holds host resources (a VM, or memory reserved for one).
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            InstanceState::Pending | InstanceState::Running | InstanceState::Stopping | InstanceState::ShuttingDown
        )
    }

    /// Decoded user data.
    pub fn user_data_bytes(&self) -> Option<Vec<u8>> {
        self.user_data.as_deref().and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok())
    }
}
