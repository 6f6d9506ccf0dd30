//! The indexing progress bar (indicatif, on stderr): shown for large files when stderr is a
//! terminal.

use std::io::IsTerminal;

/// Files above this size get a progress bar (when stderr is a terminal).
pub const PROGRESS_MIN_BYTES: u64 = 50 * 1000 * 1000;

/// A bar for a scan of `len` bytes, or `None` when `wanted` is false, the file is small or
/// stderr is not a terminal.
pub(crate) fn bar(wanted: bool, len: u64) -> Option<indicatif::ProgressBar> {
    (wanted && len > PROGRESS_MIN_BYTES && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "indexing {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    })
}
