//! ACIs over plain HTTP, end to end: `--insecure-options=http`, `--pull-policy` with ETags,
//! auth.d `auth` credentials, and no credentials across a redirect to another origin.
//!
//! The server is a few lines of `std::net` on 127.0.0.1 in a thread of the test, so every
//! request rkt makes is visible to the test.

mod e2e_local_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use e2e_local_support::*;
use rkt_tests::rkt::Rkt;
use serde_json::json;

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    fn body(mut self, b: Vec<u8>) -> Self {
        self.body = b;
        self
    }
}

type Handler = Box<dyn Fn(&Request) -> Response + Send>;

/// An HTTP/1.1 server on a free loopback port, one connection at a time, `Connection: close`.
/// Its thread lives until the test process ends.
struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(Request, u16)>>>,
}

impl Server {
    fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve_one(stream, &handler, &log2);
            }
        });
        Server { addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<(Request, u16)> {
        self.log.lock().unwrap().clone()
    }
}

/// Logs the request before answering, so the log is complete once rkt has its answer.
fn serve_one(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<(Request, u16)>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let req = Request { path, headers };
    let resp = handler(&req);
    log.lock().unwrap().push((req, resp.status));
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&resp.body);
    let _ = out.flush();
    Some(())
}

fn aci_gz() -> Vec<u8> {
    std::fs::read(&fx().aci.gzip).unwrap()
}

const INSECURE: &str = "--insecure-options=image,http";

#[test]
fn an_aci_over_plain_http_needs_insecure_http() {
    let body = aci_gz();
    let srv = Server::start(Box::new(move |_| Response::new(200).body(body.clone())));
    let url = srv.url("/busybox.aci");
    let rkt = Rkt::new();
    let out = fail(&rkt, &["--insecure-options=image", "fetch", url.as_str()]);
    assert!(out.stderr.contains("--insecure-options=http"), "{out}");
    assert!(
        srv.requests().is_empty(),
        "nothing is sent over plain http unasked"
    );
    let out = fail(&rkt, &["--insecure-options=http", "fetch", url.as_str()]);
    assert!(out.stderr.contains("--insecure-options=image"), "{out}");
    assert_store_empty(&rkt, "after refused fetches");

    let out = rkt.ok(&[INSECURE, "fetch", url.as_str()]);
    let id = out.last_line();
    assert_eq!(id, fx().aci.image_id.to_string());
    assert_eq!(
        names_of(&rkt, id),
        vec![format!("{}:{}", fx().aci.name, fx().aci.version)]
    );
    assert_eq!(listed(&rkt, id).unwrap()["format"], "appc");
}

#[test]
fn pull_policy_update_revalidates_with_the_etag_and_reuses_the_stored_image() {
    let body = aci_gz();
    let srv = Server::start(Box::new(move |req| {
        if req.header("If-None-Match") == Some("\"v1\"") {
            Response::new(304).header("ETag", "\"v1\"")
        } else {
            Response::new(200)
                .header("ETag", "\"v1\"")
                .body(body.clone())
        }
    }));
    let url = srv.url("/busybox.aci.gz");
    let rkt = Rkt::new();
    // Nothing stored yet: `never` does not ask the server.
    let out = fail(
        &rkt,
        &[INSECURE, "fetch", "--pull-policy=never", url.as_str()],
    );
    assert!(srv.requests().is_empty(), "{out}");

    let want = fx().aci.image_id.to_string();
    let first = rkt.ok(&[INSECURE, "fetch", url.as_str()]);
    assert_eq!(first.last_line(), want);
    let blobs = blob_files(&rkt);
    let trees = layer_dirs(&rkt);

    let second = rkt.ok(&[INSECURE, "fetch", "--pull-policy=update", url.as_str()]);
    assert_eq!(second.last_line(), want);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].0.header("If-None-Match"), None);
    assert_eq!(reqs[1].0.header("If-None-Match"), Some("\"v1\""));
    assert_eq!(reqs[1].1, 304, "the server said not modified");
    assert_eq!(blob_files(&rkt), blobs, "nothing new stored");
    assert_eq!(layer_dirs(&rkt), trees);

    // `new` and `never` use the stored image without asking.
    for policy in ["--pull-policy=new", "--pull-policy=never"] {
        let out = rkt.ok(&[INSECURE, "fetch", policy, url.as_str()]);
        assert_eq!(out.last_line(), want, "{policy}");
    }
    assert_eq!(srv.requests().len(), 2, "no request for new/never");
}

fn write_auth(rkt: &Rkt, user: &str, password: &str) {
    let d = rkt.local_config().join("auth.d");
    std::fs::create_dir_all(&d).unwrap();
    let doc = json!({
        "rktKind": "auth",
        "rktVersion": "v1",
        "domains": ["127.0.0.1"],
        "type": "basic",
        "credentials": {"user": user, "password": password},
    });
    std::fs::write(d.join("aci.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn auth_d_basic_credentials_are_sent_to_their_host() {
    let body = aci_gz();
    let want_auth = basic("aci-user", "aci-pass");
    let expected = want_auth.clone();
    let srv = Server::start(Box::new(move |req| {
        if req.header("Authorization") == Some(expected.as_str()) {
            Response::new(200).body(body.clone())
        } else {
            Response::new(401).header("WWW-Authenticate", "Basic realm=\"acis\"")
        }
    }));
    let url = srv.url("/private/busybox.aci");
    let rkt = Rkt::new();
    let out = fail(&rkt, &[INSECURE, "fetch", url.as_str()]);
    assert!(out.stderr.contains("401"), "{out}");
    assert!(
        out.stderr.contains("auth.d"),
        "says where credentials go: {out}"
    );
    assert_store_empty(&rkt, "after a 401");

    write_auth(&rkt, "aci-user", "aci-pass");
    let out = rkt.ok(&[INSECURE, "fetch", url.as_str()]);
    assert_eq!(out.last_line(), fx().aci.image_id.to_string());
    let reqs = srv.requests();
    assert_eq!(
        reqs.last().unwrap().0.header("Authorization"),
        Some(want_auth.as_str())
    );
}

#[test]
fn a_redirect_to_another_port_does_not_carry_the_authorization() {
    let body = aci_gz();
    let target = Server::start(Box::new(move |_| Response::new(200).body(body.clone())));
    let location = target.url("/elsewhere/busybox.aci");
    let want_auth = basic("aci-user", "aci-pass");
    let expected = want_auth.clone();
    let origin = Server::start(Box::new(move |req| {
        if req.header("Authorization") == Some(expected.as_str()) {
            Response::new(302).header("Location", location.clone())
        } else {
            Response::new(401)
        }
    }));
    let rkt = Rkt::new();
    write_auth(&rkt, "aci-user", "aci-pass");
    let url = origin.url("/busybox.aci");
    let out = rkt.ok(&[INSECURE, "fetch", url.as_str()]);
    assert_eq!(out.last_line(), fx().aci.image_id.to_string());
    let at_origin = origin.requests();
    assert_eq!(at_origin.len(), 1);
    assert_eq!(
        at_origin[0].0.header("Authorization"),
        Some(want_auth.as_str())
    );
    let at_target = target.requests();
    assert_eq!(at_target.len(), 1, "{at_target:?}");
    assert_eq!(at_target[0].0.path, "/elsewhere/busybox.aci");
    assert_eq!(
        at_target[0].0.header("Authorization"),
        None,
        "credentials must not follow a redirect to another origin"
    );
}
