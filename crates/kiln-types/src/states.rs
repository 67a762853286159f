//! The closed sets of names EC2 gives states and kinds: Rust enums whose serde names are EC2's
//! own, so a record stores (and a response shows) exactly the word EC2 uses, and a typo is a
//! compile error instead of a state nobody can leave.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name outside an enum's set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of {allowed}")]
pub struct UnknownName {
    /// What was given.
    pub value: String,
    /// The names allowed, comma separated.
    pub allowed: String,
}

macro_rules! ec2_names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in EC2's documented order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// EC2's name of the value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        value: s.to_string(),
                        allowed: [$($wire),+].join(", "),
                    }),
                }
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

ec2_names! {
    /// An image's state (`DescribeImages` `imageState`).
    #[derive(Default)]
    ImageState {
        /// Snapshots behind it are still being written.
        #[default]
        Pending = "pending",
        /// Launchable.
        Available = "available",
        /// Not usable.
        Invalid = "invalid",
        /// Deregistered.
        Deregistered = "deregistered",
        /// Between states.
        Transient = "transient",
        /// Creation failed.
        Failed = "failed",
        /// Broken.
        Error = "error",
        /// Disabled by its owner.
        Disabled = "disabled",
    }
}

ec2_names! {
    /// A snapshot's state.
    #[derive(Default)]
    SnapshotState {
        /// Being written.
        #[default]
        Pending = "pending",
        /// Every byte is stored.
        Completed = "completed",
        /// The copy or read failed.
        Error = "error",
        /// Archived and recoverable.
        Recoverable = "recoverable",
        /// Being recovered.
        Recovering = "recovering",
    }
}

ec2_names! {
    /// A volume's state.
    #[derive(Default)]
    VolumeState {
        /// Its file is being built.
        #[default]
        Creating = "creating",
        /// Ready, not attached.
        Available = "available",
        /// Attached to an instance.
        InUse = "in-use",
        /// Being deleted.
        Deleting = "deleting",
        /// Deleted.
        Deleted = "deleted",
        /// Its build failed.
        Error = "error",
    }
}

ec2_names! {
    /// A volume attachment's state.
    #[derive(Default)]
    AttachmentState {
        /// Being attached.
        Attaching = "attaching",
        /// Attached.
        #[default]
        Attached = "attached",
        /// Being detached.
        Detaching = "detaching",
        /// Detached.
        Detached = "detached",
        /// In use by the guest.
        Busy = "busy",
    }
}

ec2_names! {
    /// An instance's state.
    #[derive(Default)]
    InstanceState {
        /// Being launched or started.
        #[default]
        Pending = "pending",
        /// The guest runs.
        Running = "running",
        /// Being terminated.
        ShuttingDown = "shutting-down",
        /// Gone for good.
        Terminated = "terminated",
        /// Being stopped.
        Stopping = "stopping",
        /// Stopped; can start again.
        Stopped = "stopped",
    }
}

impl InstanceState {
    /// EC2's numeric state code (the low byte of `instanceState.code`).
    pub const fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }
}

ec2_names! {
    /// Where an image's or instance's root device lives.
    #[derive(Default)]
    RootDeviceType {
        /// A volume that outlives the instance when so mapped.
        #[default]
        Ebs = "ebs",
        /// Storage that lives and dies with the instance.
        InstanceStore = "instance-store",
    }
}

ec2_names! {
    /// A volume's type.
    #[derive(Default)]
    VolumeType {
        /// Magnetic.
        Standard = "standard",
        /// Provisioned IOPS SSD.
        Io1 = "io1",
        /// Provisioned IOPS SSD, second generation.
        Io2 = "io2",
        /// General purpose SSD.
        Gp2 = "gp2",
        /// General purpose SSD, third generation (EC2's default).
        #[default]
        Gp3 = "gp3",
        /// Cold HDD.
        Sc1 = "sc1",
        /// Throughput optimised HDD.
        St1 = "st1",
    }
}

ec2_names! {
    /// An image's or instance's architecture.
    #[derive(Default)]
    Architecture {
        /// 32-bit x86.
        I386 = "i386",
        /// 64-bit x86.
        #[default]
        X86_64 = "x86_64",
        /// 64-bit Arm.
        Arm64 = "arm64",
        /// 64-bit x86 on Mac hardware.
        X86_64Mac = "x86_64_mac",
        /// 64-bit Arm on Mac hardware.
        Arm64Mac = "arm64_mac",
    }
}

ec2_names! {
    /// What a shutdown from inside the guest does to an instance.
    #[derive(Default)]
    ShutdownBehavior {
        /// It becomes `stopped`.
        #[default]
        Stop = "stop",
        /// It becomes `terminated`.
        Terminate = "terminate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for s in InstanceState::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<InstanceState>(&json).unwrap(), *s);
            assert_eq!(s.as_str().parse::<InstanceState>().unwrap(), *s);
        }
        assert_eq!(InstanceState::ShuttingDown.as_str(), "shutting-down");
        assert_eq!(VolumeState::InUse.as_str(), "in-use");
        assert_eq!(RootDeviceType::InstanceStore.as_str(), "instance-store");
        assert_eq!(Architecture::X86_64.as_str(), "x86_64");
        let err = "sideways".parse::<ShutdownBehavior>().unwrap_err();
        assert_eq!(err.to_string(), "'sideways' is not one of stop, terminate");
    }

    #[test]
    fn instance_codes_are_ec2s() {
        let codes: Vec<u16> = InstanceState::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 16, 32, 48, 64, 80]);
    }
}
