//! Masquerading: rkt's own (`rktIpMasq`, on the built-in `default` network) against `ptp`'s
//! (`ipMasq`), reaching past the host, and removal in every state a pod can be left in.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use rkt_net::{Cni, NetConfig, NetworkRequest, load_networks, parse_net_flag, resolve_networks};

use crate::common::{PodNs, leases, pod_nat_rules, run, veths, veths_settled};
use crate::sandbox_test;

/// The chain ptp 1.1.1 makes for container `pod-a` on network `default` (from a real run).
const CHAIN_A: &str = "CNI-d84260667da22f0fad0cfa2d";

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Whether the nat table has `chain`.
fn chain_exists(chain: &str) -> bool {
    Command::new("iptables")
        .args(["-w", "-t", "nat", "-S", chain])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Feeds `script` to `iptables-restore -w --noflush`.
fn restore(script: &str) {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "iptables-restore:\n{script}"
    );
}

/// A user network from a `net.d` file, resolved as `--net=<flag>` would.
fn user_nets(dir: &Path, file: &str, body: &str, flag: &str) -> Vec<(NetConfig, NetworkRequest)> {
    let netd = dir.join("net.d");
    fs::create_dir_all(&netd).unwrap();
    fs::write(netd.join(file), body).unwrap();
    let user = load_networks(&[netd]).unwrap();
    resolve_networks(&parse_net_flag(flag).unwrap(), &user, &dir.join("ipam")).unwrap()
}

fn builtin_nets(flag: &str, ipam: &Path) -> Vec<(NetConfig, NetworkRequest)> {
    resolve_networks(&parse_net_flag(flag).unwrap(), &BTreeMap::new(), ipam).unwrap()
}

sandbox_test! {
    fn rkt_masquerades_the_default_network_with_the_rules_ptp_makes() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let pod = PodNs::new(dir.path());
        let cni = Cni::rkt_default(&[]).unwrap();

        // ptp's own masquerade: a user network replacing the built-in `default`, same subnet.
        let by_plugin = user_nets(
            dir.path(),
            "10-default.conflist",
            &format!(
                r#"{{"cniVersion":"1.0.0","name":"default","plugins":[{{"type":"ptp","ipMasq":true,
                    "ipam":{{"type":"host-local","subnet":"172.16.28.0/24",
                    "routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}}]}}"#,
                ipam.display()
            ),
            "default:IP=172.16.28.9",
        );
        assert!(!by_plugin[0].0.rkt_ip_masq());
        cni.attach(&cache, &pod.path, "pod-a", &by_plugin, &[]).unwrap();
        let ptp_rules = sorted(pod_nat_rules("pod-a"));
        cni.detach(&cache, &pod.path, "pod-a").unwrap();
        assert!(pod_nat_rules("pod-a").is_empty(), "{:?}", pod_nat_rules("pod-a"));

        // rkt's, on the built-in network.
        let builtin = builtin_nets("default:IP=172.16.28.9", &ipam);
        assert!(builtin[0].0.rkt_ip_masq());
        cni.attach(&cache, &pod.path, "pod-a", &builtin, &[]).unwrap();
        let rkt_rules = sorted(pod_nat_rules("pod-a"));
        let comment = r#"-m comment --comment "name: \"default\" id: \"pod-a\"""#;
        let expected = sorted(vec![
            format!("-N {CHAIN_A}"),
            format!("-A POSTROUTING -s 172.16.28.9/32 {comment} -j {CHAIN_A}"),
            format!("-A {CHAIN_A} -d 172.16.28.0/24 {comment} -j ACCEPT"),
            format!("-A {CHAIN_A} ! -d 224.0.0.0/4 {comment} -j MASQUERADE"),
        ]);
        assert_eq!(rkt_rules, expected);
        assert_eq!(rkt_rules, ptp_rules, "rkt's masquerade differs from ptp's");
        // The cache records it, for DEL.
        let cached = fs::read_to_string(cache.join("default.json")).unwrap();
        assert!(cached.contains(r#""masquerade""#) && cached.contains(CHAIN_A), "{cached}");

        cni.detach(&cache, &pod.path, "pod-a").unwrap();
        assert!(pod_nat_rules("pod-a").is_empty(), "{:?}", pod_nat_rules("pod-a"));
        assert!(!chain_exists(CHAIN_A));
        assert!(veths().is_empty() && leases(&ipam).is_empty());
    }
}

sandbox_test! {
    fn a_pod_on_default_reaches_past_the_host_masqueraded() {
        // Beyond the "host" (the sandbox): another namespace on a veth "uplink", with no route
        // back to the pod subnet, so only masqueraded traffic gets answers.
        let dir = tempfile::tempdir().unwrap();
        let (outside_dir, pod_dir) = (dir.path().join("outside"), dir.path().join("pod"));
        fs::create_dir_all(&outside_dir).unwrap();
        fs::create_dir_all(&pod_dir).unwrap();
        let outside = PodNs::new(&outside_dir);
        run(
            "nsenter",
            &[
                &format!("--net={}", outside.path.display()),
                "ip", "link", "add", "up1", "type", "veth", "peer", "name", "up0", "netns",
                &std::process::id().to_string(),
            ],
        );
        outside.run("ip addr add 10.99.0.2/24 dev up1 && ip link set up1 up");
        run("ip", &["addr", "add", "10.99.0.1/24", "dev", "up0"]);
        run("ip", &["link", "set", "up0", "up"]);

        let ipam = dir.path().join("ipam");
        let cache = pod_dir.join("net");
        let pod = PodNs::new(&pod_dir);
        let cni = Cni::rkt_default(&[]).unwrap();
        cni.attach(&cache, &pod.path, "pod-a", &builtin_nets("default", &ipam), &[]).unwrap();
        pod.run("busybox ping -c 1 -W 2 10.99.0.2");
        // The answer came because the pod's packets left with the host's address.
        let counters = run("iptables", &["-w", "-t", "nat", "-L", CHAIN_A, "-n", "-v", "-x"]);
        let masqueraded: u64 = counters
            .lines()
            .find(|l| l.contains("MASQUERADE"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no MASQUERADE rule: {counters}"));
        assert!(masqueraded > 0, "{counters}");

        cni.detach(&cache, &pod.path, "pod-a").unwrap();
        assert!(pod_nat_rules("pod-a").is_empty(), "{:?}", pod_nat_rules("pod-a"));
        run("ip", &["link", "del", "up0"]);
        assert!(veths().is_empty(), "{:?}", veths());
    }
}

sandbox_test! {
    fn rkts_masquerade_is_removed_from_the_cache_record_whatever_is_left_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let cni = Cni::rkt_default(&[]).unwrap();
        let nets = builtin_nets("default", &ipam);

        // The POSTROUTING jump is gone already, and the cached configuration no longer asks for
        // a masquerade (the record of what was set up is what counts).
        let pod = PodNs::new(dir.path());
        cni.attach(&cache, &pod.path, "pod-a", &nets, &[]).unwrap();
        let jump = pod_nat_rules("pod-a")
            .into_iter()
            .find(|l| l.starts_with("-A POSTROUTING"))
            .unwrap();
        restore(&format!("*nat\n-D{}\nCOMMIT\n", &jump[2..]));
        let entry = cache.join("default.json");
        let cached = fs::read_to_string(&entry).unwrap();
        fs::write(&entry, cached.replace(r#""rktIpMasq": true"#, r#""rktIpMasq": false"#)).unwrap();
        cni.detach(&cache, &pod.path, "pod-a").unwrap();
        assert!(pod_nat_rules("pod-a").is_empty(), "{:?}", pod_nat_rules("pod-a"));
        drop(pod);

        // The chain is gone entirely (the nat table was flushed), and the netns too.
        let pod = PodNs::new(dir.path());
        cni.attach(&cache, &pod.path, "pod-b", &nets, &[]).unwrap();
        run("iptables", &["-w", "-t", "nat", "-F"]);
        run("iptables", &["-w", "-t", "nat", "-X"]);
        rkt_net::remove_netns_file(&pod.path).unwrap();
        cni.detach(&cache, &pod.path, "pod-b").unwrap();
        assert!(pod_nat_rules("pod-b").is_empty(), "{:?}", pod_nat_rules("pod-b"));
        assert!(fs::read_dir(&cache).unwrap().next().is_none(), "cache entries left");
        assert!(leases(&ipam).is_empty());
        assert_eq!(veths_settled(), Vec::<String>::new());
    }
}

sandbox_test! {
    fn a_user_network_with_ptps_own_masquerade_is_cleaned_in_every_case() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let cni = Cni::rkt_default(&[]).unwrap();
        let nets = user_nets(
            dir.path(),
            "10-mine.conflist",
            &format!(
                r#"{{"cniVersion":"1.0.0","name":"mine","plugins":[{{"type":"ptp","ipMasq":true,
                    "ipam":{{"type":"host-local","subnet":"10.77.0.0/24",
                    "routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}}]}}"#,
                ipam.display()
            ),
            "mine",
        );
        let attach = |id: &str| {
            let pod = PodNs::new(dir.path());
            cni.attach(&cache, &pod.path, id, &nets, &[]).unwrap();
            let rules = pod_nat_rules(id);
            assert_eq!(rules.len(), 4, "ptp's chain, its 2 rules and the jump: {rules:?}");
            let cached = fs::read_to_string(cache.join("mine.json")).unwrap();
            assert!(!cached.contains(r#""masquerade""#), "{cached}");
            pod
        };
        let cleaned = |id: &str| {
            assert!(pod_nat_rules(id).is_empty(), "{id}: {:?}", pod_nat_rules(id));
            assert!(leases(&ipam).is_empty());
            assert_eq!(veths_settled(), Vec::<String>::new(), "{id}");
        };

        // Live netns: ptp's DEL removes its chain itself.
        let pod = attach("pod-live");
        cni.detach(&cache, &pod.path, "pod-live").unwrap();
        cleaned("pod-live");
        drop(pod);

        // The pod deleted its own interface: ptp finds no address; rkt removes the chain.
        let pod = attach("pod-noif");
        pod.run("ip link del eth0");
        cni.detach(&cache, &pod.path, "pod-noif").unwrap();
        cleaned("pod-noif");
        drop(pod);

        // The netns is gone: likewise.
        let pod = attach("pod-gone");
        rkt_net::remove_netns_file(&pod.path).unwrap();
        cni.detach(&cache, &pod.path, "pod-gone").unwrap();
        cleaned("pod-gone");
    }
}
