//! The HTTP listener of a server (`--http-listen`): `GET /metrics` (Prometheus text format,
//! rendered by [`crate::metrics::render`]), `GET /api/v1/status` (the status object of
//! `tandem status`, schema `tandem.status/1`), `GET /` (a self-contained status page,
//! `status_page.html`, that polls the status), `GET /api/v1/openapi.json` (the API's
//! OpenAPI 3 document, `docs/openapi.json`), and the writes: `POST /api/v1/switchover` (or
//! `/api/v1/channels/NAME/switchover`) and `POST /api/v1/reload` (`tandem serve`), which need
//! `Authorization: Bearer TOKEN` (RFC 6750 section 2.1) with the token of `--token-file`.
//! Served by `tiny_http` on a thread of its own. Reads only touch the [`Snapshot`] the event
//! loop publishes (a few times a second); writes go through the server's control port
//! (`crate::net::failover::api`), so a slow or hostile client can delay nothing but its own
//! answer. Plain HTTP/1.1 (RFC 9112): loopback by default; anything else goes behind a
//! reverse proxy with TLS (`docs/operations.md`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::metrics::{render, Snapshot};
use crate::net::failover::api::Answer;

/// The published snapshot, shared by the event loop (writer) and the HTTP thread (reader).
pub type Shared = Arc<Mutex<Option<Snapshot>>>;

/// A write asked over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A planned switchover of one channel (`None`: the server's only one).
    Switchover {
        /// The channel's name.
        channel: Option<String>,
    },
    /// Apply the edited configuration file (`tandem serve`).
    Reload,
}

/// What a listener serves: one server's snapshot, or a `tandem serve` host's channels.
pub trait Publisher: Send + Sync + 'static {
    /// The snapshots published so far (`/metrics`); empty: nothing yet.
    fn snapshots(&self) -> Vec<Snapshot>;
    /// The status object (`/api/v1/status`); `None`: nothing yet.
    fn status(&self) -> Option<serde_json::Value>;
    /// Carries out a write (already authorised).
    fn command(&self, c: &Command) -> Answer {
        let _ = c;
        Err((404, json!({"error": "this listener serves no writes"})))
    }
}

impl Publisher for Shared {
    fn snapshots(&self) -> Vec<Snapshot> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn status(&self) -> Option<serde_json::Value> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.status.clone())
    }
}

/// One server's listener: its snapshot, and its control port for the writes.
pub struct ServerApi {
    /// The snapshot the event loop publishes.
    pub shared: Shared,
    /// The server's control port.
    pub control: crate::net::failover::api::ControlPort,
    /// The server's wire session.
    pub session: u64,
    /// The channel's name (`--channel`).
    pub channel: String,
}

impl Publisher for ServerApi {
    fn snapshots(&self) -> Vec<Snapshot> {
        self.shared.snapshots()
    }

    fn status(&self) -> Option<serde_json::Value> {
        self.shared.status()
    }

    fn command(&self, c: &Command) -> Answer {
        match c {
            Command::Switchover { channel } => match channel {
                Some(n) if *n != self.channel => Err((
                    404,
                    json!({"error": format!("no channel '{n}' here (this server plays '{}')", self.channel)}),
                )),
                _ => self.control.switchover(self.session),
            },
            Command::Reload => Err((
                404,
                json!({"error": "a single server has no configuration file to reload (tandem serve has)"}),
            )),
        }
    }
}

/// Why an address is not served without `--http-allow-remote`.
pub fn check_addr(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "--http-listen {addr}: not a loopback address; the API has no TLS of its own: \
             put it behind a reverse proxy with TLS and give --http-allow-remote"
        ))
    }
}

/// The bearer token the writes need, read from `path` (surrounding white space dropped):
/// at least 16 characters of visible ASCII, as RFC 6750's `b64token` allows.
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = text.trim();
    if t.len() < 16 {
        return Err(format!(
            "{}: the token is {} characters long; give at least 16 (e.g. `head -c 24 /dev/urandom | base64 > {}`)",
            path.display(),
            t.len(),
            path.display()
        ));
    }
    if let Some(bad) = t.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{}: the token holds {bad:?}: only visible ASCII characters, on one line",
            path.display()
        ));
    }
    Ok(t.to_string())
}

/// The status page: no external resource, it polls `/api/v1/status` every 500 ms.
const STATUS_PAGE: &str = include_str!("status_page.html");
/// The API's OpenAPI 3 document.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// A running listener; the thread ends with the process.
#[derive(Debug)]
pub struct HttpServer {
    /// The address bound (the port chosen when 0 was asked).
    pub addr: SocketAddr,
}

/// What a request gets.
#[derive(Debug)]
struct Reply {
    code: u16,
    ctype: &'static str,
    body: String,
    /// An extra header (`Allow`, `WWW-Authenticate`).
    header: Option<(&'static str, String)>,
}

impl Reply {
    fn text(code: u16, body: String) -> Reply {
        Reply {
            code,
            ctype: "text/plain; charset=utf-8",
            body,
            header: None,
        }
    }

    fn json(code: u16, v: &serde_json::Value) -> Reply {
        Reply {
            code,
            ctype: "application/json",
            body: format!("{v}\n"),
            header: None,
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Reply {
        self.header = Some((name, value));
        self
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The write a POST path asks for.
fn write_of(path: &str) -> Option<Command> {
    match path {
        "/api/v1/switchover" => Some(Command::Switchover { channel: None }),
        "/api/v1/reload" => Some(Command::Reload),
        _ => {
            let name = path
                .strip_prefix("/api/v1/channels/")?
                .strip_suffix("/switchover")?;
            (!name.is_empty() && !name.contains('/')).then(|| Command::Switchover {
                channel: Some(name.to_string()),
            })
        }
    }
}

/// Answers one request: `auth` is its `Authorization` header, `token` the listener's.
fn answer(
    method: &tiny_http::Method,
    url: &str,
    auth: Option<&str>,
    token: Option<&str>,
    shared: &dyn Publisher,
) -> Reply {
    use tiny_http::Method::{Get, Head, Post};
    let path = url.split('?').next().unwrap_or("");
    let read = matches!(
        path,
        "/" | "/metrics" | "/api/v1/status" | "/api/v1/openapi.json"
    );
    let write = write_of(path);
    if !read && write.is_none() {
        return Reply::text(404, format!("no such path: {path}\n"));
    }
    if read && *method != Get && *method != Head {
        return Reply::text(405, format!("{method} {path}: only GET\n"))
            .with("Allow", "GET, HEAD".into());
    }
    if let Some(cmd) = write {
        if *method != Post {
            return Reply::text(405, format!("{method} {path}: only POST\n"))
                .with("Allow", "POST".into());
        }
        let Some(token) = token else {
            return Reply::json(
                403,
                &json!({"error": "writes are off: this server was started without --token-file"}),
            );
        };
        let given = auth.and_then(|a| {
            let (scheme, t) = a.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| t.trim())
        });
        let challenge = |why: &str| {
            Reply::json(401, &json!({"error": why})).with(
                "WWW-Authenticate",
                "Bearer realm=\"tandem\", error=\"invalid_token\"".to_string(),
            )
        };
        return match given {
            None => Reply::json(
                401,
                &json!({"error": "this write needs Authorization: Bearer TOKEN"}),
            )
            .with("WWW-Authenticate", "Bearer realm=\"tandem\"".into()),
            Some(t) if !same_secret(t.as_bytes(), token.as_bytes()) => {
                challenge("the bearer token is not this server's")
            }
            Some(_) => {
                tracing::info!(?cmd, "http: write requested");
                match shared.command(&cmd) {
                    Ok(v) => Reply::json(if cmd == Command::Reload { 200 } else { 202 }, &v),
                    Err((code, v)) => Reply::json(code, &v),
                }
            }
        };
    }
    match path {
        "/" => Reply {
            code: 200,
            ctype: "text/html; charset=utf-8",
            body: STATUS_PAGE.to_string(),
            header: None,
        },
        "/api/v1/openapi.json" => Reply {
            code: 200,
            ctype: "application/json",
            body: OPENAPI.to_string(),
            header: None,
        },
        "/metrics" => {
            let snaps = shared.snapshots();
            if snaps.is_empty() {
                return Reply::text(503, "starting: no snapshot yet\n".into());
            }
            Reply {
                code: 200,
                ctype: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body: render(&snaps),
                header: None,
            }
        }
        _ => match shared.status() {
            Some(s) => Reply::json(200, &s),
            None => Reply::text(503, "starting: no snapshot yet\n".into()),
        },
    }
}

impl HttpServer {
    /// Binds `addr` and serves `shared` from a thread named `tandem-http`; writes need
    /// `token` (none: writes are refused).
    pub fn start(
        addr: SocketAddr,
        shared: impl Publisher,
        token: Option<String>,
    ) -> anyhow::Result<HttpServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("--http-listen {addr}: {e}"))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow::anyhow!("--http-listen {addr}: not an IP listener"))?;
        std::thread::Builder::new()
            .name("tandem-http".into())
            .spawn(move || loop {
                let req = match server.recv_timeout(Duration::from_secs(1)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "http: accepting a request");
                        continue;
                    }
                };
                let auth = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.as_str().to_string());
                let r = answer(
                    req.method(),
                    req.url(),
                    auth.as_deref(),
                    token.as_deref(),
                    &shared,
                );
                let mut resp = tiny_http::Response::from_string(r.body).with_status_code(r.code);
                if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", r.ctype) {
                    resp = resp.with_header(h);
                }
                if let Some((name, value)) = r.header {
                    if let Ok(h) = tiny_http::Header::from_bytes(name, value) {
                        resp = resp.with_header(h);
                    }
                }
                if let Err(e) = req.respond(resp) {
                    tracing::debug!(error = %e, "http: answering");
                }
            })?;
        Ok(HttpServer { addr: bound })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_allowed() {
        assert!(check_addr("127.0.0.1:9100".parse().unwrap(), false).is_ok());
        assert!(check_addr("[::1]:9100".parse().unwrap(), false).is_ok());
        let e = check_addr("0.0.0.0:9100".parse().unwrap(), false).unwrap_err();
        assert!(e.contains("--http-listen 0.0.0.0:9100") && e.contains("--http-allow-remote"));
        assert!(check_addr("0.0.0.0:9100".parse().unwrap(), true).is_ok());
    }

    #[test]
    fn paths_and_methods() {
        let shared: Shared = Arc::new(Mutex::new(None));
        let get = tiny_http::Method::Get;
        let post = tiny_http::Method::Post;
        let ask = |m: &tiny_http::Method, p: &str| answer(m, p, None, None, &shared);
        assert_eq!(ask(&get, "/nope").code, 404);
        assert_eq!(ask(&post, "/metrics").code, 405);
        assert_eq!(ask(&get, "/metrics").code, 503);
        let r = ask(&get, "/");
        assert_eq!((r.code, r.ctype), (200, "text/html; charset=utf-8"));
        assert!(
            r.body.contains("/api/v1/status") && !r.body.contains("://"),
            "self-contained"
        );
        let doc: serde_json::Value = serde_json::from_str(&ask(&get, "/api/v1/openapi.json").body)
            .expect("the OpenAPI document is JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        // A write path read with GET: 405, naming POST.
        let r = ask(&get, "/api/v1/switchover");
        assert_eq!((r.code, r.header.unwrap().1.as_str()), (405, "POST"));
    }

    /// A listener whose writes are answered by a fixed function.
    struct Fake;
    impl Publisher for Fake {
        fn snapshots(&self) -> Vec<Snapshot> {
            Vec::new()
        }
        fn status(&self) -> Option<serde_json::Value> {
            None
        }
        fn command(&self, c: &Command) -> Answer {
            match c {
                Command::Switchover { channel } => {
                    Ok(json!({"accepted": true, "channel": channel}))
                }
                Command::Reload => Err((503, json!({"error": "no answer"}))),
            }
        }
    }

    #[test]
    fn writes_need_the_bearer_token() {
        let post = tiny_http::Method::Post;
        let tok = Some("0123456789abcdef0123");
        let ask =
            |p: &str, auth: Option<&str>, token: Option<&str>| answer(&post, p, auth, token, &Fake);
        // No token file: writes are off.
        let r = ask(
            "/api/v1/switchover",
            Some("Bearer 0123456789abcdef0123"),
            None,
        );
        assert_eq!(r.code, 403, "{}", r.body);
        assert!(r.body.contains("--token-file"), "{}", r.body);
        // No header, another scheme, a wrong token: 401 with a challenge.
        for auth in [
            None,
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer 0123456789abcdef0124"),
            Some("Bearer 0123"),
        ] {
            let r = ask("/api/v1/switchover", auth, tok);
            assert_eq!(r.code, 401, "{auth:?}: {}", r.body);
            assert_eq!(r.header.as_ref().unwrap().0, "WWW-Authenticate");
        }
        // The token: carried out (the scheme is case-insensitive, RFC 6750 2.1 / RFC 9110 11.1).
        let r = ask(
            "/api/v1/channels/news/switchover",
            Some("bearer 0123456789abcdef0123"),
            tok,
        );
        assert_eq!(r.code, 202, "{}", r.body);
        assert!(r.body.contains("\"news\""), "{}", r.body);
        assert_eq!(
            ask("/api/v1/reload", Some("Bearer 0123456789abcdef0123"), tok).code,
            503
        );
        assert_eq!(ask("/api/v1/channels//switchover", None, tok).code, 404);
        assert_eq!(ask("/api/v1/channels/a/b/switchover", None, tok).code, 404);
    }

    #[test]
    fn a_token_file_holds_one_long_visible_token() {
        let d = std::env::temp_dir().join(format!("tandem-token-{}", std::process::id()));
        std::fs::write(&d, "short\n").unwrap();
        let e = read_token(&d).unwrap_err();
        assert!(e.contains("at least 16"), "{e}");
        std::fs::write(&d, "0123456789 abcdef0123\n").unwrap();
        assert!(read_token(&d).unwrap_err().contains("visible ASCII"));
        std::fs::write(&d, "  0123456789abcdef0123\n").unwrap();
        assert_eq!(read_token(&d).unwrap(), "0123456789abcdef0123");
        let _ = std::fs::remove_file(&d);
        assert!(read_token(&d).unwrap_err().contains("tandem-token"));
    }
}
