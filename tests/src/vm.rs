//! A pure cgroup2 host for the tests, which this machine (hybrid cgroups) is not: Debian's
//! kernel (`linux-image-amd64`, unpacked into [`KERNEL_DIR`] by `scripts/install.sh --tests`)
//! booted under qemu with `cgroup_no_v1=all`, so every controller
//! sits on the one cgroup2 hierarchy, as on a current systemd distribution.
//!
//! The guest sees the host's root filesystem read-only over 9p, with fresh tmpfs on `/tmp`,
//! `/run` and `/var/tmp`, its own `/proc`, `/sys`, `/dev` and cgroup2 at `/sys/fs/cgroup`, and
//! whatever host directories a run shares read-write. It has no network device at all. A run
//! executes one shell script (`chroot`ed into the host root) and returns its output and exit
//! status; the test binaries it runs are the host's own, already built.
//!
//! Under software emulation (no hardware KVM here) the guest boots in ~7 s and runs a debug
//! `rkt run` in about a second.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Modules the initramfs loads, in order (virtio transport, 9p, overlayfs for the pods, fuse
/// for `/dev/fuse`, the device tests' witness).
const MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay", "fuse"];

/// Guest memory, MiB.
const MEMORY_MIB: u32 = 2048;

/// The guest's `/init`: mounts the host root and runs `/tmp/out/script.sh` in it.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod /mods/$m || echo "vm: insmod $m failed"; done
p9='trans=virtio,version=9p2000.L,msize=512000'
mount -t 9p -o "$p9,ro,cache=loose" hostroot /host || echo "vm: cannot mount the host root"
for d in tmp run var/tmp; do mount -t tmpfs tmpfs /host/$d; done
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o ptmxmode=0666 devpts /host/dev/pts; mount -t tmpfs tmpfs /host/dev/shm
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
mkdir /host/tmp/out && mount -t 9p -o "$p9" out /host/tmp/out
chroot /host /bin/sh /tmp/out/script.sh >/host/tmp/out/log 2>&1
echo $? >/host/tmp/out/rc
sync
poweroff -f
"#;

/// What a guest run printed and how its script ended.
#[derive(Debug)]
pub struct VmRun {
    /// The script's stdout and stderr.
    pub log: String,
    /// The script's exit status, `None` if the guest never got to record one.
    pub code: Option<i32>,
    /// The serial console (kernel messages, `/init`'s own errors).
    pub console: String,
}

impl std::fmt::Display for VmRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "guest script exit {:?}\n--- output ---\n{}\n--- console ---\n{}",
            self.code, self.log, self.console
        )
    }
}

/// A guest to boot: qemu, a kernel and the initramfs made for it.
pub struct Vm {
    qemu: PathBuf,
    kernel: PathBuf,
    initrd: tempfile::TempDir,
}

/// A host directory the guest mounts read-write at the same path.
pub struct Share<'a>(pub &'a Path);

impl Vm {
    /// The pure cgroup2 guest, or why there is none (scripts/install.sh --tests installs qemu
    /// and the kernel).
    pub fn cgroup2() -> Result<Vm, String> {
        let qemu = PathBuf::from("/usr/bin/qemu-system-x86_64");
        if !qemu.exists() {
            return Err(format!(
                "{} is missing; run scripts/install.sh --tests",
                qemu.display()
            ));
        }
        let kernel = newest_kernel()?;
        let initrd = tempfile::Builder::new()
            .prefix("rkt-vm-")
            .tempdir()
            .map_err(|e| format!("cannot make a temp directory: {e}"))?;
        build_initrd(initrd.path(), &kernel)?;
        Ok(Vm {
            qemu,
            kernel: kernel.image,
            initrd,
        })
    }

    /// Boots the guest, runs `script` (sh) in it with `shares` mounted read-write, and waits
    /// for it to power off, at most `timeout`.
    pub fn run(&self, script: &str, shares: &[Share<'_>], timeout: Duration) -> VmRun {
        let out = tempfile::Builder::new()
            .prefix("rkt-vm-out-")
            .tempdir()
            .expect("cannot make the guest's output directory");
        let mut text = String::from("set -u\n");
        for (i, Share(dir)) in shares.iter().enumerate() {
            text.push_str(&format!(
                "mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share{i} '{}'\n",
                dir.display()
            ));
        }
        text.push_str(script);
        std::fs::write(out.path().join("script.sh"), text).expect("cannot write the script");
        let mut cmd = Command::new(&self.qemu);
        cmd.args(["-m", &MEMORY_MIB.to_string(), "-smp", "2"])
            .args(["-accel", "tcg,thread=multi", "-nographic", "-no-reboot"])
            .args(["-nic", "none"])
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(self.initrd.path().join("initrd.cpio"))
            .args([
                "-append",
                "console=ttyS0 panic=-1 cgroup_no_v1=all quiet",
            ])
            .arg("-virtfs")
            .arg("local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap")
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=out,security_model=passthrough",
                out.path().display()
            ));
        for (i, Share(dir)) in shares.iter().enumerate() {
            cmd.arg("-virtfs").arg(format!(
                "local,path={},mount_tag=share{i},security_model=passthrough,multidevs=remap",
                dir.display()
            ));
        }
        let console_path = out.path().join("console");
        let console = std::fs::File::create(&console_path).expect("cannot create the console log");
        cmd.stdin(Stdio::null())
            .stdout(console.try_clone().expect("cannot share the console log"))
            .stderr(console);
        let mut child = crate::spawn::spawn(cmd).expect("cannot start qemu");
        let start = Instant::now();
        loop {
            if child.try_wait().expect("cannot wait for qemu").is_some() {
                break;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
        VmRun {
            log: read("log"),
            code: read("rc").trim().parse().ok(),
            console: read("console"),
        }
    }
}

/// Where `scripts/install.sh --tests` unpacks Debian's kernel package (not installed, so that
/// a real machine's boot loader is left alone).
pub const KERNEL_DIR: &str = "/var/cache/rkt-tests/kernel";

/// A kernel to boot: its image, its version, and the root its `lib/modules` is under.
struct Kernel {
    image: PathBuf,
    version: String,
    root: PathBuf,
}

/// The newest kernel with its modules, under [`KERNEL_DIR`] or else the machine's own `/`.
fn newest_kernel() -> Result<Kernel, String> {
    for root in [Path::new(KERNEL_DIR), Path::new("/")] {
        let Ok(entries) = std::fs::read_dir(root.join("boot")) else {
            continue;
        };
        let mut found: Vec<(std::time::SystemTime, Kernel)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let version = name.strip_prefix("vmlinuz-")?.to_owned();
                let mtime = e.metadata().ok()?.modified().ok()?;
                root.join("lib/modules").join(&version).is_dir().then(|| {
                    let kernel = Kernel {
                        image: e.path(),
                        version,
                        root: root.to_owned(),
                    };
                    (mtime, kernel)
                })
            })
            .collect();
        found.sort_by_key(|(mtime, _)| *mtime);
        if let Some((_, kernel)) = found.pop() {
            return Ok(kernel);
        }
    }
    Err(format!(
        "no kernel with its modules in {KERNEL_DIR} or /boot; run scripts/install.sh --tests"
    ))
}

/// `dir/initrd.cpio`: busybox, the modules and `/init`.
fn build_initrd(dir: &Path, kernel: &Kernel) -> Result<(), String> {
    let version = kernel.version.as_str();
    let root = dir.join("root");
    for d in ["bin", "mods", "proc", "sys", "dev", "host"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| format!("initrd: {e}"))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .map_err(|e| format!("initrd: cannot copy /bin/busybox (busybox-static): {e}"))?;
    let mut order = Vec::new();
    for m in MODULES {
        // kmod's, by path: a test's PATH may lack the sbin directories.
        let modprobe = ["/usr/sbin/modprobe", "/sbin/modprobe"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("modprobe");
        let out = Command::new(modprobe)
            .arg("-d")
            .arg(&kernel.root)
            .args(["-S", version, "--show-depends", m])
            .output()
            .map_err(|e| format!("initrd: cannot run modprobe (kmod): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initrd: modprobe cannot resolve {m} for {version}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "insmod /lib/modules/…/x.ko" ("builtin x" needs nothing).
            let Some(path) = line.strip_prefix("insmod ").map(str::trim) else {
                continue;
            };
            let name = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".ko") && !order.contains(&name) {
                std::fs::copy(path, root.join("mods").join(&name))
                    .map_err(|e| format!("initrd: cannot copy {path}: {e}"))?;
                order.push(name);
            } else if !name.ends_with(".ko") {
                return Err(format!(
                    "initrd: {path} is compressed; only plain .ko is loaded"
                ));
            }
        }
    }
    std::fs::write(root.join("modules"), order.join("\n")).map_err(|e| format!("initrd: {e}"))?;
    std::fs::write(root.join("init"), INIT).map_err(|e| format!("initrd: {e}"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("initrd: {e}"))?;
    let status = Command::new("sh")
        .args([
            "-c",
            "find . | /bin/busybox cpio -o -H newc >../initrd.cpio 2>/dev/null",
        ])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("initrd: cannot run cpio: {e}"))?;
    if !status.success() {
        return Err("initrd: busybox cpio failed".into());
    }
    Ok(())
}

/// The newest build of the test binary `name` (`target/<profile>/deps/<name>-<hash>`), for a
/// guest to run: the test binaries `cargo test` built beside the one calling this.
pub fn test_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let deps = exe.parent().ok_or("the test executable has no directory")?;
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .map_err(|e| format!("cannot read {}: {e}", deps.display()))?
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let hash = file.strip_prefix(name)?.strip_prefix('-')?;
            if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let meta = e.metadata().ok()?;
            use std::os::unix::fs::PermissionsExt;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return None;
            }
            Some((meta.modified().ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        format!(
            "no test binary {name} in {}: build the tests first (cargo test --no-run)",
            deps.display()
        )
    })
}
