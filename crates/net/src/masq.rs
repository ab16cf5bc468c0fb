//! Masquerading pods' outgoing traffic: rkt's own (`rktIpMasq`), and cleaning up after the
//! masquerade of `ptp` and `bridge` (`ipMasq`).
//!
//! **rkt's own** ([`Masquerade`]). A network whose configuration has the top-level key
//! `"rktIpMasq": true` (rkt's built-in `default` does) is masqueraded by rkt once its plugins'
//! ADD succeeded, with exactly the NAT rules `ptp`'s `ipMasq` makes: a per-pod chain in the `nat`
//! table, named as the plugins name it (`CNI-` and a hash of network and container ID), holding
//! an ACCEPT for the pod's subnet and a MASQUERADE for everything but multicast, and a jump to it
//! from POSTROUTING for each of the pod's addresses, every rule with the plugins' comment
//! (`name: "NET" id: "ID"`). The plugin takes eight `iptables` runs to make that and six to
//! remove it; rkt takes one `iptables-restore --noflush` each way (per address family), which
//! also applies the rules atomically. What was set up is recorded in the pod's cache entry, so
//! removal needs neither the configuration nor the pod's network namespace. If the one-shot
//! removal fails (a rule or the chain is gone already), the chain is looked up and whatever is
//! left of it is removed, so removal stays idempotent.
//!
//! **The plugins' own** ([`teardown`]). `ptp` and `bridge` (containernetworking-plugins 1.1.x,
//! and later versions alike) learn which addresses to un-masquerade on DEL by reading them off
//! the pod's interface, inside the pod's network namespace. When the namespace is gone, or the
//! interface is (a pod that deleted its own `eth0`), their DEL succeeds and leaves the NAT chain
//! and its POSTROUTING jump behind; [`teardown`] then removes them (one `iptables -S` when there
//! is nothing to do). `Cni` calls it only when the plugins' DEL could not have done it.
//!
//! Every `iptables` and `iptables-restore` run goes through the plugins' bounded runner
//! (`exec::run_tool`: fixed `PATH`, time and output limits) and waits for the xtables lock (`-w`).

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha512};

use crate::config::NetConfig;
use crate::error::NetError;
use crate::exec::{Limits, run_tool};
use crate::result::IpPrefix;

/// The plugins that masquerade when `ipMasq` is true.
pub(crate) const MASQUERADING: &[&str] = &["ptp", "bridge"];

/// `xt_comment` takes at most 255 bytes.
const MAX_COMMENT: usize = 255;

/// Whether a plugin of `conf` masquerades itself (`ptp`/`bridge` with `ipMasq: true`).
pub(crate) fn plugin_masquerades(conf: &NetConfig) -> bool {
    conf.plugins().iter().any(|p| {
        MASQUERADING.contains(&p.plugin_type()) && p.raw().get("ipMasq") == Some(&Value::Bool(true))
    })
}

/// The masquerade rkt set up for one pod on one network, as the pod's cache entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Masquerade {
    /// The per-pod chain in the `nat` table (of `iptables`, and of `ip6tables` for IPv6).
    pub chain: String,
    /// The comment on every rule.
    pub comment: String,
    /// The pod's addresses with their prefix lengths, as its ADD result gave them.
    pub addresses: Vec<IpPrefix>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(addr: IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn restore(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    /// Multicast stays unmasqueraded, so pods can talk to each other with it (as the plugins do).
    fn multicast(self) -> &'static str {
        match self {
            Family::V4 => "224.0.0.0/4",
            Family::V6 => "ff00::/8",
        }
    }
}

impl Masquerade {
    /// The masquerade for the addresses in `result` (a CNI ADD result) of the pod
    /// `container_id` on `network`; `None` when the result has no address.
    pub fn new(network: &str, container_id: &str, result: Option<&Value>) -> Option<Masquerade> {
        let addresses: Vec<IpPrefix> = result_addresses(result)
            .filter_map(|a| a.parse().ok())
            .collect();
        if addresses.is_empty() {
            return None;
        }
        let mut comment = format!("name: {network:?} id: {container_id:?}");
        // Names and IDs are ASCII (validated), so any cut is on a character boundary.
        comment.truncate(MAX_COMMENT);
        Some(Masquerade {
            chain: chain_name(network, container_id),
            comment,
            addresses,
        })
    }

    /// Adds the chain, its rules and the POSTROUTING jumps: one `iptables-restore` per family.
    pub fn set_up(&self, network: &str, limits: Limits) -> Result<(), NetError> {
        for family in self.families() {
            restore(family, &self.script(family, true), limits).map_err(|reason| {
                NetError::Masquerade {
                    network: network.to_string(),
                    chain: self.chain.clone(),
                    action: "set up",
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// Removes the jumps and the chain: one `iptables-restore` per family; if that fails
    /// (something is gone already), whatever is left of the chain is looked up and removed.
    pub fn remove(&self, network: &str, limits: Limits) -> Result<(), NetError> {
        for family in self.families() {
            let Err(first) = restore(family, &self.script(family, false), limits) else {
                continue;
            };
            tracing::debug!(
                network,
                chain = self.chain,
                "removing the masquerade in one go failed ({first}); removing what is left of it"
            );
            remove_chain(family, &self.chain, limits).map_err(|then| NetError::Masquerade {
                network: network.to_string(),
                chain: self.chain.clone(),
                action: "remove",
                reason: format!("{first}; then: {then}"),
            })?;
        }
        Ok(())
    }

    fn families(&self) -> Vec<Family> {
        let mut out = Vec::with_capacity(2);
        for a in &self.addresses {
            let f = Family::of(a.addr);
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The `iptables-restore --noflush` input that adds (`add`) or removes this family's rules.
    /// Adding declares the chain (which empties it if it exists), then ACCEPT for each subnet of
    /// the pod, MASQUERADE for all but multicast, and a POSTROUTING jump per address; removing
    /// deletes the jumps, then empties and deletes the chain.
    fn script(&self, family: Family, add: bool) -> String {
        let chain = &self.chain;
        let comment = format!("-m comment --comment {}", quote(&self.comment));
        let addrs: Vec<&IpPrefix> = self
            .addresses
            .iter()
            .filter(|a| Family::of(a.addr) == family)
            .collect();
        let mut s = String::from("*nat\n");
        if add {
            let _ = writeln!(s, ":{chain} - [0:0]");
            let mut subnets: Vec<IpPrefix> = Vec::new();
            for a in &addrs {
                let net = subnet(a);
                if !subnets.contains(&net) {
                    let _ = writeln!(s, "-A {chain} -d {net} {comment} -j ACCEPT");
                    subnets.push(net);
                }
            }
            let _ = writeln!(
                s,
                "-A {chain} ! -d {} {comment} -j MASQUERADE",
                family.multicast()
            );
        }
        let op = if add { "-A" } else { "-D" };
        for a in &addrs {
            let host = IpPrefix {
                addr: a.addr,
                prefix_len: if family == Family::V4 { 32 } else { 128 },
            };
            let _ = writeln!(s, "{op} POSTROUTING -s {host} {comment} -j {chain}");
        }
        if !add {
            let _ = writeln!(s, "-F {chain}\n-X {chain}");
        }
        s.push_str("COMMIT\n");
        s
    }
}

/// The `address` of every entry in a result's `ips`.
fn result_addresses(result: Option<&Value>) -> impl Iterator<Item = &str> {
    result
        .and_then(|r| r.get("ips"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str())
}

/// Removes what a masquerading plugin of `conf` ([`plugin_masquerades`]) left for
/// `container_id`. `result` (the cached ADD result) tells which address families to look at;
/// without it both are. Failures are logged: the plugin's DEL itself succeeded.
pub(crate) fn teardown(
    conf: &NetConfig,
    container_id: &str,
    result: Option<&Value>,
    limits: Limits,
) {
    let chain = chain_name(conf.name(), container_id);
    let addrs: Vec<&str> = result_addresses(result).collect();
    let (v4, v6) = if addrs.is_empty() {
        (true, true)
    } else {
        (
            addrs.iter().any(|a| !a.contains(':')),
            addrs.iter().any(|a| a.contains(':')),
        )
    };
    for (family, wanted) in [(Family::V4, v4), (Family::V6, v6)] {
        if !wanted {
            continue;
        }
        match remove_chain(family, &chain, limits) {
            Ok(false) => {}
            Ok(true) => tracing::info!(
                network = conf.name(),
                chain,
                "removed a masquerade the plugin's DEL left (pod interface or netns gone)"
            ),
            Err(e) => tracing::warn!(
                network = conf.name(),
                chain,
                "could not remove a masquerade the plugin's DEL left: {e}"
            ),
        }
    }
}

/// Removes `chain` and every POSTROUTING jump to it, if the chain exists: `iptables -S CHAIN`,
/// and if it is there `iptables -S POSTROUTING` and one `iptables-restore` deleting the jumps
/// it lists and the chain. `Ok(true)` if something was removed.
fn remove_chain(family: Family, chain: &str, limits: Limits) -> Result<bool, String> {
    let tool = family.iptables();
    let probe = run_tool(tool, &["-w", "-t", "nat", "-S", chain], b"", limits)?;
    if !probe.status.success() {
        // No such chain (and so no jump to it: iptables refuses to delete a chain in use).
        return Ok(false);
    }
    let post = run_tool(tool, &["-w", "-t", "nat", "-S", "POSTROUTING"], b"", limits)?;
    if !post.status.success() {
        return Err(format!("{tool} -S POSTROUTING failed: {}", post.stderr));
    }
    let mut script = String::from("*nat\n");
    for line in String::from_utf8_lossy(&post.stdout).lines() {
        let Some(rule) = line.strip_prefix("-A POSTROUTING ") else {
            continue;
        };
        // A jump to a user chain has no target options: `-j CHAIN` ends the rule.
        let jump = format!("-j {chain}");
        if rule == jump || rule.ends_with(&format!(" {jump}")) {
            let _ = writeln!(script, "-D POSTROUTING {rule}");
        }
    }
    let _ = writeln!(script, "-F {chain}\n-X {chain}\nCOMMIT");
    restore(family, &script, limits)?;
    Ok(true)
}

/// Runs `iptables-restore -w --noflush` (or `ip6tables-restore`) with `script`.
fn restore(family: Family, script: &str, limits: Limits) -> Result<(), String> {
    let tool = family.restore();
    let out = run_tool(tool, &["-w", "--noflush"], script.as_bytes(), limits)?;
    if out.status.success() {
        Ok(())
    } else if out.stderr.is_empty() {
        Err(format!("{tool} failed ({})", out.status))
    } else {
        Err(format!("{tool}: {}", out.stderr))
    }
}

/// A double-quoted argument for `iptables-restore` (its quoting: `\` escapes the next character).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The network `a` is in, as `iptables -d` takes and prints it.
fn subnet(a: &IpPrefix) -> IpPrefix {
    let addr = match a.addr {
        IpAddr::V4(v) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(a.prefix_len))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v) & mask).into())
        }
        IpAddr::V6(v) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(a.prefix_len))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v) & mask).into())
        }
    };
    IpPrefix {
        addr,
        prefix_len: a.prefix_len,
    }
}

/// `CNI-` and the first 24 hex digits of sha512(name + id): the plugins' chain name.
pub(crate) fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let mut name = String::from("CNI-");
    name.push_str(&hex::encode(digest)[..24]);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chain_names_match_the_plugins() {
        // Computed independently (Python's hashlib) for network "default", container "abc".
        assert_eq!(chain_name("default", "abc"), "CNI-d45410bb70a7690966c94de8");
    }

    #[test]
    fn scripts_make_the_rules_ptp_makes() {
        let result = json!({"ips": [{"address": "172.16.28.2/24", "gateway": "172.16.28.1"}]});
        let m = Masquerade::new("default", "pod-a", Some(&result)).unwrap();
        assert_eq!(m.chain, "CNI-d84260667da22f0fad0cfa2d");
        // The rules as `iptables-save` prints what ptp 1.1.1 made for this pod.
        let c = r#"-m comment --comment "name: \"default\" id: \"pod-a\"""#;
        let ch = "CNI-d84260667da22f0fad0cfa2d";
        assert_eq!(
            m.script(Family::V4, true),
            format!(
                "*nat\n:{ch} - [0:0]\n-A {ch} -d 172.16.28.0/24 {c} -j ACCEPT\n\
                 -A {ch} ! -d 224.0.0.0/4 {c} -j MASQUERADE\n\
                 -A POSTROUTING -s 172.16.28.2/32 {c} -j {ch}\nCOMMIT\n"
            )
        );
        assert_eq!(
            m.script(Family::V4, false),
            format!(
                "*nat\n-D POSTROUTING -s 172.16.28.2/32 {c} -j {ch}\n-F {ch}\n-X {ch}\nCOMMIT\n"
            )
        );
        assert_eq!(m.families(), [Family::V4]);
    }

    #[test]
    fn both_families_and_no_addresses() {
        let result = json!({"ips": [
            {"address": "fd00:1:2::5/64"}, {"address": "10.1.2.3/16"}, {"address": "bogus"}
        ]});
        let m = Masquerade::new("n", "id", Some(&result)).unwrap();
        assert_eq!(m.families(), [Family::V6, Family::V4]);
        let v6 = m.script(Family::V6, true);
        assert!(v6.contains("-d fd00:1:2::/64 "), "{v6}");
        assert!(v6.contains("! -d ff00::/8 "), "{v6}");
        assert!(v6.contains("-s fd00:1:2::5/128 "), "{v6}");
        assert!(!v6.contains("10.1"), "{v6}");
        assert!(m.script(Family::V4, true).contains("-d 10.1.0.0/16 "));
        assert!(Masquerade::new("n", "id", Some(&json!({"ips": []}))).is_none());
        assert!(Masquerade::new("n", "id", None).is_none());
        // Over-long names: the comment is cut to what xt_comment takes.
        let long = "x".repeat(200);
        let m = Masquerade::new(&long, &long, Some(&result)).unwrap();
        assert_eq!(m.comment.len(), MAX_COMMENT);
    }

    #[test]
    fn quoting_follows_iptables_restore() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
