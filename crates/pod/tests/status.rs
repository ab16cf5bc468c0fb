//! Status files: what the supervisor writes, stage0 reads back.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{data_dir, open};
use rkt_pod::PodError;
use rkt_pod::status::{self, AppExit, files};

#[test]
fn status_files_round_trip() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let pod = pods.create(Some("web")).unwrap().into_running().unwrap();
    let dir = pod.dir();

    assert_eq!(status::read_pid(dir).unwrap(), None);
    assert_eq!(status::read_started(dir).unwrap(), None);
    assert!(!status::is_ready(dir).unwrap());
    assert_eq!(status::read_app_exit(dir, "app").unwrap(), None);
    assert_eq!(status::read_app_pid(dir, "app").unwrap(), None);
    assert_eq!(status::read_name(dir).unwrap().as_deref(), Some("web"));
    let created = status::read_created(dir).unwrap().unwrap();
    assert!(created <= SystemTime::now());

    status::write_pid(dir, 4242).unwrap();
    assert_eq!(status::read_pid(dir).unwrap(), Some(4242));
    assert_eq!(
        std::fs::read_to_string(dir.join(files::PID)).unwrap(),
        "4242"
    );
    let started = UNIX_EPOCH + Duration::new(1_790_000_000, 123_456_789);
    status::write_started(dir, started).unwrap();
    assert_eq!(status::read_started(dir).unwrap(), Some(started));
    status::mark_ready(dir).unwrap();
    assert!(status::is_ready(dir).unwrap());
    status::write_app_pid(dir, "app", 77).unwrap();
    assert_eq!(status::read_app_pid(dir, "app").unwrap(), Some(77));

    let exit = AppExit {
        code: 137,
        signal: Some(9),
        oom_killed: true,
        finished_at: UNIX_EPOCH + Duration::from_secs(1_790_000_100),
    };
    status::write_app_exit(dir, "app", &exit).unwrap();
    assert_eq!(status::read_app_exit(dir, "app").unwrap(), Some(exit));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("apps/app/exit")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "code": 137, "signal": 9, "oom_killed": true,
            "finished_at": "2026-09-21T14:15:00Z"
        })
    );
    // A later field from a newer supervisor does not break an older reader.
    std::fs::write(
        dir.join("apps/app/exit"),
        br#"{"code":0,"signal":null,"oom_killed":false,"finished_at":"2026-09-21T14:15:00.5Z","extra":1}"#,
    )
    .unwrap();
    assert_eq!(status::read_app_exit(dir, "app").unwrap().unwrap().code, 0);

    // Only the final files are left, no temps.
    let mut names: Vec<_> = std::fs::read_dir(dir.join("apps/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["exit", "pid"]);
    assert!(
        std::fs::read_dir(dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );

    // The list shows the start time.
    let info = pods.list().unwrap().remove(0);
    assert_eq!(info.started, Some(started));
    assert_eq!(info.created, Some(created));
}

#[test]
fn damaged_and_hostile_status_files_are_refused() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let pod = pods.create(None).unwrap().into_running().unwrap();
    let dir = pod.dir();
    for bad in ["", "x", "-1", "0", "99999999999"] {
        std::fs::write(dir.join(files::PID), bad).unwrap();
        assert!(
            matches!(status::read_pid(dir), Err(PodError::BadStatusFile { .. })),
            "{bad:?}"
        );
    }
    std::fs::write(dir.join(files::STARTED), "yesterday").unwrap();
    assert!(matches!(
        status::read_started(dir),
        Err(PodError::BadStatusFile { .. })
    ));
    std::fs::create_dir_all(dir.join("apps/a")).unwrap();
    std::fs::write(dir.join("apps/a/exit"), "{").unwrap();
    assert!(matches!(
        status::read_app_exit(dir, "a"),
        Err(PodError::BadStatusFile { .. })
    ));
    // Too big to be a status file.
    std::fs::write(dir.join("apps/a/pid"), vec![b'1'; 100_000]).unwrap();
    assert!(matches!(
        status::read_app_pid(dir, "a"),
        Err(PodError::BadStatusFile { .. })
    ));
    // A symlink is not followed, not even to a real pid file.
    let outside = tmp.path().join("pidfile");
    std::fs::write(&outside, "1").unwrap();
    std::fs::remove_file(dir.join(files::PID)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(files::PID)).unwrap();
    assert!(matches!(status::read_pid(dir), Err(PodError::Io { .. })));
    // A fifo is not a status file (and reading it does not hang).
    let st = rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join(files::STARTED).with_extension("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    );
    st.unwrap();
    std::fs::rename(
        dir.join(files::STARTED).with_extension("fifo"),
        dir.join(files::STARTED),
    )
    .unwrap();
    assert!(matches!(
        status::read_started(dir),
        Err(PodError::BadStatusFile { .. })
    ));
    // App names cannot leave the pod directory.
    for app in ["../x", "a/b", "", "A"] {
        assert!(
            matches!(
                status::write_app_pid(dir, app, 1),
                Err(PodError::InvalidName { .. })
            ),
            "{app:?}"
        );
    }
}
