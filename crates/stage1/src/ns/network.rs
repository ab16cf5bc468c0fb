//! Contained networking: the pod's network namespace and its CNI networks
//! (`docs/networking.md`).
//!
//! stage1 makes the namespace itself, before anything else of the pod runs: it unshares a
//! network namespace, brings its loopback up, binds it on `<pod>/netns` and steps back into the
//! host's. The bind mount lives in the host's mount namespace, where CNI plugins open it by path,
//! and keeps the namespace alive whatever the pod's processes do. Then CNI ADD runs for each
//! network (results cached in `<pod>/net/` before each plugin runs, so a crash leaves gc
//! something to DEL), `net-info.json` records the addresses for `rkt list`/`status`, and the
//! supervisor joins the namespace with `setns`.
//!
//! [`teardown`] undoes it (CNI DEL newest first, then the bind mount): stage1 calls it when the
//! pod has ended, while it still holds the pod lock, and `gc` calls it again for a pod whose
//! stage1 did not get that far. It is idempotent.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use rkt_net::{Attachment, Cni, NetConfig, NetError, NetworkRequest};
use rkt_pod::status::files;

use super::error::Stage1Error;
use super::podfiles::PodPaths;
use super::status;
use crate::abi::{NetMode, RunRequest};

/// A pod's contained network, set up.
#[derive(Debug)]
pub struct PodNetwork {
    /// The network namespace, open, for the supervisor to join.
    pub netns: OwnedFd,
    /// The pod's place on each network, in attach order.
    pub attachments: Vec<Attachment>,
    /// Where the plugins were found (DEL needs the same ones).
    pub plugin_dirs: Vec<PathBuf>,
}

/// Makes the pod's network namespace and joins it to the request's networks; `None` unless the
/// request asks for contained networking. On failure nothing is left: networks already added
/// are deleted again (by [`Cni::attach`]) and the namespace is unbound.
pub fn setup(paths: &PodPaths, req: &RunRequest) -> Result<Option<PodNetwork>, Stage1Error> {
    let NetMode::Contained {
        networks,
        ports,
        plugin_dirs,
    } = &req.net
    else {
        return Ok(None);
    };
    let cni = Cni::new(plugin_dirs.clone())
        .map_err(|e| Stage1Error::network("use the CNI plugin directories", e))?;
    let nets = networks
        .iter()
        .map(|n| {
            let conf = NetConfig::from_value(n.config.clone(), None).map_err(|e| {
                Stage1Error::network(format!("read the configuration of network {}", n.name), e)
            })?;
            let request = NetworkRequest {
                name: n.name.clone(),
                args: n.args.clone(),
            };
            Ok((conf, request))
        })
        .collect::<Result<Vec<_>, Stage1Error>>()?;
    let netns = paths.root().join(files::NETNS);
    make_netns(&netns)?;
    let joined = (|| {
        let attachments = cni
            .attach(
                &paths.root().join(files::NET_CACHE_DIR),
                &netns,
                &req.uuid,
                &nets,
                ports,
            )
            .map_err(|e| Stage1Error::network("set up the pod's networks", e))?;
        let info = serde_json::to_vec_pretty(&attachments)
            .map_err(|e| Stage1Error::sys("encode the network info", e))?;
        status::write_file(paths.root(), files::NET_INFO, &info)?;
        let fd = File::open(&netns)
            .map_err(|e| Stage1Error::sys(format!("open {}", netns.display()), e))?;
        Ok(PodNetwork {
            netns: fd.into(),
            attachments,
            plugin_dirs: plugin_dirs.clone(),
        })
    })();
    if joined.is_err() {
        // attach rolled its networks back; if some DEL failed its cache entry stays for gc.
        if let Err(e) = teardown(paths.root(), &req.uuid, plugin_dirs) {
            super::error::warn(&super::error::error_line(&e));
        }
    }
    joined.map(Some)
}

/// A new network namespace with loopback up, bound on `path`; the caller stays in its own.
fn make_netns(path: &Path) -> Result<(), Stage1Error> {
    let host = File::open("/proc/self/ns/net")
        .map_err(|e| Stage1Error::sys("open this process's network namespace", e))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| Stage1Error::sys("create the pod's network namespace", e))?;
    let made = rkt_sys::set_interface_up("lo")
        .map_err(|e| {
            Stage1Error::sys(
                "bring the pod's loopback interface up",
                std::io::Error::other(e),
            )
        })
        .and_then(|()| {
            rkt_net::create_netns_file(std::process::id() as i32, path)
                .map_err(|e| Stage1Error::network("keep the pod's network namespace", e))
        });
    // Staying in the pod's namespace would run every plugin, and the pod's teardown, in it.
    nix::sched::setns(&host, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Stage1Error::sys("return to the host's network namespace", e))?;
    made
}

/// Removes the pod in `pod_dir` from every network its cache records (CNI DEL, newest first)
/// and unbinds its network namespace. Whatever is already gone is fine; the namespace is
/// unbound even if a DEL failed (a later DEL works without it), and the DEL failure returned.
pub fn teardown(pod_dir: &Path, uuid: &str, plugin_dirs: &[PathBuf]) -> Result<(), Stage1Error> {
    let cache = pod_dir.join(files::NET_CACHE_DIR);
    let netns = pod_dir.join(files::NETNS);
    let detached = if cache.exists() {
        let cni = if plugin_dirs.is_empty() {
            Cni::rkt_default(&[])
        } else {
            Cni::new(plugin_dirs.to_vec())
        }
        .map_err(|e| Stage1Error::network("use the CNI plugin directories", e))?;
        cni.detach(&cache, &netns, uuid)
            .map_err(|e| Stage1Error::network("remove the pod from its networks", e))
    } else {
        Ok(())
    };
    rkt_net::remove_netns_file(&netns)
        .map_err(|e| Stage1Error::network("remove the pod's network namespace", e))?;
    detached?;
    // Empty once every DEL succeeded; a leftover entry keeps it for the next try.
    let _ = std::fs::remove_dir(&cache);
    Ok(())
}

/// `/etc/resolv.conf` from the DNS settings the networks reported, in network order (rkt's
/// second choice, after `--dns`); `None` if no network reported any.
pub fn resolv_conf(attachments: &[Attachment]) -> Option<String> {
    let mut servers: Vec<&str> = Vec::new();
    let mut search: Vec<&str> = Vec::new();
    let mut options: Vec<&str> = Vec::new();
    let mut domain = None;
    for a in attachments {
        let d = &a.dns;
        push_new(&mut servers, &d.nameservers);
        push_new(&mut search, &d.search);
        push_new(&mut options, &d.options);
        domain = domain.or(d.domain.as_deref());
    }
    if servers.is_empty() && search.is_empty() && options.is_empty() && domain.is_none() {
        return None;
    }
    let mut s = String::new();
    for n in servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if let Some(d) = domain {
        s.push_str(&format!("domain {d}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    Some(s)
}

fn push_new<'a>(into: &mut Vec<&'a str>, from: &'a [String]) {
    for v in from {
        if !into.contains(&v.as_str()) {
            into.push(v);
        }
    }
}

impl Stage1Error {
    /// A failed network operation.
    pub fn network(what: impl Into<String>, source: NetError) -> Self {
        Stage1Error::Network {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(network: &str, dns: serde_json::Value) -> Attachment {
        serde_json::from_value(serde_json::json!({
            "network": network, "ifname": "eth0", "ips": [], "dns": dns
        }))
        .unwrap()
    }

    #[test]
    fn resolv_conf_merges_networks_in_order() {
        assert_eq!(resolv_conf(&[attachment("a", serde_json::json!({}))]), None);
        let text = resolv_conf(&[
            attachment(
                "a",
                serde_json::json!({"nameservers": ["10.0.0.1"], "search": ["a.example"]}),
            ),
            attachment(
                "b",
                serde_json::json!({"nameservers": ["10.0.0.2", "10.0.0.1"], "domain": "b.example",
                                   "options": ["ndots:2"]}),
            ),
        ])
        .unwrap();
        assert_eq!(
            text,
            "nameserver 10.0.0.1\nnameserver 10.0.0.2\ndomain b.example\nsearch a.example\n\
             options ndots:2\n"
        );
    }
}
