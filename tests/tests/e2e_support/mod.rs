//! Helpers for the registry end-to-end tests: reading the registry's access log, looking at
//! the store's files, and the common `rkt fetch` invocations.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use rkt_tests::Registry;
use rkt_tests::rkt::{Rkt, RktOutput};
use rkt_types::Digest;

/// One line of the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request path (`/v2/busybox/blobs/sha256:…`).
    pub path: String,
    /// The response status.
    pub status: u16,
    /// The client's `User-Agent`.
    pub user_agent: String,
}

impl Access {
    /// A `GET` of a blob of `repo`.
    pub fn is_blob_get(&self, repo: &str) -> bool {
        self.method == "GET" && self.path.starts_with(&format!("/v2/{repo}/blobs/"))
    }

    /// The digest of a blob request.
    pub fn blob(&self) -> Option<Digest> {
        self.path.split("/blobs/").nth(1)?.parse().ok()
    }

    /// A request for a manifest of `repo` (any method).
    pub fn is_manifest(&self, repo: &str) -> bool {
        self.path.starts_with(&format!("/v2/{repo}/manifests/"))
    }
}

/// Parses the access-log lines of a registry log (the lines in combined log format:
/// `127.0.0.1 - - [date] "GET /v2/… HTTP/1.1" 200 942 "" "rkt/0.1.0"`).
pub fn access_log(reg: &Registry) -> Vec<Access> {
    reg.log().lines().filter_map(parse_access).collect()
}

fn parse_access(line: &str) -> Option<Access> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once('"')?;
    let mut req = request.split(' ');
    let method = req.next()?.to_owned();
    let path = req.next()?.to_owned();
    let mut fields = rest.trim_start().splitn(3, ' ');
    let status = fields.next()?.parse().ok()?;
    let _size = fields.next()?;
    let user_agent = fields
        .next()?
        .rsplit('"')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some(Access {
        method,
        path,
        status,
        user_agent,
    })
}

/// The requests rkt (user agent `rkt/…`) made for repository `repo`.
pub fn rkt_requests(reg: &Registry, repo: &str) -> Vec<Access> {
    access_log(reg)
        .into_iter()
        .filter(|a| a.user_agent.starts_with("rkt/") && a.path.starts_with(&format!("/v2/{repo}/")))
        .collect()
}

/// The blobs rkt downloaded from `repo` (successful `GET`s), one entry per download.
pub fn blob_gets(reg: &Registry, repo: &str) -> Vec<Digest> {
    rkt_requests(reg, repo)
        .into_iter()
        .filter(|a| a.is_blob_get(repo) && a.status == 200)
        .filter_map(|a| a.blob())
        .collect()
}

/// `ALGO/HEX` of every entry two levels under `dir` (`store/blobs`, `store/layers`).
pub fn entries2(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(algos) = fs::read_dir(dir) else {
        return out;
    };
    for a in algos.flatten() {
        let Ok(items) = fs::read_dir(a.path()) else {
            continue;
        };
        for i in items.flatten() {
            out.insert(format!(
                "{}/{}",
                a.file_name().to_string_lossy(),
                i.file_name().to_string_lossy()
            ));
        }
    }
    out
}

/// The store's blobs, as `sha256/HEX`.
pub fn blobs(rkt: &Rkt) -> BTreeSet<String> {
    entries2(&rkt.store().join("blobs"))
}

/// The store's layer trees, as `sha256/HEX` (diff ids).
pub fn trees(rkt: &Rkt) -> BTreeSet<String> {
    entries2(&rkt.store().join("layers"))
}

/// `sha256/HEX` for a digest, as [`blobs`] and [`trees`] name it.
pub fn key(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().name(), d.hex())
}

/// What is in `store/tmp`.
pub fn tmp_entries(rkt: &Rkt) -> Vec<String> {
    fs::read_dir(rkt.store().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `rkt --insecure-options=OPTS fetch EXTRA… IMAGE`.
pub fn fetch(rkt: &Rkt, insecure: &str, image: &str, extra: &[&str]) -> RktOutput {
    let mut args = vec![format!("--insecure-options={insecure}"), "fetch".into()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(image.to_owned());
    rkt.run(&args)
}

/// `docker://REGISTRY/NAME`.
pub fn docker(reg: &Registry, name: &str) -> String {
    format!("docker://{}", reg.reference(name))
}

/// The `insecure-options` a registry needs besides trust: `image`, plus `http` without TLS.
pub fn insecure_for(reg: &Registry) -> &'static str {
    if reg.ca_pem().is_some() {
        "image"
    } else {
        "image,http"
    }
}

/// Fetches `name` from `reg` (trusting its CA and using its credentials through the sandbox's
/// local config) and returns the printed id.
pub fn fetch_ok(rkt: &Rkt, reg: &Registry, name: &str, extra: &[&str]) -> Digest {
    reg.write_rkt_config(&rkt.local_config())
        .expect("cannot write the rkt configuration for the registry");
    let out = fetch(rkt, insecure_for(reg), &docker(reg, name), extra);
    assert!(out.success(), "{out}");
    printed_id(&out)
}

/// The id `rkt fetch` printed (its last line), checked to be a digest.
pub fn printed_id(out: &RktOutput) -> Digest {
    out.last_line()
        .parse()
        .unwrap_or_else(|e| panic!("rkt fetch printed no image id ({e}):\n{out}"))
}

/// The entry of `rkt image list --format=json` with id `id`.
pub fn listed(rkt: &Rkt, id: &Digest) -> serde_json::Value {
    let list = rkt.image_list();
    list.iter()
        .find(|i| i["id"] == id.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in `rkt image list`: {list:#?}"))
}

/// Checks that the store holds no image and nothing of a failed fetch: no image rows, no
/// blobs or trees beyond `blobs_before`/`trees_before`, and an empty `store/tmp`.
pub fn assert_nothing_stored(
    rkt: &Rkt,
    blobs_before: &BTreeSet<String>,
    trees_before: &BTreeSet<String>,
) {
    let list = rkt.image_list();
    assert!(list.is_empty(), "the store lists images: {list:#?}");
    let new_blobs: Vec<_> = blobs(rkt).difference(blobs_before).cloned().collect();
    assert!(
        new_blobs.is_empty(),
        "new blobs in the store: {new_blobs:?}"
    );
    let new_trees: Vec<_> = trees(rkt).difference(trees_before).cloned().collect();
    assert!(
        new_trees.is_empty(),
        "new layer trees in the store: {new_trees:?}"
    );
    let tmp = tmp_entries(rkt);
    assert!(tmp.is_empty(), "store/tmp is not empty: {tmp:?}");
}

/// A copy of the single-image OCI layout `src` (ref `latest`) whose config carries one more
/// label: another image (another id) with the same layers. Returns the layout directory and
/// the new image's id.
pub fn relabelled_layout(
    src: &rkt_tests::fixtures::OciLayout,
    label: &str,
) -> (tempfile::TempDir, Digest) {
    use serde_json::Value;
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = dir.path().join("blobs/sha256");
    fs::create_dir_all(&blobs_dir).unwrap();
    for e in fs::read_dir(src.path.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), blobs_dir.join(e.file_name())).unwrap();
    }
    let put = |bytes: &[u8]| -> (Digest, u64) {
        let d = Digest::sha256_of(bytes);
        fs::write(blobs_dir.join(d.hex()), bytes).unwrap();
        (d, bytes.len() as u64)
    };
    let read_json = |d: &Digest| -> Value {
        serde_json::from_slice(&fs::read(blobs_dir.join(d.hex())).unwrap()).unwrap()
    };
    let mut manifest = read_json(&src.image.manifest.digest);
    let mut config = read_json(&src.image.config.digest);
    config["config"]["Labels"]["rkt.test.relabelled"] = Value::from(label);
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = Value::from(config_digest.to_string());
    manifest["config"]["size"] = Value::from(config_size);
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": src.image.manifest.media_type,
            "digest": manifest_digest.to_string(),
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (dir, config_digest)
}
