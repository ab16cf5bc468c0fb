//! The seccomp filter of an app: the named syscall groups as reviewed data (`groups.rs`, one
//! comment per non-obvious entry), the policy a pod's app gets, and its compilation to BPF.
//!
//! # Which policy
//!
//! [`resolve`] follows rkt:
//! - no isolator and no flag: retain [`DEFAULT_GROUP`] (`@rkt/default-whitelist`), errno EPERM;
//! - the image's `os/linux/seccomp-retain-set` or `os/linux/seccomp-remove-set` isolator
//!   (`{"set": [...], "errno": "ENAME"}`; at most one per app, as appc says);
//! - `--seccomp mode=retain|remove[,errno=ENAME],sys1,@group,...` ([`SeccompSpec::parse_cli`])
//!   replaces the image's isolator;
//! - `--insecure-options=seccomp`: no filter at all.
//!
//! A set names syscalls and groups: `@rkt/default-whitelist`, `@rkt/default-blacklist`,
//! `@docker/default-whitelist`, `@docker/default-blacklist`, `@systemd/{clock,
//! default-whitelist, io-event, mount, network-io, obsolete, privileged, process, raw-io}`, and
//! appc's `@appc.io/all` and `@appc.io/empty`. As in rkt, retaining `@appc.io/all` means no
//! filter, and removing only `@appc.io/empty` means the default policy. Unknown syscall or group
//! names are errors; a syscall that only another supported architecture has is skipped when
//! compiling for this one.
//!
//! # What a denied call gets
//!
//! rkt's filter killed the app with SIGSYS unless an errno was chosen. We return an errno
//! instead, EPERM unless `errno=` says otherwise, as docker and the OCI runtimes do: libc
//! probes newer calls and falls back on failure, and a kill leaves a user with "Bad system
//! call" and no hint. Three cases answer ENOSYS ("this kernel has no such call") whatever the
//! errno, because that is the one answer libc falls back on:
//! - `clone3`, unless a retain set names it: its flags are in memory a filter cannot read, so
//!   it cannot be limited the way `clone` is; glibc's threads then use `clone`;
//! - in a retain set, syscall numbers above the newest in our table (a newer kernel's calls);
//! - on x86-64, the x32 ABI's syscall numbers (we do not run x32 programs, and a remove set
//!   would not match them).
//!
//! 32-bit compat calls (`int 0x80` on x86-64, AArch32 on arm64) kill the process: the filter
//! cannot read them by the native numbers.
//!
//! # Installing
//!
//! [`install`] must be called by the thread that then execs the app, after
//! [`crate::caps::apply`]. It sets `no_new_privs` first (seccompiler does, unconditionally),
//! which is what lets an unprivileged thread install a filter; the consequence is that apps
//! with a filter always run with `no_new_privs` (setuid binaries and file capabilities do not
//! raise privileges inside them), which rkt only forced on non-root apps.

mod bpf;
mod groups;
mod table;

use std::collections::BTreeMap;
use std::fmt;

use rkt_types::appc::Isolator;
use serde::{Deserialize, Serialize};

pub use self::bpf::{BpfProgram, compile, install};
pub use self::table::Arch;

/// appc isolator listing the only syscalls allowed.
pub const RETAIN_ISOLATOR: &str = "os/linux/seccomp-retain-set";
/// appc isolator listing syscalls denied.
pub const REMOVE_ISOLATOR: &str = "os/linux/seccomp-remove-set";
/// The group an app retains when nothing else is said.
pub const DEFAULT_GROUP: &str = "@rkt/default-whitelist";

const APPC_ALL: &str = "@appc.io/all";
const APPC_EMPTY: &str = "@appc.io/empty";

/// What went wrong with a seccomp setting.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// `--seccomp` without `mode=`.
    #[error("--seccomp {0:?} has no mode: start it with mode=retain or mode=remove")]
    MissingMode(String),
    /// A `mode=` other than retain or remove.
    #[error("--seccomp mode {0:?} is not valid: use mode=retain or mode=remove")]
    BadMode(String),
    /// A `key=value` item other than mode and errno.
    #[error("--seccomp option {0:?} is not known: only mode= and errno= take a value")]
    UnknownOption(String),
    /// `mode=` or `errno=` twice.
    #[error("--seccomp gives {0}= more than once")]
    DuplicateOption(&'static str),
    /// An errno name we do not know.
    #[error("unknown errno {0:?}: use a name from errno(3), such as EPERM, EACCES or ENOSYS")]
    UnknownErrno(String),
    /// A set without any entry.
    #[error("{0} lists no syscall: name at least one syscall or @group")]
    EmptySet(String),
    /// Syscall names no supported architecture has.
    #[error("unknown syscall names in {context}: {}; they are not Linux syscalls on x86_64 or aarch64", .names.join(", "))]
    UnknownSyscalls {
        /// Where they were.
        context: String,
        /// The names.
        names: Vec<String>,
    },
    /// A `@group` we do not know.
    #[error("unknown syscall group {name:?} in {context}: known groups are {}", known_groups().join(", "))]
    UnknownGroup {
        /// Where it was.
        context: String,
        /// The group.
        name: String,
    },
    /// More than one seccomp isolator in an image.
    #[error(
        "the image has more than one seccomp isolator ({RETAIN_ISOLATOR} or {REMOVE_ISOLATOR}); \
         appc allows one per app (override it with --seccomp)"
    )]
    TooManyIsolators,
    /// An isolator value of the wrong shape.
    #[error(
        "the image's {name} isolator is not of the form {{\"set\": [...], \"errno\": \"ENAME\"}}"
    )]
    BadIsolator {
        /// Isolator name.
        name: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// This machine's architecture has no filter support.
    #[error(
        "seccomp filters are only built for x86_64 and aarch64; this is {0} (use --insecure-options=seccomp)"
    )]
    UnsupportedArch(&'static str),
    /// The policy does not make a valid filter (an empty rule, an argument past the sixth, or
    /// more instructions than the kernel takes).
    #[error("could not compile the seccomp filter")]
    Compile(#[source] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("could not install the seccomp filter (does this kernel have CONFIG_SECCOMP_FILTER?)")]
    Install(#[source] seccompiler::Error),
}

/// Whether a set lists what is allowed or what is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only the listed syscalls are allowed.
    Retain,
    /// The listed syscalls are denied, the rest allowed.
    Remove,
}

/// An errno, by name (`EPERM`), checked to exist. Serialised as the name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Errno {
    name: String,
    number: u32,
}

impl Errno {
    /// The errno called `name` (as in errno(3); glibc's `ENOTSUP` alias is accepted).
    pub fn from_name(name: &str) -> Result<Self, SeccompError> {
        match table::errno_number(name) {
            Some(number) => Ok(Errno {
                name: name.to_owned(),
                number,
            }),
            None => Err(SeccompError::UnknownErrno(name.to_owned())),
        }
    }

    /// EPERM, the default answer to a denied call.
    pub fn eperm() -> Self {
        Errno {
            name: "EPERM".to_owned(),
            number: 1,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number.
    pub fn number(&self) -> u32 {
        self.number
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.number)
    }
}

impl TryFrom<String> for Errno {
    type Error = SeccompError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Errno::from_name(&name)
    }
}

impl From<Errno> for String {
    fn from(e: Errno) -> Self {
        e.name
    }
}

/// How wide an argument is compared: an `int` argument must be compared on its low 32 bits,
/// since the upper half of the register is not defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Width {
    /// The low 32 bits.
    U32,
    /// All 64 bits.
    U64,
}

/// A comparison of a syscall argument with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// `arg == value`
    Eq,
    /// `arg != value`
    Ne,
    /// `arg < value` (unsigned)
    Lt,
    /// `arg <= value` (unsigned)
    Le,
    /// `arg > value` (unsigned)
    Gt,
    /// `arg >= value` (unsigned)
    Ge,
    /// `arg & mask == value`
    MaskedEq(u64),
}

/// One argument condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgCmp {
    /// Argument index, 0 to 5.
    pub arg: u8,
    /// Compared width.
    pub width: Width,
    /// Comparison.
    pub op: CmpOp,
    /// Constant.
    pub value: u64,
}

/// Which invocations of a syscall a policy matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// Every invocation.
    Always,
    /// Invocations for which one of the rules holds, a rule being a conjunction of conditions.
    AnyOf(Vec<Vec<ArgCmp>>),
}

/// A resolved filter: what stage0 puts in the run request and stage1 compiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompPolicy {
    /// Whether [`syscalls`](Self::syscalls) is what is allowed or what is denied.
    pub mode: Mode,
    /// What a denied call returns.
    pub errno: Errno,
    /// The matched syscalls, by name.
    pub syscalls: BTreeMap<String, Match>,
}

/// A seccomp setting as written, before groups are expanded: from `--seccomp` or an isolator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompSpec {
    /// Retain or remove.
    pub mode: Mode,
    /// `errno=`, if given.
    pub errno: Option<Errno>,
    /// Syscall names and `@groups`, as given.
    pub set: Vec<String>,
}

impl SeccompSpec {
    /// Parses `--seccomp mode=retain|remove[,errno=ENAME],sys1,@group,...` (items in any
    /// order).
    pub fn parse_cli(value: &str) -> Result<Self, SeccompError> {
        let mut mode = None;
        let mut errno = None;
        let mut set = Vec::new();
        for item in value.split(',').map(str::trim) {
            match item.split_once('=') {
                Some(("mode", m)) => {
                    if mode.is_some() {
                        return Err(SeccompError::DuplicateOption("mode"));
                    }
                    mode = Some(match m {
                        "retain" => Mode::Retain,
                        "remove" => Mode::Remove,
                        other => return Err(SeccompError::BadMode(other.to_owned())),
                    });
                }
                Some(("errno", e)) => {
                    if errno.is_some() {
                        return Err(SeccompError::DuplicateOption("errno"));
                    }
                    errno = Some(Errno::from_name(e)?);
                }
                Some(_) => return Err(SeccompError::UnknownOption(item.to_owned())),
                None => set.push(item.to_owned()),
            }
        }
        let mode = mode.ok_or_else(|| SeccompError::MissingMode(value.to_owned()))?;
        let spec = SeccompSpec { mode, errno, set };
        spec.check("--seccomp")?;
        Ok(spec)
    }

    /// The image's seccomp isolator, if any (more than one is an error).
    pub fn from_isolators(isolators: &[Isolator]) -> Result<Option<Self>, SeccompError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Value {
            set: Vec<String>,
            #[serde(default)]
            errno: Option<String>,
        }
        let mut found = None;
        for iso in isolators {
            let mode = match iso.name.as_str() {
                RETAIN_ISOLATOR => Mode::Retain,
                REMOVE_ISOLATOR => Mode::Remove,
                _ => continue,
            };
            if found.is_some() {
                return Err(SeccompError::TooManyIsolators);
            }
            let value: Value = serde_json::from_value(iso.value.clone()).map_err(|source| {
                SeccompError::BadIsolator {
                    name: iso.name.clone(),
                    source,
                }
            })?;
            let errno = match value.errno.as_deref() {
                None | Some("") => None,
                Some(name) => Some(Errno::from_name(name)?),
            };
            let spec = SeccompSpec {
                mode,
                errno,
                set: value.set,
            };
            spec.check(&format!("the image's {} isolator", iso.name))?;
            found = Some(spec);
        }
        Ok(found)
    }

    /// Every name must be a known syscall or group, and there must be at least one.
    fn check(&self, context: &str) -> Result<(), SeccompError> {
        if self.set.is_empty() {
            return Err(SeccompError::EmptySet(context.to_owned()));
        }
        let mut unknown = Vec::new();
        for name in &self.set {
            if name.starts_with('@') {
                if name != APPC_ALL && name != APPC_EMPTY && groups::find(name).is_none() {
                    return Err(SeccompError::UnknownGroup {
                        context: context.to_owned(),
                        name: name.clone(),
                    });
                }
            } else if !table::is_known(name) {
                unknown.push(if name.is_empty() {
                    "\"\" (an empty item)".to_owned()
                } else {
                    name.clone()
                });
            }
        }
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(SeccompError::UnknownSyscalls {
                context: context.to_owned(),
                names: unknown,
            })
        }
    }

    /// Expands the groups; `None` means no filter (a retain set holding `@appc.io/all`).
    pub fn to_policy(&self) -> Result<Option<SeccompPolicy>, SeccompError> {
        self.check("the seccomp set")?;
        let errno = self.errno.clone().unwrap_or_else(Errno::eperm);
        let mut syscalls = BTreeMap::new();
        let mut all = false;
        for name in &self.set {
            match name.as_str() {
                APPC_ALL => all = true,
                APPC_EMPTY => {}
                group if group.starts_with('@') => {
                    if let Some(g) = groups::find(group) {
                        add_group(&mut syscalls, g);
                    }
                }
                syscall => add(&mut syscalls, syscall, Match::Always),
            }
        }
        Ok(match (self.mode, all) {
            (Mode::Retain, true) => None,
            // Everything denied: a retain set of nothing.
            (Mode::Remove, true) => Some(SeccompPolicy {
                mode: Mode::Retain,
                errno,
                syscalls: BTreeMap::new(),
            }),
            // rkt reads "remove nothing" as "the default".
            (Mode::Remove, false) if syscalls.is_empty() => Some(SeccompPolicy {
                errno,
                ..default_policy()
            }),
            (mode, false) => Some(SeccompPolicy {
                mode,
                errno,
                syscalls,
            }),
        })
    }
}

fn add(syscalls: &mut BTreeMap<String, Match>, name: &str, m: Match) {
    let merged = match (syscalls.remove(name), m) {
        (None, m) => m,
        (Some(Match::Always), _) | (_, Match::Always) => Match::Always,
        (Some(Match::AnyOf(mut a)), Match::AnyOf(b)) => {
            for rule in b {
                if !a.contains(&rule) {
                    a.push(rule);
                }
            }
            Match::AnyOf(a)
        }
    };
    syscalls.insert(name.to_owned(), merged);
}

fn add_group(syscalls: &mut BTreeMap<String, Match>, group: &groups::Group) {
    for list in group.lists {
        for name in *list {
            add(syscalls, name, Match::Always);
        }
    }
    for (name, rules) in group.filtered {
        let rules = rules.iter().map(|r| r.to_vec()).collect();
        add(syscalls, name, Match::AnyOf(rules));
    }
}

/// The policy of an app that says nothing: retain [`DEFAULT_GROUP`], deny with EPERM.
pub fn default_policy() -> SeccompPolicy {
    let mut syscalls = BTreeMap::new();
    if let Some(g) = groups::find(DEFAULT_GROUP) {
        add_group(&mut syscalls, g);
    }
    SeccompPolicy {
        mode: Mode::Retain,
        errno: Errno::eperm(),
        syscalls,
    }
}

/// The filter of an app from its image's isolators, the `--seccomp` override and
/// `--insecure-options=seccomp` (see the module documentation). `None`: no filter.
pub fn resolve(
    isolators: &[Isolator],
    cli: Option<&SeccompSpec>,
    insecure: bool,
) -> Result<Option<SeccompPolicy>, SeccompError> {
    if insecure {
        return Ok(None);
    }
    let spec = match cli {
        Some(spec) => Some(spec.clone()),
        None => SeccompSpec::from_isolators(isolators)?,
    };
    match spec {
        Some(spec) => spec.to_policy(),
        None => Ok(Some(default_policy())),
    }
}

/// The names of the groups a set may use.
pub fn known_groups() -> Vec<&'static str> {
    let mut names: Vec<&str> = groups::GROUPS.iter().map(|g| g.name).collect();
    names.extend([APPC_ALL, APPC_EMPTY]);
    names
}

#[cfg(test)]
mod tests;
