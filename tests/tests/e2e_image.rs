//! The `rkt image` verbs that look at and manage the store, end to end: `list` (columns,
//! legend, fields, sorting, formats), resolving what the user typed, `rm`, `gc`,
//! `cat-manifest`; plus `rkt version` and `rkt config`.

mod e2e_local_support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use e2e_local_support::*;
use rkt_tests::rkt::Rkt;
use rkt_types::Digest;
use serde_json::{Value, json};

/// A store with the busybox OCI image (A), the busybox ACI (B) and the arm64 busybox (C, the
/// same layers as A), fetched in that order.
struct Three {
    rkt: Rkt,
    a: String,
    b: String,
    c: String,
}

fn three() -> Three {
    let fx = fx();
    let rkt = Rkt::new();
    let a = fetch1(&rkt, oci(&fx.busybox));
    let b = fetch1(&rkt, &fx.aci.gzip);
    let c = rkt
        .ok(&[
            "--insecure-options=image",
            "fetch",
            "--platform=linux/arm64",
            &format!("oci:{}", fx.multiarch.reference()),
        ])
        .last_line()
        .to_owned();
    Three { rkt, a, b, c }
}

/// Table rows split into columns (two or more spaces apart).
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn short(id: &str) -> String {
    let d: Digest = id.parse().unwrap();
    d.short()
}

#[test]
fn image_list_columns_legend_fields_sorting_and_formats() {
    let t = three();
    let rkt = &t.rkt;

    let out = rkt.ok(&["image", "list"]);
    let table = rows(&out.stdout);
    assert_eq!(
        table[0],
        ["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"],
        "{out}"
    );
    assert_eq!(table.len(), 4, "{out}");
    let ids: Vec<&str> = table[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, [short(&t.a), short(&t.b), short(&t.c)], "import order");
    assert!(!out.stdout.contains(&t.a), "ids are short without --full");
    assert_eq!(table[1][1], "localhost/busybox:latest");
    assert_eq!(table[2][1], "example.com/busybox:1.35.0");
    assert!(table[1][2].ends_with("iB"), "human size: {out}");

    let out = rkt.ok(&["image", "list", "--no-legend"]);
    let table = rows(&out.stdout);
    assert_eq!(table.len(), 3, "{out}");
    assert!(!out.stdout.contains("IMPORT TIME"), "{out}");

    let out = rkt.ok(&[
        "image",
        "list",
        "--full",
        "--fields=id,format,platform,latest,size",
    ]);
    let table = rows(&out.stdout);
    assert_eq!(table[0], ["ID", "FORMAT", "PLATFORM", "LATEST", "SIZE"]);
    let json: HashMap<String, Value> = rkt
        .image_list()
        .into_iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v))
        .collect();
    let want = [
        (&t.a, "oci", "linux/amd64", "true"),
        (&t.b, "appc", "linux/amd64", "false"),
        (&t.c, "oci", "linux/arm64", "true"),
    ];
    for (row, (id, format, platform, latest)) in table[1..].iter().zip(want) {
        assert_eq!(row[..4], [id.as_str(), format, platform, latest], "{out}");
        assert_eq!(row[4], json[id.as_str()]["size"].to_string(), "exact size");
    }

    let order = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["image", "list", "--no-legend", "--full", "--fields=id"];
        a.extend_from_slice(args);
        rkt.ok(&a)
            .stdout
            .lines()
            .map(|l| l.trim().to_owned())
            .collect()
    };
    // Names: example.com/… < localhost/busybox < localhost/multiarch; ids: A < C < B.
    assert_eq!(order(&["--sort=name"]), [&*t.b, &*t.a, &*t.c]);
    assert_eq!(order(&["--sort=id"]), [&*t.a, &*t.c, &*t.b]);
    assert_eq!(order(&["--sort=id", "--order=desc"]), [&*t.b, &*t.c, &*t.a]);
    assert_eq!(
        order(&["--sort=name", "--order=desc"]),
        [&*t.c, &*t.a, &*t.b]
    );

    let out = rkt.ok(&["image", "list", "--format=json"]);
    assert_eq!(out.stdout.trim().lines().count(), 1, "one line of JSON");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let first = &v[0];
    assert_eq!(first["id"], t.a.as_str());
    assert_eq!(first["name"], "localhost/busybox:latest");
    assert_eq!(first["names"], json!(["localhost/busybox:latest"]));
    assert_eq!(first["format"], "oci");
    assert_eq!(first["platform"], "linux/amd64");
    assert!(first["size"].as_u64().unwrap() > 1_000_000);
    // A and C share both layers.
    assert!(first["shared_size"].as_u64().unwrap() > 1_000_000, "{v}");
    for k in ["import_time", "last_used"] {
        assert!(first[k].as_str().unwrap().ends_with('Z'), "{k}: {v}");
    }
    let pretty = rkt.ok(&["image", "list", "--format=json-pretty"]);
    assert!(pretty.stdout.lines().count() > 10, "{pretty}");
    assert_eq!(serde_json::from_str::<Value>(&pretty.stdout).unwrap(), v);
}

/// Two OCI layouts of busybox whose configs differ only in a label, chosen so that their
/// ids (config digests) share the first four hex digits.
fn colliding_layouts(dir: &Path) -> [(PathBuf, String); 2] {
    let base = &fx().busybox;
    let blobs = base.path.join("blobs/sha256");
    let read_json = |d: &Digest| -> Value {
        serde_json::from_slice(&fs::read(blobs.join(d.hex())).unwrap()).unwrap()
    };
    let manifest = read_json(&base.image.manifest.digest);
    let config = read_json(&base.image.config.digest);
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let (first, second) = (0u32..)
        .find_map(|i| {
            let mut c = config.clone();
            c["config"]["Labels"]["rkt.test.variant"] = json!(i.to_string());
            let bytes = serde_json::to_vec(&c).unwrap();
            let d = Digest::sha256_of(&bytes);
            let key = d.hex()[..4].to_owned();
            seen.insert(key, bytes.clone()).map(|prev| (prev, bytes))
        })
        .unwrap();
    [first, second].map(|config_bytes| {
        let id = Digest::sha256_of(&config_bytes);
        let layout = dir.join(&id.hex()[..16]);
        let out = layout.join("blobs/sha256");
        fs::create_dir_all(&out).unwrap();
        for l in &base.image.layers {
            fs::copy(blobs.join(l.digest.hex()), out.join(l.digest.hex())).unwrap();
        }
        fs::write(out.join(id.hex()), &config_bytes).unwrap();
        let mut m = manifest.clone();
        m["config"]["digest"] = json!(id.to_string());
        m["config"]["size"] = json!(config_bytes.len());
        let m_bytes = serde_json::to_vec(&m).unwrap();
        let m_digest = Digest::sha256_of(&m_bytes);
        fs::write(out.join(m_digest.hex()), &m_bytes).unwrap();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m_digest.to_string(),
                "size": m_bytes.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        });
        fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        fs::write(
            layout.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        (layout, id.to_string())
    })
}

#[test]
fn images_resolve_by_id_prefix_and_name() {
    let fx = fx();
    let rkt = Rkt::new();
    let scratch = tempfile::tempdir().unwrap();
    let [(l1, id1), (l2, id2)] = colliding_layouts(scratch.path());
    assert_eq!(fetch1(&rkt, format!("oci:{}", l1.display())), id1);
    assert_eq!(fetch1(&rkt, format!("oci:{}", l2.display())), id2);
    let docker = fetch1(
        &rkt,
        format!("docker-archive:{}", fx.docker_archive.path.display()),
    );
    let aci = fetch1(&rkt, &fx.aci.plain);

    // What `cat-manifest` prints tells which image a query found.
    let manifest_of = |id: &str| -> String { rkt.ok(&["image", "cat-manifest", id]).stdout };
    let by_id: HashMap<&str, String> = [&id1, &id2, &docker, &aci]
        .into_iter()
        .map(|id| (id.as_str(), manifest_of(id)))
        .collect();
    let resolves = |query: &str, id: &str| {
        let out = rkt.ok(&["image", "cat-manifest", query]);
        assert_eq!(out.stdout, by_id[id], "{query} should name {id}");
    };
    let hex1 = id1.strip_prefix("sha256:").unwrap();
    let hex2 = id2.strip_prefix("sha256:").unwrap();
    let common = hex1
        .chars()
        .zip(hex2.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common >= 4);
    resolves(&format!("sha256-{hex1}"), &id1);
    resolves(&hex1[..common + 1], &id1);
    resolves(&hex2[..common + 1], &id2);
    resolves(&format!("sha256:{}", &hex2[..common + 1]), &id2);
    resolves("busybox", &docker);
    resolves("busybox:latest", &docker);
    resolves("docker.io/library/busybox:latest", &docker);
    resolves(&format!("{}:{}", fx.aci.name, fx.aci.version), &aci);
    let aci_hex = aci.strip_prefix("sha512:").unwrap();
    resolves(&format!("sha512-{aci_hex}"), &aci);

    let out = fail(&rkt, &["image", "cat-manifest", &hex1[..common]]);
    assert!(out.stderr.contains("ambiguous"), "{out}");
    assert!(
        out.stderr.contains(&id1) && out.stderr.contains(&id2),
        "the error lists both candidates: {out}"
    );
    let out = fail(&rkt, &["image", "cat-manifest", "example.com/nothing:1.0"]);
    assert!(out.stderr.contains("example.com/nothing:1.0"), "{out}");
    let src = format!("oci:{}", l1.display());
    let out = fail(&rkt, &["image", "cat-manifest", &src]);
    assert!(
        out.stderr.contains("rkt fetch") && !out.stderr.contains("docker://oci:"),
        "a source is not a stored name: {out}"
    );
}

#[test]
fn image_rm_removes_what_it_can_and_fails_for_the_rest() {
    let fx = fx();
    let rkt = Rkt::new();
    let a = fetch1(&rkt, oci(&fx.busybox));
    let b = fetch1(&rkt, &fx.aci.xz);
    let out = fail(&rkt, &["image", "rm", "example.com/nosuch", a.as_str()]);
    assert!(
        out.stdout
            .contains(&format!("successfully removed image {a}")),
        "{out}"
    );
    assert!(out.stderr.contains("example.com/nosuch"), "{out}");
    assert_eq!(listed_ids(&rkt), [b.as_str()]);

    let out = rkt.ok(&["image", "rm", "example.com/busybox:1.35.0"]);
    assert!(out.stdout.contains(&b), "{out}");
    assert!(listed_ids(&rkt).is_empty());
    fail(&rkt, &["image", "rm", a.as_str()]);
}

#[test]
fn image_gc_frees_what_removed_images_alone_used() {
    let fx = fx();
    let t = three();
    let rkt = &t.rkt;
    let arm = fx.multiarch.for_arch("arm64").unwrap();
    let arm_only = [
        blob_file(rkt, &arm.config.digest),
        blob_file(rkt, &arm.manifest.digest),
    ];
    let aci_blob = blob_file(rkt, &Digest::sha256_of(&fs::read(&fx.aci.gzip).unwrap()));
    let aci_tree = layer_dir(rkt, &Digest::sha256_of(&fs::read(&fx.aci.plain).unwrap()));
    let mut kept: Vec<PathBuf> = fx
        .busybox
        .image
        .layers
        .iter()
        .map(|l| blob_file(rkt, &l.digest))
        .collect();
    kept.extend(fx.busybox.image.diff_ids.iter().map(|d| layer_dir(rkt, d)));
    kept.push(blob_file(rkt, &fx.busybox.image.config.digest));
    kept.push(blob_file(rkt, &fx.busybox.image.manifest.digest));
    for p in arm_only.iter().chain([&aci_blob, &aci_tree]).chain(&kept) {
        assert!(p.exists(), "{} before gc", p.display());
    }

    rkt.ok(&["image", "rm", t.b.as_str(), t.c.as_str()]);
    let blobs = blob_files(rkt);
    // Within the default grace period nothing goes.
    rkt.ok(&["image", "gc"]);
    assert_eq!(blob_files(rkt), blobs);
    assert!(aci_tree.exists());

    let out = rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(out.stdout.contains("removed"), "{out}");
    for p in arm_only.iter().chain([&aci_blob, &aci_tree]) {
        assert!(!p.exists(), "{} survived gc: {out}", p.display());
    }
    for p in &kept {
        assert!(
            p.exists(),
            "{} is still used by {}: {out}",
            p.display(),
            t.a
        );
    }
    assert_eq!(layer_dirs(rkt).len(), 2);
    assert!(entries(&rkt.store().join("tmp")).is_empty());
    assert_eq!(listed_ids(rkt), [t.a.as_str()]);
    let v = rkt.ok(&["image", "verify", t.a.as_str()]);
    assert!(v.stdout.contains("OK"), "{v}");

    rkt.ok(&["image", "rm", t.a.as_str()]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(layer_dirs(rkt).is_empty(), "{:?}", layer_dirs(rkt));
    assert!(blob_files(rkt).is_empty(), "{:?}", blob_files(rkt));
}

#[test]
fn cat_manifest_prints_the_stored_bytes() {
    let fx = fx();
    let rkt = Rkt::new();
    let a = fetch1(&rkt, oci(&fx.busybox));
    let want = fs::read(
        fx.busybox
            .path
            .join("blobs/sha256")
            .join(fx.busybox.image.manifest.digest.hex()),
    )
    .unwrap();
    let out = rkt.ok(&["image", "cat-manifest", a.as_str()]);
    let got = out.stdout.as_bytes();
    let got = got.strip_suffix(b"\n").unwrap_or(got);
    assert_eq!(got, &want[..], "{out}");
    assert_eq!(Digest::sha256_of(got), fx.busybox.image.manifest.digest);

    let pretty = rkt.ok(&["image", "cat-manifest", "--pretty-print", a.as_str()]);
    assert!(pretty.stdout.contains("\n  \""), "indented: {pretty}");
    let v: Value = serde_json::from_str(&pretty.stdout).unwrap();
    assert_eq!(v, serde_json::from_slice::<Value>(&want).unwrap());

    let b = fetch1(&rkt, &fx.aci.bzip2);
    let out = rkt.ok(&["image", "cat-manifest", b.as_str()]);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        fx.aci.manifest
    );
}

#[test]
fn rkt_version() {
    let out = Rkt::new().ok(&["version"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("rkt Version: {}", env!("CARGO_PKG_VERSION")),
        "{out}"
    );
    assert!(lines.contains(&"appc Version: 0.8.11"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("Features:")), "{out}");
}

#[test]
fn rkt_config_shows_paths_and_redacts_secrets() {
    let rkt = Rkt::new();
    let auth = rkt.local_config().join("auth.d");
    fs::create_dir_all(&auth).unwrap();
    fs::write(
        auth.join("registry.json"),
        serde_json::to_vec(&json!({
            "rktKind": "dockerAuth",
            "rktVersion": "v1",
            "registries": ["127.0.0.1:5000"],
            "credentials": {"user": "alice", "password": "hunter2-registry-secret"},
        }))
        .unwrap(),
    )
    .unwrap();
    fs::write(
        auth.join("acis.json"),
        serde_json::to_vec(&json!({
            "rktKind": "auth",
            "rktVersion": "v1",
            "domains": ["127.0.0.1"],
            "type": "basic",
            "credentials": {"user": "bob", "password": "hunter2-aci-secret"},
        }))
        .unwrap(),
    )
    .unwrap();
    let out = rkt.ok(&["config"]);
    assert!(!out.stdout.contains("hunter2"), "a password leaked: {out}");
    assert_eq!(out.stdout.trim().lines().count(), 1);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let entries = v["stage0"].as_array().unwrap();
    let kind = |k: &str| entries.iter().find(|e| e["rktKind"] == k).unwrap().clone();
    let docker = kind("dockerAuth");
    assert_eq!(docker["registries"], json!(["127.0.0.1:5000"]));
    assert_eq!(docker["credentials"]["user"], "alice");
    assert_eq!(docker["credentials"]["password"], "<redacted>");
    let a = kind("auth");
    assert_eq!(a["domains"], json!(["127.0.0.1"]));
    assert_eq!(a["credentials"]["password"], "<redacted>");
    assert_eq!(kind("paths")["data"], rkt.dir().to_str().unwrap());

    let pretty = rkt.ok(&["config", "--pretty-print"]);
    assert!(pretty.stdout.lines().count() > 10);
    assert_eq!(serde_json::from_str::<Value>(&pretty.stdout).unwrap(), v);
}

/// The commands in README.md's "Using it" block, with its placeholders filled in.
fn readme_commands() -> (String, Vec<Vec<String>>) {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Using it"))
        .expect("README.md has a \"Using it\" section")
        .to_owned();
    let block = section
        .split("```")
        .nth(1)
        .expect("the section starts with a code block");
    let mut cmds = Vec::new();
    for line in block.lines().skip(1) {
        let line = line.split(" # ").next().unwrap().replace(['[', ']'], "");
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words {
            if w == "rkt" {
                cmds.push(Vec::new());
            } else {
                cmds.last_mut()
                    .expect("every line starts with rkt")
                    .push(w.to_owned());
            }
        }
    }
    (section, cmds)
}

#[test]
fn readme_commands_work_as_documented() {
    let fx = fx();
    let (section, cmds) = readme_commands();
    assert!(cmds.len() >= 10, "{cmds:?}");
    let rkt = Rkt::new();
    let scratch = rkt.dir().join("readme");
    fs::create_dir(&scratch).unwrap();
    fs::copy(&fx.aci.gzip, scratch.join("app.aci")).unwrap();
    let mut n = 0;
    let mut ran = 0;
    for cmd in &cmds {
        if cmd.iter().any(|a| a.starts_with("docker://")) {
            continue; // a registry: the registry end-to-end tests cover it
        }
        let args: Vec<String> = cmd
            .iter()
            .map(|a| {
                n += 1;
                match a.as_str() {
                    "oci:/path/to/layout:tag" => oci(&fx.busybox),
                    "oci-archive:/path/to/image.tar" => {
                        format!("oci-archive:{}", fx.oci_archive.path.display())
                    }
                    "docker-archive:/path/to/saved.tar" => {
                        format!("docker-archive:{}", fx.docker_archive.path.display())
                    }
                    "IMAGE" => "localhost/busybox".into(),
                    "DIR" => scratch.join(format!("dir{n}")).display().to_string(),
                    "out.tar" => scratch.join("out.tar").display().to_string(),
                    other => {
                        assert!(
                            !other.chars().all(|c| c.is_ascii_uppercase()),
                            "README placeholder {other} is unknown to this test"
                        );
                        other.to_owned()
                    }
                }
            })
            .collect();
        let out = rkt.command(&args).current_dir(&scratch).output().unwrap();
        assert!(
            out.status.success(),
            "README command `rkt {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 13, "ran {ran} README commands");

    // Every flag the section mentions exists.
    let mut help = String::new();
    let verbs: [&[&str]; 12] = [
        &[],
        &["fetch"],
        &["config"],
        &["image", "list"],
        &["image", "rm"],
        &["image", "gc"],
        &["image", "cat-manifest"],
        &["image", "export"],
        &["image", "extract"],
        &["image", "render"],
        &["image", "verify"],
        &["version"],
    ];
    for v in verbs {
        let mut a = v.to_vec();
        a.push("--help");
        help.push_str(&rkt.ok(&a).stdout);
    }
    let flags: std::collections::BTreeSet<&str> = section
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.contains("--pull-policy"), "{flags:?}");
    for f in flags {
        assert!(
            help.contains(f),
            "README mentions {f}, which no verb accepts"
        );
    }
}
