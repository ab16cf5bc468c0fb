//! A small token server for distribution's token auth, on loopback, over HTTPS when the
//! registry uses TLS (clients rightly refuse to send passwords to a plain-http realm).
//!
//! The flow it serves: the registry answers 401 with `WWW-Authenticate: Bearer realm=…,
//! service=…,scope=…`; the client asks the realm (`GET ?service=…&scope=…` with basic auth, or
//! the OAuth2 `POST` form with `grant_type=password`) and gets `{"token": JWT}`. The JWT is
//! ES256-signed by a key whose certificate (signed by the test CA, which is the registry's
//! `rootcertbundle`) travels in the `x5c` header; distribution 2.8 checks `iss`, `aud`,
//! `exp`/`nbf` (60 s leeway) and the `access` claims against the request.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

/// The `service` the registry and its tokens name.
pub const SERVICE: &str = "rkt-test-registry";
/// The `iss` of every token.
pub const ISSUER: &str = "rkt-test-token-issuer";
/// Token lifetime.
const LIFETIME: u64 = 900;

struct Issuer {
    key: EcdsaKeyPair,
    x5c: String,
    username: String,
    password: String,
    issued: AtomicU64,
    refused: AtomicU64,
}

/// The running token server. Stops on drop.
pub struct TokenServer {
    addr: SocketAddr,
    scheme: &'static str,
    issuer: Arc<Issuer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Starts a server that issues tokens to `username`/`password`, signed with the PKCS#8
    /// ECDSA P-256 key `key_pkcs8` whose certificate is `cert_der`; it serves HTTPS with `tls`
    /// when given.
    pub fn start(
        key_pkcs8: &[u8],
        cert_der: &[u8],
        username: &str,
        password: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_pkcs8)
            .map_err(|e| io::Error::other(format!("token signing key: {e}")))?;
        let issuer = Arc::new(Issuer {
            key,
            x5c: STANDARD.encode(cert_der),
            username: username.to_owned(),
            password: password.to_owned(),
            issued: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let thread = {
            let issuer = Arc::clone(&issuer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("rkt-tests-token-server".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let issuer = Arc::clone(&issuer);
                        let tls = tls.clone();
                        std::thread::spawn(move || {
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                            let _ = match tls.map(rustls::ServerConnection::new) {
                                None => serve(conn, &issuer),
                                Some(Ok(tls)) => {
                                    serve(rustls::StreamOwned::new(tls, conn), &issuer)
                                }
                                Some(Err(e)) => Err(io::Error::other(e)),
                            };
                        });
                    }
                })?
        };
        Ok(TokenServer {
            addr,
            scheme,
            issuer,
            stop,
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT/token` (`http://` without TLS).
    pub fn realm(&self) -> String {
        format!("{}://{}/token", self.scheme, self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> u64 {
        self.issuer.issued.load(Ordering::SeqCst)
    }

    /// How many requests were refused (bad or missing credentials, malformed requests).
    pub fn refused(&self) -> u64 {
        self.issuer.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Request {
    method: String,
    query: String,
    authorization: Option<String>,
    body: String,
}

fn read_request(conn: &mut impl Read) -> io::Result<Request> {
    let mut r = BufReader::new(conn.take(64 << 10));
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/token" {
        return Err(io::Error::other(format!("unknown path {path}")));
    }
    let query = query.to_owned();
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(v.to_owned()),
                "content-length" => length = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length.min(16 << 10)];
    r.read_exact(&mut body)?;
    Ok(Request {
        method,
        query,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn respond(
    conn: &mut impl Write,
    status: &str,
    extra: &str,
    body: &serde_json::Value,
) -> io::Result<()> {
    let body = body.to_string();
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn serve(mut conn: impl Read + Write, issuer: &Issuer) -> io::Result<()> {
    let req = match read_request(&mut conn) {
        Ok(r) => r,
        Err(e) => {
            issuer.refused.fetch_add(1, Ordering::SeqCst);
            return respond(
                &mut conn,
                "404 Not Found",
                "",
                &json!({"errors": [e.to_string()]}),
            );
        }
    };
    let params = if req.method == "POST" {
        parse_form(&req.body)
    } else {
        parse_form(&req.query)
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let creds = if req.method == "POST" {
        get("username").zip(get("password"))
    } else {
        req.authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
    };
    let ok = creds
        .as_ref()
        .is_some_and(|(u, p)| *u == issuer.username && *p == issuer.password);
    if !ok {
        issuer.refused.fetch_add(1, Ordering::SeqCst);
        return respond(
            &mut conn,
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"rkt-test-token\"\r\n",
            &json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
        );
    }
    let scopes: Vec<(String, String, Vec<String>)> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|s| {
            let (typ, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let typ = typ.split('(').next().unwrap_or(typ);
            Some((
                typ.to_owned(),
                name.to_owned(),
                actions.split(',').map(str::to_owned).collect(),
            ))
        })
        .collect();
    let user = creds.map(|c| c.0).unwrap_or_default();
    let token = issuer.token(&user, &scopes);
    issuer.issued.fetch_add(1, Ordering::SeqCst);
    respond(
        &mut conn,
        "200 OK",
        "",
        &json!({"token": token, "access_token": token, "expires_in": LIFETIME}),
    )
}

impl Issuer {
    fn token(&self, user: &str, scopes: &[(String, String, Vec<String>)]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let n = self.issued.load(Ordering::SeqCst);
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .map(|(t, n, a)| json!({"type": t, "name": n, "actions": a}))
            .collect();
        let claims = json!({
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + LIFETIME,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("rkt-test-{now}-{n}"),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Signing with a valid key into a fresh buffer only fails if the RNG does.
        let sig = self
            .key
            .sign(&rng, signing_input.as_bytes())
            .expect("ECDSA signing failed");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// Parses `a=b&c=d` with percent-decoding (`+` is a space).
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form("service=rkt&scope=repository%3Abusy%2Fbox%3Apull%2Cpush&x=a+b&y=%");
        assert_eq!(f[0], ("service".into(), "rkt".into()));
        assert_eq!(f[1].1, "repository:busy/box:pull,push");
        assert_eq!(f[2].1, "a b");
        assert_eq!(f[3].1, "%");
    }
}
