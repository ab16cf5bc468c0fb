//! Removing a masquerade that `ptp` or `bridge` left behind on DEL.
//!
//! `ptp` and `bridge` (containernetworking-plugins 1.1.x, and later versions alike) learn which
//! addresses to un-masquerade on DEL by reading them off the pod's interface, inside the pod's
//! network namespace. When the namespace is gone, or the interface is (a pod that deleted its
//! own `eth0`), their DEL succeeds and leaves the NAT chain and its POSTROUTING jump behind. The
//! chain's name follows from the network name and container ID (`utils.FormatChainName` in the
//! plugins), so after every DEL of a network with a masquerading plugin this looks for that
//! chain and, if it is still there, removes the jumps to it and the chain: one `iptables -S`
//! when there is nothing to do.

use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha512};

use crate::config::NetConfig;
use crate::exec::PLUGIN_PATH;

/// The plugins that masquerade when `ipMasq` is true.
const MASQUERADING: &[&str] = &["ptp", "bridge"];

/// Removes what a masquerading plugin of `conf` left for `container_id`. `result` (the cached
/// ADD result) tells which address families to look at; without it both are.
pub(crate) fn teardown(conf: &NetConfig, container_id: &str, result: Option<&Value>) {
    let masq = conf.plugins().iter().any(|p| {
        MASQUERADING.contains(&p.plugin_type()) && p.raw().get("ipMasq") == Some(&Value::Bool(true))
    });
    if !masq {
        return;
    }
    let chain = chain_name(conf.name(), container_id);
    let addrs: Vec<&str> = result
        .and_then(|r| r.get("ips"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str())
        .collect();
    let (v4, v6) = if addrs.is_empty() {
        (true, true)
    } else {
        (
            addrs.iter().any(|a| !a.contains(':')),
            addrs.iter().any(|a| a.contains(':')),
        )
    };
    for (tool, wanted) in [("iptables", v4), ("ip6tables", v6)] {
        if !wanted || iptables(tool, &["-S", &chain]).is_none() {
            continue;
        }
        // Jumps to the chain, by rule number, last first so the numbers stay valid.
        let listing = iptables(tool, &["-L", "POSTROUTING", "-n", "--line-numbers"]);
        let mut numbers: Vec<u32> = listing
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let n = w.next()?.parse().ok()?;
                (w.next()? == chain).then_some(n)
            })
            .collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        for n in numbers {
            iptables(tool, &["-D", "POSTROUTING", &n.to_string()]);
        }
        iptables(tool, &["-F", &chain]);
        if iptables(tool, &["-X", &chain]).is_some() {
            tracing::info!(
                network = conf.name(),
                chain,
                "removed a masquerade the plugin's DEL left (pod interface or netns gone)"
            );
        }
    }
}

/// `CNI-` and the first 24 hex digits of sha512(name + id): the plugins' chain name.
fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let mut name = String::from("CNI-");
    name.push_str(&hex::encode(digest)[..24]);
    name
}

/// Runs `tool -w -t nat ARGS`; its stdout if it succeeded.
fn iptables(tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(tool)
        .args(["-w", "-t", "nat"])
        .args(args)
        .env_clear()
        .env("PATH", PLUGIN_PATH)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_match_the_plugins() {
        // Computed independently (Python's hashlib) for network "default", container "abc".
        assert_eq!(chain_name("default", "abc"), "CNI-d45410bb70a7690966c94de8");
    }
}
