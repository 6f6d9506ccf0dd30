//! The namespace lab for the `link` fault (and the two-computer test): `tools/netns-lab.sh`
//! builds three hosts (primary, secondary, viewer) with a live network and a sync network;
//! [`Lab`] tears it down when dropped, also when a run fails. The fault takes the primary's
//! port on the live bridge down with SIOCSIFFLAGS (netdevice(7)) from this process, so its
//! instant is known to the microsecond; the sync link stays up.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};

use crate::net::clock::real_ns;

/// Finds `tools/netns-lab.sh`: in the current directory, else in the source tree the
/// binary was built from.
pub fn lab_script() -> Option<PathBuf> {
    [
        PathBuf::from("tools/netns-lab.sh"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/netns-lab.sh"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// A lab that exists until dropped.
pub struct Lab {
    script: PathBuf,
    /// Lab id (1-3 lowercase letters/digits).
    pub id: String,
}

/// A host of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The primary.
    Pri,
    /// The secondary.
    Sec,
    /// The viewer.
    View,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Pri => "pri",
            Host::Sec => "sec",
            Host::View => "view",
        }
    }
}

impl Lab {
    /// Builds the lab (root only).
    pub fn up(id: &str) -> anyhow::Result<Lab> {
        let script = lab_script().ok_or_else(|| anyhow!("tools/netns-lab.sh not found"))?;
        let lab = Lab {
            script,
            id: id.to_string(),
        };
        let out = Command::new("bash")
            .arg(&lab.script)
            .args(["up", id])
            .output()
            .with_context(|| format!("running {}", lab.script.display()))?;
        if !out.status.success() {
            bail!(
                "netns-lab.sh up {id} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(lab)
    }

    /// The namespace of a host (`tl<ID>-pri`).
    pub fn netns(&self, h: Host) -> String {
        format!("tl{}-{}", self.id, h.name())
    }

    /// A host's address on the live or sync network.
    pub fn addr(&self, h: Host, net: &str) -> anyhow::Result<Ipv4Addr> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(["addr", &self.id, h.name(), net])
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| anyhow!("netns-lab.sh addr {} {net}: {e}", h.name()))
    }

    /// The bridge port (root namespace) of a host's live interface.
    pub fn live_port(&self, h: Host) -> String {
        format!("tl{}{}-lb", self.id, h.name())
    }

    /// The bridge port (root namespace) of a host's sync interface (primary and secondary
    /// only).
    pub fn sync_port(&self, h: Host) -> String {
        format!("tl{}{}-sb", self.id, h.name())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .args(["down", &self.id])
            .output();
    }
}

/// Sets interface `name` (this namespace) up or down with SIOCGIFFLAGS/SIOCSIFFLAGS;
/// returns the realtime instant just before the change (unix ns).
pub fn set_link(name: &str, up: bool) -> anyhow::Result<u64> {
    let cname = CString::new(name).map_err(|_| anyhow!("interface name {name:?}"))?;
    let bytes = cname.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        bail!(
            "interface name {name} longer than {} bytes",
            libc::IFNAMSIZ - 1
        );
    }
    // SAFETY: plain socket(2) call; the descriptor is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!(
            "socket for SIOCSIFFLAGS: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: ifreq is plain data (a name array and a union of plain fields); all-zero bytes
    // are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `fd` is an open socket and `ifr` a valid, NUL-terminated ifreq that outlives
    // the calls; SIOCGIFFLAGS writes only `ifru_flags`, SIOCSIFFLAGS reads the name and the
    // flags (netdevice(7)). Reading the `ifru_flags` field of the union is sound because the
    // kernel just wrote it (and any c_short bit pattern is valid).
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            let flags = ifr.ifr_ifru.ifru_flags;
            let up_flag = libc::IFF_UP as libc::c_short;
            ifr.ifr_ifru.ifru_flags = if up {
                flags | up_flag
            } else {
                flags & !up_flag
            };
            let t = real_ns();
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(t)
            }
        }
    };
    // SAFETY: `fd` was opened above and is not used after this.
    unsafe { libc::close(fd) };
    result.with_context(|| format!("setting {name} {}", if up { "up" } else { "down" }))
}
