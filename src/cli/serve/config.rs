//! The `tandem serve` configuration file (TOML): one `[host]` table and one `[[channel]]`
//! table per channel. Every key is documented in `docs/serve.md`; unknown keys and bad values
//! are errors that name the file, the line and column, the channel and the key.
//!
//! Parsing ([`parse`]) takes the file's text and its path (for the messages) and validates
//! everything a channel needs before anything starts: addresses, groups used once, names
//! unique, one source (an asset, or none: the channel waits for an asset request).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::net::failover::SwitchMode;
use crate::net::url::Dest;

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column of the offending value (0 when unknown).
    pub line: usize,
    /// See `line`.
    pub col: usize,
    /// What is wrong, naming the channel and the key.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The host's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// This host's name (channels name their preferred primary by it).
    pub name: String,
    /// Default interface of the live and muted groups.
    pub iface: Ipv4Addr,
    /// The sync link ("the second network"): where this host listens ...
    pub sync_listen: SocketAddrV4,
    /// ... and the peer host.
    pub sync_peer: SocketAddrV4,
    /// The control port (status, requests).
    pub control_listen: SocketAddrV4,
    /// The shared secret of the sync and control messages.
    pub key_file: Option<PathBuf>,
    /// The HTTP listener (metrics, API, status page), when set.
    pub http_listen: Option<SocketAddr>,
    /// Allow an `http_listen` address other than loopback.
    pub http_allow_remote: bool,
    /// Where every channel's events go (JSON lines), when set.
    pub event_log: Option<crate::net::failover::event_log::EventDest>,
    /// The bearer token of the HTTP API's writes (`token_file`), when set.
    pub token: Option<String>,
}

/// How often a channel's source repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// Played once.
    Once,
    /// Played this many times.
    Times(u64),
    /// Endless.
    Forever,
    /// A playlist without a `loop` key in the channel: as its own `loop` key says.
    AsListed,
}

/// One channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    /// The channel's name (unique).
    pub name: String,
    /// The asset (or playlist: key `playlist`) it plays; `None`: it waits for an asset
    /// request.
    pub asset: Option<PathBuf>,
    /// The live group.
    pub live: Dest,
    /// The muted group.
    pub muted: Dest,
    /// The host that is this channel's preferred primary.
    pub primary: String,
    /// Looping.
    pub looping: Loop,
    /// Interface of its groups.
    pub iface: Ipv4Addr,
    /// Heartbeat period (us); `None`: from the asset's frame rate.
    pub heartbeat_us: Option<u64>,
    /// Heartbeats missed before the primary is declared failed.
    pub miss: u32,
    /// Where the secondary starts on the live group.
    pub switch_at: SwitchMode,
    /// Hand the channel back to its preferred primary once it has been synchronised for
    /// `failback_after_s` (off: a channel stays where a failover put it).
    pub failback: bool,
    /// See `failback`.
    pub failback_after_s: f64,
    /// Faults to inject into this channel alone (lab use; `KIND@SECONDS` after its start).
    pub inject: Vec<crate::net::faults::Injection>,
}

impl ChannelConfig {
    /// The channel's session id text, the same on both hosts and across restarts: its RTP
    /// SSRC, sequence and timestamp bases and the sync messages' session derive from it.
    pub fn session_text(&self) -> String {
        channel_session_text(&self.name)
    }

    /// Whether `host` is this channel's preferred primary.
    pub fn primary_on(&self, host: &str) -> bool {
        self.primary == host
    }
}

/// The session id text of the channel named `name` (also what `--channel NAME` of the
/// control clients sends).
pub fn channel_session_text(name: &str) -> String {
    format!("tandem.channel/1:{name}")
}

/// A whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The host.
    pub host: HostConfig,
    /// The channels, in file order.
    pub channels: Vec<ChannelConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    host: Spanned<RawHost>,
    #[serde(default, rename = "channel")]
    channels: Vec<Spanned<RawChannel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    iface: Option<Spanned<String>>,
    sync_listen: Spanned<String>,
    sync_peer: Spanned<String>,
    control_listen: Spanned<String>,
    key_file: Option<Spanned<String>>,
    http_listen: Option<Spanned<String>>,
    http_allow_remote: Option<bool>,
    event_log: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLoop {
    Flag(bool),
    Times(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: Spanned<String>,
    asset: Option<Spanned<String>>,
    playlist: Option<Spanned<String>>,
    live: Spanned<String>,
    muted: Spanned<String>,
    primary: Spanned<String>,
    #[serde(rename = "loop")]
    looping: Option<Spanned<RawLoop>>,
    iface: Option<Spanned<String>>,
    heartbeat_us: Option<Spanned<i64>>,
    miss: Option<Spanned<i64>>,
    switch_at: Option<Spanned<String>>,
    failback: Option<Spanned<bool>>,
    failback_after_s: Option<Spanned<f64>>,
    inject: Option<Vec<Spanned<String>>>,
}

/// Byte offset -> 1-based (line, column).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, message: String) -> Result<T, ConfigError> {
        let (line, col) = line_col(self.text, span.start);
        Err(ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            message,
        })
    }

    fn addr(&self, what: &str, v: &Spanned<String>) -> Result<SocketAddrV4, ConfigError> {
        v.get_ref().parse::<SocketAddrV4>().or_else(|_| {
            self.err(
                v.span(),
                format!(
                    "{what}: '{}' is not an IPv4 ADDR:PORT (e.g. 127.0.0.1:7401)",
                    v.get_ref()
                ),
            )
        })
    }

    fn ip(&self, what: &str, v: &Spanned<String>) -> Result<Ipv4Addr, ConfigError> {
        let ip = v.get_ref().parse::<Ipv4Addr>().or_else(|_| {
            self.err(
                v.span(),
                format!("{what}: '{}' is not an IPv4 address", v.get_ref()),
            )
        })?;
        if ip.is_unspecified() {
            return self.err(
                v.span(),
                format!("{what}: 0.0.0.0 would leave the interface to the routing table; name the interface's address"),
            );
        }
        Ok(ip)
    }

    fn name(&self, what: &str, v: &Spanned<String>) -> Result<String, ConfigError> {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            return self.err(
                v.span(),
                format!("{what}: '{s}' must be 1-64 letters, digits, '-', '_' or '.'"),
            );
        }
        Ok(s.clone())
    }
}

/// Parses and validates a configuration file's text (`file` names it in errors).
pub fn parse(text: &str, file: &Path) -> Result<ServeConfig, ConfigError> {
    let cx = Ctx { file, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        ConfigError {
            file: file.to_path_buf(),
            line,
            col,
            message: e.message().to_string(),
        }
    })?;
    let h = raw.host.get_ref();
    let host = HostConfig {
        name: cx.name("[host] name", &h.name)?,
        iface: match &h.iface {
            Some(v) => cx.ip("[host] iface", v)?,
            None => Ipv4Addr::LOCALHOST,
        },
        sync_listen: cx.addr("[host] sync_listen", &h.sync_listen)?,
        sync_peer: cx.addr("[host] sync_peer", &h.sync_peer)?,
        control_listen: cx.addr("[host] control_listen", &h.control_listen)?,
        key_file: h.key_file.as_ref().map(|k| PathBuf::from(k.get_ref())),
        http_listen: match &h.http_listen {
            Some(v) => Some(v.get_ref().parse::<SocketAddr>().or_else(|_| {
                cx.err(
                    v.span(),
                    format!("[host] http_listen: '{}' is not ADDR:PORT", v.get_ref()),
                )
            })?),
            None => None,
        },
        http_allow_remote: h.http_allow_remote.unwrap_or(false),
        event_log: match &h.event_log {
            Some(v) => Some(
                v.get_ref()
                    .parse()
                    .or_else(|e| cx.err(v.span(), format!("[host] event_log: {e}")))?,
            ),
            None => None,
        },
        token: match &h.token_file {
            Some(v) => Some(
                crate::net::http::read_token(Path::new(v.get_ref()))
                    .or_else(|e| cx.err(v.span(), format!("[host] token_file: {e}")))?,
            ),
            None => None,
        },
    };
    if let (Some(a), Some(v)) = (host.http_listen, &h.http_listen) {
        if let Err(e) = crate::net::http::check_addr(a, host.http_allow_remote) {
            return cx.err(
                v.span(),
                format!(
                    "[host] http_listen: {}",
                    e.replace("--http-allow-remote", "http_allow_remote = true")
                ),
            );
        }
    }
    if host.sync_listen == host.sync_peer {
        return cx.err(
            h.sync_peer.span(),
            "[host] sync_peer: the same address as sync_listen (the peer is the other host)".into(),
        );
    }
    if raw.channels.is_empty() {
        return cx.err(
            raw.host.span(),
            "no [[channel]] table: a host serves at least one channel".into(),
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut groups: HashMap<SocketAddrV4, (String, &'static str)> = HashMap::new();
    let mut channels = Vec::new();
    for sc in &raw.channels {
        let c = sc.get_ref();
        let name = cx.name("[[channel]] name", &c.name)?;
        let (line, _) = line_col(text, c.name.span().start);
        if let Some(first) = names.insert(name.clone(), line) {
            return cx.err(
                c.name.span(),
                format!("channel '{name}': the name is used twice (first on line {first})"),
            );
        }
        let key = |k: &str| format!("channel '{name}', key '{k}'");
        if let (Some(_), Some(p)) = (&c.asset, &c.playlist) {
            return cx.err(
                p.span(),
                format!(
                    "{}: a channel plays an asset or a playlist, not both",
                    key("playlist")
                ),
            );
        }
        let dest = |k: &'static str, v: &Spanned<String>| -> Result<Dest, ConfigError> {
            v.get_ref()
                .parse::<Dest>()
                .or_else(|e| cx.err(v.span(), format!("{}: {e}", key(k))))
        };
        let live = dest("live", &c.live)?;
        let muted = dest("muted", &c.muted)?;
        if live.framing != muted.framing {
            return cx.err(
                c.muted.span(),
                format!(
                    "{}: {} but the live group is {} (the muted stream is the live one, byte for byte)",
                    key("muted"),
                    muted.framing.scheme(),
                    live.framing.scheme()
                ),
            );
        }
        for (k, d, v) in [("live", live, &c.live), ("muted", muted, &c.muted)] {
            if !d.addr.ip().is_multicast() {
                return cx.err(
                    v.span(),
                    format!("{}: {} is not a multicast group", key(k), d.addr),
                );
            }
            if let Some((other, ok)) = groups.insert(d.addr, (name.clone(), k)) {
                return cx.err(
                    v.span(),
                    format!(
                        "{}: {} is already the {ok} group of channel '{other}'",
                        key(k),
                        d.addr
                    ),
                );
            }
        }
        let looping = match c.looping.as_ref().map(|l| (l.get_ref(), l.span())) {
            None if c.playlist.is_some() => Loop::AsListed,
            None | Some((RawLoop::Flag(false), _)) => Loop::Once,
            Some((RawLoop::Flag(true), _)) => Loop::Forever,
            Some((RawLoop::Times(n), _)) if *n >= 1 => Loop::Times(*n as u64),
            Some((RawLoop::Times(n), span)) => {
                return cx.err(
                    span,
                    format!("{}: {n}: give true, false or a count >= 1", key("loop")),
                )
            }
        };
        let heartbeat_us = match &c.heartbeat_us {
            Some(v) if (200..=100_000).contains(v.get_ref()) => Some(*v.get_ref() as u64),
            Some(v) => {
                return cx.err(
                    v.span(),
                    format!(
                        "{}: {} us is outside 200-100000",
                        key("heartbeat_us"),
                        v.get_ref()
                    ),
                )
            }
            None => None,
        };
        let miss = match &c.miss {
            Some(v) if (1..=100).contains(v.get_ref()) => *v.get_ref() as u32,
            Some(v) => {
                return cx.err(
                    v.span(),
                    format!("{}: {} is outside 1-100", key("miss"), v.get_ref()),
                )
            }
            None => 3,
        };
        let switch_at = match c
            .switch_at
            .as_ref()
            .map(|v| (v.get_ref().as_str(), v.span()))
        {
            None | Some(("seamless", _)) => SwitchMode::Seamless,
            Some(("pcr", _)) => SwitchMode::Pcr,
            Some(("frame", _)) => SwitchMode::Frame,
            Some((other, span)) => {
                return cx.err(
                    span,
                    format!(
                        "{}: '{other}': give seamless, pcr or frame",
                        key("switch_at")
                    ),
                )
            }
        };
        let failback_after_s = match &c.failback_after_s {
            Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 1.0 => *v.get_ref(),
            Some(v) => {
                return cx.err(
                    v.span(),
                    format!(
                        "{}: {} s: give at least 1",
                        key("failback_after_s"),
                        v.get_ref()
                    ),
                )
            }
            None => 30.0,
        };
        let mut inject = Vec::new();
        for v in c.inject.iter().flatten() {
            match v.get_ref().parse() {
                Ok(i) => inject.push(i),
                Err(e) => return cx.err(v.span(), format!("{}: {e}", key("inject"))),
            }
        }
        channels.push(ChannelConfig {
            inject,
            primary: cx.name(&key("primary"), &c.primary)?,
            asset: c
                .asset
                .as_ref()
                .or(c.playlist.as_ref())
                .map(|a| PathBuf::from(a.get_ref())),
            live,
            muted,
            looping,
            iface: match &c.iface {
                Some(v) => cx.ip(&key("iface"), v)?,
                None => host.iface,
            },
            heartbeat_us,
            miss,
            switch_at,
            failback: c.failback.as_ref().is_some_and(|f| *f.get_ref()),
            failback_after_s,
            name,
        });
    }
    Ok(ServeConfig { host, channels })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[host]
name = "a"
iface = "127.0.0.1"
sync_listen = "127.0.0.1:7401"
sync_peer = "127.0.0.1:7402"
control_listen = "127.0.0.1:7411"
key_file = "tandem.key"

[[channel]]
name = "news"
asset = "news.ts"
live = "rtp://239.1.1.1:5004"
muted = "rtp://239.1.2.1:5004"
primary = "a"
loop = true

[[channel]]
name = "sport"
live = "udp://239.1.1.2:5004"
muted = "udp://239.1.2.2:5004"
primary = "b"
switch_at = "pcr"
miss = 4
"#;

    fn parse_str(t: &str) -> Result<ServeConfig, ConfigError> {
        parse(t, Path::new("serve.toml"))
    }

    #[test]
    fn the_documented_keys_parse_with_their_defaults() {
        let c = parse_str(GOOD).unwrap();
        assert_eq!(c.host.name, "a");
        assert_eq!(c.host.sync_peer, "127.0.0.1:7402".parse().unwrap());
        assert_eq!(c.host.key_file, Some(PathBuf::from("tandem.key")));
        assert_eq!(c.channels.len(), 2);
        let (news, sport) = (&c.channels[0], &c.channels[1]);
        assert_eq!(news.asset, Some(PathBuf::from("news.ts")));
        assert_eq!(news.looping, Loop::Forever);
        assert!(news.primary_on("a") && !sport.primary_on("a"));
        assert_eq!(sport.asset, None, "waits for an asset request");
        assert_eq!(sport.looping, Loop::Once);
        assert_eq!((sport.miss, sport.switch_at), (4, SwitchMode::Pcr));
        assert_eq!(news.miss, 3);
        assert_eq!(news.iface, Ipv4Addr::LOCALHOST);
        assert_eq!(news.session_text(), "tandem.channel/1:news");
        assert!(!news.failback);
    }

    /// `(change, expected line, text the message must contain)`.
    fn bad(change: (&str, &str), line: usize, needle: &str) {
        let t = GOOD.replacen(change.0, change.1, 1);
        assert_ne!(t, GOOD, "the change {change:?} applies");
        let e = parse_str(&t).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        let s = e.to_string();
        assert!(s.contains(needle), "{s}");
        assert!(s.starts_with("serve.toml:"), "{s}");
    }

    #[test]
    fn the_event_log_is_a_file_or_a_udp_destination() {
        let with = |v: &str| {
            GOOD.replacen(
                "key_file = \"tandem.key\"",
                &format!("key_file = \"tandem.key\"\nevent_log = \"{v}\""),
                1,
            )
        };
        let c = parse_str(&with("udp://127.0.0.1:5999")).unwrap();
        assert_eq!(
            c.host.event_log.map(|d| d.to_string()).as_deref(),
            Some("udp://127.0.0.1:5999")
        );
        assert_eq!(parse_str(GOOD).unwrap().host.event_log, None);
        let e = parse_str(&with("udp://nowhere")).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.to_string().contains("[host] event_log"), "{e}");
    }

    #[test]
    fn every_bad_value_names_the_file_line_channel_and_key() {
        bad(("loop = true", "looop = true"), 16, "unknown field `looop`");
        bad(
            ("name = \"sport\"", "name = \"news\""),
            19,
            "used twice (first on line 11)",
        );
        bad(
            ("udp://239.1.1.2:5004", "udp://239.1.1.1:5004"),
            20,
            "already the live group of channel 'news'",
        );
        bad(
            ("udp://239.1.2.2:5004", "rtp://239.1.2.9:5004"),
            21,
            "channel 'sport', key 'muted'",
        );
        bad(
            ("rtp://239.1.2.1:5004", "rtp://10.1.2.1:5004"),
            14,
            "not a multicast group",
        );
        bad(
            ("rtp://239.1.1.1:5004", "tcp://239.1.1.1:5004"),
            13,
            "key 'live'",
        );
        bad(("miss = 4", "miss = 0"), 24, "key 'miss'");
        bad(
            ("miss = 4", "inject = [\"reader-hang@1\", \"reader-nap@2\"]"),
            24,
            "key 'inject': 'reader-nap': unknown fault",
        );
        bad(
            ("switch_at = \"pcr\"", "switch_at = \"later\""),
            23,
            "seamless, pcr or frame",
        );
        bad(("loop = true", "loop = 0"), 16, "key 'loop'");
        bad(
            ("127.0.0.1:7402", "127.0.0.1:7401"),
            6,
            "the same address as sync_listen",
        );
        bad(
            ("iface = \"127.0.0.1\"", "iface = \"0.0.0.0\""),
            4,
            "0.0.0.0",
        );
        bad(
            (
                "control_listen = \"127.0.0.1:7411\"",
                "control_listen = \"x\"",
            ),
            7,
            "control_listen",
        );
        bad(
            (
                "asset = \"news.ts\"",
                "asset = \"news.ts\"\nplaylist = \"news.json\"",
            ),
            13,
            "not both",
        );
        bad(
            ("name = \"news\"", "name = \"news news\""),
            11,
            "letters, digits",
        );
        bad(("primary = \"b\"", "primary = 7"), 22, "invalid type");
    }

    /// `playlist` names what the channel plays like `asset`; without `loop` in the channel
    /// the playlist's own `"loop"` key decides.
    #[test]
    fn a_channel_plays_a_playlist() {
        let t = GOOD.replacen(
            "name = \"sport\"\n",
            "name = \"sport\"\nplaylist = \"sport.json\"\n",
            1,
        );
        let c = parse_str(&t).unwrap();
        let sport = &c.channels[1];
        assert_eq!(sport.asset, Some(PathBuf::from("sport.json")));
        assert_eq!(sport.looping, Loop::AsListed);
        let t = t.replacen("switch_at = \"pcr\"", "switch_at = \"pcr\"\nloop = 2", 1);
        assert_eq!(parse_str(&t).unwrap().channels[1].looping, Loop::Times(2));
    }

    #[test]
    fn the_example_in_the_docs_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/serve-example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = parse(&text, &path).unwrap();
        assert_eq!(c.channels.len(), 3);
        assert_eq!(c.channels[2].asset, None);
        assert_eq!(c.channels[1].primary, "b");
    }

    #[test]
    fn a_file_without_channels_or_host_is_refused() {
        let only_host = GOOD.split("[[channel]]").next().unwrap();
        let e = parse_str(only_host).unwrap_err();
        assert!(e.message.contains("no [[channel]]"), "{e}");
        let channels_only = format!("[[channel]]{}", GOOD.split("[[channel]]").nth(1).unwrap());
        let e = parse_str(&channels_only).unwrap_err();
        assert!(e.message.contains("missing field `host`"), "{e}");
        let e = parse_str("this is not toml").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }
}
