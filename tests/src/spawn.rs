//! Child processes that die with the test process.
//!
//! `Drop` kills a harness's children when a test ends or panics, but not when the test process
//! itself is killed or aborts. For that, children are started through util-linux's
//! `setpriv --pdeathsig KILL`, so the kernel kills them when their parent goes away. The kernel
//! ties that signal to the *thread* that forked, and test threads end while registries shared
//! through statics live on, so every child is forked from one spawner thread that lives as long
//! as the process.

use std::io;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

const SETPRIV: &str = "/usr/bin/setpriv";

type Request = (Command, Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("rkt-tests-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the child-spawner thread");
        Mutex::new(tx)
    })
}

/// Builds a command that runs `program` killed by SIGKILL when the test process dies (plain
/// `program` when setpriv is missing).
pub fn tied_command(program: &Path) -> Command {
    if Path::new(SETPRIV).exists() {
        let mut c = Command::new(SETPRIV);
        c.arg("--pdeathsig").arg("KILL").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Spawns `cmd` from the long-lived spawner thread.
pub fn spawn(cmd: Command) -> io::Result<Child> {
    let (tx, rx) = channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the child-spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the child-spawner thread did not answer"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_child_runs_through_setpriv() {
        let mut c = tied_command(Path::new("/bin/sh"));
        c.arg("-c").arg("exit 7");
        let mut child = spawn(c).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }
}
