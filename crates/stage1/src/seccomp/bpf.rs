//! Compiling a [`SeccompPolicy`] to classic BPF with seccompiler, and installing it.
//!
//! seccompiler builds the body: check the architecture (kill on a foreign one), then one
//! comparison chain per syscall, with the argument rules of filtered syscalls. It has a single
//! "match" and a single "mismatch" action, so the ENOSYS answers (see the module documentation
//! of [`super`]) are a short prologue of our own, spliced in right after the architecture check:
//!
//! ```text
//!   ld   [nr]
//!   jge  #0x40000000  -> enosys      x86-64 only: the x32 ABI
//!   jgt  #last_known  -> enosys      retain sets only: calls newer than our table
//!   jeq  #clone3      -> enosys      unless a retain set names clone3
//!   ja   body
//! enosys:
//!   ret  #ERRNO(ENOSYS)
//! body: (seccompiler's program, from its own `ld [nr]`)
//! ```

use std::collections::BTreeMap;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    sock_filter,
};

use super::table::Arch;
use super::{ArgCmp, CmpOp, Match, Mode, SeccompError, SeccompPolicy, Width};

/// A compiled filter: cBPF instructions for `seccomp(SECCOMP_SET_MODE_FILTER)`.
pub type BpfProgram = seccompiler::BpfProgram;

/// The x32 ABI sets this bit in the syscall number (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const ENOSYS: u32 = 38;
/// seccompiler's architecture check is `ld arch; jeq AUDIT_ARCH, +1; ret KILL`.
const ARCH_CHECK_LEN: usize = 3;

// Classic BPF opcodes (linux/bpf_common.h) and the offset of `nr` in `struct seccomp_data`.
// BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// The kernel's limit on a filter's length.
const BPF_MAXINSNS: usize = 4096;

/// Compiles `policy` for `arch`. Syscalls that `arch` lacks but the other supported
/// architecture has are left out; names neither has are an error (as in [`super::resolve`]).
pub fn compile(policy: &SeccompPolicy, arch: Arch) -> Result<BpfProgram, SeccompError> {
    let errno = SeccompAction::Errno(policy.errno.number());
    let (on_match, otherwise) = match policy.mode {
        Mode::Retain => (SeccompAction::Allow, errno),
        Mode::Remove => (errno, SeccompAction::Allow),
    };
    let clone3 = arch.number("clone3");
    let mut clone3_enosys = policy.mode == Mode::Retain;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for (name, m) in &policy.syscalls {
        let Some(nr) = arch.number(name) else {
            if !super::table::is_known(name) {
                unknown.push(name.clone());
            }
            continue;
        };
        if Some(nr) == clone3 {
            // Allowed: let it through as asked. Denied: ENOSYS, so that libc uses clone.
            clone3_enosys = policy.mode == Mode::Remove;
            if clone3_enosys {
                continue;
            }
        }
        rules.insert(i64::from(nr), to_rules(m)?);
    }
    if !unknown.is_empty() {
        return Err(SeccompError::UnknownSyscalls {
            context: "the seccomp policy".to_owned(),
            names: unknown,
        });
    }
    let filter = SeccompFilter::new(rules, otherwise, on_match, arch.target())
        .map_err(SeccompError::Compile)?;
    let body: BpfProgram = filter.try_into().map_err(SeccompError::Compile)?;

    let mut checks: Vec<(u16, u32)> = Vec::new();
    if arch == Arch::X86_64 {
        checks.push((BPF_JMP_JGE_K, X32_SYSCALL_BIT));
    }
    if policy.mode == Mode::Retain {
        checks.push((BPF_JMP_JGT_K, arch.last_known()));
    }
    if let (true, Some(nr)) = (clone3_enosys, clone3) {
        checks.push((BPF_JMP_JEQ_K, nr));
    }
    let mut prologue = vec![stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR)];
    let count = checks.len();
    for (i, (op, k)) in checks.into_iter().enumerate() {
        // Jump over the remaining checks and the `ja` to reach the `ret ENOSYS`.
        let to_enosys = u8::try_from(count - i).unwrap_or(u8::MAX);
        prologue.push(jump(op, k, to_enosys, 0));
    }
    prologue.push(stmt(BPF_JMP_JA, 1));
    prologue.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS));

    let len = body.len() + prologue.len();
    if len > BPF_MAXINSNS {
        return Err(SeccompError::Compile(
            seccompiler::BackendError::FilterTooLarge(len),
        ));
    }
    let mut program = Vec::with_capacity(len);
    program.extend_from_slice(&body[..ARCH_CHECK_LEN]);
    program.extend(prologue);
    program.extend_from_slice(&body[ARCH_CHECK_LEN..]);
    Ok(program)
}

fn to_rules(m: &Match) -> Result<Vec<SeccompRule>, SeccompError> {
    match m {
        Match::Always => Ok(Vec::new()),
        Match::AnyOf(rules) => rules
            .iter()
            .map(|rule| {
                let conds = rule
                    .iter()
                    .map(to_condition)
                    .collect::<Result<Vec<_>, _>>()?;
                SeccompRule::new(conds).map_err(SeccompError::Compile)
            })
            .collect(),
    }
}

fn to_condition(c: &ArgCmp) -> Result<SeccompCondition, SeccompError> {
    let width = match c.width {
        Width::U32 => SeccompCmpArgLen::Dword,
        Width::U64 => SeccompCmpArgLen::Qword,
    };
    let op = match c.op {
        CmpOp::Eq => SeccompCmpOp::Eq,
        CmpOp::Ne => SeccompCmpOp::Ne,
        CmpOp::Lt => SeccompCmpOp::Lt,
        CmpOp::Le => SeccompCmpOp::Le,
        CmpOp::Gt => SeccompCmpOp::Gt,
        CmpOp::Ge => SeccompCmpOp::Ge,
        CmpOp::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
    };
    SeccompCondition::new(c.arg, width, op, c.value).map_err(SeccompError::Compile)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Installs `program` on the calling thread (step 4 of the order in [`crate::caps`]): right
/// before `execve`, after capabilities are applied, in the thread that will exec. Sets
/// `no_new_privs` first, which is what allows installing without CAP_SYS_ADMIN. Everything the
/// thread does afterwards, `execve` included, goes through the filter.
pub fn install(program: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(program).map_err(SeccompError::Install)
}
