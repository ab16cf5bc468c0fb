//! Network configurations: `net.d/*.conf` and `*.conflist`, and rkt's two built-in networks.
//!
//! A configuration is kept as the CNI spec describes it: a network (name, version, plugin list),
//! each plugin's JSON object kept whole so that fields this crate does not know reach the plugin
//! unchanged. Everything that later becomes a path or a process is validated here, when the file
//! is read: the network name (it names a cache file) and every plugin `type`, including the IPAM
//! plugin's (plugins look it up in `CNI_PATH` by joining it to a directory).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::NetError;
use crate::version::SpecVersion;

/// Largest configuration file read; real ones are a few hundred bytes.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The names `--net` gives a meaning of its own, so a configuration may not take them.
const RESERVED_NAMES: &[&str] = &["all", "host", "none"];

/// The file name the built-in networks sort as (rkt shipped them as `99-default.conf` and
/// `99-default-restricted.conf`, and networks join a pod in file name order).
const DEFAULT_FILE: &str = "99-default.conf";
const DEFAULT_RESTRICTED_FILE: &str = "99-default-restricted.conf";

/// The top-level configuration key asking rkt to masquerade the network's pods itself. Plugins
/// never see it: a plugin's stdin is its own object plus the keys CNI adds (`name`,
/// `cniVersion`, `runtimeConfig`, `prevResult`).
const RKT_IP_MASQ: &str = "rktIpMasq";

/// One CNI network: a name, a spec version and the plugins to run, in order.
///
/// Built from a `.conf` file (a single plugin object that also carries `name` and `cniVersion`)
/// or a `.conflist` file (`{"cniVersion", "name", "plugins": [...]}`); either form is accepted
/// in either file. [`NetConfig::to_json`] gives the list form, which is what the pod's network
/// cache keeps so that DEL runs with the configuration ADD ran with.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    name: String,
    cni_version: String,
    cni_versions: Vec<String>,
    disable_check: bool,
    rkt_ip_masq: bool,
    plugins: Vec<PluginConfig>,
    source: Option<PathBuf>,
    file_name: String,
}

/// One plugin of a network: its `type`, its declared capabilities and its whole JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    plugin_type: String,
    capabilities: BTreeSet<String>,
    raw: Map<String, Value>,
}

impl PluginConfig {
    /// The plugin executable's name (`type`), already validated.
    pub fn plugin_type(&self) -> &str {
        &self.plugin_type
    }

    /// Capabilities set to `true` (e.g. `portMappings`).
    pub fn capabilities(&self) -> &BTreeSet<String> {
        &self.capabilities
    }

    /// The plugin's configuration object as written.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }
}

impl NetConfig {
    /// Parses a configuration from JSON. `source` names the file in errors (and in
    /// [`NetConfig::source`]); `None` means built-in or cached.
    pub fn from_json(bytes: &[u8], source: Option<&Path>) -> Result<NetConfig, NetError> {
        let shown = source.map_or_else(|| PathBuf::from("<built-in>"), Path::to_path_buf);
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| NetError::config(&shown, format!("not valid JSON ({e})")))?;
        Self::from_value(value, source)
    }

    /// Parses a configuration from a JSON value (see [`NetConfig::from_json`]).
    pub fn from_value(value: Value, source: Option<&Path>) -> Result<NetConfig, NetError> {
        let shown = source.map_or_else(|| PathBuf::from("<built-in>"), Path::to_path_buf);
        let bad = |reason: String| NetError::config(&shown, reason);
        let Value::Object(top) = value else {
            return Err(bad("the top level is not a JSON object".into()));
        };
        let name = match top.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(bad("\"name\" is not a string".into())),
            None => return Err(bad("there is no \"name\"".into())),
        };
        validate_network_name(&name).map_err(|e| bad(e.to_string()))?;
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(bad(format!(
                "the network name {name:?} is reserved for --net={name}; choose another name"
            )));
        }
        let declared = match top.get("cniVersion") {
            // Plugins treat a missing version as the first one, and so does libcni.
            None => "0.1.0".to_string(),
            Some(Value::String(v)) => v.clone(),
            Some(_) => return Err(bad("\"cniVersion\" is not a string".into())),
        };
        if SpecVersion::parse(&declared).is_none() {
            return Err(bad(format!("\"cniVersion\" {declared:?} is not a version")));
        }
        let cni_versions = match top.get("cniVersions") {
            None => Vec::new(),
            Some(Value::Array(vs)) => {
                let mut out = Vec::new();
                for v in vs {
                    match v.as_str().filter(|s| SpecVersion::parse(s).is_some()) {
                        Some(s) => out.push(s.to_string()),
                        None => return Err(bad(format!("\"cniVersions\" has {v}, not a version"))),
                    }
                }
                out
            }
            Some(_) => return Err(bad("\"cniVersions\" is not a list".into())),
        };
        let cni_version = select_version(&declared, &cni_versions).ok_or_else(|| {
            bad(format!(
                "no version in cniVersion/cniVersions is one this runtime speaks (up to {})",
                SpecVersion::NEWEST
            ))
        })?;
        let disable_check = match top.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            // libcni also takes the strings "true"/"false" here.
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err(bad("\"disableCheck\" is not a boolean".into())),
        };
        let rkt_ip_masq = match top.get(RKT_IP_MASQ) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad(format!("\"{RKT_IP_MASQ}\" is not a boolean"))),
        };

        let raw_plugins: Vec<Map<String, Value>> = match top.get("plugins") {
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err(bad("\"plugins\" is empty".into()));
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, p) in list.iter().enumerate() {
                    match p {
                        Value::Object(m) => out.push(m.clone()),
                        _ => return Err(bad(format!("plugins[{i}] is not a JSON object"))),
                    }
                }
                out
            }
            Some(_) => return Err(bad("\"plugins\" is not a list".into())),
            // A single-plugin configuration: the object is the plugin (without rkt's own key,
            // which is for rkt, not for the plugin).
            None => {
                let mut plugin = top.clone();
                plugin.remove(RKT_IP_MASQ);
                vec![plugin]
            }
        };
        if raw_plugins.len() > 1 && SpecVersion::parse(&cni_version) < Some(SpecVersion::CHAINING) {
            return Err(bad(format!(
                "a list of plugins needs cniVersion {} or later (it has {cni_version})",
                SpecVersion::CHAINING
            )));
        }
        let mut plugins = Vec::with_capacity(raw_plugins.len());
        for (i, raw) in raw_plugins.into_iter().enumerate() {
            plugins.push(parse_plugin(raw).map_err(|r| bad(format!("plugins[{i}]: {r}")))?);
        }
        if rkt_ip_masq
            && let Some(p) = plugins.iter().find(|p| {
                crate::masq::MASQUERADING.contains(&p.plugin_type())
                    && p.raw.get("ipMasq") == Some(&Value::Bool(true))
            })
        {
            return Err(bad(format!(
                "both \"{RKT_IP_MASQ}\" and plugin {:?}'s \"ipMasq\" are true, which would \
                 masquerade the pod twice in one chain; set one of them",
                p.plugin_type
            )));
        }
        let file_name = source
            .and_then(Path::file_name)
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{name}.conflist"));
        Ok(NetConfig {
            name,
            cni_version,
            cni_versions,
            disable_check,
            rkt_ip_masq,
            plugins,
            source: source.map(Path::to_path_buf),
            file_name,
        })
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The spec version sent to the plugins: the highest of `cniVersion` and `cniVersions`
    /// that this runtime speaks (narrowed further by what the plugins support at attach time).
    pub fn cni_version(&self) -> &str {
        &self.cni_version
    }

    /// The versions listed in `cniVersions` (empty if the field is absent).
    pub fn cni_versions(&self) -> &[String] {
        &self.cni_versions
    }

    /// `disableCheck`: CHECK is never run for this network.
    pub fn disable_check(&self) -> bool {
        self.disable_check
    }

    /// `rktIpMasq`: rkt masquerades the pod's traffic itself once the plugins' ADD succeeded
    /// (the NAT rules `ptp`'s `ipMasq` makes, in one `iptables-restore`); see `masq.rs`.
    pub fn rkt_ip_masq(&self) -> bool {
        self.rkt_ip_masq
    }

    /// The plugins, in ADD order.
    pub fn plugins(&self) -> &[PluginConfig] {
        &self.plugins
    }

    /// The file the network came from (`None` for built-in and cached configurations).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The file name networks are ordered by when they join a pod (rkt's rule); built-ins sort
    /// as `99-default.conf` and `99-default-restricted.conf`.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// Whether some plugin declares the capability (e.g. `portMappings`).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.capabilities.contains(capability))
    }

    /// The configuration in list form, as the cache keeps it.
    pub fn to_json(&self) -> Value {
        let mut top = Map::new();
        top.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if !self.cni_versions.is_empty() {
            top.insert("cniVersions".into(), json!(self.cni_versions));
        }
        top.insert("name".into(), Value::String(self.name.clone()));
        if self.disable_check {
            top.insert("disableCheck".into(), Value::Bool(true));
        }
        if self.rkt_ip_masq {
            top.insert(RKT_IP_MASQ.into(), Value::Bool(true));
        }
        let plugins = self
            .plugins
            .iter()
            .map(|p| Value::Object(p.raw.clone()))
            .collect();
        top.insert("plugins".into(), Value::Array(plugins));
        Value::Object(top)
    }

    /// The same network settled on one spec version (chosen at attach time from what the
    /// plugins support); `cniVersions` is dropped, so the cached form keeps that version.
    pub(crate) fn with_version(&self, version: String) -> NetConfig {
        NetConfig {
            cni_version: version,
            cni_versions: Vec::new(),
            ..self.clone()
        }
    }

    fn builtin(value: Value, file_name: &str) -> NetConfig {
        let mut conf = NetConfig::from_value(value, None)
            .unwrap_or_else(|e| unreachable!("built-in network is valid: {e}"));
        conf.file_name = file_name.to_string();
        conf
    }
}

/// The highest parseable version of `declared` and `list` not newer than this runtime speaks.
fn select_version(declared: &str, list: &[String]) -> Option<String> {
    std::iter::once(declared)
        .chain(list.iter().map(String::as_str))
        .filter_map(|s| SpecVersion::parse(s).map(|v| (v, s)))
        .filter(|(v, _)| *v <= SpecVersion::NEWEST)
        .max_by_key(|(v, _)| *v)
        .map(|(_, s)| s.to_string())
}

fn parse_plugin(raw: Map<String, Value>) -> Result<PluginConfig, String> {
    let plugin_type = match raw.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err("\"type\" is not a string".into()),
        None => return Err("there is no \"type\"".into()),
    };
    validate_plugin_name(&plugin_type).map_err(|e| e.to_string())?;
    match raw.get("ipam") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ipam)) => match ipam.get("type") {
            None => {}
            Some(Value::String(t)) => {
                validate_plugin_name(t).map_err(|e| format!("ipam: {e}"))?;
            }
            Some(_) => return Err("ipam \"type\" is not a string".into()),
        },
        Some(_) => return Err("\"ipam\" is not a JSON object".into()),
    }
    let mut capabilities = BTreeSet::new();
    match raw.get("capabilities") {
        None => {}
        Some(Value::Object(caps)) => {
            for (k, v) in caps {
                match v {
                    Value::Bool(true) => {
                        capabilities.insert(k.clone());
                    }
                    Value::Bool(false) => {}
                    _ => return Err(format!("capability {k:?} is not true or false")),
                }
            }
        }
        Some(_) => return Err("\"capabilities\" is not a JSON object".into()),
    }
    Ok(PluginConfig {
        plugin_type,
        capabilities,
        raw,
    })
}

/// Checks a network name against the spec's rule (an alphanumeric, then alphanumerics, `_`,
/// `.`, `-`), which also makes it a safe file name (the pod's cache entry is `<name>.json`).
pub fn validate_network_name(name: &str) -> Result<(), NetError> {
    validate_id(name, "network name")
}

/// The spec's rule for names and container IDs.
pub(crate) fn validate_id(value: &str, what: &'static str) -> Result<(), NetError> {
    const RULE: &str = "it must start with a letter or digit, continue with letters, digits, \
                        '_', '.' or '-', and be at most 200 characters";
    let mut chars = value.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && value.len() <= 200;
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            what,
            value: value.into(),
            rule: RULE,
        })
    }
}

/// Checks a plugin `type`: a plain file name, so that looking it up in a plugin directory can
/// never leave that directory.
pub fn validate_plugin_name(name: &str) -> Result<(), NetError> {
    const RULE: &str = "a plugin type is the plain file name of an executable in a plugin \
                        directory: not empty, no '/', '\\' or NUL, not '.' or '..', at most 255 \
                        bytes";
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            what: "CNI plugin type",
            value: name.into(),
            rule: RULE,
        })
    }
}

/// Loads every `*.conf` and `*.conflist` of each directory, in lexical order of file names.
///
/// A missing directory is skipped. Within one directory two files defining the same network
/// name are refused (naming both); a later directory's network replaces an earlier one's of the
/// same name. Any invalid file is an error naming it: a network silently missing would surface
/// later as a far less clear "not found".
pub fn load_networks(dirs: &[PathBuf]) -> Result<BTreeMap<String, NetConfig>, NetError> {
    let mut all = BTreeMap::new();
    for dir in dirs {
        for (name, conf) in load_dir(dir)? {
            if let Some(old) = all.insert(name.clone(), conf) {
                tracing::debug!(
                    network = %name,
                    replaced = %old.source().unwrap_or(Path::new("?")).display(),
                    by = %dir.display(),
                    "network configuration overridden"
                );
            }
        }
    }
    Ok(all)
}

fn load_dir(dir: &Path) -> Result<BTreeMap<String, NetConfig>, NetError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(NetError::io("read the directory", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| NetError::io("read the directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".conf") || name.ends_with(".conflist") {
            files.push(name.to_string());
        }
    }
    files.sort();
    let mut nets: BTreeMap<String, NetConfig> = BTreeMap::new();
    for file in files {
        let path = dir.join(&file);
        let meta = fs::metadata(&path).map_err(|e| NetError::io("read", &path, e))?;
        if !meta.is_file() {
            continue;
        }
        let bytes = read_bounded(&path)?;
        let conf = NetConfig::from_json(&bytes, Some(&path))?;
        if let Some(first) = nets.get(conf.name()) {
            return Err(NetError::DuplicateNetwork {
                name: conf.name().to_string(),
                first: first.source().unwrap_or(Path::new("?")).to_path_buf(),
                second: path,
            });
        }
        nets.insert(conf.name().to_string(), conf);
    }
    Ok(nets)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, NetError> {
    let file = fs::File::open(path).map_err(|e| NetError::io("read", path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| NetError::io("read", path, e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(NetError::config(
            path,
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// rkt's `default` network: a `ptp` veth, `host-local` addresses from `172.16.28.0/24` with a
/// default route, leases kept under `ipam_dir`; chained with `portmap` for port forwarding
/// (`capabilities: portMappings`). Masqueraded by rkt (`rktIpMasq`), not by `ptp`: the same
/// rules as `ptp`'s `ipMasq`, in one `iptables-restore` each way instead of 14 `iptables` runs.
pub fn builtin_default(ipam_dir: &Path) -> NetConfig {
    NetConfig::builtin(
        json!({
            "cniVersion": "1.0.0",
            "name": "default",
            "rktIpMasq": true,
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "subnet": "172.16.28.0/24",
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": ipam_dir.to_string_lossy(),
                    },
                },
                {
                    "type": "portmap",
                    "capabilities": { "portMappings": true },
                    "snat": true,
                },
            ],
        }),
        DEFAULT_FILE,
    )
}

/// rkt's `default-restricted` network: a `ptp` veth without masquerading or default route, so
/// the pod reaches the host only; `host-local` addresses from `172.31.0.0/16` (rkt's choice, clear
/// of Docker's 172.17.0.0/16), leases under `ipam_dir`.
pub fn builtin_default_restricted(ipam_dir: &Path) -> NetConfig {
    NetConfig::builtin(
        json!({
            "cniVersion": "1.0.0",
            "name": "default-restricted",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "subnet": "172.31.0.0/16",
                        "dataDir": ipam_dir.to_string_lossy(),
                    },
                },
            ],
        }),
        DEFAULT_RESTRICTED_FILE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, body: &str) {
        fs::write(dir.join(file), body).unwrap();
    }

    #[test]
    fn single_and_list_forms() {
        let single = NetConfig::from_json(
            br#"{"cniVersion":"0.3.1","name":"a","type":"bridge","ipam":{"type":"host-local"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(single.name(), "a");
        assert_eq!(single.cni_version(), "0.3.1");
        assert_eq!(single.plugins().len(), 1);
        assert_eq!(single.plugins()[0].plugin_type(), "bridge");
        // The list form round-trips.
        let again = NetConfig::from_value(single.to_json(), None).unwrap();
        assert_eq!(again.plugins()[0].raw(), single.plugins()[0].raw());

        let list = NetConfig::from_json(
            br#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"ptp"},
                {"type":"portmap","capabilities":{"portMappings":true,"mac":false}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(list.plugins().len(), 2);
        assert!(list.has_capability("portMappings"));
        assert!(!list.has_capability("mac"));
    }

    #[test]
    fn rkt_ip_masq_is_rkts_key_not_the_plugins() {
        let list = NetConfig::from_json(
            br#"{"cniVersion":"1.0.0","name":"m","rktIpMasq":true,"plugins":[{"type":"ptp"}]}"#,
            None,
        )
        .unwrap();
        assert!(list.rkt_ip_masq());
        assert!(list.plugins()[0].raw().get("rktIpMasq").is_none());
        // In the single-plugin form the key is taken off the plugin's object.
        let single = NetConfig::from_json(
            br#"{"cniVersion":"1.0.0","name":"m","type":"ptp","rktIpMasq":true}"#,
            None,
        )
        .unwrap();
        assert!(single.rkt_ip_masq());
        assert!(single.plugins()[0].raw().get("rktIpMasq").is_none());
        let off = NetConfig::from_json(br#"{"name":"m","type":"ptp"}"#, None).unwrap();
        assert!(!off.rkt_ip_masq());
        for body in [
            r#"{"cniVersion":"1.0.0","name":"m","type":"ptp","rktIpMasq":"yes"}"#,
            r#"{"cniVersion":"1.0.0","name":"m","type":"ptp","ipMasq":true,"rktIpMasq":true}"#,
        ] {
            assert!(
                NetConfig::from_json(body.as_bytes(), None).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn version_selection() {
        let c = NetConfig::from_json(
            br#"{"cniVersion":"0.4.0","cniVersions":["0.3.1","1.0.0","9.0.0"],"name":"v","type":"ptp"}"#,
            None,
        )
        .unwrap();
        assert_eq!(c.cni_version(), "1.0.0");
        let none = NetConfig::from_json(br#"{"name":"n","type":"ptp"}"#, None).unwrap();
        assert_eq!(none.cni_version(), "0.1.0");
        let err = NetConfig::from_json(
            br#"{"cniVersion":"0.2.0","name":"x","plugins":[{"type":"a"},{"type":"b"}]}"#,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("0.3.0 or later"), "{err}");
    }

    #[test]
    fn refuses_path_injection_and_bad_names() {
        for body in [
            r#"{"cniVersion":"1.0.0","name":"x","type":"../../bin/sh"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","type":"/bin/sh"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","type":".."}"#,
            r#"{"cniVersion":"1.0.0","name":"x","type":""}"#,
            r#"{"cniVersion":"1.0.0","name":"x","type":"ptp","ipam":{"type":"../sh"}}"#,
            r#"{"cniVersion":"1.0.0","name":"../x","type":"ptp"}"#,
            r#"{"cniVersion":"1.0.0","name":"all","type":"ptp"}"#,
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
            r#"{"cniVersion":"bogus","name":"x","type":"ptp"}"#,
            r#"[1]"#,
        ] {
            let err = NetConfig::from_json(body.as_bytes(), Some(Path::new("/n/10-x.conf")));
            let err = err.expect_err(body).to_string();
            assert!(err.contains("/n/10-x.conf"), "{err}");
        }
    }

    #[test]
    fn loads_in_order_overrides_and_refuses_duplicates() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(
            a.path(),
            "10-one.conf",
            r#"{"cniVersion":"0.3.1","name":"one","type":"bridge"}"#,
        );
        write(
            a.path(),
            "20-two.conflist",
            r#"{"cniVersion":"1.0.0","name":"two","plugins":[{"type":"ptp"}]}"#,
        );
        write(a.path(), "README", "not a config");
        write(
            b.path(),
            "50-one.conf",
            r#"{"cniVersion":"1.0.0","name":"one","type":"macvlan"}"#,
        );
        let dirs = [
            a.path().to_path_buf(),
            b.path().join("missing"),
            b.path().to_path_buf(),
        ];
        let nets = load_networks(&dirs).unwrap();
        assert_eq!(nets.keys().collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(nets["one"].plugins()[0].plugin_type(), "macvlan");
        assert_eq!(
            nets["one"].source(),
            Some(b.path().join("50-one.conf").as_path())
        );
        assert_eq!(nets["one"].file_name(), "50-one.conf");

        write(
            b.path(),
            "60-again.conflist",
            r#"{"cniVersion":"1.0.0","name":"one","plugins":[{"type":"ptp"}]}"#,
        );
        let err = load_networks(&dirs).unwrap_err();
        assert!(matches!(err, NetError::DuplicateNetwork { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("50-one.conf") && msg.contains("60-again.conflist"),
            "{msg}"
        );

        write(a.path(), "30-broken.conf", "{");
        let err = load_networks(&dirs[..1]).unwrap_err().to_string();
        assert!(
            err.contains("30-broken.conf") && err.contains("not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn builtins() {
        let d = builtin_default(Path::new("/var/lib/rkt/networks/ipam"));
        assert_eq!(d.name(), "default");
        assert!(d.has_capability("portMappings"));
        assert_eq!(
            d.plugins()[0].raw()["ipam"]["dataDir"],
            "/var/lib/rkt/networks/ipam"
        );
        assert_eq!(d.plugins()[0].raw()["ipMasq"], false);
        assert!(d.rkt_ip_masq());
        assert_eq!(d.to_json()["rktIpMasq"], true);
        assert!(
            NetConfig::from_value(d.to_json(), None)
                .unwrap()
                .rkt_ip_masq()
        );
        let r = builtin_default_restricted(Path::new("/x"));
        assert_eq!(r.name(), "default-restricted");
        assert!(!r.rkt_ip_masq() && r.to_json().get("rktIpMasq").is_none());
        assert_eq!(r.plugins()[0].raw()["ipMasq"], false);
        assert!(r.plugins()[0].raw()["ipam"].get("routes").is_none());
        // rkt's file names: both sort after the usual user files, restricted first.
        assert!(d.file_name() > "50-mynet.conf" && r.file_name() > "50-mynet.conf");
        assert!(r.file_name() < d.file_name());
    }
}
