//! `rkt run --pod-manifest` / `rkt prepare --pod-manifest` end to end: a complete appc
//! PodManifest runs stored images with its app sections, volumes, mounts, read-only roots and
//! annotations; the `pod` file written is the given manifest, completed; what it replaces on
//! the command line is refused and nothing is left behind. Needs root, overlayfs and cgroups.

use std::path::{Path, PathBuf};

use rkt_tests::Fixtures;
use rkt_tests::rkt::{Rkt, RktOutput};
use serde_json::{Value, json};

/// rkt's exit status for its own errors.
const EXIT_ERROR: i32 = 254;

struct Env {
    rkt: Rkt,
}

impl Env {
    fn new() -> Env {
        Env { rkt: Rkt::new() }
    }

    fn run(&self, args: &[&str]) -> RktOutput {
        self.rkt.run(args)
    }

    fn ok(&self, args: &[&str]) -> RktOutput {
        self.rkt.ok(args)
    }

    /// `rkt ARGS…` must fail as rkt fails, saying `needle`.
    fn refused(&self, args: &[&str], needle: &str) -> RktOutput {
        let out = self.run(args);
        assert_eq!(out.code(), Some(EXIT_ERROR), "{out}");
        assert!(out.stderr.contains(needle), "expected {needle:?}: {out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
        out
    }

    /// Fetches the busybox fixture; returns its id.
    fn fetch_busybox(&self) -> String {
        let src = format!("oci:{}", Fixtures::get().busybox.reference());
        self.ok(&["--insecure-options=image", "fetch", &src])
            .last_line()
            .to_owned()
    }

    /// Writes `m` as a manifest file.
    fn manifest(&self, name: &str, m: &Value) -> PathBuf {
        let p = self.rkt.home().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(m).unwrap()).unwrap();
        p
    }

    fn pods(&self) -> usize {
        let out = self.ok(&["list", "--format=json"]);
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Leave no cgroup behind.
        let _ = self
            .rkt
            .run(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    }
}

/// Two apps: `main` by id with a full `app` section (exec, user, group, working directory,
/// environment), a read-only host volume and a shared empty volume; `side` by name with no
/// `app` section and a read-only root filesystem.
fn two_apps(id: &str, host_dir: &Path) -> Value {
    let main = "echo main GREETING=$GREETING AC_APP_NAME=$AC_APP_NAME; \
        echo main uid=$(id -u) gid=$(id -g) cwd=$(pwd) host=$(hostname); \
        cat /host/f; touch /host/new 2>/dev/null || echo main host-ro; \
        echo shared > /scratch/from-main && echo main scratch-rw";
    json!({
        "acKind": "PodManifest",
        "acVersion": "0.8.11",
        "apps": [
            {
                "name": "main",
                "image": {"id": id},
                "app": {
                    "exec": ["/bin/sh", "-c", main],
                    "user": "1000",
                    "group": "1000",
                    "workingDirectory": "/tmp",
                    "environment": [
                        {"name": "PATH", "value": "/bin:/usr/bin"},
                        {"name": "GREETING", "value": "from-manifest"}
                    ],
                    "mountPoints": [{"name": "scratch", "path": "/scratch"}]
                },
                "mounts": [{"volume": "hv", "path": "/host"}],
                "annotations": [{"name": "team", "value": "alpha"}]
            },
            {
                "name": "side",
                "image": {"name": "localhost/busybox", "labels": [{"name": "version", "value": "latest"}]},
                "readOnlyRootFS": true
            }
        ],
        "volumes": [
            {"name": "hv", "kind": "host", "source": host_dir.to_str().unwrap(), "readOnly": true},
            {"name": "scratch", "kind": "empty", "mode": "0777"}
        ],
        "annotations": [{"name": "pod-note", "value": "from-file"}]
    })
}

/// Every field of `given` is in `written` with the same value (objects may have more keys).
fn assert_within(given: &Value, written: &Value, at: &str) {
    match (given, written) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, v) in g {
                let next = format!("{at}.{k}");
                let wv = w
                    .get(k)
                    .unwrap_or_else(|| panic!("{next} missing from the written manifest"));
                assert_within(v, wv, &next);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{at}: {given} vs {written}");
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert_within(a, b, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(given, written, "{at}"),
    }
}

#[test]
fn a_pod_manifest_runs_stored_images_with_its_settings() {
    let env = Env::new();
    let id = env.fetch_busybox();
    let host_dir = env.rkt.home().join("hostvol");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from the host\n").unwrap();
    let given = two_apps(&id, &host_dir);
    let file = env.manifest("pod.json", &given);
    let uuid_file = env.rkt.home().join("uuid");
    let out = env.ok(&[
        "run",
        "--net=none",
        "--hostname=pm-host",
        &format!("--uuid-file-save={}", uuid_file.display()),
        &format!("--pod-manifest={}", file.display()),
    ]);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "from the host",
            "hello from the rkt busybox fixture",
            "main GREETING=from-manifest AC_APP_NAME=main",
            "main host-ro",
            "main scratch-rw",
            "main uid=1000 gid=1000 cwd=/tmp host=pm-host",
        ],
        "{out}"
    );
    let uuid = std::fs::read_to_string(&uuid_file)
        .unwrap()
        .trim()
        .to_owned();

    // The pod file: the given manifest, with the image references resolved and the app
    // section `side` did not have filled in.
    let written: Value = serde_json::from_str(&env.ok(&["cat-manifest", &uuid]).stdout).unwrap();
    let mut expect = given.clone();
    expect["apps"][1]["image"]["id"] = json!(id);
    assert_within(&expect, &written, "manifest");
    assert_eq!(
        written["apps"][0]["image"]["name"],
        "localhost/busybox:latest"
    );
    assert_eq!(
        written["apps"][1]["app"]["exec"],
        json!(["/bin/sh", "-c", "echo hello from the rkt busybox fixture"])
    );
    assert_eq!(written["apps"][1]["readOnlyRootFS"], true);
    assert_eq!(written["annotations"], given["annotations"]);
    assert_eq!(written["volumes"], given["volumes"]);

    // `list` knows the apps by the manifest's names.
    let list = env.ok(&["list", "--no-legend", "--full"]).stdout;
    assert!(list.contains("main") && list.contains("side"), "{list}");
}

#[test]
fn a_read_only_root_and_a_prepared_pod_manifest() {
    let env = Env::new();
    let id = env.fetch_busybox();
    let m = json!({
        "acKind": "PodManifest",
        "acVersion": "0.8.11",
        "apps": [{
            "name": "only",
            "image": {"id": &id[..16]},
            "app": {"exec": ["/bin/sh", "-c", "touch /x 2>/dev/null || echo ro-root; echo $AC_APP_NAME"]},
            "readOnlyRootFS": true
        }]
    });
    let file = env.manifest("ro.json", &m);
    let pm = format!("--pod-manifest={}", file.display());
    let uuid = env
        .ok(&["prepare", "--quiet", "--name=from-manifest", &pm])
        .last_line()
        .to_owned();
    let written: Value = serde_json::from_str(&env.ok(&["cat-manifest", &uuid]).stdout).unwrap();
    // An id prefix is resolved to the full id.
    assert_eq!(written["apps"][0]["image"]["id"], json!(id));
    let out = env.ok(&["run-prepared", "from-manifest"]);
    assert_eq!(out.stdout, "ro-root\nonly\n", "{out}");
}

#[test]
fn what_a_pod_manifest_replaces_is_refused_and_nothing_is_left() {
    let env = Env::new();
    let id = env.fetch_busybox();
    let host_dir = env.rkt.home().join("hostvol");
    std::fs::create_dir_all(&host_dir).unwrap();
    let file = env.manifest("pod.json", &two_apps(&id, &host_dir));
    let pm = format!("--pod-manifest={}", file.display());

    env.refused(&["run", &pm, "localhost/busybox"], "give no images");
    env.refused(
        &["run", &pm, "--volume=x,kind=empty", "--set-env=A=B"],
        "--volume, --set-env cannot be combined with --pod-manifest",
    );
    env.refused(&["prepare", &pm, "--annotation=a=b"], "--annotation");
    env.refused(
        &["run", &pm, "--interactive"],
        "--interactive needs exactly one app",
    );

    // An image that was never fetched: nothing is fetched for a pod manifest.
    let mut missing = two_apps(&id, &host_dir);
    missing["apps"][1]["image"] = json!({"name": "docker.io/library/busybox"});
    let f = env.manifest("missing.json", &missing);
    env.refused(
        &["run", &format!("--pod-manifest={}", f.display())],
        "fetch it first",
    );
    missing["apps"][1]["image"] = json!({"id": format!("sha256:{}", "0".repeat(64))});
    let f = env.manifest("missing-id.json", &missing);
    env.refused(
        &["run", &format!("--pod-manifest={}", f.display())],
        "not in the store",
    );

    // Not a pod manifest, or not valid.
    let f = env.manifest(
        "image.json",
        &json!({"acKind": "ImageManifest", "acVersion": "0.8.11"}),
    );
    env.refused(
        &["run", &format!("--pod-manifest={}", f.display())],
        "PodManifest",
    );
    let mut dup = two_apps(&id, &host_dir);
    dup["apps"][1]["name"] = json!("main");
    let f = env.manifest("dup.json", &dup);
    env.refused(
        &["run", &format!("--pod-manifest={}", f.display())],
        "two apps are named",
    );
    let mut undeclared = two_apps(&id, &host_dir);
    undeclared["apps"][0]["mounts"] = json!([{"volume": "nope", "path": "/nope"}]);
    let f = env.manifest("undeclared.json", &undeclared);
    env.refused(
        &["run", &format!("--pod-manifest={}", f.display())],
        "mounts volume \"nope\", which the manifest's \"volumes\" do not define",
    );
    env.refused(
        &["run", "--pod-manifest=/nonexistent/pod.json"],
        "cannot read the pod manifest",
    );

    assert_eq!(env.pods(), 0, "a refused pod manifest left a pod behind");
}
