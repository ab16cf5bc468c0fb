//! The pod's network cache: one file per network, `<cache dir>/<network>.json`.
//!
//! An entry is written before the network's first plugin runs and rewritten after each plugin
//! succeeds, so whatever point a crash stops an attach at, DEL can find every network that may
//! have been (partly) added, with the configuration, arguments and latest result it needs. It is
//! removed only after DEL succeeded. Writes are atomic (temp file, fsync, rename, fsync of the
//! directory).

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::validate_network_name;
use crate::error::NetError;
use crate::masq::Masquerade;

const KIND: &str = "rkt-net-cache-v1";
const MAX_ENTRY_BYTES: u64 = 4 << 20;
const TMP_PREFIX: &str = ".tmp-";

/// Each network's entry, or why it could not be read.
pub(crate) type Entries = Vec<(String, Result<Entry, NetError>)>;

/// What DEL and CHECK need to repeat an ADD's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    pub kind: String,
    /// Position in attach order; DEL goes in reverse.
    pub index: usize,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// `CNI_ARGS` exactly as ADD got it.
    pub cni_args: String,
    /// Capability arguments given to this network (`portMappings`).
    pub capability_args: Map<String, Value>,
    /// The network configuration (list form) with the spec version ADD used.
    pub config: Value,
    /// The latest result: the last plugin's that succeeded; `None` before the first did.
    pub result: Option<Value>,
    /// Every plugin's ADD succeeded (and rkt's masquerade, if the network has one, is set up).
    pub complete: bool,
    /// The masquerade rkt sets up itself (`rktIpMasq`), recorded before it is set up, so DEL
    /// removes it from this record alone. Absent in entries of networks without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masquerade: Option<Masquerade>,
}

impl Entry {
    pub fn new(index: usize, network: &str, container_id: &str, ifname: String) -> Entry {
        Entry {
            kind: KIND.to_string(),
            index,
            network: network.to_string(),
            container_id: container_id.to_string(),
            ifname,
            cni_args: String::new(),
            capability_args: Map::new(),
            config: Value::Null,
            result: None,
            complete: false,
            masquerade: None,
        }
    }
}

fn entry_path(dir: &Path, network: &str) -> PathBuf {
    dir.join(format!("{network}.json"))
}

/// Writes (or replaces) the entry of its network.
pub(crate) fn write(dir: &Path, entry: &Entry) -> Result<(), NetError> {
    fs::create_dir_all(dir).map_err(|e| NetError::io("create", dir, e))?;
    let path = entry_path(dir, &entry.network);
    let tmp = dir.join(format!("{TMP_PREFIX}{}.json", entry.network));
    let bytes = serde_json::to_vec_pretty(entry).expect("a cache entry serializes");
    let mut f = File::create(&tmp).map_err(|e| NetError::io("create", &tmp, e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| NetError::io("write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| NetError::io("rename into place", &path, e))?;
    sync_dir(dir)
}

/// Removes a network's entry (gone already is fine).
pub(crate) fn remove(dir: &Path, network: &str) -> Result<(), NetError> {
    let path = entry_path(dir, network);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("remove", &path, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), NetError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NetError::io("sync", dir, e))
}

/// Every entry in `dir`, in attach order, each read or failing on its own (an unreadable entry
/// must not keep the others from being deleted). A missing directory has none. Leftover temp
/// files of an interrupted write are removed: the entry they were replacing is still in place.
pub(crate) fn read_all(dir: &Path) -> Result<Entries, NetError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::io("read the directory", dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| NetError::io("read the directory", dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(ent.path());
            continue;
        }
        let Some(network) = name.strip_suffix(".json") else {
            continue;
        };
        if validate_network_name(network).is_err() {
            continue;
        }
        out.push((network.to_string(), read_one(&ent.path(), network)));
    }
    // Unreadable entries first in the reverse walk (their index is unknown); then by index.
    out.sort_by_key(|(name, e)| (e.as_ref().map_or(usize::MAX, |e| e.index), name.clone()));
    Ok(out)
}

fn read_one(path: &Path, network: &str) -> Result<Entry, NetError> {
    let bad = |reason: String| NetError::Cache {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| NetError::io("read", path, e))?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(bad(format!("larger than {MAX_ENTRY_BYTES} bytes")));
    }
    let entry: Entry =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a cache entry ({e})")))?;
    if entry.kind != KIND {
        return Err(bad(format!("kind {:?}, expected {KIND:?}", entry.kind)));
    }
    if entry.network != network {
        return Err(bad(format!("it records network {:?}", entry.network)));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("net");
        assert!(read_all(&d).unwrap().is_empty());
        let mut a = Entry::new(1, "b-net", "pod", "eth1".into());
        a.result = Some(serde_json::json!({"ips": []}));
        write(&d, &a).unwrap();
        write(&d, &Entry::new(0, "a-net", "pod", "eth0".into())).unwrap();
        fs::write(d.join("broken.json"), "{").unwrap();
        fs::write(d.join(".tmp-x.json"), "{").unwrap();
        let all = read_all(&d).unwrap();
        let names: Vec<_> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a-net", "b-net", "broken"]);
        assert!(all[2].1.is_err());
        assert!(!d.join(".tmp-x.json").exists());
        remove(&d, "b-net").unwrap();
        remove(&d, "b-net").unwrap();
        assert_eq!(read_all(&d).unwrap().len(), 2);
    }
}
