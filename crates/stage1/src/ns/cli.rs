//! The command line of `rkt-stage1`: the entrypoints of the stage1 ABI and their few flags.
//! Everything else comes from the pod directory, so this stays small enough to parse by hand.

use std::ffi::OsString;
use std::path::PathBuf;

/// One invocation of `rkt-stage1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `run --pod-dir DIR [--debug]`, with the pod lock in `RKT_LOCK_FD`.
    Run {
        /// The pod directory.
        pod_dir: PathBuf,
        /// Verbose logging.
        debug: bool,
    },
    /// `enter --pod-dir DIR --app NAME [--debug] [--] [CMD…]`.
    Enter {
        /// The pod directory.
        pod_dir: PathBuf,
        /// The app whose namespaces, cgroup and confinement the command gets.
        app: String,
        /// The command; empty means `/bin/sh`.
        command: Vec<OsString>,
        /// Verbose logging.
        debug: bool,
    },
    /// `stop --pod-dir DIR [--force] [--debug]`.
    Stop {
        /// The pod directory.
        pod_dir: PathBuf,
        /// SIGKILL instead of SIGTERM.
        force: bool,
        /// Verbose logging.
        debug: bool,
    },
    /// `gc --pod-dir DIR [--debug]`.
    Gc {
        /// The pod directory.
        pod_dir: PathBuf,
        /// Verbose logging.
        debug: bool,
    },
}

impl Command {
    /// Whether `--debug` was given.
    pub fn debug(&self) -> bool {
        match self {
            Command::Run { debug, .. }
            | Command::Enter { debug, .. }
            | Command::Stop { debug, .. }
            | Command::Gc { debug, .. } => *debug,
        }
    }
}

/// The usage text printed with a usage error.
pub const USAGE: &str = "usage: rkt-stage1 run --pod-dir DIR [--debug]
       rkt-stage1 enter --pod-dir DIR --app NAME [--debug] [--] [CMD...]
       rkt-stage1 stop --pod-dir DIR [--force] [--debug]
       rkt-stage1 gc --pod-dir DIR [--debug]";

/// Parses the arguments after the program name. The error is a one-line reason.
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let verb = args
        .next()
        .ok_or_else(|| "no entrypoint given (run, enter, stop or gc)".to_owned())?;
    let verb = verb
        .into_string()
        .map_err(|v| format!("unknown entrypoint {v:?}"))?;
    let mut pod_dir: Option<PathBuf> = None;
    let mut app: Option<String> = None;
    let mut debug = false;
    let mut force = false;
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        let text = match arg.to_str() {
            Some(t) => t.to_owned(),
            None if verb == "enter" => {
                command.push(arg);
                command.extend(args.by_ref());
                break;
            }
            None => return Err(format!("unexpected argument {arg:?}")),
        };
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (text.clone(), None),
        };
        let mut value = |name: &str| -> Result<OsString, String> {
            match &inline {
                Some(v) => Ok(OsString::from(v)),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--pod-dir" => pod_dir = Some(PathBuf::from(value("--pod-dir")?)),
            "--app" if verb == "enter" => {
                app = Some(
                    value("--app")?
                        .into_string()
                        .map_err(|v| format!("--app {v:?} is not UTF-8"))?,
                );
            }
            "--debug" if inline.is_none() => debug = true,
            "--force" if verb == "stop" && inline.is_none() => force = true,
            "--" if verb == "enter" => {
                command.extend(args.by_ref());
                break;
            }
            _ if verb == "enter" && !text.starts_with('-') => {
                command.push(arg);
                command.extend(args.by_ref());
                break;
            }
            _ => return Err(format!("unknown option {text:?} for {verb}")),
        }
    }
    let pod_dir = pod_dir.ok_or_else(|| format!("{verb} needs --pod-dir DIR"))?;
    match verb.as_str() {
        "run" => Ok(Command::Run { pod_dir, debug }),
        "enter" => Ok(Command::Enter {
            pod_dir,
            app: app.ok_or_else(|| "enter needs --app NAME".to_owned())?,
            command,
            debug,
        }),
        "stop" => Ok(Command::Stop {
            pod_dir,
            force,
            debug,
        }),
        "gc" => Ok(Command::Gc { pod_dir, debug }),
        other => Err(format!(
            "unknown entrypoint {other:?} (run, enter, stop or gc)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn entrypoints_and_flags() {
        assert_eq!(
            p(&["run", "--pod-dir", "/p", "--debug"]).unwrap(),
            Command::Run {
                pod_dir: "/p".into(),
                debug: true
            }
        );
        assert_eq!(
            p(&["stop", "--pod-dir=/p", "--force"]).unwrap(),
            Command::Stop {
                pod_dir: "/p".into(),
                force: true,
                debug: false
            }
        );
        assert_eq!(
            p(&["gc", "--pod-dir", "/p"]).unwrap(),
            Command::Gc {
                pod_dir: "/p".into(),
                debug: false
            }
        );
    }

    #[test]
    fn enter_takes_the_command_after_double_dash_or_the_first_word() {
        let want = |cmd: &[&str]| Command::Enter {
            pod_dir: "/p".into(),
            app: "web".into(),
            command: cmd.iter().map(OsString::from).collect(),
            debug: false,
        };
        assert_eq!(
            p(&[
                "enter",
                "--pod-dir",
                "/p",
                "--app",
                "web",
                "--",
                "ls",
                "--debug"
            ])
            .unwrap(),
            want(&["ls", "--debug"])
        );
        assert_eq!(
            p(&["enter", "--app=web", "--pod-dir", "/p", "ps", "-ef"]).unwrap(),
            want(&["ps", "-ef"])
        );
        assert_eq!(
            p(&["enter", "--pod-dir", "/p", "--app", "web"]).unwrap(),
            want(&[])
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert!(p(&[]).unwrap_err().contains("no entrypoint"));
        assert!(p(&["fly"]).unwrap_err().contains("needs --pod-dir"));
        assert!(
            p(&["fly", "--pod-dir", "/p"])
                .unwrap_err()
                .contains("unknown entrypoint")
        );
        assert!(p(&["run"]).unwrap_err().contains("--pod-dir"));
        assert!(
            p(&["run", "--pod-dir"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            p(&["run", "--pod-dir", "/p", "--force"])
                .unwrap_err()
                .contains("--force")
        );
        assert!(
            p(&["enter", "--pod-dir", "/p"])
                .unwrap_err()
                .contains("--app")
        );
    }
}
