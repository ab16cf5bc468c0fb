//! `--net`: which networks a pod joins, with per-network `CNI_ARGS`, and rkt's rules for turning
//! that into an ordered list of configurations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{
    NetConfig, builtin_default, builtin_default_restricted, validate_network_name,
};
use crate::error::NetError;

/// One network asked for on `--net`, with its arguments (`--net=name:K=V;K2=V2`), which reach
/// every plugin of the network as `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRequest {
    /// The network's name.
    pub name: String,
    /// `CNI_ARGS` pairs, in the order given.
    pub args: Vec<(String, String)>,
}

impl NetworkRequest {
    /// A request for `name` without arguments.
    pub fn new(name: impl Into<String>) -> NetworkRequest {
        NetworkRequest {
            name: name.into(),
            args: Vec::new(),
        }
    }
}

impl fmt::Display for NetworkRequest {
    /// The `--net` form: `name` or `name:K=V;K2=V2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (i, (k, v)) in self.args.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { ':' } else { ';' })?;
        }
        Ok(())
    }
}

/// What `--net` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "networks")]
pub enum NetSelection {
    /// `host`: the pod shares the caller's network namespace.
    Host,
    /// `none`: a network namespace with loopback only.
    None,
    /// These networks (with `default-restricted` added when `default` is not among them, as rkt
    /// did, so that the pod can always reach the host).
    Contained(Vec<NetworkRequest>),
    /// `all`: every defined network, built-in ones included; the requests carry arguments
    /// given for particular networks alongside (`--net=all,mynet:IP=10.1.0.5`).
    All(Vec<NetworkRequest>),
}

impl Default for NetSelection {
    /// No `--net` at all: the `default` network.
    fn default() -> Self {
        NetSelection::Contained(vec![NetworkRequest::new("default")])
    }
}

impl NetSelection {
    /// Whether the pod gets a network namespace of its own (everything but `host`).
    pub fn private_netns(&self) -> bool {
        !matches!(self, NetSelection::Host)
    }
}

/// Parses a `--net` value: `default`, `default-restricted`, `none`, `host`, `all`, or a
/// comma-separated list of `name` and `name:K=V;K2=V2` (the first `:` ends the name, so values
/// may hold IPv6 addresses). `host` and `none` stand alone; `all` takes no arguments itself.
pub fn parse_net_flag(s: &str) -> Result<NetSelection, NetError> {
    let bad = |reason: String| NetError::NetFlag {
        flag: s.to_string(),
        reason,
    };
    let mut reqs: Vec<NetworkRequest> = Vec::new();
    let mut all = false;
    let mut seen = BTreeSet::new();
    for item in s.split(',') {
        let (name, args) = match item.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (item, None),
        };
        if name.is_empty() {
            return Err(bad("a network name is empty".into()));
        }
        if !seen.insert(name.to_string()) {
            return Err(bad(format!("network {name:?} is named twice")));
        }
        if matches!(name, "host" | "none") {
            if s.contains(',') {
                return Err(bad(format!(
                    "{name:?} cannot be combined with other networks"
                )));
            }
            if args.is_some() {
                return Err(bad(format!("{name:?} takes no arguments")));
            }
            return Ok(if name == "host" {
                NetSelection::Host
            } else {
                NetSelection::None
            });
        }
        if name == "all" {
            if args.is_some() {
                return Err(bad("\"all\" takes no arguments; give them per network, \
                               as all,NAME:K=V"
                    .into()));
            }
            all = true;
            continue;
        }
        validate_network_name(name).map_err(|e| bad(e.to_string()))?;
        let args = match args {
            None => Vec::new(),
            Some(a) => parse_args(a).map_err(|r| bad(format!("network {name:?}: {r}")))?,
        };
        reqs.push(NetworkRequest {
            name: name.to_string(),
            args,
        });
    }
    if all {
        return Ok(NetSelection::All(reqs));
    }
    if !reqs
        .iter()
        .any(|r| r.name == "default" || r.name == "default-restricted")
    {
        reqs.push(NetworkRequest::new("default-restricted"));
    }
    Ok(NetSelection::Contained(reqs))
}

fn parse_args(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in s.split(';') {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("argument {pair:?} is not KEY=VALUE"));
        };
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "argument key {k:?} must be letters, digits, '_' or '-'"
            ));
        }
        if v.contains('\0') {
            return Err(format!("argument {k:?} has a NUL byte"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Turns a selection into the configurations to attach, in rkt's order: by configuration file
/// name (lexical; the built-ins sort as `99-default-restricted.conf` and `99-default.conf`),
/// then by network name.
///
/// `user` is what [`crate::load_networks`] found; a user network named `default` or
/// `default-restricted` replaces the built-in one. `host` and `none` give an empty list.
pub fn resolve_networks(
    selection: &NetSelection,
    user: &BTreeMap<String, NetConfig>,
    ipam_dir: &Path,
) -> Result<Vec<(NetConfig, NetworkRequest)>, NetError> {
    let mut known: BTreeMap<String, NetConfig> = BTreeMap::new();
    for conf in [
        builtin_default(ipam_dir),
        builtin_default_restricted(ipam_dir),
    ] {
        known.insert(conf.name().to_string(), conf);
    }
    for (name, conf) in user {
        known.insert(name.clone(), conf.clone());
    }
    let (reqs, all) = match selection {
        NetSelection::Host | NetSelection::None => return Ok(Vec::new()),
        NetSelection::Contained(r) => (r, false),
        NetSelection::All(r) => (r, true),
    };
    let missing: Vec<String> = reqs
        .iter()
        .filter(|r| !known.contains_key(&r.name))
        .map(|r| r.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(NetError::NetworksNotFound {
            names: missing,
            known: known.into_keys().collect(),
        });
    }
    let mut out: Vec<(NetConfig, NetworkRequest)> = if all {
        known
            .into_values()
            .map(|conf| {
                let req = reqs
                    .iter()
                    .find(|r| r.name == conf.name())
                    .cloned()
                    .unwrap_or_else(|| NetworkRequest::new(conf.name()));
                (conf, req)
            })
            .collect()
    } else {
        reqs.iter()
            .map(|r| (known[&r.name].clone(), r.clone()))
            .collect()
    };
    out.sort_by(|(a, _), (b, _)| (a.file_name(), a.name()).cmp(&(b.file_name(), b.name())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, args: &[(&str, &str)]) -> NetworkRequest {
        NetworkRequest {
            name: name.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parses_rkt_forms() {
        assert_eq!(parse_net_flag("host").unwrap(), NetSelection::Host);
        assert_eq!(parse_net_flag("none").unwrap(), NetSelection::None);
        assert_eq!(parse_net_flag("default").unwrap(), NetSelection::default());
        assert_eq!(
            parse_net_flag("default-restricted").unwrap(),
            NetSelection::Contained(vec![req("default-restricted", &[])])
        );
        assert_eq!(
            parse_net_flag("a,b:IP=10.0.0.5;X=y").unwrap(),
            NetSelection::Contained(vec![
                req("a", &[]),
                req("b", &[("IP", "10.0.0.5"), ("X", "y")]),
                req("default-restricted", &[]),
            ])
        );
        assert_eq!(
            parse_net_flag("default:IP=172.16.28.9,b").unwrap(),
            NetSelection::Contained(vec![
                req("default", &[("IP", "172.16.28.9")]),
                req("b", &[])
            ])
        );
        assert_eq!(
            parse_net_flag("all,b:IP=fd00::5").unwrap(),
            NetSelection::All(vec![req("b", &[("IP", "fd00::5")])])
        );
        assert_eq!(
            req("b", &[("IP", "1.2.3.4"), ("X", "y")]).to_string(),
            "b:IP=1.2.3.4;X=y"
        );
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "a,",
            ",a",
            "a,a",
            "host,a",
            "none,default",
            "host:X=1",
            "all:X=1",
            "a:X",
            "a:=1",
            "a:X=1;",
            "a:K K=1",
            "../a",
            "a/b",
        ] {
            let err = parse_net_flag(bad).expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!("--net={bad}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn resolves_in_file_order_with_overrides() {
        let ipam = Path::new("/ipam");
        let mut user = BTreeMap::new();
        let mine = NetConfig::from_json(
            br#"{"cniVersion":"1.0.0","name":"mine","type":"bridge"}"#,
            Some(Path::new("/etc/rkt/net.d/10-mine.conf")),
        )
        .unwrap();
        user.insert("mine".to_string(), mine);
        let sel = parse_net_flag("default,mine:IP=10.1.0.5").unwrap();
        let got = resolve_networks(&sel, &user, ipam).unwrap();
        let names: Vec<_> = got.iter().map(|(c, _)| c.name()).collect();
        assert_eq!(names, ["mine", "default"]);
        assert_eq!(got[0].1, req("mine", &[("IP", "10.1.0.5")]));

        let all = resolve_networks(&parse_net_flag("all").unwrap(), &user, ipam).unwrap();
        let names: Vec<_> = all.iter().map(|(c, _)| c.name()).collect();
        assert_eq!(names, ["mine", "default-restricted", "default"]);

        let restricted = resolve_networks(&parse_net_flag("mine").unwrap(), &user, ipam).unwrap();
        let names: Vec<_> = restricted.iter().map(|(c, _)| c.name()).collect();
        assert_eq!(names, ["mine", "default-restricted"]);

        let err = resolve_networks(&parse_net_flag("nope,zip").unwrap(), &user, ipam).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("nope, zip") && msg.contains("default, default-restricted, mine"),
            "{msg}"
        );

        assert!(
            resolve_networks(&NetSelection::None, &user, ipam)
                .unwrap()
                .is_empty()
        );

        // A user's `default` replaces the built-in one.
        let mut over = user.clone();
        let d = NetConfig::from_json(
            br#"{"cniVersion":"1.0.0","name":"default","type":"bridge"}"#,
            Some(Path::new("/etc/rkt/net.d/50-default.conf")),
        )
        .unwrap();
        over.insert("default".into(), d);
        let got = resolve_networks(&NetSelection::default(), &over, ipam).unwrap();
        assert_eq!(got[0].0.plugins()[0].plugin_type(), "bridge");
    }
}
