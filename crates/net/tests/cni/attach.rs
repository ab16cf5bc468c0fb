//! Attaching pods to networks: the built-in networks, arguments, port forwarding, CHECK.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use rkt_net::{
    Attachment, Cni, NetConfig, NetError, NetSelection, NetworkRequest, PortMapping,
    parse_net_flag, resolve_networks,
};

use crate::common::{PodNs, echo, leases, pings, pod_addrs, pod_nat_rules, run, veths};
use crate::sandbox_test;

fn nets(flag: &str, ipam: &Path) -> Vec<(NetConfig, NetworkRequest)> {
    let sel = if flag.is_empty() {
        NetSelection::default()
    } else {
        parse_net_flag(flag).unwrap()
    };
    resolve_networks(&sel, &BTreeMap::new(), ipam).unwrap()
}

fn v4(a: &Attachment) -> Ipv4Addr {
    match a.ips[0].addr {
        IpAddr::V4(v) => v,
        IpAddr::V6(v) => panic!("expected an IPv4 address, got {v}"),
    }
}

fn in_net(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX << (32 - len);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

sandbox_test! {
    fn default_network_gives_an_address_a_route_and_reachability() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();

        let atts = cni.attach(&cache, &pod.path, "pod-a", &nets("", &ipam), &[]).unwrap();
        assert_eq!(atts.len(), 1);
        let a = &atts[0];
        assert_eq!((a.network.as_str(), a.ifname.as_str()), ("default", "eth0"));
        assert!(in_net(v4(a), [172, 16, 28, 0], 24), "{a:?}");
        assert_eq!(a.ips[0].prefix_len, 24);
        assert_eq!(a.gateway, Some("172.16.28.1".parse().unwrap()));
        assert!(a.to_string().starts_with("default:ip4=172.16.28."));
        assert!(pod_addrs(&pod, "eth0").contains(&a.ips[0].to_string()));
        assert!(pod.run("ip route show default").contains("via 172.16.28.1"));
        assert!(cache.join("default.json").exists());
        assert_eq!(leases(&ipam).len(), 1);
        assert!(!pod_nat_rules("pod-a").is_empty(), "no masquerade rules");

        // The "host" (the sandbox) reaches the pod.
        assert!(pings(a.ips[0].addr));
        let _server = pod.echo_server(8080);
        assert_eq!(echo(SocketAddr::new(a.ips[0].addr, 8080)), "hello pod\n");

        cni.check(&cache, &pod.path, "pod-a").unwrap();

        cni.detach(&cache, &pod.path, "pod-a").unwrap();
        assert!(veths().is_empty(), "{:?}", veths());
        assert!(leases(&ipam).is_empty(), "{:?}", leases(&ipam));
        assert!(pod_nat_rules("pod-a").is_empty(), "{:?}", pod_nat_rules("pod-a"));
        assert!(!pod.run("ip -o link").contains("eth0"));
        assert!(!cache.join("default.json").exists());
        cni.detach(&cache, &pod.path, "pod-a").unwrap();
    }
}

sandbox_test! {
    fn default_restricted_reaches_the_host_only() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();
        let atts =
            cni.attach(&cache, &pod.path, "pod-r", &nets("default-restricted", &ipam), &[]).unwrap();
        let a = &atts[0];
        assert_eq!(a.network, "default-restricted");
        assert!(in_net(v4(a), [172, 31, 0, 0], 16), "{a:?}");
        assert_eq!(pod.run("ip route show default").trim(), "", "a restricted pod has no default route");
        assert!(pod_nat_rules("pod-r").is_empty(), "no masquerade for default-restricted");
        assert!(pings(a.ips[0].addr));
        cni.detach(&cache, &pod.path, "pod-r").unwrap();
        assert!(veths().is_empty() && leases(&ipam).is_empty());
    }
}

sandbox_test! {
    fn two_pods_on_one_network_get_different_addresses_and_reach_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = dir.path().join("ipam");
        let (da, db) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&da).unwrap();
        std::fs::create_dir_all(&db).unwrap();
        let (pa, pb) = (PodNs::new(&da), PodNs::new(&db));
        let cni = Cni::rkt_default(&[]).unwrap();
        let a = cni.attach(&da.join("net"), &pa.path, "pod-a", &nets("", &ipam), &[]).unwrap();
        let b = cni.attach(&db.join("net"), &pb.path, "pod-b", &nets("", &ipam), &[]).unwrap();
        assert_ne!(a[0].ips[0].addr, b[0].ips[0].addr);
        assert_eq!(leases(&ipam).len(), 2);
        pa.run(&format!("busybox ping -c 1 -W 2 {}", b[0].ips[0].addr));

        cni.detach(&da.join("net"), &pa.path, "pod-a").unwrap();
        assert_eq!(leases(&ipam).len(), 1, "pod b keeps its lease");
        cni.detach(&db.join("net"), &pb.path, "pod-b").unwrap();
        assert!(leases(&ipam).is_empty() && veths().is_empty());
    }
}

sandbox_test! {
    fn ip_argument_picks_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();
        let atts = cni
            .attach(&cache, &pod.path, "pod-ip", &nets("default:IP=172.16.28.77", &ipam), &[])
            .unwrap();
        assert_eq!(atts[0].ips[0].to_string(), "172.16.28.77/24");
        assert!(pod_addrs(&pod, "eth0").contains("172.16.28.77/24"));
        cni.detach(&cache, &pod.path, "pod-ip").unwrap();

        // An address outside the range: host-local's own error reaches the caller, and
        // nothing is left behind.
        let err = cni
            .attach(&cache, &pod.path, "pod-ip", &nets("default:IP=10.9.9.9", &ipam), &[])
            .unwrap_err();
        let NetError::PluginFailed { ref plugin, ref error, .. } = err else {
            panic!("expected a plugin error, got {err}")
        };
        assert_eq!(plugin, "ptp");
        assert!(err.to_string().contains("10.9.9.9"), "{err}");
        assert!(!error.msg.is_empty());
        assert!(veths().is_empty() && leases(&ipam).is_empty());
        assert!(std::fs::read_dir(&cache).unwrap().next().is_none(), "cache entries left");
    }
}

sandbox_test! {
    fn host_port_forwards_to_the_pod() {
        // A stand-in for the host's uplink address (the machine has no dummy driver).
        run("ip", &["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
        run("ip", &["addr", "add", "10.99.0.1/24", "dev", "up0"]);
        run("ip", &["link", "set", "up0", "up"]);
        run("ip", &["link", "set", "up1", "up"]);

        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();
        let ports = [PortMapping {
            host_ip: None,
            host_port: 8081,
            container_port: 8080,
            protocol: "tcp".into(),
        }];
        cni.attach(&cache, &pod.path, "pod-p", &nets("", &ipam), &ports).unwrap();
        let _server = pod.echo_server(8080);
        let host = SocketAddr::new("10.99.0.1".parse().unwrap(), 8081);
        assert_eq!(echo(host), "hello pod\n");
        // No CHECK here: portmap 1.1.1 checks an IPv4 pod's rules in ip6tables too and fails
        // (fixed in later plugin versions).

        cni.detach(&cache, &pod.path, "pod-p").unwrap();
        assert!(pod_nat_rules("pod-p").is_empty(), "{:?}", pod_nat_rules("pod-p"));
        assert!(std::net::TcpStream::connect(host).is_err(), "the forward outlived detach");
        run("ip", &["link", "del", "up0"]);
        assert!(veths().is_empty());
    }
}

sandbox_test! {
    fn ports_need_a_network_that_forwards() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();
        let ports = [PortMapping { host_ip: None, host_port: 1, container_port: 1, protocol: "tcp".into() }];
        let nets = nets("default-restricted", &dir.path().join("ipam"));
        let err = cni.attach(&dir.path().join("net"), &pod.path, "pod", &nets, &ports).unwrap_err();
        assert!(matches!(err, NetError::NoPortForwarding { .. }), "{err}");
        assert!(veths().is_empty());
    }
}

sandbox_test! {
    fn check_finds_a_missing_interface() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();
        cni.attach(&cache, &pod.path, "pod-c", &nets("", &ipam), &[]).unwrap();
        pod.run("ip link del eth0");
        let err = cni.check(&cache, &pod.path, "pod-c").unwrap_err();
        assert!(matches!(err, NetError::PluginFailed { ref plugin, .. } if plugin == "ptp"), "{err}");
        cni.detach(&cache, &pod.path, "pod-c").unwrap();
        assert!(leases(&ipam).is_empty() && veths().is_empty());
        assert!(pod_nat_rules("pod-c").is_empty(), "{:?}", pod_nat_rules("pod-c"));
    }
}

#[test]
fn plugins_report_their_versions() {
    // VERSION touches no network.
    let cni = Cni::rkt_default(&[]).unwrap();
    for plugin in ["ptp", "portmap", "host-local", "bridge"] {
        let versions = cni.version(plugin).unwrap();
        assert!(
            versions.iter().any(|v| v == "1.0.0"),
            "{plugin}: {versions:?}"
        );
    }
    assert!(matches!(
        cni.version("no-such-plugin"),
        Err(NetError::PluginNotFound { .. })
    ));
    assert!(matches!(
        cni.version("../cni/ptp"),
        Err(NetError::InvalidName { .. })
    ));
}

sandbox_test! {
    fn a_bridge_network_from_net_d_with_an_older_spec_version() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, netd) = (dir.path().join("ipam"), dir.path().join("net.d"));
        std::fs::create_dir_all(&netd).unwrap();
        // rkt-era single-plugin file, spec 0.3.1: no prevResult on DEL, no CHECK.
        std::fs::write(
            netd.join("10-br.conf"),
            format!(
                r#"{{"cniVersion":"0.3.1","name":"br","type":"bridge","bridge":"rktbr0",
                    "isGateway":true,"ipMasq":true,
                    "ipam":{{"type":"host-local","subnet":"10.88.0.0/24","dataDir":"{}"}}}}"#,
                ipam.display()
            ),
        )
        .unwrap();
        let user = rkt_net::load_networks(std::slice::from_ref(&netd)).unwrap();
        let sel = parse_net_flag("br").unwrap();
        let nets = resolve_networks(&sel, &user, &ipam).unwrap();
        assert_eq!(
            nets.iter().map(|(c, _)| c.name()).collect::<Vec<_>>(),
            ["br", "default-restricted"]
        );
        let cni = Cni::rkt_default(&[netd]).unwrap();
        let (da, db) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&da).unwrap();
        std::fs::create_dir_all(&db).unwrap();
        let (pa, pb) = (PodNs::new(&da), PodNs::new(&db));
        let a = cni.attach(&da.join("net"), &pa.path, "pod-a", &nets, &[]).unwrap();
        let b = cni.attach(&db.join("net"), &pb.path, "pod-b", &nets, &[]).unwrap();
        assert_eq!((a[0].ifname.as_str(), a[1].ifname.as_str()), ("eth0", "eth1"));
        assert!(in_net(v4(&a[0]), [10, 88, 0, 0], 24) && in_net(v4(&a[1]), [172, 31, 0, 0], 16));
        pa.run(&format!("busybox ping -c 1 -W 2 {}", b[0].ips[0].addr));
        // CHECK is not defined before 0.4.0, so the bridge network is skipped.
        cni.check(&da.join("net"), &pa.path, "pod-a").unwrap();

        cni.detach(&da.join("net"), &pa.path, "pod-a").unwrap();
        cni.detach(&db.join("net"), &pb.path, "pod-b").unwrap();
        assert!(leases(&ipam).is_empty(), "{:?}", leases(&ipam));
        for pod in ["pod-a", "pod-b"] {
            assert!(pod_nat_rules(pod).is_empty(), "{:?}", pod_nat_rules(pod));
        }
        // Only the bridge itself stays (the plugin never removes it), with no ports on it.
        let links = veths();
        assert!(links.is_empty(), "{links:?}");
    }
}

sandbox_test! {
    fn a_network_listing_versions_speaks_the_newest_its_plugins_know() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        // The plugins here know up to 1.0.0; sending 1.1.0 would fail with CNI error 1.
        let conf = NetConfig::from_json(
            format!(
                r#"{{"cniVersion":"1.1.0","cniVersions":["0.4.0","1.0.0","1.1.0"],"name":"vers",
                    "plugins":[{{"type":"ptp","ipam":{{"type":"host-local",
                    "subnet":"10.66.0.0/24","dataDir":"{}"}}}}]}}"#,
                ipam.display()
            )
            .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(conf.cni_version(), "1.1.0");
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();
        let atts = cni
            .attach(&cache, &pod.path, "pod-v", &[(conf, NetworkRequest::new("vers"))], &[])
            .unwrap();
        assert!(in_net(v4(&atts[0]), [10, 66, 0, 0], 24));
        let cached = std::fs::read_to_string(cache.join("vers.json")).unwrap();
        assert!(cached.contains(r#""cniVersion": "1.0.0""#), "{cached}");
        cni.check(&cache, &pod.path, "pod-v").unwrap();
        cni.detach(&cache, &pod.path, "pod-v").unwrap();
        assert!(leases(&ipam).is_empty() && veths().is_empty());
    }
}
