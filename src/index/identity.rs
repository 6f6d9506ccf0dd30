//! Asset identity: size + XXH3-128 of the whole content, streamed through [`Read`] (never a
//! whole-file load; `io::asset::hash_file` opens the file).

use super::AssetIdentity;
use std::io::Read;

/// Hashes everything `r` yields with XXH3-128, in 1 MiB reads. Errors carry the byte offset.
pub fn hash_reader<R: Read>(r: &mut R) -> Result<AssetIdentity, (u64, std::io::Error)> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; super::build::CHUNK];
    let mut size = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((size, e)),
        }
    }
    Ok(AssetIdentity {
        size,
        hash: h.digest128(),
    })
}

/// Identity of bytes in memory.
pub fn hash_bytes(data: &[u8]) -> AssetIdentity {
    AssetIdentity {
        size: data.len() as u64,
        hash: xxhash_rust::xxh3::xxh3_128(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_equals_one_shot() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut r = &data[..];
        assert_eq!(hash_reader(&mut r).unwrap(), hash_bytes(&data));
        assert_ne!(hash_bytes(&data[1..]).hash, hash_bytes(&data).hash);
    }
}
