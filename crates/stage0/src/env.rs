//! The environment of an app, built with rkt's precedence (lowest first): the parent's
//! environment (`--inherit-env`), the image, `--set-env-file`, `--set-env`, `--environment`.

use std::path::Path;

/// Why an environment setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// Not `NAME=VALUE` with a valid name.
    #[error("invalid environment setting {0:?}: use NAME=VALUE, NAME of letters, digits and _")]
    Invalid(String),
    /// An env file could not be read.
    #[error("cannot read environment file {path}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `NAME=VALUE`.
pub fn parse_assignment(s: &str) -> Result<(String, String), EnvError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| EnvError::Invalid(s.to_owned()))?;
    let ok = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(EnvError::Invalid(s.to_owned()));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Reads an env file: `NAME=VALUE` lines; blank lines and `#` comments are skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, EnvError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvError::File {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_assignment)
        .collect()
}

/// Merges layers of settings, lowest precedence first; a later value replaces an earlier one
/// in place, so the order of first appearance is kept.
pub fn merge<'a>(
    layers: impl IntoIterator<Item = &'a [(String, String)]>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for layer in layers {
        for (k, v) in layer {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn precedence_and_parsing() {
        let parent = [kv("PATH", "/host"), kv("HOME", "/root")];
        let image = [kv("PATH", "/img"), kv("A", "1")];
        let cli = [kv("A", "2")];
        let m = merge([&parent[..], &image[..], &cli[..]]);
        assert_eq!(m, [kv("PATH", "/img"), kv("HOME", "/root"), kv("A", "2")]);
        assert_eq!(parse_assignment("X=a=b").unwrap(), kv("X", "a=b"));
        for bad in ["X", "=1", "1X=2", "A-B=1"] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), "# c\n\nA=1\nB=two words\n").unwrap();
        assert_eq!(
            read_env_file(t.path()).unwrap(),
            [kv("A", "1"), kv("B", "two words")]
        );
    }
}
