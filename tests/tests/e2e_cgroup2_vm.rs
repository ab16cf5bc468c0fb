//! rkt on a pure cgroup2 host. This machine's cgroups are hybrid (v1 controllers, a cgroup2
//! with none of them), so the cgroup2 paths for limits, the BPF device filter, `cgroup.kill`
//! and the supervisor leaf would go untested here; this test boots Debian's kernel under qemu
//! with cgroup v1 switched off (`rkt_tests::vm`) and runs the pod and cgroup test suites
//! there, the same binaries that ran on the host. They branch on the layout they find, so in
//! the guest they check the v2 side: `memory.max` and an OOM kill recorded in `status`,
//! `cpu.max`/`cpu.weight`, a device node the filter refuses, `enter` joining the app's
//! cgroup, `gc` leaving no cgroup behind.

use std::path::Path;
use std::time::Duration;

use rkt_tests::vm::{Share, Vm, test_binary};

/// (test binary, its arguments): every pod suite that involves cgroups, and the cgroup crate's
/// own host tests. (`e2e_pod_lifecycle` — logs, list, status — is left to the host: nothing
/// there depends on the layout, and its waits are tuned for native speed.)
const SUITES: &[(&str, &[&str])] = &[
    ("v2", &[]),
    ("host", &[]),
    ("pod_run", &[]),
    ("pod_confinement", &[]),
    ("pod_lifecycle", &[]),
    ("e2e_pod_app", &[]),
    // The last one unmounts the v1 devices hierarchy to reach the BPF filter on a hybrid
    // host; here the filter is all there is, and the first two check it.
    (
        "e2e_pod_devices",
        &["--skip", "without_a_v1_devices_controller"],
    ),
    ("e2e_pod_ops", &[]),
];

#[test]
fn the_pod_and_cgroup_suites_pass_on_a_pure_cgroup2_host() {
    let vm = Vm::cgroup2().unwrap_or_else(|e| panic!("no cgroup2 guest: {e}"));
    let fixtures = rkt_tests::Fixtures::get();
    // Test binaries that keep scratch files under the target directory get a tmpfs there.
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut script = format!(
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         export RKT_TEST_TMPDIR=/tmp HOME=/tmp\n\
         mount -t tmpfs tmpfs '{}'\n\
         test \"$(cat /sys/fs/cgroup/cgroup.controllers)\" != '' || {{ echo 'no cgroup2 controllers'; exit 1; }}\n\
         grep -q ' cgroup ' /proc/self/mountinfo && {{ echo 'a v1 hierarchy is mounted'; exit 1; }}\n\
         failed=0\n",
        target_tmp.display()
    );
    for (name, args) in SUITES {
        let bin = test_binary(name).unwrap_or_else(|e| panic!("{e}"));
        script.push_str(&format!(
            "echo \"=== {name}\"\n'{}' --test-threads=2 {} || failed=1\n",
            bin.display(),
            args.join(" ")
        ));
    }
    script.push_str("exit $failed\n");
    let run = vm.run(
        &script,
        &[Share(&fixtures.cache_root)],
        Duration::from_secs(20 * 60),
    );
    println!("{}", run.log);
    assert_eq!(run.code, Some(0), "{run}");
    for (name, _) in SUITES {
        assert!(
            run.log.contains(&format!("=== {name}\n")),
            "{name} did not run: {run}"
        );
    }
}
