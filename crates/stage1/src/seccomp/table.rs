//! Syscall and errno names → numbers, per architecture we build filters for.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An architecture we can compile filters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64 (its x32 ABI and 32-bit compat calls are refused by every filter).
    X86_64,
    /// 64-bit ARM (its 32-bit compat calls are refused by every filter).
    Aarch64,
}

impl Arch {
    /// Every supported architecture. A syscall name is valid when one of them has it.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture this program runs on, if supported.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The number of syscall `name` on this architecture.
    pub(crate) fn number(self, name: &str) -> Option<u32> {
        let id = match self {
            Arch::X86_64 => {
                syscalls::x86_64::Sysno::from_str(name)
                    .map(|s| s.id())
                    // aarch64 spells newfstatat "fstatat" in the table; accept either spelling.
                    .or_else(|()| match name {
                        "fstatat" => Ok(syscalls::x86_64::Sysno::newfstatat.id()),
                        _ => Err(()),
                    })
            }
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name)
                .map(|s| s.id())
                .or_else(|()| match name {
                    "newfstatat" => Ok(syscalls::aarch64::Sysno::fstatat.id()),
                    _ => Err(()),
                }),
        };
        id.ok().and_then(|n| u32::try_from(n).ok())
    }

    /// The highest syscall number in our table. Higher numbers belong to kernels newer than
    /// this build; filters answer them ENOSYS so that libc falls back to an older call.
    pub(crate) fn last_known(self) -> u32 {
        let id = match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::last().id(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::last().id(),
        };
        u32::try_from(id).unwrap_or(0)
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch` (linux/audit.h).
    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => 0xc000_003e,
            Arch::Aarch64 => 0xc000_00b7,
        }
    }
}

/// Whether some supported architecture has a syscall called `name`.
pub(crate) fn is_known(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.number(name).is_some())
}

/// The number of errno `name` (`EPERM`, `ENOSYS`, ...; also glibc's aliases `ENOTSUP`,
/// `EWOULDBLOCK`, `EDEADLOCK`). Errno numbers are the same on x86-64 and aarch64.
pub(crate) fn errno_number(name: &str) -> Option<u32> {
    let name = match name {
        "ENOTSUP" => "EOPNOTSUPP",
        "EWOULDBLOCK" => "EAGAIN",
        "EDEADLOCK" => "EDEADLK",
        other => other,
    };
    (1..4096)
        .find(|&n| {
            syscalls::Errno::new(n)
                .name_and_description()
                .is_some_and(|(known, _)| known == name)
        })
        .and_then(|n| u32::try_from(n).ok())
}
