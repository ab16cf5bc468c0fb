//! `rkt export` end to end: a pod changes its filesystem and exits; the export (OCI archive or
//! ACI) is fetched back and a second pod sees the changes; the OCI archive keeps the image's
//! own layers byte for byte and shares them in the store. Needs root, overlayfs and cgroups,
//! like every pod test.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rkt_tests::Fixtures;
use rkt_tests::rkt::{Rkt, RktOutput};

/// rkt's exit status for its own errors.
const EXIT_ERROR: i32 = 254;

/// The first pod's changes: a new file with an owner and set-uid mode and a hard link to it,
/// an appended file, a deleted lower file, a replaced (opaque) directory, a symlink leading out
/// of the root, and a file whose name reads as an OCI whiteout is *not* made (it is refused).
const CHANGES: &str = "set -e
echo created > /new-file
chown 1000:1001 /new-file
chmod 4711 /new-file
ln /new-file /new-link
echo 'extra:x:4242:4242::/:/bin/sh' >> /etc/passwd
rm /etc/rkt-fixture-top
rm -rf /usr
mkdir -p /usr/fresh
echo inside > /usr/fresh/only
ln -s /etc/shadow-of-the-host /sym
";

/// What the second pod prints about those changes.
const CHECK: &str = "
cat /new-file
stat -c '%a %u %g %h' /new-file
[ \"$(stat -c %i /new-file)\" = \"$(stat -c %i /new-link)\" ] && echo same-inode
grep -c '^extra:' /etc/passwd
[ -e /etc/rkt-fixture-top ] && echo top-still-there
ls -A /usr
cat /usr/fresh/only
readlink /sym
grep -q localhost /etc/hosts && echo hosts-ok
";

const CHECK_EXPECTED: &str = "created
4711 1000 1001 2
same-inode
1
fresh
inside
/etc/shadow-of-the-host
hosts-ok
";

fn fx() -> &'static Fixtures {
    Fixtures::get()
}

struct Env {
    rkt: Rkt,
}

impl Env {
    fn new() -> Env {
        Env { rkt: Rkt::new() }
    }

    fn args(args: &[&str]) -> Vec<String> {
        std::iter::once("--insecure-options=image")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect()
    }

    fn run(&self, args: &[&str]) -> RktOutput {
        self.rkt.run(&Self::args(args))
    }

    fn ok(&self, args: &[&str]) -> RktOutput {
        self.rkt.ok(&Self::args(args))
    }

    /// `rkt ARGS…` must fail as rkt fails, saying `needle`.
    fn refused(&self, args: &[&str], needle: &str) -> RktOutput {
        let out = self.run(args);
        assert_eq!(out.code(), Some(EXIT_ERROR), "{out}");
        assert!(out.stderr.contains(needle), "expected {needle:?}: {out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
        out
    }

    /// Runs `IMAGE --exec=/bin/sh -- -c SCRIPT` (plus `app_flags`) as a pod; its output and
    /// UUID.
    fn sh(&self, image: &str, app_flags: &[&str], script: &str) -> (RktOutput, String) {
        let file = self.rkt.home().join(format!(
            "uuid-{}",
            std::fs::read_dir(self.rkt.home()).unwrap().count()
        ));
        let save = format!("--uuid-file-save={}", file.display());
        let mut a = vec!["run", "--net=none", &save, image];
        a.extend_from_slice(app_flags);
        a.extend(["--exec=/bin/sh", "--", "-c", script]);
        let out = self.run(&a);
        let uuid = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("no UUID saved ({e}): {out}"))
            .trim()
            .to_owned();
        (out, uuid)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.rkt.home().join(name)
    }

    /// The pod's directory, wherever its state put it.
    fn pod_dir(&self, uuid: &str) -> PathBuf {
        for state in ["run", "exited-garbage", "prepared", "prepare", "garbage"] {
            let d = self.rkt.dir().join("pods").join(state).join(uuid);
            if d.exists() {
                return d;
            }
        }
        panic!("pod {uuid} has no directory");
    }

    fn layer_trees(&self) -> usize {
        std::fs::read_dir(self.rkt.store().join("layers/sha256"))
            .map(|d| d.count())
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

fn busybox() -> String {
    format!("oci:{}", fx().busybox.reference())
}

/// Reads every member of a tar archive into memory.
fn members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.insert(name, v);
    }
    out
}

fn blob<'a>(m: &'a BTreeMap<String, Vec<u8>>, d: &str) -> &'a [u8] {
    let p = format!("blobs/{}", d.replace(':', "/"));
    m.get(&p)
        .unwrap_or_else(|| panic!("{p} missing from the archive"))
}

/// An xattr of a file, if set.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// `security.capability` v2 granting `cap_net_bind_service` (permitted).
const CAP_NET_BIND: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Marks `new-file` in the exited pod's upper dir with xattrs, as if the app had set them
/// (busybox has no setfattr).
fn set_xattrs(env: &Env, uuid: &str) {
    let f = env.pod_dir(uuid).join("apps/busybox/upper/new-file");
    rustix::fs::lsetxattr(&f, "user.origin", b"pod1", rustix::fs::XattrFlags::empty()).unwrap();
    rustix::fs::lsetxattr(
        &f,
        "security.capability",
        &CAP_NET_BIND,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[test]
fn oci_export_carries_the_changes_on_top_of_the_original_layers() {
    let env = Env::new();
    let (out, uuid) = env.sh(&busybox(), &[], CHANGES);
    assert!(out.success(), "{out}");
    set_xattrs(&env, &uuid);
    let trees_before = env.layer_trees();

    let tar = env.out("changed.tar");
    env.ok(&["export", &uuid, tar.to_str().unwrap()]);

    // The archive: the fixture's layer blobs byte for byte, plus one gzip layer.
    let m = members(&tar);
    let index: serde_json::Value = serde_json::from_slice(&m["index.json"]).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "localhost/busybox-export:latest"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(blob(&m, entry["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let original = &fx().busybox.image.layers;
    assert_eq!(layers.len(), original.len() + 1);
    for (l, o) in layers.iter().zip(original) {
        assert_eq!(l["digest"], o.digest.to_string());
        let fixture_blob =
            std::fs::read(fx().busybox.path.join("blobs/sha256").join(o.digest.hex())).unwrap();
        assert_eq!(blob(&m, &o.digest.to_string()), fixture_blob);
    }
    assert_eq!(
        layers[original.len()]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(blob(&m, config_digest)).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), original.len() + 1);
    for (d, o) in diff_ids.iter().zip(&fx().busybox.image.diff_ids) {
        assert_eq!(d, &o.to_string());
    }
    let history = config["history"].as_array().unwrap();
    assert!(
        history.last().unwrap()["created_by"]
            .as_str()
            .unwrap()
            .contains(&uuid),
        "{history:?}"
    );
    // The image's run settings are the original's.
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );

    // Fetched back: one new tree (the changes), the original ones shared.
    let fetched = env.ok(&["fetch", &format!("oci-archive:{}", tar.display())]);
    assert_eq!(fetched.last_line(), config_digest, "{fetched}");
    assert_eq!(env.layer_trees(), trees_before + 1);
    let new_tree = env
        .rkt
        .store()
        .join("layers")
        .join(diff_ids.last().unwrap().as_str().unwrap().replace(':', "/"))
        .join("tree");
    assert_eq!(
        xattr(&new_tree.join("new-file"), "user.origin").as_deref(),
        Some(&b"pod1"[..])
    );
    assert_eq!(
        xattr(&new_tree.join("new-file"), "security.capability").as_deref(),
        Some(&CAP_NET_BIND[..])
    );
    // The pod's /etc/hosts mount target is not part of the image.
    assert!(!new_tree.join("etc/hosts").exists());

    // A pod of the new image sees the first pod's changes.
    let (out, _) = env.sh("localhost/busybox-export:latest", &[], CHECK);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, CHECK_EXPECTED, "{out}");
    // Its own command is the original image's.
    let out = env.ok(&["run", "--net=none", "localhost/busybox-export:latest"]);
    assert_eq!(out.stdout, "hello from the rkt busybox fixture\n", "{out}");
}

#[test]
fn aci_export_flattens_the_changes() {
    let env = Env::new();
    let (out, uuid) = env.sh(&busybox(), &[], CHANGES);
    assert!(out.success(), "{out}");
    set_xattrs(&env, &uuid);
    let aci = env.out("changed.aci");
    env.ok(&["export", "--format=aci", &uuid, aci.to_str().unwrap()]);
    let m = members(&aci);
    let manifest: serde_json::Value = serde_json::from_slice(&m["manifest"]).unwrap();
    assert_eq!(manifest["acKind"], "ImageManifest");
    assert_eq!(manifest["name"], "localhost/busybox-export");
    assert_eq!(
        manifest["app"]["exec"],
        serde_json::json!(["/bin/sh", "-c", "echo hello from the rkt busybox fixture"])
    );
    assert!(m.contains_key("rootfs/bin/busybox"));
    assert!(m.contains_key("rootfs/new-file"));
    assert!(!m.contains_key("rootfs/etc/rkt-fixture-top"));
    assert!(!m.keys().any(|k| k.contains(".wh.")), "{:?}", m.keys());

    let fetched = env.ok(&["fetch", aci.to_str().unwrap()]);
    let id = fetched.last_line().to_owned();
    assert!(id.starts_with("sha512"), "{fetched}");
    let (out, _) = env.sh(&id, &[], CHECK);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, CHECK_EXPECTED, "{out}");
    // The ACI's one tree (the whole flattened root) keeps the xattrs too.
    let flat: Vec<PathBuf> = std::fs::read_dir(env.rkt.store().join("layers/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path().join("tree"))
        .filter(|t| t.join("bin/busybox").exists() && t.join("new-file").exists())
        .collect();
    assert_eq!(flat.len(), 1, "{flat:?}");
    assert_eq!(
        xattr(&flat[0].join("new-file"), "user.origin").as_deref(),
        Some(&b"pod1"[..])
    );
    assert_eq!(
        xattr(&flat[0].join("new-file"), "security.capability").as_deref(),
        Some(&CAP_NET_BIND[..])
    );
}

#[test]
fn docker_images_export_with_docker_media_types() {
    let env = Env::new();
    let img = format!("oci:{}", fx().busybox_docker.reference());
    let (out, uuid) = env.sh(&img, &[], "echo docker > /marker");
    assert!(out.success(), "{out}");
    let tar = env.out("docker.tar");
    env.ok(&["export", &uuid, tar.to_str().unwrap()]);
    let m = members(&tar);
    let index: serde_json::Value = serde_json::from_slice(&m["index.json"]).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(blob(&m, index["manifests"][0]["digest"].as_str().unwrap()))
            .unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["layers"].as_array().unwrap().last().unwrap()["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let trees = env.layer_trees();
    let id = env
        .ok(&["fetch", &format!("oci-archive:{}", tar.display())])
        .last_line()
        .to_owned();
    assert_eq!(env.layer_trees(), trees + 1);
    let (out, _) = env.sh(&id, &[], "cat /marker");
    assert_eq!(out.stdout, "docker\n", "{out}");
}

#[test]
fn appc_images_export_as_acis_by_default() {
    let env = Env::new();
    let img = fx().aci.plain.to_str().unwrap().to_owned();
    let (out, uuid) = env.sh(&img, &[], "echo appc > /marker");
    assert!(out.success(), "{out}");
    let aci = env.out("appc.aci");
    env.refused(
        &["export", "--format=oci", &uuid, aci.to_str().unwrap()],
        "--format=aci",
    );
    env.ok(&["export", &uuid, aci.to_str().unwrap()]);
    let m = members(&aci);
    let manifest: serde_json::Value = serde_json::from_slice(&m["manifest"]).unwrap();
    assert_eq!(
        manifest["name"],
        format!("{}-export", fx().aci.name).as_str()
    );
    // The image's own manifest otherwise.
    assert_eq!(manifest["app"]["exec"], fx().aci.manifest["app"]["exec"]);
    let id = env
        .ok(&["fetch", aci.to_str().unwrap()])
        .last_line()
        .to_owned();
    let (out, _) = env.sh(&id, &[], "cat /marker");
    assert_eq!(out.stdout, "appc\n", "{out}");
}

#[test]
fn export_refuses_what_it_cannot_export() {
    let env = Env::new();
    let out_file = env.out("out.tar");
    let out_s = out_file.to_str().unwrap();

    // A pod that never ran.
    let prepared = env.ok(&["prepare", "--quiet", &busybox()]);
    let prepared = prepared.last_line();
    env.refused(&["export", prepared, out_s], "never ran");

    // A running pod.
    let file = env.out("running-uuid");
    let mut c = env.rkt.command(&Env::args(&[
        "run",
        "--net=none",
        &format!("--uuid-file-save={}", file.display()),
        &busybox(),
        "--exec=/bin/sleep",
        "--",
        "60",
    ]));
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = rkt_tests::spawn::spawn(c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        if let Ok(s) = std::fs::read_to_string(&file)
            && s.ends_with('\n')
        {
            let uuid = s.trim().to_owned();
            let st = env.run(&["status", &uuid]);
            if st.stdout.contains("state=running") {
                break uuid;
            }
        }
        assert!(Instant::now() < deadline, "the pod did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    env.refused(&["export", &running, out_s], "is running");
    // Stop needs the supervisor's pid, recorded once the apps are started.
    env.ok(&["status", "--wait-ready=60s", &running]);
    assert!(!out_file.exists());
    env.ok(&["stop", "--force", &running]);
    child.wait().unwrap();

    // Two apps: one must be chosen, and it must exist.
    let img = busybox();
    let out = env.run(&[
        "run",
        "--net=none",
        &format!("--uuid-file-save={}", env.out("two").display()),
        &img,
        "--name=one",
        "--exec=/bin/true",
        &img,
        "--name=two",
        "--exec=/bin/true",
    ]);
    assert!(out.success(), "{out}");
    let two = std::fs::read_to_string(env.out("two"))
        .unwrap()
        .trim()
        .to_owned();
    env.refused(&["export", &two, out_s], "--app");
    env.refused(&["export", "--app=three", &two, out_s], "no app \"three\"");
    env.ok(&["export", "--app=two", &two, out_s]);

    // An existing output is kept unless --overwrite.
    let before = std::fs::read(&out_file).unwrap();
    env.refused(&["export", "--app=one", &two, out_s], "--overwrite");
    assert_eq!(std::fs::read(&out_file).unwrap(), before);
    env.ok(&["export", "--overwrite", "--app=one", &two, out_s]);
    assert_ne!(std::fs::read(&out_file).unwrap(), before);
    // No temporary file is left beside it.
    let stray: Vec<_> = std::fs::read_dir(env.rkt.home())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rkt-export"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // A file whose name an OCI layer would read as a deletion.
    let (out, uuid) = env.sh(&busybox(), &[], "touch /.wh.trick");
    assert!(out.success(), "{out}");
    env.refused(
        &["export", &uuid, env.out("trick.tar").to_str().unwrap()],
        ".wh.",
    );
    assert!(!env.out("trick.tar").exists());

    // An image removed from the store since (its blobs are gone).
    let (out, uuid) = env.sh(&busybox(), &[], "true");
    assert!(out.success(), "{out}");
    let ids: Vec<String> = env
        .rkt
        .image_list()
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    for id in &ids {
        env.ok(&["image", "rm", id]);
    }
    env.refused(
        &["export", &uuid, env.out("gone.tar").to_str().unwrap()],
        "no longer in the store",
    );
}
