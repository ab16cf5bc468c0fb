//! The named syscall groups, as reviewed data.
//!
//! A group is a set of syscall invocations: whole syscalls, plus a few syscalls matched only for
//! some arguments. A retain set allows what its groups match, a remove set denies it.
//!
//! Sources: moby's `profiles/seccomp/default.json` (the default profile of docker, as applied to
//! a container with the default capability set, which is rkt's), rkt's
//! `stage1/init/common/seccomp_wildcards.go`, and systemd 252's `SystemCallFilter=` sets.
//! Only names that x86-64 or aarch64 have are listed: upstream lists also carry 32-bit-only
//! calls (`chown32`, `socketcall`, `_llseek`, ...) that no filter of ours could match. The
//! `*_time64` calls are listed because our aarch64 table has them (it follows the generic
//! syscall table); on a 64-bit kernel they simply do not exist.

use super::{ArgCmp, CmpOp, Width};

/// One named group.
pub(super) struct Group {
    /// `@scope/name`, as users write it.
    pub name: &'static str,
    /// Syscalls matched whatever their arguments.
    pub lists: &'static [&'static [&'static str]],
    /// Syscalls matched only when one of the rules (each a conjunction) holds.
    pub filtered: &'static [(&'static str, &'static [&'static [ArgCmp]])],
}

/// Every group we know, besides appc's `@appc.io/all` and `@appc.io/empty`.
pub(super) const GROUPS: &[Group] = &[
    Group {
        // rkt kept its lists equal to docker's; so do we, but for ptrace (see TRACE).
        name: "@rkt/default-whitelist",
        lists: &[
            FILES, IO, EVENTS, NETWORK, PROCESS, IDENTITY, SIGNALS, TIME, MEMORY, SCHED, FUTEX,
            IPC, X86,
        ],
        filtered: ALLOW_FILTERED,
    },
    Group {
        name: "@docker/default-whitelist",
        lists: &[
            FILES, IO, EVENTS, NETWORK, PROCESS, IDENTITY, SIGNALS, TIME, MEMORY, SCHED, FUTEX,
            IPC, X86, TRACE,
        ],
        filtered: ALLOW_FILTERED,
    },
    Group {
        name: "@rkt/default-blacklist",
        lists: &[DENIED, TRACE],
        filtered: DENY_FILTERED,
    },
    Group {
        name: "@docker/default-blacklist",
        lists: &[DENIED],
        filtered: DENY_FILTERED,
    },
    Group {
        name: "@systemd/clock",
        lists: &[SD_CLOCK],
        filtered: &[],
    },
    Group {
        name: "@systemd/default-whitelist",
        lists: &[SD_DEFAULT],
        filtered: &[],
    },
    Group {
        name: "@systemd/io-event",
        lists: &[EVENTS],
        filtered: &[],
    },
    Group {
        name: "@systemd/mount",
        lists: &[SD_MOUNT],
        filtered: &[],
    },
    Group {
        name: "@systemd/network-io",
        lists: &[NETWORK, &["socket"]],
        filtered: &[],
    },
    Group {
        name: "@systemd/obsolete",
        lists: &[UNIMPLEMENTED, SD_OBSOLETE],
        filtered: &[],
    },
    Group {
        name: "@systemd/privileged",
        lists: &[
            SD_CHOWN,
            SD_CLOCK,
            SD_MODULE,
            SD_RAW_IO,
            SD_REBOOT,
            SD_SWAP,
            SD_PRIVILEGED,
        ],
        filtered: &[],
    },
    Group {
        name: "@systemd/process",
        lists: &[SD_PROCESS],
        filtered: &[],
    },
    Group {
        name: "@systemd/raw-io",
        lists: &[SD_RAW_IO],
        filtered: &[],
    },
];

// ---------------------------------------------------------------------------------------------
// What the default whitelists allow: docker's default profile for a container holding rkt's
// default capabilities. The kernel still checks permissions and capabilities on each call; the
// filter only takes away the calls a container should never need.

/// Paths, descriptors, metadata, extended attributes and change notification.
const FILES: &[&str] = &[
    "access",
    "chdir",
    "chmod",
    "chown",
    // CAP_SYS_CHROOT is in the default set; chroot is how some daemons drop into a subtree.
    "chroot",
    "creat",
    "faccessat",
    "faccessat2",
    "fallocate",
    // Useless without a descriptor from fanotify_init, which is denied (CAP_SYS_ADMIN).
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "ftruncate",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lsetxattr",
    "lstat",
    // Reads the app's own mount table, as /proc/self/mountinfo does.
    "listmount",
    "mkdir",
    "mkdirat",
    // CAP_MKNOD is in the default set; which device nodes work is the device cgroup's call.
    "mknod",
    "mknodat",
    // Harmless alone: the handle can only be opened with open_by_handle_at, which is denied
    // (CAP_DAC_READ_SEARCH; the "shocker" container escape used it).
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "readlink",
    "readlinkat",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "setxattr",
    "setxattrat",
    "stat",
    "statfs",
    // See listmount.
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "truncate",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
];

/// Moving data: read, write, copy, sync, and the old in-kernel AIO.
const IO: &[&str] = &[
    // Page-cache statistics of the app's own files.
    "cachestat",
    "close",
    "close_range",
    "copy_file_range",
    "dup",
    "dup2",
    "dup3",
    "fadvise64",
    "fdatasync",
    "fsync",
    // AIO (databases use it). io_uring is not here: docker dropped it after a run of kernel
    // escapes through it.
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    // Terminals and most devices need it; requests are not filtered by number (docker neither).
    "ioctl",
    "lseek",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readv",
    "sendfile",
    "splice",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "vmsplice",
    "write",
    "writev",
];

/// Event loops.
const EVENTS: &[&str] = &[
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
];

/// Sockets, except creating them (`socket` is filtered by address family).
const NETWORK: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketpair",
];

/// Processes and threads (`clone` and `personality` are filtered by argument).
const PROCESS: &[&str] = &[
    "capget",
    // Can only lower capabilities, or move them within the bounding set rkt trimmed.
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "get_robust_list",
    "getcpu",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrusage",
    "getsid",
    "gettid",
    // Apps of one pod share a PID namespace and may signal each other, as in rkt; the kernel
    // checks uid or CAP_KILL.
    "kill",
    // Landlock and seccomp only ever narrow what the app may do: self-sandboxing.
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    // libc and runtimes name threads, set no_new_privs, query dumpability...; the privileged
    // options check capabilities themselves.
    "prctl",
    // Frees the memory of a process the app has already killed.
    "process_mrelease",
    "restart_syscall",
    // glibc registers restartable sequences in every thread.
    "rseq",
    "seccomp",
    "set_robust_list",
    "set_tid_address",
    "setpgid",
    // Raising priority needs CAP_SYS_NICE, which apps lack by default.
    "setpriority",
    "setsid",
    "sysinfo",
    "tgkill",
    "times",
    "tkill",
    "uname",
    // The kernel's return-probe trampoline; fails unless the kernel itself set up a uprobe.
    "uretprobe",
    "vfork",
    "wait4",
    "waitid",
];

/// Reading and, with CAP_SETUID/CAP_SETGID (default set), changing user and groups.
const IDENTITY: &[&str] = &[
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getresgid",
    "getresuid",
    "getuid",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setuid",
];

/// Signals.
const SIGNALS: &[&str] = &[
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "signalfd",
    "signalfd4",
];

/// Clocks, sleeps and timers. Setting the clock is denied (DENIED), reading it is not.
const TIME: &[&str] = &[
    // Read the clock discipline (ntp status); adjusting it needs CAP_SYS_TIME.
    "adjtimex",
    "alarm",
    // As adjtimex.
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "pause",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
];

/// The app's own memory.
const MEMORY: &[&str] = &[
    "brk",
    "madvise",
    // CET shadow stacks for new threads (glibc on recent x86-64).
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    // Memory hidden even from the kernel's direct map; the app's own.
    "memfd_secret",
    "mincore",
    // Bounded by RLIMIT_MEMLOCK.
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mremap",
    // Seals the app's own mappings against change.
    "mseal",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
];

/// Scheduling, resource limits, randomness. Raising a priority or a hard limit needs
/// CAP_SYS_NICE or CAP_SYS_RESOURCE, which apps lack by default.
const SCHED: &[&str] = &[
    "getrandom",
    "getrlimit",
    "ioprio_get",
    "ioprio_set",
    "prlimit64",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "setrlimit",
];

/// Futexes (threads, locks).
const FUTEX: &[&str] = &[
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
];

/// Pipes, POSIX message queues, SysV IPC (namespaced per pod).
const IPC: &[&str] = &[
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "pipe",
    "pipe2",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
];

/// x86-64 only: thread-local storage setup, and the LDT that 16-bit code (Wine) needs.
const X86: &[&str] = &[
    "arch_prctl",
    "get_thread_area",
    "modify_ldt",
    "set_thread_area",
];

/// Tracing and reading other processes of the same user. Docker allows these since Linux 4.8
/// (which closed the ptrace way around seccomp); rkt never did, and here all apps of a pod share
/// one PID namespace, so an app could trace its neighbours. Only the docker groups carry them
/// as allowed; the rkt blacklist denies them.
const TRACE: &[&str] = &["process_vm_readv", "process_vm_writev", "ptrace"];

/// Allowed for some arguments only.
const ALLOW_FILTERED: &[(&str, &[&[ArgCmp]])] = &[
    // Threads and processes, but no new namespaces: a user namespace needs no capability and
    // opens a large kernel attack surface. (clone3 passes its flags in memory a filter cannot
    // read, so it is answered ENOSYS and libc falls back to clone.)
    ("clone", &[&[CLONE_FLAGS_HAVE_NO_NAMESPACE]]),
    // Every address family but AF_ALG (kernel crypto, a source of exploits) and AF_VSOCK (the
    // channel to the hypervisor).
    (
        "socket",
        &[
            &[cmp(0, Width::U32, CmpOp::Lt, AF_ALG)],
            &[cmp(0, Width::U32, CmpOp::Eq, AF_ALG + 1)],
            &[cmp(0, Width::U32, CmpOp::Gt, AF_VSOCK)],
        ],
    ),
    // Only the personalities programs ask for: Linux, 32-bit (linux32/setarch), UNAME26, both,
    // and the query 0xffffffff. Others turn off ASLR or make data executable.
    (
        "personality",
        &[
            &[cmp(0, Width::U32, CmpOp::Eq, 0)],
            &[cmp(0, Width::U32, CmpOp::Eq, PER_LINUX32)],
            &[cmp(0, Width::U32, CmpOp::Eq, UNAME26)],
            &[cmp(0, Width::U32, CmpOp::Eq, UNAME26 | PER_LINUX32)],
            &[cmp(0, Width::U32, CmpOp::Eq, 0xffff_ffff)],
        ],
    ),
];

// ---------------------------------------------------------------------------------------------
// What the default blacklists deny: the calls docker's default profile refuses a container with
// the default capabilities (the complement of the whitelist), and the same argument filters
// turned around.

/// Denied whatever the arguments.
const DENIED: &[&str] = &[
    // The machine: boot, kernel modules, swap, accounting, kernel log, port I/O.
    "acct",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "query_module",
    "reboot",
    "swapoff",
    "swapon",
    "syslog",
    "vhangup",
    // The host's clock is not namespaced.
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    // Mounts and namespaces: the container's walls.
    "clone3",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "pivot_root",
    "setdomainname",
    "sethostname",
    "setns",
    "umount2",
    "unshare",
    // The kernel keyring is not namespaced.
    "add_key",
    "keyctl",
    "request_key",
    // Big kernel attack surface: eBPF, perf, userfaultfd (race widening in exploits),
    // io_uring, uprobes.
    "bpf",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "lookup_dcookie",
    "perf_event_open",
    "uprobe",
    "userfaultfd",
    // Other processes' insides (CAP_SYS_PTRACE in docker).
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    // Files by handle, bypassing path permissions (CAP_DAC_READ_SEARCH), quotas, fanotify.
    "fanotify_init",
    "open_by_handle_at",
    "quotactl",
    "quotactl_fd",
    // NUMA placement (CAP_SYS_NICE in docker).
    "get_mempolicy",
    "mbind",
    "migrate_pages",
    "move_pages",
    "set_mempolicy",
    "set_mempolicy_home_node",
    // Security-module attributes.
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lsm_set_self_attr",
    // Obsolete interfaces to kernel internals.
    "_sysctl",
    "nfsservctl",
    "sysfs",
    "uselib",
    "ustat",
];

/// Denied for some arguments only: the complement of [`ALLOW_FILTERED`].
const DENY_FILTERED: &[(&str, &[&[ArgCmp]])] = &[
    (
        "clone",
        &[
            &[clone_flag(CLONE_NEWNS)],
            &[clone_flag(CLONE_NEWCGROUP)],
            &[clone_flag(CLONE_NEWUTS)],
            &[clone_flag(CLONE_NEWIPC)],
            &[clone_flag(CLONE_NEWUSER)],
            &[clone_flag(CLONE_NEWPID)],
            &[clone_flag(CLONE_NEWNET)],
        ],
    ),
    (
        "socket",
        &[
            &[cmp(0, Width::U32, CmpOp::Eq, AF_ALG)],
            &[cmp(0, Width::U32, CmpOp::Eq, AF_VSOCK)],
        ],
    ),
    (
        "personality",
        &[&[
            cmp(0, Width::U32, CmpOp::Ne, 0),
            cmp(0, Width::U32, CmpOp::Ne, PER_LINUX32),
            cmp(0, Width::U32, CmpOp::Ne, UNAME26),
            cmp(0, Width::U32, CmpOp::Ne, UNAME26 | PER_LINUX32),
            cmp(0, Width::U32, CmpOp::Ne, 0xffff_ffff),
        ]],
    ),
];

// ---------------------------------------------------------------------------------------------
// systemd's sets (systemd 252), under rkt's names for them.

const SD_CHOWN: &[&str] = &["chown", "fchown", "fchownat", "lchown"];
const SD_CLOCK: &[&str] = &[
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
    "settimeofday",
];
const SD_MODULE: &[&str] = &["delete_module", "finit_module", "init_module"];
const SD_RAW_IO: &[&str] = &["ioperm", "iopl"];
const SD_REBOOT: &[&str] = &["kexec_file_load", "kexec_load", "reboot"];
const SD_SWAP: &[&str] = &["swapoff", "swapon"];
/// `@privileged` besides the sets it includes.
const SD_PRIVILEGED: &[&str] = &[
    "_sysctl",
    "acct",
    "bpf",
    "capset",
    "chroot",
    "fanotify_init",
    "fanotify_mark",
    "nfsservctl",
    "open_by_handle_at",
    "pivot_root",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "setfsuid",
    "setgroups",
    "sethostname",
    "setresuid",
    "setreuid",
    "setuid",
    "vhangup",
];
/// `@default`: what every process needs to start and exit.
const SD_DEFAULT: &[&str] = &[
    "arch_prctl",
    "brk",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "execve",
    "exit",
    "exit_group",
    "futex",
    "futex_time64",
    "futex_waitv",
    "get_robust_list",
    "get_thread_area",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getsid",
    "gettid",
    "gettimeofday",
    "getuid",
    "membarrier",
    "mmap",
    "mprotect",
    "munmap",
    "nanosleep",
    "pause",
    "prlimit64",
    "restart_syscall",
    "rseq",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "time",
    "uretprobe",
];
const SD_MOUNT: &[&str] = &[
    "chroot",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "pivot_root",
    "umount2",
];
/// Never implemented by Linux, kept as numbers only.
const UNIMPLEMENTED: &[&str] = &[
    "afs_syscall",
    "getpmsg",
    "putpmsg",
    "security",
    "tuxcall",
    "vserver",
];
const SD_OBSOLETE: &[&str] = &[
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "sysfs",
    "uselib",
    "ustat",
];
const SD_PROCESS: &[&str] = &[
    "capget",
    "clone",
    "clone3",
    "execveat",
    "fork",
    "getrusage",
    "kill",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "setns",
    "tgkill",
    "times",
    "tkill",
    "unshare",
    "vfork",
    "wait4",
    "waitid",
];

// ---------------------------------------------------------------------------------------------
// Constants from the kernel's uapi headers (identical on x86-64 and aarch64).

const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;
const PER_LINUX32: u64 = 0x0008;
const UNAME26: u64 = 0x0002_0000;
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
const CLONE_NEWUTS: u64 = 0x0400_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;
const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET;

/// clone's flags (argument 0 on x86-64 and aarch64) ask for no new namespace.
const CLONE_FLAGS_HAVE_NO_NAMESPACE: ArgCmp =
    cmp(0, Width::U64, CmpOp::MaskedEq(CLONE_NAMESPACES), 0);

/// clone's flags ask for namespace `flag`.
const fn clone_flag(flag: u64) -> ArgCmp {
    cmp(0, Width::U64, CmpOp::MaskedEq(flag), flag)
}

const fn cmp(arg: u8, width: Width, op: CmpOp, value: u64) -> ArgCmp {
    ArgCmp {
        arg,
        width,
        op,
        value,
    }
}

/// The group called `name`.
pub(super) fn find(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}
