//! `rkt-stage1 run` end to end: output, exit codes, logs, the pod's namespaces and PID 1.

mod common;

use common::{TestPod, sh, show};

#[test]
fn output_and_exit_code_pass_through() {
    let pod = TestPod::new(vec![sh("hello", "echo hi; echo oops >&2; exit 3")]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("oops"),
        "{}",
        show(&out)
    );
    let exit = pod.exit("hello");
    assert_eq!(exit["code"], 3);
    assert_eq!(exit["signal"], serde_json::Value::Null);
    assert_eq!(exit["oom_killed"], false);
    let log = pod.log("hello");
    let line = log.lines().find(|l| l.contains(" stdout ")).unwrap();
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "stdout F hi");
    assert!(
        ts.ends_with('Z') && ts.len() == "2026-01-02T15:04:05.000000000Z".len(),
        "{ts}"
    );
    assert_eq!(pod.logged("hello", "stderr"), "oops\n");
    assert!(pod.dir.join("ready").exists() && pod.dir.join("started").exists());
    let pid: i32 = std::fs::read_to_string(pod.dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0);
}

