//! Per-app flags of `rkt run` and the confinement apps get, end to end: each flag is checked
//! from inside the app (or in its cgroup) against what it must change.

mod e2e_pod_support;

use e2e_pod_support::*;

#[test]
fn name_working_dir_user_group_and_supplementary_gids() {
    let env = PodEnv::new();
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &busybox(),
            "--name=worker",
            "--working-dir=/etc",
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo $AC_APP_NAME; pwd; id -u; id -g; exit 6",
        ],
    );
    assert_eq!(out.code(), Some(6), "{out}");
    assert_eq!(out.stdout, "worker\n/etc\n0\n0\n");
    assert_eq!(env.status(&uuid)["app-worker"], "6");

    // The image's default working directory; names from the image's passwd and group.
    let out = env.sh_ok(
        &[],
        &["--user=user", "--group=nobody", "--supplementary-gids=5,6"],
        "pwd; id -u; id -g; grep Groups /proc/self/status",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["/home/user", "1000", "65534"], "{out}");
    assert_eq!(
        lines[3].split_whitespace().skip(1).collect::<Vec<_>>(),
        ["5", "6"],
        "{out}"
    );
    // Numbers need no passwd entry.
    let out = env.sh_ok(&[], &["--user=4321", "--group=1234"], "id -u; id -g");
    assert_eq!(out, "4321\n1234\n");
}

#[test]
fn environment_precedence_parent_image_file_set_env_environment() {
    let mut env = PodEnv::new();
    env.rkt.set_env("FROM_PARENT", "parent");
    env.rkt.set_env("GREETING", "from-parent");
    env.rkt.set_env("IN_FILE", "parent");
    let file = env.rkt.home().join("env-file");
    std::fs::write(
        &file,
        "# a comment\nIN_FILE=file\nIN_SET=file\nIN_ENV=file\nRKT_FIXTURE=file\n",
    )
    .unwrap();
    let script = "for v in FROM_PARENT GREETING IN_FILE IN_SET IN_ENV RKT_FIXTURE; do \
                  eval echo $v=\\$$v; done";
    let out = env.sh_ok(
        &[
            "--inherit-env",
            &format!("--set-env-file={}", file.display()),
            "--set-env=IN_SET=set",
            "--set-env=IN_ENV=set",
        ],
        &["--environment=IN_ENV=env"],
        script,
    );
    assert_eq!(
        out,
        "FROM_PARENT=parent\nGREETING=hello world\nIN_FILE=file\nIN_SET=set\nIN_ENV=env\n\
         RKT_FIXTURE=file\n"
    );
    // Without --inherit-env nothing of the caller's environment gets in.
    let out = env.sh_ok(&[], &[], "echo \"[$FROM_PARENT]\"; echo $GREETING");
    assert_eq!(out, "[]\nhello world\n");
}

#[test]
fn readonly_rootfs_and_volumes_host_read_only_and_empty() {
    let env = PodEnv::new();
    let host = env.rkt.home().join("host-vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "host data\n").unwrap();
    let img = busybox();
    let vol_rw = format!("--volume=hostdir,kind=host,source={}", host.display());
    // The image declares /data, a mount point docker2aci-style named `volume-data`: a volume
    // of that name fills it in every app that does not mount something else there.
    let vol_implicit = format!("--volume=volume-data,kind=host,source={}", host.display());
    let vol_ro = format!(
        "--volume=ro,kind=host,source={},readOnly=true",
        host.display()
    );
    let script = "cat /data/from-host; echo written > /data/from-app && echo rw-ok; \
                  echo x > /ro/nope 2>/dev/null || echo ro-refused; \
                  touch /in-rootfs 2>/dev/null || echo rootfs-refused; \
                  stat -c '%a %u %g' /scratch; echo s > /scratch/f && echo empty-ok; \
                  cat /everywhere/from-host";
    let out = env.ok(&[
        "run",
        &vol_rw,
        &vol_ro,
        &vol_implicit,
        "--volume=scratch,kind=empty,mode=0750,uid=1000,gid=65534",
        // Before the first image: every app gets it.
        "--mount=volume=hostdir,target=/everywhere",
        &img,
        "--readonly-rootfs",
        "--mount=volume=hostdir,target=/data",
        "--mount=volume=ro,target=/ro",
        "--mount=volume=scratch,target=/scratch",
        "--exec=/bin/sh",
        "--",
        "-c",
        script,
        "---",
        &img,
        "--name=other",
        "--exec=/bin/sh",
        "--",
        "-c",
        "touch /in-rootfs && echo other-rootfs-writable; test -e /ro || echo other-has-no-ro; \
         cat /everywhere/from-host /data/from-host",
    ]);
    let s = &out.stdout;
    for want in [
        "rw-ok\n",
        "ro-refused\n",
        "rootfs-refused\n",
        "750 1000 65534\n",
        "empty-ok\n",
        "other-rootfs-writable\n",
        "other-has-no-ro\n",
    ] {
        assert!(s.contains(want), "missing {want:?}: {out}");
    }
    assert_eq!(s.matches("host data\n").count(), 4, "{out}");
    assert_eq!(
        std::fs::read_to_string(host.join("from-app")).unwrap(),
        "written\n"
    );
    assert!(!host.join("nope").exists());
}

/// `CapEff` of an app run with `flags`.
fn cap_eff(env: &PodEnv, pod_flags: &[&str], flags: &[&str]) -> u64 {
    let out = env.sh_ok(pod_flags, flags, "cat /proc/self/status");
    cap_mask(&status_field(&out, "CapEff").unwrap())
}

#[test]
fn default_confinement_caps_no_new_privs_seccomp_and_masked_paths() {
    let env = PodEnv::new();
    let out = env.sh_ok(
        &[],
        &[],
        "cat /proc/self/status; echo ---; wc -c < /proc/kallsyms; ls /sys/firmware | wc -l; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo proc-sys-read-only; \
         mount -t tmpfs none /tmp 2>/dev/null || echo mount-refused",
    );
    let (status, rest) = out.split_once("---\n").unwrap();
    assert_eq!(
        cap_mask(&status_field(status, "CapEff").unwrap()),
        default_caps_here(),
        "{status}"
    );
    assert_eq!(
        cap_mask(&status_field(status, "CapBnd").unwrap()),
        default_caps_here()
    );
    assert_eq!(status_field(status, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(status_field(status, "Seccomp").as_deref(), Some("2"));
    let rest: Vec<&str> = rest.lines().map(str::trim).collect();
    assert_eq!(
        rest,
        ["0", "0", "proc-sys-read-only", "mount-refused"],
        "{out}"
    );
}

#[test]
fn caps_retain_and_caps_remove() {
    let env = PodEnv::new();
    const CHOWN: u64 = 1 << 0;
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_TIME: u64 = 1 << 25;
    assert_eq!(
        cap_eff(&env, &[], &["--caps-retain=CAP_NET_ADMIN,sys_time"]),
        NET_ADMIN | SYS_TIME
    );
    assert_eq!(
        cap_eff(&env, &[], &["--caps-remove=CAP_CHOWN"]),
        default_caps_here() & !CHOWN
    );
    // And the kernel enforces it.
    let out = env.sh_ok(
        &[],
        &["--caps-remove=CAP_CHOWN"],
        "touch /f; chown 5 /f 2>/dev/null || echo chown-refused",
    );
    assert_eq!(out, "chown-refused\n");
    let before = env.pod_dirs();
    let out = env.fail(&[
        "run",
        &busybox(),
        "--caps-retain=CAP_CHOWN",
        "--caps-remove=CAP_KILL",
    ]);
    assert!(out.stderr.contains("caps"), "{out}");
    let out = env.fail(&["run", &busybox(), "--caps-retain=CAP_NO_SUCH_THING"]);
    assert!(out.stderr.contains("NO_SUCH_THING"), "{out}");
    assert_eq!(env.pod_dirs(), before, "a refused pod left a directory");
}

#[test]
fn seccomp_flag_removes_syscalls() {
    let env = PodEnv::new();
    let script = "touch /f; chmod 600 /f 2>/dev/null && echo chmod-ok || echo chmod-refused";
    assert_eq!(env.sh_ok(&[], &[], script), "chmod-ok\n");
    assert_eq!(
        env.sh_ok(
            &[],
            &["--seccomp=mode=remove,errno=EPERM,chmod,fchmodat"],
            script
        ),
        "chmod-refused\n"
    );
    let out = env.sh_ok(
        &[],
        &["--seccomp=mode=remove,errno=EPERM,chmod,fchmodat"],
        "grep Seccomp: /proc/self/status",
    );
    assert!(out.contains('2'), "{out}");
}

#[test]
fn insecure_options_lift_caps_paths_and_seccomp() {
    let env = PodEnv::new();
    let my_bounding = cap_mask(
        &status_field(
            &std::fs::read_to_string("/proc/self/status").unwrap(),
            "CapBnd",
        )
        .unwrap(),
    );
    // Every capability rkt itself holds (root here lacks some, e.g. CAP_SYS_RESOURCE), but
    // CAP_MKNOD where no devices controller confines it.
    let mknod_kept = default_caps_here() & (1 << 27);
    let expected = my_bounding & !((1 << 27) & !mknod_kept);
    assert_eq!(
        cap_eff(&env, &["--insecure-options=image,capabilities"], &[]) & my_bounding,
        expected
    );
    let out = env.sh_ok(
        &["--insecure-options=image,seccomp"],
        &[],
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    );
    assert!(out.contains("Seccomp:\t0"), "{out}");
    let kallsyms = "head -c 100 /proc/kallsyms | wc -c; ls /sys/firmware | wc -l";
    let masked = env.sh_ok(&[], &[], kallsyms);
    let open = env.sh_ok(&["--insecure-options=image,paths"], &[], kallsyms);
    assert_eq!(masked.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    let open: Vec<&str> = open.split_whitespace().collect();
    assert_eq!(open[0], "100", "/proc/kallsyms is still masked");
    let host_firmware = std::fs::read_dir("/sys/firmware").map_or(0, |d| d.count());
    assert_eq!(open[1], host_firmware.to_string());
}

#[test]
fn memory_limit_oom_kills_and_status_says_so() {
    let env = PodEnv::new();
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &busybox(),
            "--memory=32Mi",
            "--exec=/bin/sh",
            "--",
            "-c",
            "x=0123456789abcdef; while true; do x=$x$x; done",
        ],
    );
    assert_eq!(out.code(), Some(128 + 9), "{out}");
    let st = env.status(&uuid);
    assert_eq!(st["app-busybox"], "137", "{}", show_map(&st));
    assert_eq!(
        st.get("app-busybox-oom-killed").map(String::as_str),
        Some("true"),
        "{}",
        show_map(&st)
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--format=json", &uuid]).stdout).unwrap();
    assert_eq!(json["apps"][0]["exit"]["oom_killed"], true, "{json}");
}

#[test]
fn cpu_memory_and_oom_score_adj_reach_the_app() {
    let env = PodEnv::new();
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &busybox(),
            "--name=limited",
            "--cpu=250m",
            "--cpu-shares=512",
            "--memory=64Mi",
            "--oom-score-adj=500",
            "--exec=/bin/sh",
            "--",
            "-c",
            "cat /proc/self/oom_score_adj",
        ],
    );
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "500\n");
    // The app's cgroup stays until the pod is removed.
    let read = |hier: &str, file: &str| -> String {
        let p = app_cgroup(&uuid, "limited", hier).join(file);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_owned()
    };
    if pod_cgroups(&uuid)
        .iter()
        .any(|d| d.starts_with("/sys/fs/cgroup/cpu"))
    {
        let period: u64 = read("cpu", "cpu.cfs_period_us").parse().unwrap();
        let quota: u64 = read("cpu", "cpu.cfs_quota_us").parse().unwrap();
        assert_eq!(quota * 1000 / period, 250, "quota {quota} period {period}");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
    } else {
        let hier = "cgroup";
        let max = read(hier, "cpu.max");
        let (quota, period) = max.split_once(' ').unwrap();
        let (quota, period): (u64, u64) = (quota.parse().unwrap(), period.parse().unwrap());
        assert_eq!(quota * 1000 / period, 250, "{max}");
        assert_eq!(read(hier, "memory.max"), (64u64 << 20).to_string());
    }
    env.ok(&["rm", &uuid]);
    env.assert_gone(&uuid);
}

#[test]
fn annotations_and_labels_land_in_the_pod_manifest() {
    let env = PodEnv::new();
    let (out, uuid) = env.run_pod(
        &["--annotation=team=storage"],
        &[
            &busybox(),
            "--name=web",
            "--annotation=owner=alice",
            "--user-annotation=ticket=OPS-1",
            "--user-label=tier=frontend",
            "--exec=/bin/true",
        ],
    );
    assert!(out.success(), "{out}");
    let m: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat-manifest", &uuid]).stdout).unwrap();
    let has = |v: &serde_json::Value, k: &str, val: &str| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == k && x["value"] == val))
    };
    assert!(has(&m["annotations"], "team", "storage"), "{m:#}");
    let app = &m["apps"][0];
    assert_eq!(app["name"], "web");
    assert!(has(&app["annotations"], "owner", "alice"), "{m:#}");
    assert!(has(&app["annotations"], "ticket", "OPS-1"), "{m:#}");
    assert!(has(&app["image"]["labels"], "tier", "frontend"), "{m:#}");
}

#[test]
fn boolean_flags_take_values_as_rkts_did() {
    let mut env = PodEnv::new();
    env.rkt.set_env("FROM_PARENT", "parent");
    let probe = "touch /probe 2>/dev/null && echo rw || echo ro; echo \"[$FROM_PARENT]\"";
    assert_eq!(
        env.sh_ok(&[], &["--readonly-rootfs=true"], probe),
        "ro\n[]\n"
    );
    assert_eq!(
        env.sh_ok(&[], &["--readonly-rootfs=false"], probe),
        "rw\n[]\n"
    );
    assert_eq!(
        env.sh_ok(&["--inherit-env=true"], &["--readonly-rootfs"], probe),
        "ro\n[parent]\n"
    );
    assert_eq!(env.sh_ok(&["--inherit-env=false"], &[], probe), "rw\n[]\n");
    let out = env.fail(&["run", &busybox(), "--readonly-rootfs=maybe"]);
    assert!(out.stderr.contains("maybe"), "{out}");
}
