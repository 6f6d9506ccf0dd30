//! The HTTP listener of a server (`--http-listen`): `GET /metrics` (Prometheus text format,
//! rendered by [`crate::metrics::render`]), `GET /api/v1/status` (the status object of
//! `tandem status`, schema `tandem.status/1`) and `GET /` (a self-contained status page,
//! `status_page.html`, that polls the status), served by `tiny_http` on a thread of its own.
//! It only reads the [`Snapshot`] the event loop publishes (a few times a second), so a slow
//! or hostile client can delay nothing but its own answer. Plain HTTP/1.1 (RFC 9112):
//! loopback by default; anything else goes behind a reverse proxy with TLS
//! (`docs/operations.md`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metrics::{render, Snapshot};

/// The published snapshot, shared by the event loop (writer) and the HTTP thread (reader).
pub type Shared = Arc<Mutex<Option<Snapshot>>>;

/// What a listener serves: one server's snapshot, or a `tandem serve` host's channels.
pub trait Publisher: Send + Sync + 'static {
    /// The snapshots published so far (`/metrics`); empty: nothing yet.
    fn snapshots(&self) -> Vec<Snapshot>;
    /// The status object (`/api/v1/status`); `None`: nothing yet.
    fn status(&self) -> Option<serde_json::Value>;
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

/// The status page: no external resource, it polls `/api/v1/status` every 500 ms.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// A running listener; the thread ends with the process.
#[derive(Debug)]
pub struct HttpServer {
    /// The address bound (the port chosen when 0 was asked).
    pub addr: SocketAddr,
}

/// What a request gets: (status code, content type, body).
fn answer(
    method: &tiny_http::Method,
    url: &str,
    shared: &dyn Publisher,
) -> (u16, &'static str, String) {
    let path = url.split('?').next().unwrap_or("");
    let known = matches!(path, "/" | "/metrics" | "/api/v1/status");
    if !known {
        return (404, "text/plain", format!("no such path: {path}\n"));
    }
    if *method != tiny_http::Method::Get && *method != tiny_http::Method::Head {
        return (405, "text/plain", format!("{method} {path}: only GET\n"));
    }
    if path == "/" {
        return (200, "text/html; charset=utf-8", STATUS_PAGE.to_string());
    }
    let starting = || (503, "text/plain", "starting: no snapshot yet\n".to_string());
    match path {
        "/metrics" => {
            let snaps = shared.snapshots();
            if snaps.is_empty() {
                return starting();
            }
            (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                render(&snaps),
            )
        }
        _ => match shared.status() {
            Some(s) => (200, "application/json", format!("{s}\n")),
            None => starting(),
        },
    }
}

impl HttpServer {
    /// Binds `addr` and serves `shared` from a thread named `tandem-http`.
    pub fn start(addr: SocketAddr, shared: impl Publisher) -> anyhow::Result<HttpServer> {
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
                let (code, ctype, body) = answer(req.method(), req.url(), &shared);
                let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
                if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", ctype) {
                    resp = resp.with_header(h);
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
        assert_eq!(answer(&get, "/nope", &shared).0, 404);
        assert_eq!(answer(&tiny_http::Method::Post, "/metrics", &shared).0, 405);
        assert_eq!(answer(&get, "/metrics", &shared).0, 503);
        let (code, ctype, page) = answer(&get, "/", &shared);
        assert_eq!((code, ctype), (200, "text/html; charset=utf-8"));
        assert!(
            page.contains("/api/v1/status") && !page.contains("://"),
            "self-contained"
        );
    }
}
