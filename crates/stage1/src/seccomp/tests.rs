//! Parsing, precedence and resolution; the group tables' consistency; and what the compiled
//! programs answer, run through a small cBPF interpreter so both architectures are checked on
//! any host. (The kernel itself runs the filter in `tests/confinement.rs`.)

use std::collections::BTreeSet;

use rkt_types::appc::Isolator;
use serde_json::json;

use super::table::Arch;
use super::*;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0000 | 1;
const ENOSYS: u32 = 0x0005_0000 | 38;

fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 0xc000_003e,
        Arch::Aarch64 => 0xc000_00b7,
    }
}

/// Runs `prog` on a `struct seccomp_data` the way the kernel does.
fn run(prog: &BpfProgram, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => nr,
            4 => arch,
            16..=63 => {
                let a = args[(off as usize - 16) / 8];
                if off.is_multiple_of(8) {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => panic!("load from offset {off}"),
        }
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = &prog[pc];
        pc += 1;
        match i.code {
            0x20 => acc = word(i.k),
            0x54 => acc &= i.k,
            0x05 => pc += i.k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    0x35 => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => return i.k,
            other => panic!("opcode {other:#x} at {}", pc - 1),
        }
    }
}

fn nr(arch: Arch, name: &str) -> u32 {
    arch.number(name)
        .unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

fn call(prog: &BpfProgram, arch: Arch, name: &str, args: [u64; 6]) -> u32 {
    run(prog, audit_arch(arch), nr(arch, name), args)
}

fn spec(s: &str) -> SeccompSpec {
    SeccompSpec::parse_cli(s).unwrap()
}

fn policy(s: &str) -> SeccompPolicy {
    spec(s).to_policy().unwrap().unwrap()
}

fn iso(name: &str, value: serde_json::Value) -> Isolator {
    Isolator {
        name: name.to_owned(),
        value,
    }
}

const NO_ARGS: [u64; 6] = [0; 6];
const CLONE_NEWUSER: u64 = 0x1000_0000;
/// What glibc's pthread_create passes: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|
/// PARENT_SETTID|CHILD_CLEARTID.
const CLONE_THREAD_FLAGS: u64 = 0x003d_0f00;

#[test]
fn cli_parses_in_any_order() {
    let s = spec("errno=ENOTSUP, socket,mode=remove,@docker/default-blacklist");
    assert_eq!(s.mode, Mode::Remove);
    assert_eq!(s.errno.as_ref().map(Errno::number), Some(95));
    assert_eq!(s.set, ["socket", "@docker/default-blacklist"]);
    assert_eq!(spec("mode=retain,read").errno, None);
}

#[test]
fn cli_errors_say_what_to_do() {
    let err = |s: &str| SeccompSpec::parse_cli(s).unwrap_err();
    assert!(matches!(err("read,write"), SeccompError::MissingMode(_)));
    assert!(matches!(err("mode=allow,read"), SeccompError::BadMode(m) if m == "allow"));
    assert!(matches!(
        err("mode=retain,mode=remove,read"),
        SeccompError::DuplicateOption("mode")
    ));
    assert!(matches!(
        err("mode=retain,errno=EWHAT,read"),
        SeccompError::UnknownErrno(_)
    ));
    assert!(matches!(
        err("mode=retain,action=kill,read"),
        SeccompError::UnknownOption(_)
    ));
    assert!(matches!(err("mode=retain"), SeccompError::EmptySet(_)));
    assert!(matches!(
        err("mode=retain,@rkt/nope"),
        SeccompError::UnknownGroup { .. }
    ));
    let e = err("mode=remove,mount,frobnicate,,umount2,teleport");
    let msg = e.to_string();
    assert!(
        msg.contains("frobnicate") && msg.contains("teleport") && msg.contains("empty item"),
        "{msg}"
    );
    assert!(!msg.contains("umount2"), "{msg}");
    let msg = err("mode=retain,@rkt/nope").to_string();
    assert!(
        msg.contains("@rkt/default-whitelist") && msg.contains("@appc.io/all"),
        "{msg}"
    );
}

#[test]
fn names_of_one_architecture_only_are_accepted() {
    // x86-64 only, aarch64 only (as our table has it), and newfstatat's two spellings.
    for name in [
        "arch_prctl",
        "modify_ldt",
        "clock_gettime64",
        "newfstatat",
        "fstatat",
    ] {
        assert!(table::is_known(name), "{name}");
    }
    assert!(!table::is_known("chown32"));
    assert_eq!(
        Arch::Aarch64.number("newfstatat"),
        Arch::Aarch64.number("fstatat")
    );
    assert_eq!(Arch::X86_64.number("newfstatat"), Some(262));
    assert_eq!(Arch::Aarch64.number("arch_prctl"), None);
}

#[test]
fn nothing_said_means_the_rkt_default_whitelist_with_eperm() {
    let p = resolve(&[], None, false).unwrap().unwrap();
    assert_eq!(p, default_policy());
    assert_eq!(p.mode, Mode::Retain);
    assert_eq!(p.errno.name(), "EPERM");
    assert_eq!(p, policy("mode=retain,@rkt/default-whitelist"));
    for allowed in [
        "read", "write", "execve", "futex", "rseq", "statx", "openat2",
    ] {
        assert_eq!(p.syscalls.get(allowed), Some(&Match::Always), "{allowed}");
    }
    for denied in [
        "mount", "unshare", "setns", "ptrace", "bpf", "clone3", "keyctl", "reboot",
    ] {
        assert!(!p.syscalls.contains_key(denied), "{denied}");
    }
    assert!(matches!(p.syscalls.get("clone"), Some(Match::AnyOf(_))));
}

#[test]
fn image_isolator_and_its_override() {
    let image = [
        iso("resource/memory", json!({"limit": "1G"})),
        iso(
            REMOVE_ISOLATOR,
            json!({"set": ["@rkt/default-blacklist", "socket"], "errno": "EACCES"}),
        ),
    ];
    let p = resolve(&image, None, false).unwrap().unwrap();
    assert_eq!(p.mode, Mode::Remove);
    assert_eq!(p.errno.name(), "EACCES");
    // Named on its own, socket is denied whatever the family (Always wins over the filter).
    assert_eq!(p.syscalls.get("socket"), Some(&Match::Always));
    assert!(p.syscalls.contains_key("ptrace") && p.syscalls.contains_key("mount"));

    let cli = spec("mode=retain,@docker/default-whitelist,mount,umount2");
    let p = resolve(&image, Some(&cli), false).unwrap().unwrap();
    assert_eq!(p.mode, Mode::Retain);
    assert_eq!(p.errno.name(), "EPERM");
    assert!(p.syscalls.contains_key("mount") && p.syscalls.contains_key("ptrace"));

    assert_eq!(resolve(&image, Some(&cli), true).unwrap(), None);
    assert_eq!(resolve(&[], None, true).unwrap(), None);
}

#[test]
fn image_isolator_errors() {
    let two = [
        iso(RETAIN_ISOLATOR, json!({"set": ["read"]})),
        iso(REMOVE_ISOLATOR, json!({"set": ["mount"]})),
    ];
    assert!(matches!(
        resolve(&two, None, false),
        Err(SeccompError::TooManyIsolators)
    ));
    // The CLI replaces the image's isolators, broken ones included.
    assert!(resolve(&two, Some(&spec("mode=retain,read")), false).is_ok());
    let shape = [iso(RETAIN_ISOLATOR, json!({"syscalls": ["read"]}))];
    assert!(matches!(
        resolve(&shape, None, false),
        Err(SeccompError::BadIsolator { .. })
    ));
    let errno = [iso(
        RETAIN_ISOLATOR,
        json!({"set": ["read"], "errno": "EBOGUS"}),
    )];
    assert!(matches!(
        resolve(&errno, None, false),
        Err(SeccompError::UnknownErrno(_))
    ));
    let empty = [iso(RETAIN_ISOLATOR, json!({"set": []}))];
    let msg = resolve(&empty, None, false).unwrap_err().to_string();
    assert!(msg.contains(RETAIN_ISOLATOR), "{msg}");
    let name = [iso(RETAIN_ISOLATOR, json!({"set": ["read", "sys_fly"]}))];
    let msg = resolve(&name, None, false).unwrap_err().to_string();
    assert!(
        msg.contains("sys_fly") && msg.contains(RETAIN_ISOLATOR),
        "{msg}"
    );
}

#[test]
fn appc_all_and_empty() {
    assert_eq!(
        spec("mode=retain,@appc.io/all,read").to_policy().unwrap(),
        None
    );
    let nothing = policy("mode=remove,errno=ENOSYS,@appc.io/all");
    assert_eq!((nothing.mode, nothing.syscalls.len()), (Mode::Retain, 0));
    let d = policy("mode=remove,errno=EACCES,@appc.io/empty");
    assert_eq!(d.errno.name(), "EACCES");
    assert_eq!(d.syscalls, default_policy().syscalls);
    assert_eq!(policy("mode=retain,@appc.io/empty").syscalls.len(), 0);
}

#[test]
fn group_tables_are_consistent() {
    let mut names = BTreeSet::new();
    for g in groups::GROUPS {
        for name in g
            .lists
            .iter()
            .flat_map(|l| l.iter())
            .chain(g.filtered.iter().map(|f| &f.0))
        {
            assert!(
                table::is_known(name),
                "{name} in {} is no syscall we know",
                g.name
            );
            names.insert(*name);
        }
    }
    let white = policy("mode=retain,@docker/default-whitelist").syscalls;
    let black = policy("mode=remove,@docker/default-blacklist").syscalls;
    for (name, m) in &white {
        // The only overlaps are the argument-filtered calls, allowed and denied by complement.
        match (m, black.get(name)) {
            (_, None) => {}
            (Match::AnyOf(_), Some(Match::AnyOf(_))) => {}
            _ => panic!("{name} is both allowed and denied"),
        }
    }
    // Every x86-64 syscall is decided by the docker groups, but for the ones listed here.
    // (Sysno::iter stops before the last entry, so walk the numbers.)
    let undecided: Vec<&str> = (0..=Arch::X86_64.last_known() as usize)
        .filter_map(syscalls::x86_64::Sysno::new)
        .map(|s| s.name())
        .filter(|n| !white.contains_key(*n) && !black.contains_key(*n))
        .collect();
    assert_eq!(
        undecided,
        [
            // Never implemented: nothing to decide, listed under @systemd/obsolete.
            "getpmsg",
            "putpmsg",
            "afs_syscall",
            "tuxcall",
            "security",
            "vserver",
            // Newer than docker's profile; equivalent to the FS_IOC_FS{GET,SET}XATTR ioctls.
            "file_getattr",
            "file_setattr",
        ]
    );
    let rkt: BTreeSet<_> = default_policy().syscalls.into_keys().collect();
    let docker: BTreeSet<_> = white.into_keys().collect();
    let extra: Vec<_> = docker.difference(&rkt).collect();
    assert_eq!(extra, ["process_vm_readv", "process_vm_writev", "ptrace"]);
}

#[test]
fn every_group_compiles_for_both_architectures_either_way() {
    for group in known_groups() {
        for mode in ["retain", "remove"] {
            let Some(p) = spec(&format!("mode={mode},{group}")).to_policy().unwrap() else {
                assert_eq!((group, mode), ("@appc.io/all", "retain"));
                continue;
            };
            for arch in Arch::ALL {
                let prog = compile(&p, arch).unwrap_or_else(|e| panic!("{group} {mode}: {e}"));
                assert!(prog.len() < 4096);
                // Whatever the policy, a foreign architecture's calls kill.
                assert_eq!(run(&prog, 0x4000_0003, 3, NO_ARGS), RET_KILL_PROCESS);
            }
        }
    }
}

#[test]
fn default_filter_answers_on_x86_64() {
    let a = Arch::X86_64;
    let prog = compile(&default_policy(), a).unwrap();
    for ok in [
        "read",
        "write",
        "exit_group",
        "rt_sigreturn",
        "openat",
        "arch_prctl",
        "futex",
    ] {
        assert_eq!(call(&prog, a, ok, NO_ARGS), RET_ALLOW, "{ok}");
    }
    for denied in [
        "mount",
        "unshare",
        "setns",
        "reboot",
        "ptrace",
        "bpf",
        "kexec_load",
    ] {
        assert_eq!(call(&prog, a, denied, NO_ARGS), EPERM, "{denied}");
    }
    // clone: threads yes, namespaces no; clone3 and unknown/new/x32 calls look absent.
    assert_eq!(
        call(&prog, a, "clone", [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        call(&prog, a, "clone", [CLONE_NEWUSER | 0x11, 0, 0, 0, 0, 0]),
        EPERM
    );
    // The upper half of a 64-bit flag word counts too.
    assert_eq!(
        call(&prog, a, "clone", [1 << 40 | CLONE_NEWUSER, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(call(&prog, a, "clone3", NO_ARGS), ENOSYS);
    assert_eq!(
        run(&prog, audit_arch(a), a.last_known() + 1, NO_ARGS),
        ENOSYS
    );
    assert_eq!(run(&prog, audit_arch(a), 0x4000_0000, NO_ARGS), ENOSYS);
    // socket: not AF_ALG (38), not AF_VSOCK (40); int arguments compare on 32 bits.
    for (family, want) in [
        (1, RET_ALLOW),
        (2, RET_ALLOW),
        (16, RET_ALLOW),
        (38, EPERM),
        (39, RET_ALLOW),
        (40, EPERM),
        (44, RET_ALLOW),
    ] {
        assert_eq!(
            call(&prog, a, "socket", [family, 1, 0, 0, 0, 0]),
            want,
            "family {family}"
        );
    }
    assert_eq!(
        call(&prog, a, "socket", [0xffff_ffff_0000_0002, 1, 0, 0, 0, 0]),
        RET_ALLOW
    );
    // personality: the usual values, not ADDR_NO_RANDOMIZE (0x0040000).
    assert_eq!(
        call(&prog, a, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        call(&prog, a, "personality", [0x0020_0008, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(
        call(&prog, a, "personality", [0x0004_0000, 0, 0, 0, 0, 0]),
        EPERM
    );
}

#[test]
fn default_filter_answers_on_aarch64() {
    let a = Arch::Aarch64;
    let prog = compile(&default_policy(), a).unwrap();
    assert_eq!(nr(a, "write"), 64);
    for ok in ["read", "write", "newfstatat", "exit_group", "execve"] {
        assert_eq!(call(&prog, a, ok, NO_ARGS), RET_ALLOW, "{ok}");
    }
    assert_eq!(call(&prog, a, "mount", NO_ARGS), EPERM);
    assert_eq!(call(&prog, a, "clone3", NO_ARGS), ENOSYS);
    assert_eq!(
        call(&prog, a, "clone", [CLONE_NEWUSER, 0, 0, 0, 0, 0]),
        EPERM
    );
    // No x32 on arm: a number with bit 30 set is just newer than our table.
    assert_eq!(run(&prog, audit_arch(a), 0x4000_0000, NO_ARGS), ENOSYS);
}

#[test]
fn remove_mode_denies_only_what_it_lists() {
    let p = policy("mode=remove,errno=EACCES,@docker/default-blacklist,uname");
    let eacces = 0x0005_0000 | 13;
    for a in Arch::ALL {
        let prog = compile(&p, a).unwrap();
        assert_eq!(call(&prog, a, "read", NO_ARGS), RET_ALLOW);
        assert_eq!(call(&prog, a, "uname", NO_ARGS), eacces);
        assert_eq!(call(&prog, a, "mount", NO_ARGS), eacces);
        assert_eq!(call(&prog, a, "ptrace", NO_ARGS), RET_ALLOW);
        // Denied clone3 still says ENOSYS, so that libc falls back to clone.
        assert_eq!(call(&prog, a, "clone3", NO_ARGS), ENOSYS);
        assert_eq!(
            call(&prog, a, "clone", [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            call(&prog, a, "clone", [CLONE_NEWUSER, 0, 0, 0, 0, 0]),
            eacces
        );
        assert_eq!(call(&prog, a, "socket", [40, 1, 0, 0, 0, 0]), eacces);
        assert_eq!(call(&prog, a, "socket", [2, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(&prog, a, "personality", [0, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            call(&prog, a, "personality", [0x0004_0000, 0, 0, 0, 0, 0]),
            eacces
        );
        // Calls newer than our table are not ours to deny in a remove set.
        assert_eq!(
            run(&prog, audit_arch(a), a.last_known() + 1, NO_ARGS),
            RET_ALLOW
        );
    }
    let prog = compile(&p, Arch::X86_64).unwrap();
    assert_eq!(
        run(&prog, audit_arch(Arch::X86_64), 0x4000_0000 | 165, NO_ARGS),
        ENOSYS
    );
    // The rkt blacklist also denies tracing.
    let rkt = compile(&policy("mode=remove,@rkt/default-blacklist"), Arch::X86_64).unwrap();
    assert_eq!(call(&rkt, Arch::X86_64, "ptrace", NO_ARGS), EPERM);
}

#[test]
fn retain_mode_naming_clone3_allows_it_and_errno_applies() {
    let p = policy("mode=retain,errno=ENOSYS,@systemd/default-whitelist,@systemd/process,write");
    let prog = compile(&p, Arch::X86_64).unwrap();
    let a = Arch::X86_64;
    assert_eq!(call(&prog, a, "clone3", NO_ARGS), RET_ALLOW);
    assert_eq!(
        call(&prog, a, "clone", [CLONE_NEWUSER, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(call(&prog, a, "write", NO_ARGS), RET_ALLOW);
    assert_eq!(call(&prog, a, "read", NO_ARGS), ENOSYS);
    // A syscall of the other architecture only is skipped, not an error.
    let p = policy("mode=retain,arch_prctl,write");
    let prog = compile(&p, Arch::Aarch64).unwrap();
    assert_eq!(call(&prog, Arch::Aarch64, "write", NO_ARGS), RET_ALLOW);
}

#[test]
fn a_policy_from_elsewhere_with_unknown_names_does_not_compile() {
    let mut p = default_policy();
    p.syscalls.insert("sys_fly".to_owned(), Match::Always);
    let msg = compile(&p, Arch::X86_64).unwrap_err().to_string();
    assert!(msg.contains("sys_fly"), "{msg}");
}

#[test]
fn policy_round_trips_through_json() {
    let p = policy("mode=remove,errno=ENOTSUP,@rkt/default-blacklist");
    let text = serde_json::to_string(&p).unwrap();
    assert!(text.contains(r#""errno":"ENOTSUP""#) && text.contains(r#""mode":"remove""#));
    assert!(text.contains(r#""mount":"always""#), "{text}");
    let back: SeccompPolicy = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
    let bad = text.replace("ENOTSUP", "ENOPE");
    assert!(serde_json::from_str::<SeccompPolicy>(&bad).is_err());
}

/// seccompiler's program for `policy` (its comparison chain, after the same architecture check
/// and ENOSYS prologue): the reference our binary search must answer exactly like.
fn reference(policy: &SeccompPolicy, arch: Arch) -> BpfProgram {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let errno = SeccompAction::Errno(policy.errno.number());
    let (on_match, otherwise) = match policy.mode {
        Mode::Retain => (SeccompAction::Allow, errno),
        Mode::Remove => (errno, SeccompAction::Allow),
    };
    let clone3 = arch.number("clone3");
    let mut clone3_enosys = policy.mode == Mode::Retain;
    let mut rules = std::collections::BTreeMap::new();
    for (name, m) in &policy.syscalls {
        let Some(nr) = arch.number(name) else {
            continue;
        };
        if Some(nr) == clone3 {
            clone3_enosys = policy.mode == Mode::Remove;
            if clone3_enosys {
                continue;
            }
        }
        let r: Vec<SeccompRule> = match m {
            Match::Always => Vec::new(),
            Match::AnyOf(rs) => rs
                .iter()
                .map(|rule| {
                    let conds = rule
                        .iter()
                        .map(|c| {
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
                            SeccompCondition::new(c.arg, width, op, c.value).unwrap()
                        })
                        .collect();
                    SeccompRule::new(conds).unwrap()
                })
                .collect(),
        };
        rules.insert(i64::from(nr), r);
    }
    let target = match arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    };
    let body: BpfProgram = SeccompFilter::new(rules, otherwise, on_match, target)
        .unwrap()
        .try_into()
        .unwrap();
    let jump = |code, k, jt, jf| seccompiler::sock_filter { code, jt, jf, k };
    let mut checks = Vec::new();
    if arch == Arch::X86_64 {
        checks.push((0x35, 0x4000_0000));
    }
    if policy.mode == Mode::Retain {
        checks.push((0x25, arch.last_known()));
    }
    if let (true, Some(nr)) = (clone3_enosys, clone3) {
        checks.push((0x15, nr));
    }
    let mut prog = body[..3].to_vec();
    prog.push(jump(0x20, 0, 0, 0));
    let count = checks.len();
    for (i, (op, k)) in checks.into_iter().enumerate() {
        prog.push(jump(op, k, u8::try_from(count - i).unwrap(), 0));
    }
    prog.push(jump(0x05, 1, 0, 0));
    prog.push(jump(0x06, ENOSYS, 0, 0));
    prog.extend_from_slice(&body[3..]);
    prog
}

/// Argument values around every constant a policy compares with, in both words, plus a few
/// arbitrary ones.
fn interesting_args(policy: &SeccompPolicy) -> Vec<u64> {
    let mut v: BTreeSet<u64> = [0, 1, u64::MAX, 0xffff_ffff, 1 << 32, 0x8000_0000_0000_0000]
        .into_iter()
        .collect();
    for m in policy.syscalls.values() {
        let Match::AnyOf(rules) = m else { continue };
        for c in rules.iter().flatten() {
            let mut bases = vec![c.value];
            if let CmpOp::MaskedEq(mask) = c.op {
                bases.extend([mask, c.value | !mask, c.value & mask]);
            }
            for b in bases {
                for d in [
                    0u64,
                    1,
                    u64::MAX,
                    1 << 32,
                    (1 << 32) - 1,
                    0xffff_ffff_0000_0000,
                ] {
                    v.insert(b.wrapping_add(d));
                    v.insert(b ^ d);
                }
            }
        }
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.insert(x);
    }
    v.into_iter().collect()
}

fn assert_same_answers(p: &SeccompPolicy, what: &str) {
    for arch in Arch::ALL {
        let ours = compile(p, arch).unwrap();
        let theirs = reference(p, arch);
        let aa = audit_arch(arch);
        assert_eq!(run(&ours, 0x4000_0003, 3, NO_ARGS), RET_KILL_PROCESS);
        let mut nrs: Vec<u32> = (0..=arch.last_known() + 3).collect();
        nrs.extend([
            0x3fff_ffff,
            0x4000_0000,
            0x4000_0001,
            0x4000_0000 | 165,
            u32::MAX,
        ]);
        for &n in &nrs {
            assert_eq!(
                run(&ours, aa, n, NO_ARGS),
                run(&theirs, aa, n, NO_ARGS),
                "{what} {arch:?} nr {n}"
            );
        }
        let values = interesting_args(p);
        for (name, m) in &p.syscalls {
            let (Match::AnyOf(_), Some(n)) = (m, arch.number(name)) else {
                continue;
            };
            for arg in 0..6 {
                for &val in &values {
                    let mut args = [0x1234_5678_9abc_def0; 6];
                    args[arg] = val;
                    assert_eq!(
                        run(&ours, aa, n, args),
                        run(&theirs, aa, n, args),
                        "{what} {arch:?} {name} args {args:x?}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_binary_search_answers_as_seccompilers_chain_did() {
    for group in known_groups() {
        for mode in ["retain", "remove"] {
            if let Some(p) = spec(&format!("mode={mode},{group}")).to_policy().unwrap() {
                assert_same_answers(&p, &format!("{mode} {group}"));
            }
        }
    }
    assert_same_answers(&default_policy(), "default");
    // Every comparison, on both widths, over several arguments and rules.
    for mode in [Mode::Retain, Mode::Remove] {
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
            CmpOp::MaskedEq(0x0000_00ff_0000_f0f0),
        ];
        let mut syscalls = BTreeMap::new();
        for (i, name) in ["read", "write", "openat", "close", "mmap", "ioctl", "fcntl"]
            .into_iter()
            .enumerate()
        {
            let mut rules = Vec::new();
            for width in [Width::U32, Width::U64] {
                let value = 0x0000_0012_8000_0030u64 + i as u64;
                rules.push(vec![
                    ArgCmp {
                        arg: u8::try_from(i % 6).unwrap(),
                        width,
                        op: ops[i],
                        value,
                    },
                    ArgCmp {
                        arg: 5,
                        width: Width::U64,
                        op: CmpOp::Ne,
                        value: 7,
                    },
                ]);
            }
            syscalls.insert(name.to_owned(), Match::AnyOf(rules));
        }
        syscalls.insert("getpid".to_owned(), Match::Always);
        let p = SeccompPolicy {
            mode,
            errno: Errno::from_name("EACCES").unwrap(),
            syscalls,
        };
        assert_same_answers(&p, &format!("{mode:?} every comparison"));
    }
    // And it is much shorter: a dozen instructions a call, not one per allowed syscall.
    let p = default_policy();
    let ours = compile(&p, Arch::X86_64).unwrap();
    let theirs = reference(&p, Arch::X86_64);
    assert!(
        ours.len() * 3 < theirs.len(),
        "{} vs {}",
        ours.len(),
        theirs.len()
    );
}
