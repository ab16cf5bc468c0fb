//! The shape of `rkt run` / `rkt prepare` arguments: pod flags, then images, each followed by
//! its own flags and optionally `-- ARGS… [---]`:
//!
//! ```text
//! rkt run [POD FLAGS] IMAGE [APP FLAGS] [-- ARG… ---] [IMAGE [APP FLAGS] [-- ARG…]]…
//! ```
//!
//! clap parses the pod flags; everything from the first image on arrives here as raw words and
//! is split into one [`AppSpec`] per image, each image's flags parsed by clap again.

use clap::{Args, Parser};
use rkt_stage0::env::parse_assignment;
use rkt_stage0::quantity::{parse_cpu_millis, parse_memory};
use rkt_stage0::spec::AppSpec;
use rkt_stage0::volumes::{MountSpec, parse_mount};

/// Flags that follow an image and apply to that app only.
#[derive(Debug, Args, Default)]
pub struct AppFlags {
    /// App name (an ACName) [default: the image's base name]
    #[arg(long)]
    pub name: Option<String>,
    /// Command to run instead of the image's entrypoint
    #[arg(long)]
    pub exec: Option<String>,
    /// Working directory
    #[arg(long)]
    pub working_dir: Option<String>,
    /// User: a number or a name from the image's /etc/passwd
    #[arg(long)]
    pub user: Option<String>,
    /// Group: a number or a name from the image's /etc/group
    #[arg(long)]
    pub group: Option<String>,
    /// Supplementary group ids, comma separated
    #[arg(long, value_delimiter = ',')]
    pub supplementary_gids: Option<Vec<u32>>,
    /// Environment variable NAME=VALUE (repeatable)
    #[arg(long, value_parser = parse_kv)]
    pub environment: Vec<(String, String)>,
    /// Mount the app's root filesystem read-only
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub readonly_rootfs: bool,
    /// Mount a pod volume: volume=NAME,target=PATH (repeatable)
    #[arg(long, value_parser = parse_mount_flag)]
    pub mount: Vec<MountSpec>,
    /// Memory limit (128Mi, 1G)
    #[arg(long, value_parser = parse_memory_flag)]
    pub memory: Option<u64>,
    /// CPU limit (500m, 2)
    #[arg(long, value_parser = parse_cpu_flag)]
    pub cpu: Option<u64>,
    /// CPU weight (cgroup v1 shares; 1024 is the default weight)
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// OOM score adjustment (-1000..1000)
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub oom_score_adj: Option<i32>,
    /// Keep only these capabilities (comma list)
    #[arg(long, conflicts_with = "caps_remove")]
    pub caps_retain: Option<String>,
    /// Remove these capabilities from the default set (comma list)
    #[arg(long)]
    pub caps_remove: Option<String>,
    /// Seccomp filter: mode=retain|remove[,errno=E],SYSCALL|@GROUP,…
    #[arg(long)]
    pub seccomp: Option<String>,
    /// Annotation NAME=VALUE on the app (repeatable)
    #[arg(long, value_parser = parse_kv)]
    pub annotation: Vec<(String, String)>,
    /// User annotation NAME=VALUE (repeatable)
    #[arg(long, value_parser = parse_kv)]
    pub user_annotation: Vec<(String, String)>,
    /// User label NAME=VALUE (repeatable)
    #[arg(long, value_parser = parse_kv)]
    pub user_label: Vec<(String, String)>,
}

/// A parser for one image's flags.
#[derive(Debug, Parser)]
#[command(name = "IMAGE", no_binary_name = true, disable_help_flag = true)]
struct AppFlagsCli {
    #[command(flatten)]
    flags: AppFlags,
}

/// Flags that take no separate value (everything else takes one); like rkt's (Go) boolean
/// flags they also take one after `=`: `--readonly-rootfs=true`.
const BOOLEAN_FLAGS: &[&str] = &["--readonly-rootfs"];

/// Why the image part of a command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppArgsError {
    /// No image at all.
    #[error("no image given: name at least one image to run")]
    NoImage,
    /// A flag where an image was expected.
    #[error(
        "{0:?} comes before any image: pod flags go before the first image, app flags after \
         the image they apply to"
    )]
    FlagBeforeImage(String),
    /// clap refused an app's flags.
    #[error("invalid flags for image {image}: {message}")]
    Flags {
        /// The image.
        image: String,
        /// clap's message.
        message: String,
    },
}

/// Splits the raw words after the pod flags into apps.
pub fn parse_apps(words: &[String]) -> Result<Vec<AppSpec>, AppArgsError> {
    let mut apps = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let image = &words[i];
        if image.starts_with('-') {
            return Err(AppArgsError::FlagBeforeImage(image.clone()));
        }
        i += 1;
        let mut flags: Vec<String> = Vec::new();
        let mut args: Option<Vec<String>> = None;
        while i < words.len() {
            let w = &words[i];
            if w == "--" {
                let mut a = Vec::new();
                i += 1;
                while i < words.len() && words[i] != "---" {
                    a.push(words[i].clone());
                    i += 1;
                }
                if i < words.len() {
                    i += 1; // the `---`
                }
                args = Some(a);
                break;
            }
            if !w.starts_with("--") {
                break; // the next image
            }
            flags.push(w.clone());
            i += 1;
            let takes_value = !w.contains('=') && !BOOLEAN_FLAGS.contains(&w.as_str());
            if takes_value && i < words.len() {
                flags.push(words[i].clone());
                i += 1;
            }
        }
        let parsed = AppFlagsCli::try_parse_from(&flags).map_err(|e| AppArgsError::Flags {
            image: image.clone(),
            message: e.to_string().lines().next().unwrap_or_default().to_owned(),
        })?;
        apps.push(to_spec(image.clone(), parsed.flags, args));
    }
    if apps.is_empty() {
        return Err(AppArgsError::NoImage);
    }
    Ok(apps)
}

fn to_spec(image: String, f: AppFlags, args: Option<Vec<String>>) -> AppSpec {
    AppSpec {
        image,
        name: f.name,
        exec: f.exec,
        args,
        working_dir: f.working_dir,
        user: f.user,
        group: f.group,
        supplementary_gids: f.supplementary_gids,
        environment: f.environment,
        readonly_rootfs: f.readonly_rootfs.then_some(true),
        mounts: f.mount,
        memory: f.memory,
        cpu_millis: f.cpu,
        cpu_shares: f.cpu_shares,
        oom_score_adj: f.oom_score_adj,
        caps_retain: f.caps_retain,
        caps_remove: f.caps_remove,
        seccomp: f.seccomp,
        annotations: f.annotation,
        user_annotations: f.user_annotation,
        user_labels: f.user_label,
    }
}

/// `NAME=VALUE`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    parse_assignment(s).map_err(|e| e.to_string())
}

fn parse_mount_flag(s: &str) -> Result<MountSpec, String> {
    parse_mount(s).map_err(|e| e.to_string())
}

fn parse_memory_flag(s: &str) -> Result<u64, String> {
    parse_memory(s).map_err(|e| e.to_string())
}

fn parse_cpu_flag(s: &str) -> Result<u64, String> {
    parse_cpu_millis(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn images_flags_and_args() {
        let apps = parse_apps(&w(&[
            "docker://a",
            "--name",
            "web",
            "--readonly-rootfs",
            "--environment=A=1",
            "--",
            "-c",
            "echo hi",
            "---",
            "b.aci",
            "--memory=64Mi",
        ]))
        .unwrap();
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].name.as_deref(), Some("web"));
        assert_eq!(apps[0].readonly_rootfs, Some(true));
        assert_eq!(apps[0].args.as_deref(), Some(&w(&["-c", "echo hi"])[..]));
        assert_eq!(apps[0].environment, [("A".into(), "1".into())]);
        assert_eq!(apps[1].image, "b.aci");
        assert_eq!(apps[1].memory, Some(64 << 20));
        // args run to the end without `---`.
        let one = parse_apps(&w(&["img", "--", "--name", "x"])).unwrap();
        assert_eq!(one[0].args.as_deref(), Some(&w(&["--name", "x"])[..]));
        assert_eq!(one[0].name, None);
    }

    #[test]
    fn errors() {
        assert!(matches!(parse_apps(&[]), Err(AppArgsError::NoImage)));
        assert!(matches!(
            parse_apps(&w(&["--name", "x"])),
            Err(AppArgsError::FlagBeforeImage(_))
        ));
        let e = parse_apps(&w(&["img", "--bogus", "1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("img"), "{e}");
        assert!(parse_apps(&w(&["img", "--caps-retain=CHOWN", "--caps-remove=KILL"])).is_err());
        assert!(parse_apps(&w(&["img", "--oom-score-adj", "-5"])).is_ok());
    }

    #[test]
    fn boolean_flags_take_go_style_values() {
        let ro =
            |flag: &str| parse_apps(&w(&["img", flag, "--name=x"])).unwrap()[0].readonly_rootfs;
        assert_eq!(ro("--readonly-rootfs"), Some(true));
        assert_eq!(ro("--readonly-rootfs=true"), Some(true));
        assert_eq!(ro("--readonly-rootfs=1"), Some(true));
        assert_eq!(ro("--readonly-rootfs=false"), None);
        assert!(parse_apps(&w(&["img", "--readonly-rootfs=maybe"])).is_err());
    }
}
