//! Typed errors of the index layer: what stops a map from being built, and what is wrong
//! with a saved index file. Every message names the file and, where it applies, the byte
//! offset, so the CLI can print it on one line.

use std::path::{Path, PathBuf};

use crate::ts::packet::Pid;

/// Why an asset cannot be indexed (the file content, independent of where it came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Zero bytes.
    #[error("empty file (0 bytes)")]
    Empty,
    /// No run of sync bytes (0x47 every 188 bytes, ISO/IEC 13818-1 §2.4.3.3) was found.
    #[error(
        "not an MPEG-TS file: no run of sync bytes (0x47 every 188 bytes) in bytes 0..{scanned}"
    )]
    NotTs {
        /// Bytes searched before giving up.
        scanned: u64,
    },
    /// The file starts like TS but holds no complete 188-byte packet.
    #[error("no complete 188-byte TS packet in {size} bytes")]
    NoPackets {
        /// File size.
        size: u64,
    },
    /// Fewer than two PCRs on the PCR PID: there is no timeline to pace by
    /// (ISO/IEC 13818-1 §2.4.2.2).
    #[error("{}", no_pcr_message(*.pid, *.found, *.scanned))]
    NoPcr {
        /// The PCR PID (from the PMT, or the only PID carrying a PCR), if any.
        pid: Option<Pid>,
        /// PCRs found on it.
        found: usize,
        /// Bytes scanned (the whole file).
        scanned: u64,
    },
    /// Every step between PCRs is a discontinuity, so no rate can be derived.
    #[error("PCR PID {pid}: every PCR step is a discontinuity; no rate (last PCR at byte {byte_offset})")]
    NoPcrRate {
        /// The PCR PID.
        pid: Pid,
        /// Byte offset of the last PCR-bearing packet.
        byte_offset: u64,
    },
}

fn no_pcr_message(pid: Option<Pid>, found: usize, scanned: u64) -> String {
    match pid {
        Some(p) => format!(
            "no PCR timeline: {found} PCR(s) on PCR PID {p} in bytes 0..{scanned} (need at least 2)"
        ),
        None => format!("no PCR timeline: no PCR on any PID in bytes 0..{scanned}"),
    }
}

/// What `index::build_from` / `io::load_or_build` report: a file that cannot be read or
/// cannot be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Missing or unreadable file.
    #[error("{}: cannot read at byte {offset}: {error}", path.display())]
    Io {
        /// The asset.
        path: PathBuf,
        /// Where reading failed (0 for open errors).
        offset: u64,
        /// The OS error.
        error: std::io::Error,
    },
    /// The content cannot be indexed.
    #[error("{}: {error}", path.display())]
    Build {
        /// The asset.
        path: PathBuf,
        /// Why.
        error: BuildError,
    },
}

impl IndexError {
    pub(crate) fn io(path: &Path, offset: u64, error: std::io::Error) -> IndexError {
        IndexError::Io {
            path: path.to_path_buf(),
            offset,
            error,
        }
    }

    pub(crate) fn build(path: &Path, error: BuildError) -> IndexError {
        IndexError::Build {
            path: path.to_path_buf(),
            error,
        }
    }

    /// The content-level cause, when the file was readable.
    pub fn build_error(&self) -> Option<&BuildError> {
        match self {
            IndexError::Build { error, .. } => Some(error),
            IndexError::Io { .. } => None,
        }
    }
}

/// What is wrong with a saved index file (it is then rebuilt, never trusted).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing the index file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The index file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The index file is not one of ours, is from another format version, or is damaged.
    #[error("{}: corrupt index at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// Where the problem was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}
