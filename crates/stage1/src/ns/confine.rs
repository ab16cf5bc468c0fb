//! Taking on an app's identity and confinement, for the app itself and for a command entered
//! into it (`rkt enter` gets exactly the same: rkt's CVE-2019-10144/10145/10147 were an enter
//! that skipped some of this).
//!
//! The order is the one [`crate::caps`] documents, each step needing what the one before still
//! had: keep capabilities across the user switch; `setgroups`, `setresgid`, `setresuid`; trim
//! the capability sets to the app's; `no_new_privs`; and — last, right before `execve`, in
//! [`install_seccomp`] — the seccomp filter.

use nix::unistd::{Gid, Uid};

use super::user::Identity;
use crate::caps::{self, CapSet};
use crate::seccomp::{self, BpfProgram};
use crate::sync::ChildError;

/// Switches the calling (single-threaded) process to `id` and `caps`, and sets
/// `no_new_privs`. The seccomp filter comes separately, after the last step that might need
/// a syscall the filter denies.
pub fn drop_privileges(id: &Identity, caps_set: CapSet) -> Result<(), ChildError> {
    let err = |op: &str| ChildError::new("identity", op.to_owned());
    caps::keep_across_setuid()
        .map_err(|e| err("keep capabilities").message(rkt_types::error_text::chain(&e)))?;
    let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| err("set the supplementary groups").errno(e))?;
    let gid = Gid::from_raw(id.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| err(&format!("switch to group {}", id.gid)).errno(e))?;
    let uid = Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| err(&format!("switch to user {}", id.uid)).errno(e))?;
    caps::apply(&caps_set, id.uid == 0).map_err(|e| {
        ChildError::new("capabilities", "apply the capability set")
            .message(rkt_types::error_text::chain(&e))
    })?;
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| ChildError::new("capabilities", "set no_new_privs").errno(e))
}

/// Installs the seccomp filter, if the app has one.
pub fn install_seccomp(program: Option<&BpfProgram>) -> Result<(), ChildError> {
    match program {
        Some(p) => seccomp::install(p).map_err(|e| {
            ChildError::new("seccomp", "install the seccomp filter")
                .message(rkt_types::error_text::chain(&e))
        }),
        None => Ok(()),
    }
}
