//! The CNI client: ADD, DEL, CHECK and VERSION over a pod's networks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cache::{self, Entry};
use crate::config::{NetConfig, PluginConfig, validate_id};
use crate::error::NetError;
use crate::exec::{self, Call, Limits};
use crate::masq::{self, Masquerade};
use crate::netns::is_netns;
use crate::ports::PortMapping;
use crate::result::Attachment;
use crate::select::NetworkRequest;
use crate::version::{SpecVersion, at_least};

/// Runs CNI plugins found in a list of plugin directories (`CNI_PATH`).
#[derive(Debug, Clone)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
    cni_path: String,
    limits: Limits,
}

impl Cni {
    /// Where rkt's own plugins live (first in rkt's `CNI_PATH`).
    pub const RKT_PLUGIN_DIR: &'static str = "/usr/lib/rkt/plugins/net";
    /// Where Debian's `containernetworking-plugins` installs them.
    pub const SYSTEM_PLUGIN_DIR: &'static str = "/usr/lib/cni";
    /// How long one plugin may run before it is killed.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    /// The most a plugin may print on stdout; results are a few KiB.
    pub const MAX_OUTPUT: usize = 1 << 20;

    /// A client searching `plugin_dirs` in order. Each must be an absolute path without `:`
    /// (it is passed on in `CNI_PATH`, which plugins use to find their IPAM plugin).
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Result<Cni, NetError> {
        let mut parts = Vec::with_capacity(plugin_dirs.len());
        for dir in &plugin_dirs {
            let reason = match dir.to_str() {
                _ if !dir.is_absolute() => "it must be an absolute path",
                None => "it must be valid UTF-8",
                Some(s) if s.contains(':') || s.contains('\0') => "it must not contain ':'",
                Some(s) => {
                    parts.push(s.to_string());
                    continue;
                }
            };
            return Err(NetError::PluginDir {
                path: dir.clone(),
                reason,
            });
        }
        Ok(Cni {
            cni_path: parts.join(":"),
            plugin_dirs,
            limits: Limits {
                timeout: Self::DEFAULT_TIMEOUT,
                max_output: Self::MAX_OUTPUT,
            },
        })
    }

    /// rkt's plugin path: [`Cni::RKT_PLUGIN_DIR`], then the `net.d` directories (rkt let a
    /// network ship its plugin next to its configuration), then [`Cni::SYSTEM_PLUGIN_DIR`].
    pub fn rkt_default(net_d_dirs: &[PathBuf]) -> Result<Cni, NetError> {
        let mut dirs = vec![PathBuf::from(Self::RKT_PLUGIN_DIR)];
        dirs.extend(net_d_dirs.iter().cloned());
        dirs.push(PathBuf::from(Self::SYSTEM_PLUGIN_DIR));
        Cni::new(dirs)
    }

    /// The same client with another per-plugin time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Cni {
        self.limits.timeout = timeout;
        self
    }

    /// The plugin directories, in search order.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// Adds the pod (network namespace `netns`, ID `container_id`) to each network in order:
    /// interface `eth0` for the first, `eth1` for the next, and so on; every plugin of a network
    /// in turn, each getting the previous one's result as `prevResult`. Port mappings go, as the
    /// `portMappings` capability, to the first network that has a plugin declaring it.
    ///
    /// Each network's cache entry (`cache_dir/<name>.json`) is written before its first plugin
    /// runs and holds its final result before the next network starts. If anything fails, the
    /// networks added so far (the failing one included) are deleted again, newest first, and the
    /// error that stopped the attach is returned; a network whose DEL also failed keeps its
    /// cache entry (logged), so that [`Cni::detach`] can retry it.
    pub fn attach(
        &self,
        cache_dir: &Path,
        netns: &Path,
        container_id: &str,
        nets: &[(NetConfig, NetworkRequest)],
        ports: &[PortMapping],
    ) -> Result<Vec<Attachment>, NetError> {
        validate_id(container_id, "container ID")?;
        let netns = &absolute(netns)?;
        if !is_netns(netns) {
            return Err(NetError::NotANetns {
                path: netns.to_path_buf(),
            });
        }
        for (i, (conf, _)) in nets.iter().enumerate() {
            if nets[..i].iter().any(|(c, _)| c.name() == conf.name()) {
                return Err(NetError::NetworkTwice {
                    name: conf.name().to_string(),
                });
            }
        }
        for p in ports {
            p.validate()?;
        }
        let port_net = if ports.is_empty() {
            None
        } else {
            let found = nets
                .iter()
                .position(|(c, _)| c.has_capability("portMappings"));
            Some(found.ok_or_else(|| NetError::NoPortForwarding {
                networks: nets.iter().map(|(c, _)| c.name().to_string()).collect(),
            })?)
        };
        // Networks already in the cache (an earlier attach) keep their interfaces.
        let mut next = 0;
        for (name, entry) in cache::read_all(cache_dir)? {
            if nets.iter().any(|(c, _)| c.name() == name) {
                return Err(NetError::NetworkTwice { name });
            }
            next = next.max(entry.map_or(0, |e| e.index + 1));
        }
        // Every plugin must exist before anything is changed.
        for (conf, _) in nets {
            for p in conf.plugins() {
                exec::find_plugin(&self.plugin_dirs, p.plugin_type(), conf.name())?;
            }
        }

        let mut added: Vec<Entry> = Vec::new();
        let mut attachments = Vec::new();
        for (i, (conf, req)) in nets.iter().enumerate() {
            let conf = match self.negotiate_version(conf) {
                Ok(c) => c,
                Err(e) => return Err(self.roll_back(cache_dir, netns, added, e)),
            };
            let index = next + i;
            let mut entry = Entry::new(index, conf.name(), container_id, format!("eth{index}"));
            entry.cni_args = cni_args(req);
            if port_net == Some(i) {
                entry
                    .capability_args
                    .insert("portMappings".into(), json!(ports));
            }
            entry.config = conf.to_json();
            if let Err(e) = cache::write(cache_dir, &entry) {
                return Err(self.roll_back(cache_dir, netns, added, e));
            }
            let outcome = self.add_network(cache_dir, netns, &conf, &mut entry);
            added.push(entry.clone());
            let result = match outcome {
                Ok(r) => r,
                Err(e) => return Err(self.roll_back(cache_dir, netns, added, e)),
            };
            let last = conf.plugins().last().map_or("", PluginConfig::plugin_type);
            match Attachment::from_result(conf.name(), &entry.ifname, conf.cni_version(), &result) {
                Ok(a) => attachments.push(a),
                Err(reason) => {
                    let e = NetError::BadResult {
                        network: conf.name().to_string(),
                        plugin: last.to_string(),
                        command: "ADD",
                        reason,
                    };
                    return Err(self.roll_back(cache_dir, netns, added, e));
                }
            }
        }
        Ok(attachments)
    }

    /// Runs every plugin's ADD, keeping the cache entry's result current; then, for a network
    /// with `rktIpMasq`, sets up rkt's masquerade of the pod's addresses (recorded in the entry
    /// with the last plugin's result, before it is set up).
    fn add_network(
        &self,
        cache_dir: &Path,
        netns: &Path,
        conf: &NetConfig,
        entry: &mut Entry,
    ) -> Result<Value, NetError> {
        let plugins = conf.plugins();
        for (i, plugin) in plugins.iter().enumerate() {
            let stdin = request(conf, plugin, entry.result.as_ref(), &entry.capability_args);
            let out = self.run(conf, plugin, "ADD", Some(netns), entry, &stdin)?;
            let result: Value = serde_json::from_slice(&out)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| NetError::BadResult {
                    network: conf.name().to_string(),
                    plugin: plugin.plugin_type().to_string(),
                    command: "ADD",
                    reason: if out.is_empty() {
                        "no result".to_string()
                    } else {
                        format!("output that is not a JSON object: {}", snippet(&out))
                    },
                })?;
            entry.result = Some(result);
            if i + 1 == plugins.len() && conf.rkt_ip_masq() {
                entry.masquerade =
                    Masquerade::new(conf.name(), &entry.container_id, entry.result.as_ref());
                if entry.masquerade.is_none() {
                    tracing::warn!(
                        network = conf.name(),
                        "rktIpMasq: the network's result has no address to masquerade"
                    );
                }
            }
            cache::write(cache_dir, entry)?;
        }
        if let Some(m) = &entry.masquerade {
            m.set_up(conf.name(), self.limits)?;
        }
        entry.complete = true;
        cache::write(cache_dir, entry)?;
        entry
            .result
            .clone()
            .ok_or_else(|| NetError::config("<cache>", "a network with no plugins"))
    }

    /// Deletes `added` newest first after a failed attach and returns the error that caused it.
    fn roll_back(
        &self,
        cache_dir: &Path,
        netns: &Path,
        added: Vec<Entry>,
        err: NetError,
    ) -> NetError {
        for entry in added.iter().rev() {
            match self.del_entry(entry, Some(netns)) {
                Ok(()) => {
                    if let Err(e) = cache::remove(cache_dir, &entry.network) {
                        tracing::error!("after a failed attach: {e}");
                    }
                }
                Err(e) => tracing::error!(
                    network = entry.network,
                    "after a failed attach, removing the pod from the network failed too (its \
                     cache entry stays for gc): {e}"
                ),
            }
        }
        err
    }

    /// Removes the pod from every network in `cache_dir`, newest first (each network's rkt
    /// masquerade, then its plugins in reverse), with the configuration, arguments and result
    /// its ADD used. A network namespace that is gone (or is no longer mounted at `netns`) is not
    /// an error: DEL then runs without `CNI_NETNS`, as the spec allows, and masquerade rules
    /// `ptp`/`bridge` cannot find without it are removed here (see `masq.rs`). Entries are
    /// removed as their DEL succeeds; calling this again (or on a pod that never had networks)
    /// is fine. `container_id` is the ID the pod was attached with; each entry's own recorded ID
    /// is what DEL gets.
    pub fn detach(
        &self,
        cache_dir: &Path,
        netns: &Path,
        container_id: &str,
    ) -> Result<(), NetError> {
        let netns = &absolute(netns)?;
        let live = is_netns(netns).then_some(netns.as_path());
        let mut failed = Vec::new();
        for (name, entry) in cache::read_all(cache_dir)?.into_iter().rev() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    failed.push((name, e));
                    continue;
                }
            };
            if entry.container_id != container_id {
                tracing::warn!(
                    network = name,
                    recorded = entry.container_id,
                    given = container_id,
                    "the network cache records another container ID; deleting with the recorded one"
                );
            }
            let outcome = self
                .del_entry(&entry, live)
                .and_then(|()| cache::remove(cache_dir, &name));
            if let Err(e) = outcome {
                failed.push((name, e));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(NetError::Detach { failed })
        }
    }

    fn del_entry(&self, entry: &Entry, netns: Option<&Path>) -> Result<(), NetError> {
        let conf = NetConfig::from_value(entry.config.clone(), None)?;
        // rkt's masquerade was set up last, so it goes first. Failing to remove it does not
        // stop the plugins' DEL, but keeps the entry (the error is returned) for a retry.
        let masq_failed = entry
            .masquerade
            .as_ref()
            .and_then(|m| m.remove(&entry.network, self.limits).err());
        // A masquerading ptp/bridge removes its chain on DEL when it finds the pod's interface:
        // the netns is live and the host side of the pod's link is still there (a veth's ends
        // go together). Otherwise the chain may be left, and is looked for after the DEL.
        let look_for_chain = masq::plugin_masquerades(&conf)
            && !(netns.is_some() && host_links_present(entry.result.as_ref()));
        // prevResult on DEL came with spec 0.4.0; older plugins would not expect it.
        let prev = entry
            .result
            .as_ref()
            .filter(|_| at_least(conf.cni_version(), SpecVersion::CHECK));
        for plugin in conf.plugins().iter().rev() {
            let stdin = request(&conf, plugin, prev, &entry.capability_args);
            self.run(&conf, plugin, "DEL", netns, entry, &stdin)?;
        }
        if look_for_chain {
            masq::teardown(
                &conf,
                &entry.container_id,
                entry.result.as_ref(),
                self.limits,
            );
        }
        masq_failed.map_or(Ok(()), Err)
    }

    /// Runs CHECK for every network in `cache_dir`, in attach order, for networks of spec 0.4.0
    /// or later that do not set `disableCheck` (the others are skipped). The first failure is
    /// returned.
    pub fn check(
        &self,
        cache_dir: &Path,
        netns: &Path,
        container_id: &str,
    ) -> Result<(), NetError> {
        validate_id(container_id, "container ID")?;
        let netns = &absolute(netns)?;
        if !is_netns(netns) {
            return Err(NetError::NotANetns {
                path: netns.to_path_buf(),
            });
        }
        for (_, entry) in cache::read_all(cache_dir)? {
            let entry = entry?;
            let conf = NetConfig::from_value(entry.config.clone(), None)?;
            if conf.disable_check() || !at_least(conf.cni_version(), SpecVersion::CHECK) {
                continue;
            }
            if !entry.complete {
                return Err(NetError::Cache {
                    path: cache_dir.join(format!("{}.json", entry.network)),
                    reason: "its ADD never finished; the pod's networking is incomplete".into(),
                });
            }
            for plugin in conf.plugins() {
                let stdin = request(&conf, plugin, entry.result.as_ref(), &entry.capability_args);
                self.run(&conf, plugin, "CHECK", Some(netns), &entry, &stdin)?;
            }
        }
        Ok(())
    }

    /// The spec versions a plugin supports (its VERSION answer).
    pub fn version(&self, plugin: &str) -> Result<Vec<String>, NetError> {
        let path = exec::find_plugin(&self.plugin_dirs, plugin, "")?;
        let call = Call {
            command: "VERSION",
            network: "",
            plugin,
            container_id: None,
            netns: None,
            ifname: None,
            args: None,
            cni_path: &self.cni_path,
        };
        let out = exec::run(&path, &call, br#"{"cniVersion":"1.0.0"}"#, self.limits)?;
        let bad = |reason: String| NetError::BadResult {
            network: String::new(),
            plugin: plugin.to_string(),
            command: "VERSION",
            reason,
        };
        // Plugins of spec 0.1.0 print nothing for VERSION.
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(vec!["0.1.0".to_string()]);
        }
        let v: Value = serde_json::from_slice(&out)
            .map_err(|_| bad(format!("output that is not JSON: {}", snippet(&out))))?;
        let list = v
            .get("supportedVersions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no \"supportedVersions\"".into()))?;
        Ok(list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }

    /// A network listing several versions speaks the highest one all its plugins support.
    fn negotiate_version(&self, conf: &NetConfig) -> Result<NetConfig, NetError> {
        if conf.cni_versions().is_empty() {
            return Ok(conf.clone());
        }
        let mut candidates: Vec<SpecVersion> = conf
            .cni_versions()
            .iter()
            .map(String::as_str)
            .chain([conf.cni_version()])
            .filter_map(SpecVersion::parse)
            .filter(|v| *v <= SpecVersion::NEWEST)
            .collect();
        for plugin in conf.plugins() {
            let supported: Vec<SpecVersion> = self
                .version(plugin.plugin_type())?
                .iter()
                .filter_map(|s| SpecVersion::parse(s))
                .collect();
            candidates.retain(|v| supported.contains(v));
        }
        match candidates.into_iter().max() {
            Some(v) => Ok(conf.with_version(v.to_string())),
            None => Err(NetError::config(
                conf.source().unwrap_or(Path::new("<built-in>")),
                format!(
                    "network {:?}: its plugins support none of the versions it lists",
                    conf.name()
                ),
            )),
        }
    }

    fn run(
        &self,
        conf: &NetConfig,
        plugin: &PluginConfig,
        command: &'static str,
        netns: Option<&Path>,
        entry: &Entry,
        stdin: &[u8],
    ) -> Result<Vec<u8>, NetError> {
        let path = exec::find_plugin(&self.plugin_dirs, plugin.plugin_type(), conf.name())?;
        let call = Call {
            command,
            network: conf.name(),
            plugin: plugin.plugin_type(),
            container_id: Some(&entry.container_id),
            netns,
            ifname: Some(&entry.ifname),
            args: Some(&entry.cni_args)
                .filter(|a| !a.is_empty())
                .map(String::as_str),
            cni_path: &self.cni_path,
        };
        exec::run(&path, &call, stdin, self.limits)
    }
}

/// `CNI_ARGS` for a request: its pairs after `IgnoreUnknown=1` (unless the user set
/// `IgnoreUnknown` themselves), so that an argument meant for one plugin does not make the
/// others (`host-local` refuses keys it does not know) fail — the convention Kubernetes and
/// podman follow.
fn cni_args(req: &NetworkRequest) -> String {
    if req.args.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<String> = Vec::with_capacity(req.args.len() + 1);
    if !req.args.iter().any(|(k, _)| k == "IgnoreUnknown") {
        pairs.push("IgnoreUnknown=1".into());
    }
    pairs.extend(req.args.iter().map(|(k, v)| format!("{k}={v}")));
    pairs.join(";")
}

/// The JSON a plugin gets on stdin: its configuration object with the network's `name` and
/// `cniVersion`, `runtimeConfig` holding the capability arguments it declared, and `prevResult`
/// when there is one.
fn request(
    conf: &NetConfig,
    plugin: &PluginConfig,
    prev: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Vec<u8> {
    let mut obj = plugin.raw().clone();
    obj.insert("name".into(), Value::String(conf.name().to_string()));
    obj.insert(
        "cniVersion".into(),
        Value::String(conf.cni_version().to_string()),
    );
    let rc: Map<String, Value> = capability_args
        .iter()
        .filter(|(k, _)| plugin.capabilities().contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !rc.is_empty() {
        obj.insert("runtimeConfig".into(), Value::Object(rc));
    }
    match prev {
        Some(p) => obj.insert("prevResult".into(), p.clone()),
        None => obj.remove("prevResult"),
    };
    serde_json::to_vec(&Value::Object(obj)).expect("JSON values serialize")
}

/// Whether the host-side interfaces of an ADD result (those without a `sandbox`) all exist in
/// the caller's network namespace (`/proc/self/net/dev`); false if the result names none or
/// that cannot be read.
fn host_links_present(result: Option<&Value>) -> bool {
    let names: Vec<&str> = result
        .and_then(|r| r.get("interfaces"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("sandbox")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .filter_map(|i| i.get("name")?.as_str())
        .collect();
    if names.is_empty() {
        return false;
    }
    let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
        return false;
    };
    let present: Vec<&str> = dev
        .lines()
        .filter_map(|l| Some(l.split_once(':')?.0.trim()))
        .collect();
    names.iter().all(|n| present.contains(n))
}

/// Plugins run in `/`, so `CNI_NETNS` must not be relative to the caller's directory.
fn absolute(path: &Path) -> Result<PathBuf, NetError> {
    std::path::absolute(path).map_err(|e| NetError::io("resolve", path, e))
}

fn snippet(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .trim()
        .chars()
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builtin_default;

    #[test]
    fn requests_carry_name_version_capabilities_and_prev_result() {
        let conf = builtin_default(Path::new("/ipam"));
        let mut caps = Map::new();
        caps.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        let first: Value =
            serde_json::from_slice(&request(&conf, &conf.plugins()[0], None, &caps)).unwrap();
        assert_eq!(first["name"], "default");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(
            first.get("runtimeConfig").is_none(),
            "ptp declares no capability"
        );
        assert!(first.get("prevResult").is_none());
        let prev = json!({"ips": []});
        let second: Value =
            serde_json::from_slice(&request(&conf, &conf.plugins()[1], Some(&prev), &caps))
                .unwrap();
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(second["prevResult"], prev);
        assert_eq!(second["type"], "portmap");
    }

    #[test]
    fn cni_args_form() {
        let mut r = NetworkRequest::new("n");
        assert_eq!(cni_args(&r), "");
        r.args.push(("IP".into(), "10.0.0.5".into()));
        assert_eq!(cni_args(&r), "IgnoreUnknown=1;IP=10.0.0.5");
        r.args.push(("IgnoreUnknown".into(), "0".into()));
        assert_eq!(cni_args(&r), "IP=10.0.0.5;IgnoreUnknown=0");
    }

    #[test]
    fn plugin_dirs_are_checked() {
        assert!(Cni::new(vec!["relative".into()]).is_err());
        assert!(Cni::new(vec!["/a:b".into()]).is_err());
        let c = Cni::rkt_default(&["/etc/rkt/net.d".into()]).unwrap();
        assert_eq!(
            c.cni_path,
            "/usr/lib/rkt/plugins/net:/etc/rkt/net.d:/usr/lib/cni"
        );
    }
}
