//! appc name grammars: ACName (app and volume names) and ACIdentifier (image names).

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// Not an ACName.
    #[error(
        "invalid name {0:?}: use lowercase letters, digits and single dashes between them \
         (for example \"web-1\")"
    )]
    AcName(String),
    /// Not an ACIdentifier.
    #[error(
        "invalid image name {0:?}: use lowercase letters and digits separated by single . _ ~ / -"
    )]
    AcIdentifier(String),
}

/// Validates an appc ACName: `[a-z0-9]+(-[a-z0-9]+)*`, at most 512 bytes.
pub fn validate_ac_name(s: &str) -> Result<(), NameError> {
    if grammar_ok(s, b"-") {
        Ok(())
    } else {
        Err(NameError::AcName(s.to_owned()))
    }
}

/// Validates an appc ACIdentifier: `[a-z0-9]+([-._~/][a-z0-9]+)*`, at most 512 bytes.
pub fn validate_ac_identifier(s: &str) -> Result<(), NameError> {
    if grammar_ok(s, b"-._~/") {
        Ok(())
    } else {
        Err(NameError::AcIdentifier(s.to_owned()))
    }
}

fn grammar_ok(s: &str, seps: &[u8]) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 512 {
        return false;
    }
    let word = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut prev_sep = true; // must start with a word character
    for &c in b {
        if word(c) {
            prev_sep = false;
        } else if seps.contains(&c) && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

/// Turns an arbitrary string (an image's base name, say) into a valid ACName, or `None` if
/// nothing usable is left.
pub fn sanitize_ac_name(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac_names() {
        assert!(validate_ac_name("web-1").is_ok());
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a/b"] {
            assert!(validate_ac_name(bad).is_err(), "{bad}");
        }
        assert!(validate_ac_identifier("example.com/app_x~y").is_ok());
        assert!(validate_ac_identifier("example.com//app").is_err());
        assert_eq!(sanitize_ac_name("My_App.v2").as_deref(), Some("my-app-v2"));
        assert_eq!(sanitize_ac_name("__"), None);
    }
}
