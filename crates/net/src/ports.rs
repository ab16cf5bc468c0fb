//! Port forwarding requests, in the form of the CNI `portMappings` capability.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::NetError;

/// A host port forwarded to a pod port (`--port`). Serializes exactly as a CNI `portMappings`
/// entry (`{"hostPort", "containerPort", "protocol", "hostIP"}`), which `portmap` reads from
/// `runtimeConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Only connections to this host address are forwarded (all local addresses if `None`).
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The port on the host.
    pub host_port: u16,
    /// The port inside the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl PortMapping {
    pub(crate) fn validate(&self) -> Result<(), NetError> {
        let reason = if self.host_port == 0 || self.container_port == 0 {
            "port 0 cannot be forwarded"
        } else if !matches!(self.protocol.as_str(), "tcp" | "udp" | "sctp") {
            "the protocol must be tcp, udp or sctp"
        } else {
            return Ok(());
        };
        Err(NetError::InvalidPort {
            mapping: format!(
                "{}:{}->{}",
                self.protocol, self.host_port, self.container_port
            ),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_form() {
        let p = PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"}"#
        );
        let q = PortMapping {
            host_ip: Some("10.0.0.1".parse().unwrap()),
            ..p.clone()
        };
        assert!(
            serde_json::to_string(&q)
                .unwrap()
                .contains(r#""hostIP":"10.0.0.1""#)
        );
        assert!(p.validate().is_ok());
        assert!(
            PortMapping {
                protocol: "icmp".into(),
                ..p.clone()
            }
            .validate()
            .is_err()
        );
        assert!(PortMapping { host_port: 0, ..p }.validate().is_err());
    }
}
