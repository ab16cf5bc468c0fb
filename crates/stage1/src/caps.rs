//! Linux capabilities of an app: the set it runs with, and how a process takes it on.
//!
//! # Which set
//!
//! [`resolve`] follows rkt (and the appc spec):
//! - with no isolator and no flag, an app gets [`CapSet::rkt_default`] (the appc default set);
//! - the image's `os/linux/capabilities-retain-set` isolators give exactly their union, its
//!   `os/linux/capabilities-remove-set` isolators take their union away from the default set,
//!   and an image with both kinds is refused;
//! - `--caps-retain` / `--caps-remove` (see [`CapsOverride::from_flags`]; they exclude each
//!   other) replace whatever the image says;
//! - `--insecure-options=capabilities` grants every capability, whatever the rest says.
//!
//! Names are accepted with or without `CAP_` and in any case (`net_admin`, `CAP_NET_ADMIN`).
//!
//! # Taking it on
//!
//! [`apply`] is called by the single-threaded process that is about to exec the app, in this
//! order (each step needs what the one before still had):
//!
//! 1. [`keep_across_setuid`] while still root with full capabilities;
//! 2. `setgroups`, `setgid`, `setuid` to the app's user (needs CAP_SETGID/CAP_SETUID, still
//!    there; keep-caps makes the permitted set survive the switch away from uid 0, the
//!    effective set is emptied by the kernel);
//! 3. [`apply`] with the resolved set (raises effective from permitted to get CAP_SETPCAP back,
//!    trims the bounding set, sets inheritable, effective and permitted, and for a non-root app
//!    the ambient set, which is what carries capabilities across `execve` for a non-root user);
//! 4. [`crate::seccomp::install`] (it sets `no_new_privs` itself, so it needs no capability and
//!    the filter need not allow `capset` or `prctl`);
//! 5. `execve`. Nothing between 3 and 5 may need a capability outside the set.
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

pub use ::caps::Capability;
use ::caps::{CapSet as Kind, CapsHashSet};
use rkt_types::appc::Isolator;
use serde::{Deserialize, Serialize};

/// appc isolator naming the only capabilities an app keeps.
pub const RETAIN_ISOLATOR: &str = "os/linux/capabilities-retain-set";
/// appc isolator naming capabilities taken away from the default set.
pub const REMOVE_ISOLATOR: &str = "os/linux/capabilities-remove-set";

/// The highest capability number we can name (CAP_CHECKPOINT_RESTORE, Linux 5.9). A kernel that
/// knows more would leave the extra ones in the bounding set, so [`apply`] refuses it.
const LAST_KNOWN_CAP: u8 = 40;

/// rkt's (and appc's) default set: what a container needs to behave like a small Unix system
/// (own files, users, devices nodes, raw sockets for ping, low ports), nothing that reaches the
/// host (no CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, ...).
const RKT_DEFAULT: [Capability; 14] = [
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_KILL,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETFCAP,
    Capability::CAP_SYS_CHROOT,
];

/// What went wrong with capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A name that is no Linux capability.
    #[error(
        "unknown capability {name:?} in {context}: use a name from capabilities(7), such as \
         CAP_NET_ADMIN or net_admin"
    )]
    Unknown {
        /// The name as given.
        name: String,
        /// Where it was (flag or isolator).
        context: String,
    },
    /// An empty list, which appc does not allow.
    #[error("{0} lists no capability: name at least one (comma-separated, e.g. CAP_NET_ADMIN)")]
    Empty(String),
    /// Both CLI flags on one app.
    #[error("--caps-retain and --caps-remove cannot be used together on one app: use one of them")]
    RetainAndRemove,
    /// Both isolator kinds in one image.
    #[error(
        "the image has both {RETAIN_ISOLATOR} and {REMOVE_ISOLATOR} isolators, which appc \
         forbids; override them with --caps-retain or --caps-remove"
    )]
    ImageRetainAndRemove,
    /// An isolator value that is not `{"set": [...]}`.
    #[error("the image's {name} isolator is not of the form {{\"set\": [\"CAP_...\"]}}")]
    BadIsolator {
        /// Isolator name.
        name: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The running kernel has capabilities we cannot name, so we cannot drop them.
    #[error(
        "this kernel knows capabilities up to number {0}, rkt only up to {LAST_KNOWN_CAP}; \
         refusing to start an app that could keep the unknown ones (update rkt)"
    )]
    KernelTooNew(u8),
    /// The process lacks capabilities it is asked to keep.
    #[error(
        "cannot give the app {0}: this process does not hold it (run rkt as root, and call \
         keep_across_setuid before changing user)"
    )]
    NotHeld(String),
    /// A capability syscall failed.
    #[error("could not {step}")]
    Syscall {
        /// What we were doing.
        step: &'static str,
        /// The failure.
        #[source]
        source: ::caps::errors::CapsError,
    },
}

/// A set of capabilities. Serialised as the sorted list of names (`["CAP_CHOWN", ...]`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct CapSet {
    /// Bit n set = capability number n.
    bits: u64,
}

impl CapSet {
    /// No capability.
    pub fn empty() -> Self {
        CapSet::default()
    }

    /// rkt's default set: AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FSETID, FOWNER, KILL, MKNOD,
    /// NET_RAW, NET_BIND_SERVICE, SETUID, SETGID, SETPCAP, SETFCAP, SYS_CHROOT.
    pub fn rkt_default() -> Self {
        RKT_DEFAULT.into_iter().collect()
    }

    /// Every capability we know (`--insecure-options=capabilities`).
    pub fn all() -> Self {
        ::caps::all().into_iter().collect()
    }

    /// Parses a comma-separated list such as `CAP_NET_ADMIN,sys_time`; `context` names the
    /// flag or isolator in errors.
    pub fn parse_list(list: &str, context: &str) -> Result<Self, CapsError> {
        Self::from_names(list.split(','), context)
    }

    /// Parses names (with or without `CAP_`, any case). An empty list is an error, as in appc.
    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
        context: &str,
    ) -> Result<Self, CapsError> {
        let mut set = CapSet::empty();
        let mut any = false;
        for name in names {
            let name = name.trim();
            let cap = Capability::from_str(&::caps::to_canonical(name)).map_err(|_| {
                CapsError::Unknown {
                    name: name.to_owned(),
                    context: context.to_owned(),
                }
            })?;
            set.insert(cap);
            any = true;
        }
        if !any {
            return Err(CapsError::Empty(context.to_owned()));
        }
        Ok(set)
    }

    /// Whether `cap` is in the set.
    pub fn contains(&self, cap: Capability) -> bool {
        self.bits & cap.bitmask() != 0
    }

    /// Adds `cap`.
    pub fn insert(&mut self, cap: Capability) {
        self.bits |= cap.bitmask();
    }

    /// Takes `cap` away.
    pub fn remove(&mut self, cap: Capability) {
        self.bits &= !cap.bitmask();
    }

    /// The capabilities, in kernel number order.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        let mut known: Vec<Capability> = ::caps::all().into_iter().collect();
        known.sort_by_key(Capability::index);
        known.into_iter().filter(|c| self.contains(*c))
    }

    /// The names (`CAP_CHOWN`, ...), in kernel number order.
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|c| c.to_string()).collect()
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = CapSet::empty();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl From<CapSet> for Vec<String> {
    fn from(set: CapSet) -> Self {
        set.names()
    }
}

impl TryFrom<Vec<String>> for CapSet {
    type Error = CapsError;

    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        // The run request may legitimately carry an empty set (retain nothing after a remove).
        let mut set = CapSet::empty();
        for name in &names {
            set = set.union(CapSet::from_names([name.as_str()], "the capability set")?);
        }
        Ok(set)
    }
}

impl CapSet {
    fn union(self, other: CapSet) -> CapSet {
        CapSet {
            bits: self.bits | other.bits,
        }
    }

    fn minus(self, other: CapSet) -> CapSet {
        CapSet {
            bits: self.bits & !other.bits,
        }
    }
}

/// The per-app command-line override: `--caps-retain` or `--caps-remove`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapsOverride {
    /// Keep exactly these.
    Retain(CapSet),
    /// The default set without these.
    Remove(CapSet),
}

impl CapsOverride {
    /// Builds the override from the values of `--caps-retain` and `--caps-remove` (comma
    /// lists), refusing both at once.
    pub fn from_flags(
        retain: Option<&str>,
        remove: Option<&str>,
    ) -> Result<Option<Self>, CapsError> {
        match (retain, remove) {
            (Some(_), Some(_)) => Err(CapsError::RetainAndRemove),
            (Some(list), None) => Ok(Some(CapsOverride::Retain(CapSet::parse_list(
                list,
                "--caps-retain",
            )?))),
            (None, Some(list)) => Ok(Some(CapsOverride::Remove(CapSet::parse_list(
                list,
                "--caps-remove",
            )?))),
            (None, None) => Ok(None),
        }
    }

    fn apply_to_default(self) -> CapSet {
        match self {
            CapsOverride::Retain(set) => set,
            CapsOverride::Remove(set) => CapSet::rkt_default().minus(set),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IsolatorValue {
    set: Vec<String>,
}

/// The capability set of an app from its image's isolators, the CLI override and
/// `--insecure-options=capabilities` (see the module documentation for the precedence).
pub fn resolve(
    isolators: &[Isolator],
    cli: Option<&CapsOverride>,
    insecure: bool,
) -> Result<CapSet, CapsError> {
    if insecure {
        return Ok(CapSet::all());
    }
    if let Some(cli) = cli {
        return Ok(cli.apply_to_default());
    }
    let mut retain: Option<CapSet> = None;
    let mut remove: Option<CapSet> = None;
    for iso in isolators {
        let slot = match iso.name.as_str() {
            RETAIN_ISOLATOR => &mut retain,
            REMOVE_ISOLATOR => &mut remove,
            _ => continue,
        };
        let value: IsolatorValue =
            serde_json::from_value(iso.value.clone()).map_err(|source| CapsError::BadIsolator {
                name: iso.name.clone(),
                source,
            })?;
        let context = format!("the image's {} isolator", iso.name);
        let set = CapSet::from_names(value.set.iter().map(String::as_str), &context)?;
        *slot = Some(slot.unwrap_or_default().union(set));
    }
    match (retain, remove) {
        (Some(_), Some(_)) => Err(CapsError::ImageRetainAndRemove),
        (Some(set), None) => Ok(CapsOverride::Retain(set).apply_to_default()),
        (None, Some(set)) => Ok(CapsOverride::Remove(set).apply_to_default()),
        (None, None) => Ok(CapSet::rkt_default()),
    }
}

/// Step 1 of the order in the module documentation: keep the permitted set across the
/// coming `setuid` away from root (`PR_SET_KEEPCAPS`, for the calling thread).
pub fn keep_across_setuid() -> Result<(), CapsError> {
    ::caps::securebits::set_keepcaps(true).map_err(|source| CapsError::Syscall {
        step: "set keep-caps before changing user",
        source,
    })
}

/// Makes `set` the capabilities the calling thread will exec the app with (step 3 of the order
/// in the module documentation; call it after `setuid`, before seccomp and `execve`).
///
/// The bounding set loses everything outside `set` (so not even a setuid-root or file-capability
/// binary can regain it), inheritable, permitted and effective become `set`, and for a non-root
/// app (`for_uid0 == false`) the ambient set becomes `set` too: without it a non-root process
/// loses all its capabilities at `execve` (a non-root web server with CAP_NET_BIND_SERVICE
/// would not keep it). A root app gets its set at exec from inheritable ∪ bounding, both `set`.
///
/// Capabilities the running kernel does not have are skipped. Fails if the kernel knows
/// capabilities we cannot name, or if the thread does not hold part of `set`.
pub fn apply(set: &CapSet, for_uid0: bool) -> Result<(), CapsError> {
    let supported = kernel_caps()?;
    let target: CapsHashSet = set.iter().filter(|c| supported.contains(c)).collect();

    let permitted = read(Kind::Permitted, "read the permitted capabilities")?;
    // "Every capability" (--insecure-options=capabilities) means every one this process holds:
    // root may lack some (here CAP_SYS_RESOURCE, see DESIGN.md), and that must not stop the
    // app. A set that names specific capabilities we lack is an error instead.
    let target = if target.is_superset(&permitted) {
        permitted.clone()
    } else {
        if let Some(missing) = target.iter().find(|c| !permitted.contains(c)) {
            return Err(CapsError::NotHeld(missing.to_string()));
        }
        target
    };
    // setuid away from root emptied the effective set; CAP_SETPCAP must be effective to trim
    // the bounding set and to put into inheritable what was not there.
    write(
        Kind::Effective,
        &permitted,
        "raise the effective capabilities",
    )?;
    for cap in &supported {
        if !target.contains(cap) {
            ::caps::drop(None, Kind::Bounding, *cap).map_err(|source| CapsError::Syscall {
                step: "drop a capability from the bounding set",
                source,
            })?;
        }
    }
    write(
        Kind::Inheritable,
        &target,
        "set the inheritable capabilities",
    )?;
    // Effective before permitted: the kernel wants effective ⊆ permitted after every call.
    write(Kind::Effective, &target, "set the effective capabilities")?;
    write(Kind::Permitted, &target, "set the permitted capabilities")?;
    if !for_uid0 {
        ::caps::clear(None, Kind::Ambient).map_err(|source| CapsError::Syscall {
            step: "clear the ambient capabilities",
            source,
        })?;
        for cap in &target {
            ::caps::raise(None, Kind::Ambient, *cap).map_err(|source| CapsError::Syscall {
                step: "raise an ambient capability",
                source,
            })?;
        }
    }
    Ok(())
}

fn read(kind: Kind, step: &'static str) -> Result<CapsHashSet, CapsError> {
    ::caps::read(None, kind).map_err(|source| CapsError::Syscall { step, source })
}

fn write(kind: Kind, value: &CapsHashSet, step: &'static str) -> Result<(), CapsError> {
    ::caps::set(None, kind, value).map_err(|source| CapsError::Syscall { step, source })
}

/// The capabilities this kernel has: numbers up to `cap_last_cap` (one read, where probing
/// each in the bounding set would be 41 `prctl`s per app start). A kernel newer than our
/// capability table (which covers Linux up to 6.18) could hold capabilities we can neither
/// name nor drop, and is refused. Without `/proc` (not mounted yet) they are probed, and the
/// table is relied on.
fn kernel_caps() -> Result<HashSet<Capability>, CapsError> {
    let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap") else {
        return Ok(::caps::runtime::thread_all_supported());
    };
    match text.trim().parse::<u8>() {
        Ok(last) if last > LAST_KNOWN_CAP => Err(CapsError::KernelTooNew(last)),
        Ok(last) => Ok(::caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect()),
        Err(_) => Ok(::caps::runtime::thread_all_supported()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn iso(name: &str, value: serde_json::Value) -> Isolator {
        Isolator {
            name: name.to_owned(),
            value,
        }
    }

    #[test]
    fn the_kernels_capabilities_read_from_cap_last_cap_are_the_ones_it_has() {
        assert_eq!(
            kernel_caps().unwrap(),
            ::caps::runtime::thread_all_supported()
        );
    }

    fn set(names: &[&str]) -> CapSet {
        CapSet::from_names(names.iter().copied(), "test").unwrap()
    }

    #[test]
    fn names_parse_with_or_without_prefix_in_any_case() {
        let s = CapSet::parse_list("CAP_NET_ADMIN, net_raw,Sys_Time,cap_chown", "--caps-retain")
            .unwrap();
        assert_eq!(
            s.names(),
            ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_TIME"]
        );
        // Every capability Linux has (up to CAP_CHECKPOINT_RESTORE) has a name.
        assert_eq!(CapSet::all().names().len(), usize::from(LAST_KNOWN_CAP) + 1);
    }

    #[test]
    fn unknown_and_empty_names_are_refused_with_where_they_were() {
        let err = CapSet::parse_list("CAP_CHOWN,CAP_FLY", "--caps-retain").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"CAP_FLY\"") && msg.contains("--caps-retain"),
            "{msg}"
        );
        assert!(matches!(
            CapSet::parse_list("CAP_CHOWN,", "--caps-remove"),
            Err(CapsError::Unknown { .. })
        ));
        assert!(matches!(
            CapSet::from_names([], "x"),
            Err(CapsError::Empty(_))
        ));
    }

    #[test]
    fn default_set_is_rkts() {
        let d = CapSet::rkt_default();
        assert_eq!(d.names().len(), 14);
        for c in [
            "AUDIT_WRITE",
            "CHOWN",
            "DAC_OVERRIDE",
            "FSETID",
            "FOWNER",
            "KILL",
            "MKNOD",
            "NET_RAW",
            "NET_BIND_SERVICE",
            "SETUID",
            "SETGID",
            "SETPCAP",
            "SETFCAP",
            "SYS_CHROOT",
        ] {
            assert!(
                d.contains(Capability::from_str(&format!("CAP_{c}")).unwrap()),
                "{c}"
            );
        }
        assert!(!d.contains(Capability::CAP_SYS_ADMIN));
        assert_eq!(resolve(&[], None, false).unwrap(), d);
    }

    #[test]
    fn image_isolators_retain_or_remove() {
        let retain = [
            iso(RETAIN_ISOLATOR, json!({"set": ["CAP_NET_ADMIN"]})),
            iso("resource/memory", json!({"limit": "1G"})),
            iso(RETAIN_ISOLATOR, json!({"set": ["sys_time"]})),
        ];
        assert_eq!(
            resolve(&retain, None, false).unwrap(),
            set(&["NET_ADMIN", "SYS_TIME"])
        );
        let remove = [iso(
            REMOVE_ISOLATOR,
            json!({"set": ["CAP_MKNOD", "CAP_NET_RAW"]}),
        )];
        let got = resolve(&remove, None, false).unwrap();
        assert_eq!(got.names().len(), 12);
        assert!(!got.contains(Capability::CAP_MKNOD) && got.contains(Capability::CAP_CHOWN));
        let both = [retain[0].clone(), remove[0].clone()];
        assert!(matches!(
            resolve(&both, None, false),
            Err(CapsError::ImageRetainAndRemove)
        ));
        let bad = [iso(RETAIN_ISOLATOR, json!(["CAP_CHOWN"]))];
        assert!(matches!(
            resolve(&bad, None, false),
            Err(CapsError::BadIsolator { .. })
        ));
        let empty = [iso(RETAIN_ISOLATOR, json!({"set": []}))];
        assert!(matches!(
            resolve(&empty, None, false),
            Err(CapsError::Empty(_))
        ));
    }

    #[test]
    fn cli_replaces_the_image_and_insecure_grants_everything() {
        let image = [iso(RETAIN_ISOLATOR, json!({"set": ["CAP_SYS_ADMIN"]}))];
        let retain = CapsOverride::from_flags(Some("CAP_KILL"), None).unwrap();
        assert_eq!(
            resolve(&image, retain.as_ref(), false).unwrap(),
            set(&["KILL"])
        );
        let remove = CapsOverride::from_flags(None, Some("chown"))
            .unwrap()
            .unwrap();
        let got = resolve(&image, Some(&remove), false).unwrap();
        assert!(!got.contains(Capability::CAP_SYS_ADMIN));
        assert!(!got.contains(Capability::CAP_CHOWN) && got.contains(Capability::CAP_KILL));
        assert!(matches!(
            CapsOverride::from_flags(Some("CAP_KILL"), Some("CAP_CHOWN")),
            Err(CapsError::RetainAndRemove)
        ));
        assert_eq!(CapsOverride::from_flags(None, None).unwrap(), None);
        // An image that would not even parse does not matter when everything is granted.
        let broken = [iso(RETAIN_ISOLATOR, json!(42))];
        assert_eq!(resolve(&broken, None, true).unwrap(), CapSet::all());
    }

    #[test]
    fn serialises_as_sorted_names() {
        let s = set(&["SYS_CHROOT", "chown"]);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"["CAP_CHOWN","CAP_SYS_CHROOT"]"#);
        assert_eq!(serde_json::from_str::<CapSet>(&text).unwrap(), s);
        assert_eq!(
            serde_json::from_str::<CapSet>("[]").unwrap(),
            CapSet::empty()
        );
        assert!(serde_json::from_str::<CapSet>(r#"["CAP_NOPE"]"#).is_err());
        let o = CapsOverride::Remove(s);
        let back: CapsOverride = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }
}
