//! CNI ADD results (spec 0.1.0 to 1.1.0) reduced to what the pod needs: its addresses, gateway
//! and DNS per network ([`Attachment`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::version::{SpecVersion, at_least};

/// An address with its prefix length, as CNI writes it (`172.16.28.2/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0-32 for IPv4, 0-128 for IPv6).
    pub prefix_len: u8,
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;

    /// Parses `addr/len`; a bare address gets the full length (/32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(IpPrefix { addr, prefix_len })
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// DNS settings a network reported (the CNI result's `dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether the network reported no DNS settings at all.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A pod's place on one network: what `rkt list` and `rkt status` show, and what DNS setup uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// The interface inside the pod (`eth0`, `eth1`, …).
    pub ifname: String,
    /// The pod's addresses on this network.
    pub ips: Vec<IpPrefix>,
    /// The gateway of the first address that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The pod interface's MAC address, if the plugin reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// DNS settings from the network.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl fmt::Display for Attachment {
    /// rkt's `list` form: `default:ip4=172.16.28.2` (more addresses follow after commas).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.network)?;
        for (i, ip) in self.ips.iter().enumerate() {
            let family = if ip.addr.is_ipv4() { "ip4" } else { "ip6" };
            write!(f, "{}{family}={}", if i == 0 { "" } else { "," }, ip.addr)?;
        }
        Ok(())
    }
}

impl Attachment {
    /// Reads a plugin chain's final ADD result, in the spec version the network spoke.
    pub(crate) fn from_result(
        network: &str,
        ifname: &str,
        version: &str,
        result: &Value,
    ) -> Result<Attachment, String> {
        let obj = result
            .as_object()
            .ok_or("a result that is not a JSON object")?;
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(d) => serde_json::from_value(d.clone())
                .map_err(|e| format!("a result with an unreadable \"dns\" ({e})"))?,
        };
        let mut att = Attachment {
            network: network.to_string(),
            ifname: ifname.to_string(),
            ips: Vec::new(),
            gateway: None,
            mac: None,
            dns,
        };
        if at_least(version, SpecVersion::CHAINING) {
            att.read_current(obj)?;
        } else {
            att.read_legacy(obj)?;
        }
        Ok(att)
    }

    /// 0.3.0 and later: `interfaces`, and `ips` pointing into them by index.
    fn read_current(&mut self, obj: &serde_json::Map<String, Value>) -> Result<(), String> {
        let interfaces = obj.get("interfaces").and_then(Value::as_array);
        // The interface the pod sees: the one named CNI_IFNAME inside the sandbox.
        let in_pod = |idx: Option<u64>| -> bool {
            let (Some(idx), Some(ifs)) = (idx, interfaces) else {
                return true;
            };
            ifs.get(idx as usize).is_none_or(|i| {
                i.get("sandbox")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            })
        };
        if let Some(ifs) = interfaces {
            self.mac = ifs
                .iter()
                .find(|i| {
                    i.get("name").and_then(Value::as_str) == Some(self.ifname.as_str())
                        && i.get("sandbox")
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                })
                .and_then(|i| i.get("mac").and_then(Value::as_str))
                .map(str::to_string);
        }
        for ip in obj
            .get("ips")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !in_pod(ip.get("interface").and_then(Value::as_u64)) {
                continue;
            }
            let addr = ip
                .get("address")
                .and_then(Value::as_str)
                .ok_or("a result with an address that is not a string")?;
            self.ips.push(addr.parse()?);
            if self.gateway.is_none() {
                self.gateway = parse_gateway(ip.get("gateway"))?;
            }
        }
        Ok(())
    }

    /// 0.1.0 and 0.2.0: `ip4` and `ip6` objects.
    fn read_legacy(&mut self, obj: &serde_json::Map<String, Value>) -> Result<(), String> {
        for key in ["ip4", "ip6"] {
            let Some(cfg) = obj.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            let addr = cfg
                .get("ip")
                .and_then(Value::as_str)
                .ok_or("a result whose ip4/ip6 has no \"ip\"")?;
            self.ips.push(addr.parse()?);
            if self.gateway.is_none() {
                self.gateway = parse_gateway(cfg.get("gateway"))?;
            }
        }
        Ok(())
    }
}

fn parse_gateway(v: Option<&Value>) -> Result<Option<IpAddr>, String> {
    match v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(g) => g
            .parse()
            .map(Some)
            .map_err(|_| format!("a gateway {g:?} that is not an address")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_a_ptp_result() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "veth1234", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/run/pod/netns"}
            ],
            "ips": [{"address": "172.16.28.2/24", "gateway": "172.16.28.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.0.0.53"]}
        });
        let a = Attachment::from_result("default", "eth0", "1.0.0", &r).unwrap();
        assert_eq!(a.ips, vec!["172.16.28.2/24".parse().unwrap()]);
        assert_eq!(a.gateway, Some("172.16.28.1".parse().unwrap()));
        assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:02"));
        assert_eq!(a.dns.nameservers, ["10.0.0.53"]);
        assert_eq!(a.to_string(), "default:ip4=172.16.28.2");
        let back: Attachment = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn skips_host_side_addresses_and_reads_legacy() {
        let r = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "br0"}, {"name": "eth1", "sandbox": "/ns"}],
            "ips": [
                {"version": "4", "address": "10.1.0.1/16", "interface": 0},
                {"version": "6", "address": "fd00::5/64", "interface": 1}
            ]
        });
        let a = Attachment::from_result("n", "eth1", "0.3.1", &r).unwrap();
        assert_eq!(a.to_string(), "n:ip6=fd00::5");

        let old = json!({"ip4": {"ip": "10.2.0.7/24", "gateway": "10.2.0.1"}});
        let a = Attachment::from_result("o", "eth0", "0.1.0", &old).unwrap();
        assert_eq!(a.to_string(), "o:ip4=10.2.0.7");
        assert_eq!(a.gateway, Some("10.2.0.1".parse().unwrap()));

        assert!(Attachment::from_result("x", "eth0", "1.0.0", &json!([])).is_err());
        let bad = json!({"ips": [{"address": "nonsense"}]});
        assert!(Attachment::from_result("x", "eth0", "1.0.0", &bad).is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            "10.0.0.1".parse::<IpPrefix>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!("10.0.0.1/33".parse::<IpPrefix>().is_err());
        assert_eq!("fd00::1/64".parse::<IpPrefix>().unwrap().prefix_len, 64);
    }
}
