//! `WWW-Authenticate` challenges (RFC 7235), as registries send them:
//! `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"`
//! or `Basic realm="Registry Realm"`.
//!
//! One header may hold several challenges separated by commas, and quoted values may contain
//! commas and escaped quotes, so this is a small tokenizer rather than a `split(',')`.

use std::collections::BTreeMap;

/// The authentication scheme a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// Token auth: get a token from `realm`, send it as `Bearer`.
    Bearer,
    /// HTTP Basic auth straight to the registry.
    Basic,
    /// Something else (e.g. `Negotiate`); we cannot answer it.
    Other(String),
}

/// One parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme.
    pub scheme: Scheme,
    /// Parameters, names lowercased (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lowercase) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every challenge in one `WWW-Authenticate` value. Malformed trailing text is dropped
/// rather than failing the whole header: the registry's error then surfaces as a plain 401.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_ws_and_commas();
        let Some(word) = p.token() else {
            if p.peek().is_none() {
                break;
            }
            p.i += 1; // stray punctuation: skip it
            continue;
        };
        // A token followed by '=' is a parameter of the current challenge; otherwise it is a
        // new scheme name.
        p.skip_ws();
        if p.peek() == Some(b'=') && p.is_token68_padding() {
            // `Negotiate abc==`: opaque data for a scheme we do not speak.
            while p.peek() == Some(b'=') {
                p.i += 1;
            }
            continue;
        }
        if p.peek() == Some(b'=') && !out.is_empty() {
            p.i += 1;
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().unwrap_or_default()
            };
            if let Some(c) = out.last_mut() {
                c.params.entry(word.to_ascii_lowercase()).or_insert(value);
            }
            continue;
        }
        let scheme = match word.to_ascii_lowercase().as_str() {
            "bearer" => Scheme::Bearer,
            "basic" => Scheme::Basic,
            _ => Scheme::Other(word),
        };
        out.push(Challenge {
            scheme,
            params: BTreeMap::new(),
        });
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// `=` right after a token could also be token68 padding (`Negotiate abc==`); those are
    /// followed by more `=` or by the end of a challenge, never by a value.
    fn is_token68_padding(&self) -> bool {
        matches!(self.s.get(self.i + 1), Some(b'=') | None | Some(b','))
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            // RFC 7230 tchar, plus '/' so unquoted URLs from sloppy servers survive.
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn quoted(&mut self) -> String {
        self.i += 1; // opening quote
        let mut v = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(c),
            }
        }
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_params() {
        let c = parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, Scheme::Bearer);
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn commas_and_escapes_inside_quotes() {
        let c = parse(
            r#"Bearer realm="https://a/t",scope="repository:a:pull,push repository:b:pull", error="insufficient_scope", error_description="say \"hi\", please""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].param("scope"),
            Some("repository:a:pull,push repository:b:pull")
        );
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
        assert_eq!(c[0].param("error_description"), Some(r#"say "hi", please"#));
    }

    #[test]
    fn basic_and_several_challenges() {
        let c = parse(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, Scheme::Basic);
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        let c = parse(r#"Negotiate abc==, BASIC Realm=plain , Bearer realm="r",service=s"#);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].scheme, Scheme::Other("Negotiate".into()));
        assert_eq!(c[1].scheme, Scheme::Basic);
        assert_eq!(c[1].param("realm"), Some("plain"));
        assert_eq!(c[2].scheme, Scheme::Bearer);
        assert_eq!(c[2].param("service"), Some("s"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            ",,,",
            "Bearer =",
        ] {
            let _ = parse(s);
        }
        assert!(parse("").is_empty());
    }
}
