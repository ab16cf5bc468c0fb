//! Compiling a [`SeccompPolicy`] to classic BPF, and installing it (with seccompiler).
//!
//! The program checks the architecture (a foreign one is killed), answers ENOSYS where the
//! module documentation of [`super`] says so, then finds the syscall number by binary search
//! over ranges of numbers with the same answer, so a call costs a dozen instructions, not a
//! walk down one comparison per syscall:
//!
//! ```text
//!   ld   [arch]
//!   jeq  #AUDIT_ARCH, 1, 0
//!   ret  #KILL_PROCESS
//!   ld   [nr]
//!   jge  #0x40000000  -> enosys      x86-64 only: the x32 ABI
//!   jgt  #last_known  -> enosys      retain sets only: calls newer than our table
//!   jeq  #clone3      -> enosys      unless a retain set names clone3
//!   ja   tree
//! enosys:
//!   ret  #ERRNO(ENOSYS)
//! tree:
//!   jge  #k, right, left            … down to one range per leaf:
//!   ret  #action                     a range of listed or unlisted calls, or
//!   ld   [args[i]]; jeq …; ret …     the argument rules of one filtered call
//! ```
//!
//! The length matters beyond each call: installing a filter converts and JIT-compiles it, and
//! the kernel runs it once per syscall number to find the calls it may allow without running
//! it (the seccomp action cache), which for a comparison chain of ~1,500 instructions took
//! about a millisecond of every app's start.

use std::collections::BTreeMap;

use seccompiler::{BackendError, sock_filter};

use super::table::Arch;
use super::{ArgCmp, CmpOp, Match, Mode, SeccompError, SeccompPolicy, Width};

/// A compiled filter: cBPF instructions for `seccomp(SECCOMP_SET_MODE_FILTER)`.
pub type BpfProgram = seccompiler::BpfProgram;

/// The x32 ABI sets this bit in the syscall number (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const ENOSYS: u32 = 38;

// Classic BPF opcodes (linux/bpf_common.h) and the offsets in `struct seccomp_data`.
// BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
const SECCOMP_DATA_ARGS: u32 = 16;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_DATA: u32 = 0x0000_ffff;
/// The kernel's limit on a filter's length.
const BPF_MAXINSNS: usize = 4096;
/// The highest argument index (`args[0..6]`).
const ARG_MAX: u8 = 5;

/// Compiles `policy` for `arch`. Syscalls that `arch` lacks but the other supported
/// architecture has are left out; names neither has are an error (as in [`super::resolve`]).
pub fn compile(policy: &SeccompPolicy, arch: Arch) -> Result<BpfProgram, SeccompError> {
    let errno = SECCOMP_RET_ERRNO | (policy.errno.number() & SECCOMP_RET_DATA);
    let actions = match policy.mode {
        Mode::Retain => Actions {
            on_match: SECCOMP_RET_ALLOW,
            otherwise: errno,
        },
        Mode::Remove => Actions {
            on_match: errno,
            otherwise: SECCOMP_RET_ALLOW,
        },
    };
    let clone3 = arch.number("clone3");
    let mut clone3_enosys = policy.mode == Mode::Retain;
    let mut listed: BTreeMap<u32, &Match> = BTreeMap::new();
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
        listed.insert(nr, m);
    }
    if !unknown.is_empty() {
        return Err(SeccompError::UnknownSyscalls {
            context: "the seccomp policy".to_owned(),
            names: unknown,
        });
    }

    let mut program = vec![
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        jump(BPF_JMP_JEQ_K, arch.audit_arch(), 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
    ];
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
    let count = checks.len();
    for (i, (op, k)) in checks.into_iter().enumerate() {
        // Jump over the remaining checks and the `ja` to reach the `ret ENOSYS`.
        let to_enosys = u8::try_from(count - i).unwrap_or(u8::MAX);
        program.push(jump(op, k, to_enosys, 0));
    }
    program.push(stmt(BPF_JMP_JA, 1));
    program.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS));
    let leaves = ranges(&listed, actions);
    program.extend(tree(&leaves, actions)?);
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::Compile(BackendError::FilterTooLarge(
            program.len(),
        )));
    }
    Ok(program)
}

/// What a matched and an unmatched call get.
#[derive(Debug, Clone, Copy)]
struct Actions {
    on_match: u32,
    otherwise: u32,
}

/// The answer for a range of syscall numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf<'a> {
    /// The same answer whatever the arguments.
    Ret(u32),
    /// One syscall whose answer depends on its arguments: any rule, a conjunction, matches.
    Args(&'a [Vec<ArgCmp>]),
}

/// The syscall numbers `0..=u32::MAX` cut into ranges (by their first number), neighbours
/// with the same unconditional answer merged.
fn ranges<'a>(listed: &BTreeMap<u32, &'a Match>, actions: Actions) -> Vec<(u32, Leaf<'a>)> {
    let mut out: Vec<(u32, Leaf<'a>)> = vec![(0, Leaf::Ret(actions.otherwise))];
    let push = |out: &mut Vec<(u32, Leaf<'a>)>, start: u32, leaf: Leaf<'a>| {
        if out.last().is_some_and(|(s, _)| *s == start) {
            out.pop();
        }
        if out
            .last()
            .is_some_and(|(_, l)| *l == leaf && matches!(leaf, Leaf::Ret(_)))
        {
            return;
        }
        out.push((start, leaf));
    };
    for (&nr, m) in listed {
        let leaf = match m {
            // No rule at all matches every call, as a rule-less syscall did in seccompiler.
            Match::AnyOf(rules) if !rules.is_empty() => Leaf::Args(rules),
            _ => Leaf::Ret(actions.on_match),
        };
        push(&mut out, nr, leaf);
        if let Some(next) = nr.checked_add(1) {
            push(&mut out, next, Leaf::Ret(actions.otherwise));
        }
    }
    out
}

/// A binary search over `leaves` (sorted by first number), with the number in the accumulator.
fn tree(leaves: &[(u32, Leaf<'_>)], actions: Actions) -> Result<Vec<sock_filter>, SeccompError> {
    if let [(_, leaf)] = leaves {
        return match leaf {
            Leaf::Ret(k) => Ok(vec![stmt(BPF_RET_K, *k)]),
            Leaf::Args(rules) => args(rules, actions),
        };
    }
    let mid = leaves.len() / 2;
    let left = tree(&leaves[..mid], actions)?;
    let right = tree(&leaves[mid..], actions)?;
    let key = leaves[mid].0;
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        Ok(skip) => out.push(jump(BPF_JMP_JGE_K, key, skip, 0)),
        Err(_) => {
            // Too far for a conditional jump: through an unconditional one.
            let skip = u32::try_from(left.len()).unwrap_or(u32::MAX);
            out.push(jump(BPF_JMP_JGE_K, key, 0, 1));
            out.push(stmt(BPF_JMP_JA, skip));
        }
    }
    out.extend(left);
    out.extend(right);
    Ok(out)
}

/// Where a jump of a condition goes.
#[derive(Debug, Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// Past this condition: it holds.
    Pass,
    /// The next rule: this one does not match.
    Fail,
}

/// One instruction of a condition, its jumps still symbolic.
struct Insn {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

/// The rules of one filtered syscall: each rule's conditions in turn, the match action once
/// all hold, the next rule as soon as one does not; no rule matching gets `otherwise`.
fn args(rules: &[Vec<ArgCmp>], actions: Actions) -> Result<Vec<sock_filter>, SeccompError> {
    let mut out = Vec::new();
    for rule in rules {
        if rule.is_empty() {
            return Err(SeccompError::Compile(BackendError::EmptyRule));
        }
        let mut conds = Vec::new();
        for c in rule {
            conds.push(condition(c)?);
        }
        let len: usize = conds.iter().map(Vec::len).sum::<usize>() + 1;
        let mut at = 0;
        for cond in conds {
            let end = at + cond.len();
            for insn in cond {
                let offset = |to: To| -> Result<u8, SeccompError> {
                    let target = match to {
                        To::Next => at + 1,
                        To::Pass => end,
                        To::Fail => len,
                    };
                    u8::try_from(target - at - 1)
                        .map_err(|_| SeccompError::Compile(BackendError::FilterTooLarge(len)))
                };
                out.push(jump(insn.code, insn.k, offset(insn.jt)?, offset(insn.jf)?));
                at += 1;
            }
        }
        out.push(stmt(BPF_RET_K, actions.on_match));
    }
    out.push(stmt(BPF_RET_K, actions.otherwise));
    Ok(out)
}

/// A condition on one argument, as seccompiler compares: the low word only for 32-bit
/// arguments (the value truncated), both words, high first, for 64-bit ones.
fn condition(c: &ArgCmp) -> Result<Vec<Insn>, SeccompError> {
    use To::{Fail, Next, Pass};
    if c.arg > ARG_MAX {
        return Err(SeccompError::Compile(BackendError::InvalidArgumentNumber));
    }
    let lo_at = SECCOMP_DATA_ARGS + 8 * u32::from(c.arg);
    let hi_at = lo_at + 4;
    let value = match c.op {
        CmpOp::MaskedEq(mask) => c.value & mask,
        _ => c.value,
    };
    #[allow(clippy::cast_possible_truncation)] // The halves of a 64-bit value.
    let (hi, lo) = ((value >> 32) as u32, value as u32);
    let ld = |at| Insn {
        code: BPF_LD_W_ABS,
        k: at,
        jt: Next,
        jf: Next,
    };
    let j = |code, k, jt, jf| Insn { code, k, jt, jf };
    let and = |k| Insn {
        code: BPF_ALU_AND_K,
        k,
        jt: Next,
        jf: Next,
    };
    let wide = c.width == Width::U64;
    let mut out = Vec::new();
    match c.op {
        CmpOp::Eq => {
            if wide {
                out.extend([ld(hi_at), j(BPF_JMP_JEQ_K, hi, Next, Fail)]);
            }
            out.extend([ld(lo_at), j(BPF_JMP_JEQ_K, lo, Next, Fail)]);
        }
        CmpOp::Ne => {
            if wide {
                out.extend([ld(hi_at), j(BPF_JMP_JEQ_K, hi, Next, Pass)]);
            }
            out.extend([ld(lo_at), j(BPF_JMP_JEQ_K, lo, Fail, Next)]);
        }
        CmpOp::Gt | CmpOp::Ge => {
            if wide {
                out.extend([
                    ld(hi_at),
                    j(BPF_JMP_JGT_K, hi, Pass, Next),
                    j(BPF_JMP_JEQ_K, hi, Next, Fail),
                ]);
            }
            let op = if c.op == CmpOp::Gt {
                BPF_JMP_JGT_K
            } else {
                BPF_JMP_JGE_K
            };
            out.extend([ld(lo_at), j(op, lo, Next, Fail)]);
        }
        CmpOp::Lt | CmpOp::Le => {
            if wide {
                out.extend([
                    ld(hi_at),
                    j(BPF_JMP_JGT_K, hi, Fail, Next),
                    j(BPF_JMP_JEQ_K, hi, Next, Pass),
                ]);
            }
            let op = if c.op == CmpOp::Lt {
                BPF_JMP_JGE_K
            } else {
                BPF_JMP_JGT_K
            };
            out.extend([ld(lo_at), j(op, lo, Fail, Next)]);
        }
        CmpOp::MaskedEq(mask) => {
            #[allow(clippy::cast_possible_truncation)] // The halves of a 64-bit mask.
            let (mask_hi, mask_lo) = ((mask >> 32) as u32, mask as u32);
            if wide {
                out.extend([ld(hi_at), and(mask_hi), j(BPF_JMP_JEQ_K, hi, Next, Fail)]);
            }
            out.extend([ld(lo_at), and(mask_lo), j(BPF_JMP_JEQ_K, lo, Next, Fail)]);
        }
    }
    Ok(out)
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
