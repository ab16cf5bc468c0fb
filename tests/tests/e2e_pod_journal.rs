//! App output in the host's journal: `rkt run` beside a real `systemd-journald` (Debian's, in a
//! mount namespace of the test's own, see `rkt_tests::journald`), read back with `journalctl`.
//! Without a journald (every other e2e test) app output goes to the log files alone.

mod e2e_pod_support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use e2e_pod_support::*;
use rkt_tests::journald::{self, JournaldRun};

/// stdout: a line, a 20000-byte line (a 16 KiB `P` record and an `F` record), the shell's
/// descriptors, and a last line without a newline; stderr: a line and one without a newline.
const APP: &str = "echo out-1; echo err-1 >&2; printf '%20000s\\n' '' | tr ' ' L; \
                   fds=; for f in /proc/$$/fd/*; do fds=\"$fds $(readlink $f)\"; done; \
                   echo \"fds:$fds\"; \
                   printf 'err-2 without newline' >&2; printf 'out-2 without newline'";
/// The records [`APP`] makes.
const RECORDS: usize = 7;

/// Runs `"$@"` (rkt), then waits until journald has the pod's `$EXPECT` records and saves
/// them, found by pod UUID and by container name, in `$OUT`.
const SCRIPT: &str = r#"
rc=0
"$@" > "$OUT/rkt.stdout" 2> "$OUT/rkt.stderr" || rc=$?
echo "$rc" > "$OUT/rkt.rc"
uuid=$(cat "$UUID_FILE")
i=0
while [ "$(journalctl -q -D /run/log/journal -o json RKT_POD_UUID="$uuid" | wc -l)" -lt "$EXPECT" ]; do
  i=$((i+1)); if [ "$i" -gt 200 ]; then break; fi; sleep 0.05
done
journalctl -q -D /run/log/journal -o json --all RKT_POD_UUID="$uuid" > "$OUT/by-uuid.json"
journalctl -q -D /run/log/journal -o json --all CONTAINER_NAME=talker > "$OUT/by-name.json"
"#;

type Entry = BTreeMap<String, serde_json::Value>;

fn entries(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn get<'e>(e: &'e Entry, key: &str) -> Option<&'e str> {
    e.get(key).and_then(serde_json::Value::as_str)
}

fn show(run: &JournaldRun, out: &Path) -> String {
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    format!(
        "script: {}\n--- script stderr ---\n{}--- rkt stdout ---\n{}\n--- rkt stderr ---\n{}",
        run.output.status,
        String::from_utf8_lossy(&run.output.stderr),
        read("rkt.stdout"),
        read("rkt.stderr"),
    )
}

#[test]
fn app_output_also_goes_to_the_hosts_journald() {
    journald::require_journald();
    let env = PodEnv::new();
    let uuid_file = env.uuid_file();
    let out = tempfile::tempdir().unwrap();
    let img = busybox();
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let cmd = env.rkt.command(&[
        "--insecure-options=image",
        "run",
        &save,
        &img,
        "--name=talker",
        "--exec=/bin/sh",
        "--",
        "-c",
        APP,
    ]);
    let (argv, mut envs) = journald::command_line(&cmd);
    let expect = RECORDS.to_string();
    envs.extend([
        (OsStr::new("OUT"), Some(out.path().as_os_str())),
        (OsStr::new("UUID_FILE"), Some(uuid_file.as_os_str())),
        (OsStr::new("EXPECT"), Some(OsStr::new(&expect))),
    ]);
    let run = journald::with_journald(SCRIPT, &argv, &envs);
    let shown = show(&run, out.path());
    assert!(run.output.status.success(), "{shown}");
    assert!(
        !Path::new(&format!("/proc/{}", run.journald_pid)).exists(),
        "journald (pid {}) outlived the test's namespace",
        run.journald_pid
    );
    let rc = std::fs::read_to_string(out.path().join("rkt.rc")).unwrap();
    assert_eq!(rc.trim(), "0", "{shown}");
    let rkt_stdout = std::fs::read_to_string(out.path().join("rkt.stdout")).unwrap();
    assert!(rkt_stdout.starts_with("out-1\nLLL"), "{shown}");
    assert!(rkt_stdout.ends_with("\nout-2 without newline"), "{shown}");
    let rkt_stderr = std::fs::read_to_string(out.path().join("rkt.stderr")).unwrap();
    assert!(
        !rkt_stderr.contains("journald"),
        "a journald warning: {shown}"
    );
    let uuid = std::fs::read_to_string(&uuid_file)
        .unwrap()
        .trim()
        .to_owned();
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();

    let by_uuid = entries(&out.path().join("by-uuid.json"));
    let messages: Vec<(&str, &str, bool)> = by_uuid
        .iter()
        .map(|e| {
            assert_eq!(get(e, "SYSLOG_IDENTIFIER"), Some("talker"), "{e:?}");
            assert_eq!(get(e, "RKT_APP_NAME"), Some("talker"), "{e:?}");
            assert_eq!(get(e, "CONTAINER_NAME"), Some("talker"), "{e:?}");
            assert_eq!(get(e, "RKT_POD_UUID"), Some(uuid.as_str()), "{e:?}");
            assert_eq!(get(e, "CONTAINER_ID"), Some(&hex[..12]), "{e:?}");
            assert_eq!(get(e, "CONTAINER_ID_FULL"), Some(hex.as_str()), "{e:?}");
            let partial = match get(e, "CONTAINER_PARTIAL_MESSAGE") {
                Some("true") => true,
                None => false,
                Some(other) => panic!("CONTAINER_PARTIAL_MESSAGE={other}"),
            };
            let message = get(e, "MESSAGE").unwrap_or_else(|| panic!("no MESSAGE: {e:?}"));
            (get(e, "PRIORITY").unwrap(), message, partial)
        })
        .collect();
    assert_eq!(messages.len(), RECORDS, "{messages:?}\n{shown}");
    let of = |priority: &str| -> Vec<(&str, bool)> {
        messages
            .iter()
            .filter(|(p, _, _)| *p == priority)
            .map(|(_, m, partial)| (*m, *partial))
            .collect()
    };
    let (long_part, long_rest) = ("L".repeat(16 << 10), "L".repeat(20000 - (16 << 10)));
    let stdout = of("6");
    assert_eq!(stdout.len(), 5, "{stdout:?}");
    assert_eq!(stdout[0], ("out-1", false));
    assert_eq!(stdout[1], (long_part.as_str(), true));
    assert_eq!(stdout[2], (long_rest.as_str(), false));
    assert!(
        stdout[3].0.starts_with("fds: /dev/null pipe:") && !stdout[3].0.contains("socket"),
        "the app holds a socket (journald's?): {}",
        stdout[3].0
    );
    assert_eq!(stdout[4], ("out-2 without newline", false));
    assert_eq!(
        of("3"),
        vec![("err-1", false), ("err-2 without newline", false)]
    );

    // `journalctl CONTAINER_NAME=<app>` finds the same records.
    let by_name = entries(&out.path().join("by-name.json"));
    let names: Vec<&str> = by_name.iter().filter_map(|e| get(e, "MESSAGE")).collect();
    assert_eq!(names.len(), RECORDS, "{names:?}");

    // The log file has every record as before, and `rkt logs` reads it.
    let log = env
        .pod_dir(&uuid)
        .expect("the pod directory")
        .join("apps/talker/logs/current.log");
    let log = std::fs::read_to_string(&log).unwrap();
    let records: Vec<(&str, &str, &str)> = log
        .lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let (_, s, fp, text) = (f.next(), f.next(), f.next(), f.next());
            (s.unwrap(), fp.unwrap(), text.unwrap_or(""))
        })
        .collect();
    assert_eq!(records.len(), RECORDS, "{log}");
    assert!(records.contains(&("stdout", "P", long_part.as_str())));
    assert!(records.contains(&("stdout", "F", "out-2 without newline")));
    assert!(records.contains(&("stderr", "F", "err-2 without newline")));
    let logs = env.ok(&["logs", &uuid]);
    assert!(logs.stdout.contains("out-1"), "{logs}");
}

/// Starts `"$@"` (rkt), waits until journald has the app's first line, kills journald, then
/// lets the app go on (`$OUT/sig/go`, which the app sees as `/sig/go`).
const KILL_JOURNALD: &str = r#"
"$@" > "$OUT/rkt.stdout" 2> "$OUT/rkt.stderr" &
rkt=$!
i=0
until [ -s "$UUID_FILE" ] && journalctl -q -D /run/log/journal -o cat -t talker | grep -q before; do
  i=$((i+1)); if [ "$i" -gt 600 ]; then echo "no 'before' in the journal" >&2; break; fi
  sleep 0.05
done
kill "$jpid"; wait "$jpid" || true
touch "$OUT/sig/go"
rc=0; wait "$rkt" || rc=$?
echo "$rc" > "$OUT/rkt.rc"
"#;

#[test]
fn a_journald_that_goes_away_costs_the_pod_nothing() {
    journald::require_journald();
    let env = PodEnv::new();
    let uuid_file = env.uuid_file();
    let out = tempfile::tempdir().unwrap();
    std::fs::create_dir(out.path().join("sig")).unwrap();
    let img = busybox();
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let volume = format!(
        "--volume=sig,kind=host,source={}",
        out.path().join("sig").display()
    );
    let app = "echo before; i=0; while [ ! -e /sig/go ] && [ $i -lt 600 ]; do sleep 0.05; \
               i=$((i+1)); done; echo after; echo more >&2";
    let cmd = env.rkt.command(&[
        "--insecure-options=image",
        "run",
        &save,
        &volume,
        &img,
        "--name=talker",
        "--mount=volume=sig,target=/sig",
        "--exec=/bin/sh",
        "--",
        "-c",
        app,
    ]);
    let (argv, mut envs) = journald::command_line(&cmd);
    envs.extend([
        (OsStr::new("OUT"), Some(out.path().as_os_str())),
        (OsStr::new("UUID_FILE"), Some(uuid_file.as_os_str())),
    ]);
    let run = journald::with_journald(KILL_JOURNALD, &argv, &envs);
    let shown = show(&run, out.path());
    assert!(run.output.status.success(), "{shown}");
    assert!(
        !String::from_utf8_lossy(&run.output.stderr).contains("no 'before'"),
        "{shown}"
    );
    let rc = std::fs::read_to_string(out.path().join("rkt.rc")).unwrap();
    assert_eq!(rc.trim(), "0", "{shown}");
    let stderr = std::fs::read_to_string(out.path().join("rkt.stderr")).unwrap();
    assert_eq!(
        stderr.matches("journald stopped taking app output").count(),
        1,
        "one warning: {shown}"
    );
    let uuid = std::fs::read_to_string(&uuid_file)
        .unwrap()
        .trim()
        .to_owned();
    let logs = env.ok(&["logs", &uuid]);
    assert_eq!(logs.stdout, "before\nafter\n", "{logs}");
    assert_eq!(logs.stderr, "more\n", "{logs}");
}
