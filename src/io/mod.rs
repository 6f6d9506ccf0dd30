//! The file edge: the only code outside `net` (and the CLI) that touches the file system.
//!
//! The core (`index`, `stream`, `probe`) reads assets through traits ([`std::io::Read`] for
//! the streaming index build and the identity hash, [`crate::stream::reader::ReadAt`] for
//! positioned reads) and encodes/decodes the saved index as bytes; this module opens the
//! files, stats them, draws the progress bar and stores the index beside the asset (or in
//! the cache directory). See `docs/architecture.md`.

pub mod asset;
pub mod index_file;
pub mod playlist;
mod progress;

pub use index_file::{load_or_build, load_or_build_with, LoadOptions, Loaded, Origin};
