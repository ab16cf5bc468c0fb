//! `bpf(2)` for cgroup v2 device filters: load a `BPF_PROG_TYPE_CGROUP_DEVICE` program and
//! attach it to a cgroup directory. libc, rustix and nix wrap neither command.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::SysError;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of a cgroup and of its ancestors all run, and all must allow: a pod's filter can
/// only narrow what the cgroup it was made in allows (systemd attaches this way too).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`; the kernel
/// takes the size passed and reads the rest as zero.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` member of `union bpf_attr`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Loads `insns` (encoded eBPF instructions) as a cgroup device program named `name` (at most
/// 15 bytes are kept). On a verifier refusal the error carries the verifier's log.
pub fn load_cgroup_device_program(insns: &[u64], name: &str) -> Result<OwnedFd, SysError> {
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut log = vec![0u8; 16 << 10];
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).unwrap_or(u32::MAX),
        insns: insns.as_ptr() as u64,
        license: c"Apache-2.0".as_ptr() as u64,
        log_level: 1,
        log_size: u32::try_from(log.len()).unwrap_or(u32::MAX),
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
    };
    // SAFETY: `attr` is a valid, fully initialised prefix of `union bpf_attr` for
    // BPF_PROG_LOAD whose size is passed with it; the instruction array, the license string
    // and the log buffer it points to outlive the call, and `log_size` is the buffer's length.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        let errno = nix::Error::last();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]).trim().to_owned();
        return Err(SysError::Bpf {
            op: "BPF_PROG_LOAD (a cgroup device filter)",
            verifier,
            source: errno,
        });
    }
    // SAFETY: a non-negative return of BPF_PROG_LOAD is a new descriptor that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Attaches a cgroup device program to the cgroup v2 directory `cgroup` (opened as a
/// directory), alongside any its ancestors have. The cgroup keeps the program: the
/// descriptor may be closed afterwards.
pub fn attach_cgroup_device_program(
    program: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
) -> Result<(), SysError> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a valid, fully initialised prefix of `union bpf_attr` for
    // BPF_PROG_ATTACH whose size is passed with it; both descriptors are borrowed, so open for
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SysError::Errno {
            op: "BPF_PROG_ATTACH (a cgroup device filter)",
            source: nix::Error::last(),
        })
    }
}
