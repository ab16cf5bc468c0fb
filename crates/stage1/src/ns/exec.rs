//! The last steps of an app or an entered command: its environment, finding its executable
//! in its `PATH`, and `execve`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, AtFlags};

use super::user::Identity;
use crate::sync::ChildError;

/// rkt's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment of an app: the request's variables in order (a later one replaces an
/// earlier one of the same name, in place), `AC_APP_NAME` as the appc spec requires, then
/// rkt's defaults for what is still missing: `PATH`, `SHELL`, `USER`, `LOGNAME` and `HOME`
/// (the last three from the image's passwd entry of the user, else root's as rkt had them),
/// then `inherited` (e.g. the caller's `TERM` for a terminal) where still missing.
pub fn environment(
    app_name: &str,
    requested: &[(String, String)],
    id: &Identity,
    inherited: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(requested.len() + 8);
    let set = |env: &mut Vec<(String, String)>, k: &str, v: &str, replace: bool| match env
        .iter_mut()
        .find(|(name, _)| name == k)
    {
        Some(slot) if replace => slot.1 = v.to_owned(),
        Some(_) => {}
        None => env.push((k.to_owned(), v.to_owned())),
    };
    for (k, v) in requested {
        set(&mut env, k, v, true);
    }
    set(&mut env, "AC_APP_NAME", app_name, true);
    let (user, home) = match (&id.name, &id.home) {
        (Some(n), Some(h)) => (n.as_str(), h.as_str()),
        (Some(n), None) => (n.as_str(), "/"),
        _ if id.uid == 0 => ("root", "/root"),
        _ => ("", "/"),
    };
    set(&mut env, "PATH", DEFAULT_PATH, false);
    set(&mut env, "SHELL", "/bin/sh", false);
    if !user.is_empty() {
        set(&mut env, "USER", user, false);
        set(&mut env, "LOGNAME", user, false);
    }
    set(&mut env, "HOME", home, false);
    for (k, v) in inherited {
        set(&mut env, k, v, false);
    }
    env
}

/// The value of `name` in `env`.
pub fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Finds `name` as `execvp` would in `path_var` (a name with a `/` is taken as it is),
/// checking that the calling process (already the app's user) may execute it.
pub fn find_executable(name: &str, path_var: &str) -> Result<PathBuf, ChildError> {
    let err = || ChildError::new("exec", "find the executable").path(name);
    if name.contains('/') {
        return match check(Path::new(name)) {
            Ok(()) => Ok(PathBuf::from(name)),
            Err(e) => Err(err().errno(e)),
        };
    }
    let mut denied = None;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(rustix::io::Errno::ACCESS) => denied = Some(candidate),
            Err(_) => {}
        }
    }
    match denied {
        Some(p) => Err(ChildError::new("exec", "execute")
            .path(&p)
            .errno(rustix::io::Errno::ACCESS)
            .message("the app's user may not execute it")),
        None => Err(err()
            .errno(rustix::io::Errno::NOENT)
            .message(format!("it is not in the app's PATH {path_var}"))),
    }
}

/// A regular file the effective user may execute.
fn check(p: &Path) -> Result<(), rustix::io::Errno> {
    let st = rustix::fs::stat(p)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(rustix::io::Errno::ACCESS);
    }
    rustix::fs::accessat(rustix::fs::CWD, p, Access::EXEC_OK, AtFlags::EACCESS)
}

/// `execve(path, argv, env)`; returns only on failure.
pub fn exec(path: &Path, argv: &[CString], env: &[(String, String)]) -> ChildError {
    let err = || ChildError::new("exec", "execute").path(path);
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return err().message("the path contains a NUL byte");
    };
    let Ok(cenv) = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()
    else {
        return err().message("an environment variable contains a NUL byte");
    };
    match nix::unistd::execve(&cpath, argv, &cenv) {
        Err(e) => err().errno(e),
        Ok(never) => match never {},
    }
}

/// `argv` as C strings, or an error naming the argument with a NUL byte.
pub fn c_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Vec<CString>, ChildError> {
    args.iter()
        .map(|a| {
            CString::new(a.as_ref().as_bytes()).map_err(|_| {
                ChildError::new("exec", "pass the arguments")
                    .message("an argument contains a NUL byte")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn id(uid: u32, name: Option<&str>, home: Option<&str>) -> Identity {
        Identity {
            uid,
            gid: uid,
            groups: vec![],
            name: name.map(str::to_owned),
            home: home.map(str::to_owned),
        }
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn requested_variables_win_and_defaults_fill_in() {
        let env = environment(
            "web",
            &kv(&[
                ("A", "1"),
                ("PATH", "/opt/bin"),
                ("A", "2"),
                ("AC_APP_NAME", "x"),
            ]),
            &id(1000, Some("user"), Some("/home/user")),
            &kv(&[("TERM", "xterm"), ("HOME", "/ignored")]),
        );
        assert_eq!(
            env,
            kv(&[
                ("A", "2"),
                ("PATH", "/opt/bin"),
                ("AC_APP_NAME", "web"),
                ("SHELL", "/bin/sh"),
                ("USER", "user"),
                ("LOGNAME", "user"),
                ("HOME", "/home/user"),
                ("TERM", "xterm"),
            ])
        );
        let root = environment("db", &[], &id(0, None, None), &[]);
        assert_eq!(get(&root, "PATH"), Some(DEFAULT_PATH));
        assert_eq!(get(&root, "HOME"), Some("/root"));
        assert_eq!(get(&root, "USER"), Some("root"));
        let stranger = environment("db", &[], &id(4242, None, None), &[]);
        assert_eq!(get(&stranger, "HOME"), Some("/"));
        assert_eq!(get(&stranger, "USER"), None);
    }

    #[test]
    fn the_path_is_searched_in_order() {
        let d = tempfile::tempdir().unwrap();
        for (dir, mode) in [("a", 0o644), ("b", 0o755)] {
            std::fs::create_dir(d.path().join(dir)).unwrap();
            let f = d.path().join(dir).join("tool");
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::create_dir(d.path().join("c")).unwrap();
        let path = format!("{0}/c:{0}/a:{0}/b", d.path().display());
        assert_eq!(
            find_executable("tool", &path).unwrap(),
            d.path().join("b/tool")
        );
        let e = find_executable("nosuch", &path).unwrap_err().to_string();
        assert!(
            e.contains("nosuch") && e.contains("not in the app's PATH"),
            "{e}"
        );
        // Directories are not executables.
        assert!(find_executable("c", &d.path().display().to_string()).is_err());
        assert!(find_executable(&format!("{}/b/tool", d.path().display()), "").is_ok());
    }
}
