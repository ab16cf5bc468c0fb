//! What an app may do: capabilities, no_new_privs, seccomp, masked paths, the network of
//! `--net=none`, read-only root, volumes and the pod's `/etc` files.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{TestPod, app, sh, show, status_fields};
use rkt_stage1::abi::{Limits, MountRequest, NetMode, Volume, VolumeKind};
use rkt_stage1::caps::CapSet;

/// Runs one app and returns its stdout, checking that it exited 0.
fn run_ok(pod: &TestPod) -> String {
    let out = pod.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn cap_hex(set: CapSet) -> String {
    format!(
        "{:016x}",
        set.iter().map(|c| c.bitmask()).fold(0u64, |a, b| a | b)
    )
}

#[test]
fn apps_run_with_the_default_capabilities_no_new_privs_and_seccomp() {
    let pod = TestPod::new(vec![app("status", &["cat", "/proc/self/status"])]);
    let status = status_fields(&run_ok(&pod));
    let want = cap_hex(CapSet::rkt_default());
    for field in ["CapBnd", "CapEff", "CapPrm", "CapInh"] {
        assert_eq!(status[field], want, "{field}");
    }
    assert_eq!(status["CapAmb"], "0000000000000000");
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2");
    assert_eq!(status["Uid"], "0\t0\t0\t0");
}

#[test]
fn a_non_root_app_keeps_its_capabilities_through_the_ambient_set() {
    let mut a = app("status", &["cat", "/proc/self/status"]);
    a.user = "nobody".into();
    let pod = TestPod::new(vec![a]);
    let status = status_fields(&run_ok(&pod));
    let want = cap_hex(CapSet::rkt_default());
    assert_eq!(status["CapEff"], want);
    assert_eq!(status["CapAmb"], want);
    assert_eq!(status["Uid"], "65534\t65534\t65534\t65534");
    assert_eq!(status["Gid"], "65534\t65534\t65534\t65534");
}

#[test]
fn syscalls_outside_the_default_filter_fail() {
    // With every capability (root here lacks CAP_SYS_RESOURCE, see DESIGN.md), only the
    // filter stands between the app and unshare(2).
    let script = "unshare -m true 2>&1; echo rc=$?";
    let mut filtered = sh("filtered", script);
    filtered.caps = CapSet::all();
    filtered
        .caps
        .remove(rkt_stage1::caps::Capability::CAP_SYS_RESOURCE);
    let mut open = filtered.clone();
    open.name = "open".into();
    open.seccomp = None;
    let pod = TestPod::new(vec![filtered]);
    let text = run_ok(&pod);
    assert!(
        text.contains("Operation not permitted") && text.contains("rc=1"),
        "{text}"
    );
    let pod = TestPod::new(vec![open]);
    assert_eq!(run_ok(&pod), "rc=0\n");
}

#[test]
fn masked_paths_are_masked_unless_turned_off() {
    // /proc/sys/kernel/hostname is namespaced, so even the unmasked case cannot hurt the host.
    let script = "wc -c < /proc/kallsyms; ls /sys/firmware | wc -l; \
                  grep -c ' /proc/sys ' /proc/self/mountinfo; \
                  (echo x > /proc/sys/kernel/hostname) 2>&1; true";
    let pod = TestPod::new(vec![sh("masked", script)]);
    let text = run_ok(&pod);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "kallsyms reads empty: {text}");
    assert_eq!(lines[1], "0", "/sys/firmware is empty: {text}");
    assert_eq!(lines[2], "1", "/proc/sys is a read-only mount: {text}");
    assert!(lines[3].contains("Read-only file system"), "{text}");

    let mut open = sh("open", script);
    open.masked_paths = false;
    let pod = TestPod::new(vec![open]);
    let text = run_ok(&pod);
    let lines: Vec<&str> = text.lines().collect();
    assert_ne!(
        lines[0], "0",
        "kallsyms is readable without masking: {text}"
    );
    assert_ne!(
        lines[1], "0",
        "/sys/firmware is visible without masking: {text}"
    );
    assert_eq!(lines[2], "0");
}

#[test]
fn net_none_has_only_loopback_and_it_is_up() {
    let mut pod = TestPod::new(vec![sh(
        "net",
        "ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok",
    )]);
    pod.req.net = NetMode::None;
    assert_eq!(run_ok(&pod), "lo\n0x9\nping-ok\n");
}

#[test]
fn a_read_only_rootfs_takes_no_writes_but_dev_shm_does() {
    let mut a = sh(
        "ro",
        "touch /new 2>&1; touch /tmp/new 2>&1; touch /dev/shm/ok && echo shm-ok; cat /etc/rkt-top",
    );
    a.readonly_rootfs = true;
    let pod = TestPod::new(vec![a]);
    let text = run_ok(&pod);
    assert_eq!(text.matches("Read-only file system").count(), 2, "{text}");
    assert!(
        text.contains("shm-ok") && text.contains("top layer"),
        "{text}"
    );
}

#[test]
fn host_and_empty_volumes() {
    let host = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(host.path().join("in"), "from the host\n").unwrap();
    let script = "cat /in/in; echo from the app > /in/out; \
                  (echo no > /ro/x) 2>&1; stat -c '%a %u %g' /scratch; echo hi > /scratch/f && echo scratch-ok";
    let mut a = sh("vols", script);
    for (volume, path, read_only) in [
        ("hostvol", "/in", false),
        ("hostvol", "/ro", true),
        ("scratch", "/scratch", false),
    ] {
        a.mounts.push(MountRequest {
            volume: volume.into(),
            path: path.into(),
            read_only,
        });
    }
    let mut pod = TestPod::new(vec![a]);
    pod.req.volumes = vec![
        Volume {
            name: "hostvol".into(),
            kind: VolumeKind::Host {
                source: host.path().to_owned(),
                read_only: false,
                recursive: true,
            },
        },
        Volume {
            name: "scratch".into(),
            kind: VolumeKind::Empty {
                mode: 0o1770,
                uid: 1000,
                gid: 100,
            },
        },
    ];
    let text = run_ok(&pod);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "from the host");
    assert!(lines[1].contains("Read-only file system"), "{text}");
    assert_eq!(lines[2], "1770 1000 100");
    assert_eq!(lines[3], "scratch-ok");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "from the app\n"
    );
    let meta = std::fs::metadata(pod.dir.join("volumes/scratch/f")).unwrap();
    assert_eq!(meta.uid(), 0);
}

/// Unmounts a test's host mount when dropped.
struct HostMount(std::path::PathBuf);

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn a_read_only_recursive_volume_is_read_only_all_the_way_down() {
    let host = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    rustix::mount::mount(
        "tmpfs",
        &sub,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    let _guard = HostMount(sub.clone());
    std::fs::write(sub.join("deep"), "deep\n").unwrap();
    let mut a = sh(
        "rec",
        "cat /v/sub/deep; (echo x > /v/sub/new) 2>&1; (echo x > /v/top) 2>&1; true",
    );
    a.mounts.push(MountRequest {
        volume: "v".into(),
        path: "/v".into(),
        read_only: true,
    });
    let mut pod = TestPod::new(vec![a]);
    pod.req.volumes.push(Volume {
        name: "v".into(),
        kind: VolumeKind::Host {
            source: host.path().to_owned(),
            read_only: false,
            recursive: true,
        },
    });
    let text = run_ok(&pod);
    assert!(text.starts_with("deep\n"), "{text}");
    assert_eq!(text.matches("Read-only file system").count(), 2, "{text}");
    assert!(!sub.join("new").exists());
}

#[test]
fn etc_files_come_from_the_request() {
    let mut pod = TestPod::new(vec![sh(
        "etc",
        "hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf",
    )]);
    pod.req.hostname = "web-1".into();
    pod.req.hosts = Some("10.0.0.1 db\n".into());
    pod.req.resolv_conf = Some("nameserver 10.0.0.53\n".into());
    assert_eq!(
        run_ok(&pod),
        "web-1\nweb-1\n10.0.0.1 db\nnameserver 10.0.0.53\n"
    );
}

#[test]
fn an_image_without_etc_hosts_gets_a_stub_and_keeps_its_own_resolv_conf() {
    // The image has no /etc/hosts and no /etc/resolv.conf; the request asks for neither.
    let pod = TestPod::new(vec![sh(
        "etc",
        "cat /etc/hosts; test -e /etc/resolv.conf || echo no-resolv",
    )]);
    let text = run_ok(&pod);
    assert!(
        text.contains("127.0.0.1\tlocalhost localhost.localdomain testpod"),
        "{text}"
    );
    assert!(text.ends_with("no-resolv\n"), "{text}");
}

#[test]
fn limits_land_in_the_app_cgroup_and_oom_score_adj_is_clamped() {
    let mut limited = sh("lim", "cat /proc/self/oom_score_adj; exec sleep 1000");
    limited.limits = Limits {
        memory: Some(64 << 20),
        cpu_millis: Some(500),
        cpu_shares: Some(512),
        oom_score_adj: Some(-500),
    };
    let mut raised = sh("up", "cat /proc/self/oom_score_adj");
    raised.limits.oom_score_adj = Some(300);
    let pod = TestPod::new(vec![limited, raised]);
    let mut running = pod.spawn();
    pod.wait_ready(&mut running);

    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pod.dir.join("cgroup")).unwrap()).unwrap();
    let dir_of = |controller: &str| {
        record["dirs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| {
                d["controllers"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == controller))
            })
            .map(|d| std::path::PathBuf::from(d["path"].as_str().unwrap()).join("lim"))
    };
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap().trim().to_owned();
    if let Some(mem) = dir_of("memory") {
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
    }
    if let Some(cpu) = dir_of("cpu") {
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join("cpu.shares")), "512");
    }
    // Stop the pod only once both have printed ("up" exits on its own).
    common::wait_until("the apps' output", || {
        pod.dir.join("apps/up/exit").exists() && !pod.logged("lim", "stdout").is_empty()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = running.wait();
    let ours: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let can_lower = caps_effective_has_sys_resource();
    let want = if can_lower { -500 } else { ours.max(-500) };
    assert_eq!(pod.logged("lim", "stdout"), format!("{want}\n"));
    assert_eq!(pod.logged("up", "stdout"), "300\n");
    let warned = String::from_utf8_lossy(&out.stderr).contains("cannot lower oom_score_adj");
    assert_eq!(warned, !can_lower && ours > -500, "{}", show(&out));
}

fn caps_effective_has_sys_resource() -> bool {
    let status = status_fields(&std::fs::read_to_string("/proc/self/status").unwrap());
    let eff = u64::from_str_radix(&status["CapEff"], 16).unwrap();
    eff & rkt_stage1::caps::Capability::CAP_SYS_RESOURCE.bitmask() != 0
}

#[test]
fn every_masked_directory_is_empty_and_read_only() {
    // One tmpfs is bound over all of them: each must still be empty and refuse writes.
    let script = "for d in /sys/firmware /sys/fs /sys/module /sys/power; do \
                    [ -d $d ] || continue; \
                    echo \"$d $(ls -A $d | wc -l) $(touch $d/x 2>&1 >/dev/null | grep -c Read-only)\"; \
                  done";
    let pod = TestPod::new(vec![sh("masked", script)]);
    let text = run_ok(&pod);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "too few masked directories here: {text}");
    for line in lines {
        assert!(line.ends_with(" 0 1"), "not empty and read-only: {line}");
    }
}

#[test]
fn an_images_own_etc_hosts_is_kept_and_an_app_that_writes_nothing_leaves_its_upper_dir_empty() {
    // A third layer with the image's own /etc/hosts, on top of the test image.
    let own = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir(own.path().join("etc")).unwrap();
    std::fs::write(own.path().join("etc/hosts"), "10.9.9.9 the-images-own\n").unwrap();
    let mut a = sh(
        "etc",
        "cat /etc/hosts; cat /etc/hostname; ls -d /proc/1 /sys/kernel /dev/null",
    );
    a.layers.push(own.path().to_owned());
    let pod = TestPod::new(vec![a]);
    assert_eq!(
        run_ok(&pod),
        "10.9.9.9 the-images-own\ntestpod\n/dev/null\n/proc/1\n/sys/kernel\n"
    );
    // Every mount point came from the image or the placeholder layer: nothing was created or
    // copied up for them (`rkt export` of this app is an empty layer).
    let upper: Vec<_> = std::fs::read_dir(pod.dir.join("apps/etc/upper"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(upper.is_empty(), "{upper:?}");
}
