//! `tandem probe ASSET [--json]`.

use std::path::PathBuf;

/// Arguments of `tandem probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The MPEG-TS asset.
    pub asset: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(_args: &ProbeArgs) -> anyhow::Result<i32> {
    Ok(0)
}
