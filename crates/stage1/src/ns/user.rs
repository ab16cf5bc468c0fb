//! The app's user and groups, looked up by name in the image's own `/etc/passwd` and
//! `/etc/group` — read after `pivot_root`, when nothing outside the rootfs is reachable, so an
//! image cannot point them at the host's files.
//!
//! As rkt: a number is used as it is; a name must exist in the image's file; an empty user is
//! root; an empty group is the user's primary group (0 for a user number the image does not
//! list); supplementary groups are exactly the request's (no lookup in `/etc/group`).

use std::path::Path;

use crate::sync::ChildError;

/// The most of `/etc/passwd` or `/etc/group` that is read.
const MAX_DB_BYTES: u64 = 4 << 20;

/// Who the app runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// The user's name, if the image's passwd has the user.
    pub name: Option<String>,
    /// The user's home directory, if the image's passwd has the user.
    pub home: Option<String>,
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// Resolves `user` and `group` (numbers or names) with the files under `root` (`/` once
/// pivoted; another directory in tests).
pub fn resolve(
    root: &Path,
    user: &str,
    group: &str,
    supplementary: &[u32],
) -> Result<Identity, ChildError> {
    // OCI's "user:group" in the user field, if stage0 left it joined.
    let (user, group) = match (user.split_once(':'), group.is_empty()) {
        (Some((u, g)), true) => (u, g),
        _ => (user, group),
    };
    let passwd_path = root.join("etc/passwd");
    let entry = if user.is_empty() {
        lookup_passwd(&passwd_path, |p| p.uid == 0)?
    } else if let Ok(uid) = user.parse::<u32>() {
        lookup_passwd(&passwd_path, |p| p.uid == uid)?.or(Some(Passwd {
            name: String::new(),
            uid,
            gid: 0,
            home: String::new(),
        }))
    } else {
        let text = read_db(&passwd_path, "/etc/passwd", "user", user)?;
        let found = parse_passwd(&text).find(|p| p.name == user);
        Some(found.ok_or_else(|| not_found("user", user, "/etc/passwd"))?)
    };
    let (uid, primary, name, home) = match entry {
        Some(p) => (
            p.uid,
            p.gid,
            (!p.name.is_empty()).then_some(p.name),
            (!p.home.is_empty()).then_some(p.home),
        ),
        None => (0, 0, None, None),
    };
    let gid = if group.is_empty() {
        primary
    } else if let Ok(gid) = group.parse::<u32>() {
        gid
    } else {
        let text = read_db(&root.join("etc/group"), "/etc/group", "group", group)?;
        parse_group(&text)
            .find(|(n, _)| *n == group)
            .map(|(_, g)| g)
            .ok_or_else(|| not_found("group", group, "/etc/group"))?
    };
    Ok(Identity {
        uid,
        gid,
        groups: supplementary.to_vec(),
        name,
        home,
    })
}

fn not_found(what: &str, name: &str, file: &str) -> ChildError {
    ChildError::new("user", format!("look up the {what}"))
        .path(file)
        .message(format!(
            "the image's {file} has no {what} named {name:?} (use a {what} the image defines, \
             or a number)"
        ))
}

/// Reads a user database for a by-name lookup: its absence is an error naming the file
/// (`shown`, as the app sees it).
fn read_db(path: &Path, shown: &str, what: &str, name: &str) -> Result<String, ChildError> {
    match read_capped(path) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(ChildError::new("user", format!("look up the {what}"))
            .path(shown)
            .message(format!(
                "the image has no {shown} to find {what} {name:?} in (use a number)"
            ))),
        Err(e) => Err(ChildError::new("user", "read").path(shown).io(&e)),
    }
}

fn lookup_passwd(path: &Path, f: impl Fn(&Passwd) -> bool) -> Result<Option<Passwd>, ChildError> {
    match read_capped(path) {
        Ok(Some(text)) => Ok(parse_passwd(&text).find(|p| f(p))),
        Ok(None) => Ok(None),
        Err(e) => Err(ChildError::new("user", "read").path("/etc/passwd").io(&e)),
    }
}

fn read_capped(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_DB_BYTES).read_to_end(&mut bytes)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// `name:password:uid:gid:gecos:home:shell` lines; malformed lines are skipped, as libc does.
fn parse_passwd(text: &str) -> impl Iterator<Item = Passwd> + '_ {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0].is_empty() || line.starts_with('#') {
            return None;
        }
        Some(Passwd {
            name: f[0].to_owned(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f.get(5).copied().unwrap_or_default().to_owned(),
        })
    })
}

/// `name:password:gid:members` lines.
fn parse_group(text: &str) -> impl Iterator<Item = (&str, u32)> + '_ {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 || f[0].is_empty() || line.starts_with('#') {
            return None;
        }
        Some((f[0], f[2].parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\nuser:x:1000:1000:U:/home/user:/bin/sh\n\
             nobody:x:65534:65534::/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nusers:x:100:user\nuser:x:1000:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_numbers_and_defaults() {
        let d = image();
        let r = |u: &str, g: &str| resolve(d.path(), u, g, &[7]).unwrap();
        let root = r("", "");
        assert_eq!(
            (root.uid, root.gid, root.home.as_deref()),
            (0, 0, Some("/root"))
        );
        let user = r("user", "");
        assert_eq!((user.uid, user.gid), (1000, 1000));
        assert_eq!(user.name.as_deref(), Some("user"));
        assert_eq!(user.home.as_deref(), Some("/home/user"));
        assert_eq!(user.groups, vec![7]);
        assert_eq!((r("user", "users").gid, r("1000", "").gid), (100, 1000));
        let unknown = r("4242", "");
        assert_eq!((unknown.uid, unknown.gid, unknown.name), (4242, 0, None));
        let joined = resolve(d.path(), "nobody:users", "", &[]).unwrap();
        assert_eq!((joined.uid, joined.gid), (65534, 100));
    }

    #[test]
    fn unknown_names_name_the_user_and_the_file() {
        let d = image();
        let e = resolve(d.path(), "daemon", "", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"daemon\"") && e.contains("/etc/passwd"), "{e}");
        let e = resolve(d.path(), "user", "wheel", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"wheel\"") && e.contains("/etc/group"), "{e}");
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        let e = resolve(d.path(), "user", "", &[]).unwrap_err().to_string();
        assert!(e.contains("has no /etc/passwd"), "{e}");
        // Numbers need no file.
        let n = resolve(d.path(), "5", "6", &[]).unwrap();
        assert_eq!((n.uid, n.gid), (5, 6));
    }
}
