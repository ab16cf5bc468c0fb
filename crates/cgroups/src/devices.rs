//! Which device nodes a pod may use: the v1 `devices` controller, or on cgroup v2 a BPF
//! program ([`crate::device_filter`]).
//!
//! An app keeps `CAP_MKNOD` (appc's and docker's default set), so without a device list it
//! could create a node for the host's disk and read it. The pod's cgroups deny every device,
//! then allow creating any node (`m`) but reading and writing only the harmless ones a
//! container's `/dev` holds. Where neither mechanism works (no v1 devices hierarchy, and the
//! kernel refuses the BPF program), [`Cgroup::restrict_devices`] says why and the caller must
//! take `CAP_MKNOD` away.

use std::fmt;
use std::os::fd::AsFd;

use crate::cgroup::Cgroup;
use crate::discover::HierarchyKind;
use crate::error::CgroupError;
use crate::fsutil;

/// One allow rule, as v1's `devices.allow` takes it: `c 1:3 rwm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// `'c'`, `'b'` or `'a'`.
    pub kind: char,
    /// Major number; `None` is `*`.
    pub major: Option<u32>,
    /// Minor number; `None` is `*`.
    pub minor: Option<u32>,
    /// Some of `r`, `w`, `m`.
    pub access: &'static str,
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |x: Option<u32>| x.map_or("*".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

const fn rule(
    kind: char,
    major: Option<u32>,
    minor: Option<u32>,
    access: &'static str,
) -> DeviceRule {
    DeviceRule {
        kind,
        major,
        minor,
        access,
    }
}

/// What every pod may use: create any node, but open only `/dev`'s usual residents.
pub const DEFAULT_DEVICES: &[DeviceRule] = &[
    rule('c', None, None, "m"),
    rule('b', None, None, "m"),
    rule('c', Some(1), Some(3), "rwm"), // null
    rule('c', Some(1), Some(5), "rwm"), // zero
    rule('c', Some(1), Some(7), "rwm"), // full
    rule('c', Some(1), Some(8), "rwm"), // random
    rule('c', Some(1), Some(9), "rwm"), // urandom
    rule('c', Some(5), Some(0), "rwm"), // tty
    rule('c', Some(5), Some(1), "rwm"), // console
    rule('c', Some(5), Some(2), "rwm"), // ptmx
    rule('c', Some(136), None, "rwm"),  // pts/*
];

/// Whether a device list is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceControl {
    /// The v1 devices controller enforces the list.
    Enforced,
    /// A BPF program on the cgroup v2 directory enforces the list.
    EnforcedByBpf,
    /// Nothing enforces a list, for the reason given.
    Unavailable {
        /// Why.
        why: String,
    },
}

impl Cgroup {
    /// Denies every device to this cgroup and its descendants, then allows `allow`: with the
    /// v1 devices controller where there is one (descendants created later inherit the list),
    /// else with a BPF program on the cgroup v2 directory (which covers every cgroup below
    /// it). A kernel refusing the program is not an error: the answer says why nothing
    /// enforces the list.
    pub fn restrict_devices(&self, allow: &[DeviceRule]) -> Result<DeviceControl, CgroupError> {
        let Some(dir) = self
            .dirs()
            .iter()
            .find(|d| matches!(d.kind(), HierarchyKind::V1 { controllers } if controllers.iter().any(|c| c == "devices")))
        else {
            return self.restrict_devices_v2(allow);
        };
        dir.check()?;
        fsutil::write(&dir.path().join("devices.deny"), "a")?;
        let rules: Vec<String> = allow.iter().map(ToString::to_string).collect();
        fsutil::write_each(
            &dir.path().join("devices.allow"),
            rules.iter().map(String::as_str),
        )?;
        Ok(DeviceControl::Enforced)
    }

    fn restrict_devices_v2(&self, allow: &[DeviceRule]) -> Result<DeviceControl, CgroupError> {
        let Some(dir) = self.open_v2()? else {
            return Ok(DeviceControl::Unavailable {
                why: "no v1 devices hierarchy and no cgroup2 hierarchy".into(),
            });
        };
        let program = crate::device_filter::program(allow);
        let attached = rkt_sys::bpf::load_cgroup_device_program(&program, "rkt_devices")
            .and_then(|prog| rkt_sys::bpf::attach_cgroup_device_program(prog.as_fd(), dir.as_fd()));
        Ok(match attached {
            Ok(()) => DeviceControl::EnforcedByBpf,
            Err(e) => DeviceControl::Unavailable {
                why: format!(
                    "no v1 devices hierarchy, and the kernel refused the cgroup2 device filter: {}",
                    rkt_types::error_text::chain(&e)
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_format_as_v1_wants() {
        assert_eq!(DEFAULT_DEVICES[0].to_string(), "c *:* m");
        assert_eq!(DEFAULT_DEVICES[2].to_string(), "c 1:3 rwm");
        assert_eq!(DEFAULT_DEVICES[10].to_string(), "c 136:* rwm");
    }
}
