//! Pure parsers for `/proc/<pid>/mountinfo` and `/proc/<pid>/cgroup`, and the mapping of a
//! cgroup path onto a mount. No I/O, so they are unit-tested (and fuzzable) on samples of every
//! layout.

use std::path::{Component, Path, PathBuf};

/// A cgroup filesystem mount from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy appears at the mount point (field 4, relative to our
    /// cgroup namespace: `/` for a whole hierarchy, `/docker/<id>` for a bind mount of a part).
    pub root: String,
    /// `true` for cgroup2.
    pub v2: bool,
    /// Super-block options (`rw,cpu,cpuacct`, `rw,xattr,name=systemd`, `rw,nsdelegate`).
    pub options: Vec<String>,
}

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcCgroup {
    /// The hierarchy's controllers (`["cpu", "cpuacct"]`, `["name=systemd"]`); empty for v2.
    pub controllers: Vec<String>,
    /// The process's cgroup in that hierarchy, relative to our cgroup namespace.
    pub path: String,
    /// `true` for the `0::` line.
    pub v2: bool,
}

/// The cgroup mounts in a mountinfo text, in mount order.
pub(crate) fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>, (String, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let bad = |why: &str| (line.to_owned(), why.to_owned());
        // id parent major:minor root mount-point options [optional…] - fstype source super-options
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| bad("no ' - ' separator"))?;
        if sep < 6 || fields.len() < sep + 4 {
            return Err(bad("too few fields"));
        }
        let v2 = match fields[sep + 1] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        out.push(CgroupMount {
            mount_point: PathBuf::from(unescape(fields[4])),
            root: unescape(fields[3]),
            v2,
            options: fields[sep + 3].split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let digit = |k: usize| u32::from(b[i + k] - b'0');
            let v = digit(1) * 64 + digit(2) * 8 + digit(3);
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of a `/proc/<pid>/cgroup` text.
pub(crate) fn parse_proc_cgroup(text: &str) -> Result<Vec<ProcCgroup>, (String, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // hierarchy-id:controller-list:path — the path may itself contain ':'.
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err((line.to_owned(), "expected id:controllers:path".into()));
        };
        if id.parse::<u32>().is_err() || !path.starts_with('/') {
            return Err((line.to_owned(), "expected id:controllers:/path".into()));
        }
        let v2 = id == "0" && ctrls.is_empty();
        if !v2 && ctrls.is_empty() {
            return Err((
                line.to_owned(),
                "a v1 hierarchy without controllers or name".into(),
            ));
        }
        out.push(ProcCgroup {
            controllers: if v2 {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_owned).collect()
            },
            path: path.to_owned(),
            v2,
        });
    }
    Ok(out)
}

/// Whether a v1 mount's options name exactly the hierarchy of `controllers` (a mount holds
/// one hierarchy; options also carry `rw`, `xattr`, `noprefix`, `release_agent=…`).
pub(crate) fn mount_has(mount: &CgroupMount, controllers: &[String]) -> bool {
    !mount.v2
        && controllers
            .iter()
            .all(|c| mount.options.iter().any(|o| o == c))
}

/// The directory of cgroup `path` under a mount whose root is `root`, or `None` when the mount
/// shows another part of the hierarchy (or the path climbs out of our cgroup namespace, which
/// the kernel shows as `/..`).
pub(crate) fn dir_under(mount_point: &Path, root: &str, path: &str) -> Option<PathBuf> {
    let clean = |p: &str| {
        let p = Path::new(p);
        p.is_absolute()
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    if !clean(root) || !clean(path) {
        return None;
    }
    let rel = Path::new(path).strip_prefix(root).ok()?;
    // join("") would add a trailing '/', which then shows in messages and records.
    Some(if rel.as_os_str().is_empty() {
        mount_point.to_owned()
    } else {
        mount_point.join(rel)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's layout (hybrid, memory in a non-root cgroup).
    const HYBRID_MOUNTINFO: &str = "\
23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_keeps_cgroup_mounts_only() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert!(!m[0].v2);
        assert_eq!(m[0].options, ["rw", "cpu"]);
        assert_eq!(m[3].options, ["rw", "name=systemd"]);
        assert!(m[4].v2);
        assert_eq!(m[4].mount_point, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn mountinfo_with_optional_fields_and_escapes() {
        let text = "29 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 \
                    master:1 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n\
                    30 25 0:27 /docker/abc /my\\040cgroups/cpu,cpuacct ro shared:9 - cgroup cgroup \
                    rw,cpu,cpuacct\n";
        let m = parse_mountinfo(text).unwrap();
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup"));
        assert!(m[0].v2);
        assert_eq!(m[1].mount_point, Path::new("/my cgroups/cpu,cpuacct"));
        assert_eq!(m[1].root, "/docker/abc");
        assert!(mount_has(&m[1], &["cpu".into(), "cpuacct".into()]));
        assert!(mount_has(&m[1], &["cpu".into()]));
        assert!(!mount_has(&m[1], &["memory".into()]));
        assert!(parse_mountinfo("1 2 3 4\n").is_err());
    }

    #[test]
    fn proc_cgroup_lines() {
        let text = "12:memory:/docker/abc\n10:cpu,cpuacct:/a:b\n1:name=systemd:/user.slice\n0::/\n";
        let l = parse_proc_cgroup(text).unwrap();
        assert_eq!(l[0].controllers, ["memory"]);
        assert_eq!(l[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l[1].path, "/a:b");
        assert_eq!(l[2].controllers, ["name=systemd"]);
        assert!(l[3].v2 && l[3].controllers.is_empty() && l[3].path == "/");
        assert!(parse_proc_cgroup("3:cpu\n").is_err());
        assert!(parse_proc_cgroup("x:cpu:/\n").is_err());
        assert!(parse_proc_cgroup("3::/\n").is_err());
    }

    #[test]
    fn paths_map_onto_mounts() {
        let mp = Path::new("/sys/fs/cgroup/memory");
        // The whole hierarchy mounted.
        assert_eq!(
            dir_under(mp, "/", "/process_api/x"),
            Some(mp.join("process_api/x"))
        );
        assert_eq!(dir_under(mp, "/", "/").unwrap().as_os_str(), mp.as_os_str());
        // A container that sees its own cgroup bind-mounted at the mount point.
        assert_eq!(
            dir_under(mp, "/docker/abc", "/docker/abc"),
            Some(mp.to_owned())
        );
        assert_eq!(
            dir_under(mp, "/docker/abc", "/docker/abc/x"),
            Some(mp.join("x"))
        );
        // A component-wise prefix only.
        assert_eq!(dir_under(mp, "/docker/ab", "/docker/abc"), None);
        assert_eq!(dir_under(mp, "/docker/abc", "/other"), None);
        // Outside our cgroup namespace.
        assert_eq!(dir_under(mp, "/..", "/"), None);
        assert_eq!(dir_under(mp, "/", "/../x"), None);
    }
}
