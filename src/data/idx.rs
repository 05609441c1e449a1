//! Reader for the IDX format of the MNIST files (unsigned-byte arrays of rank 1 to 3),
//! plain or gzip-compressed.
//!
//! Layout: a 4-byte magic `0x00 0x00 0x08 rank` (0x08 = unsigned byte), `rank` big-endian
//! u32 dimensions, then the product of the dimensions in bytes, row-major, nothing after.

use std::io::Read;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};
use flate2::read::GzDecoder;

use crate::error::{Error, Result};

/// The IDX type byte for unsigned bytes, the only element type MNIST uses.
const UNSIGNED_BYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An unsigned-byte IDX array: its dimensions and its row-major data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses an unsigned-byte IDX array of rank 1 to 3 from `bytes`; `path` is only used in
/// error messages.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "expected a 4-byte IDX magic number, found a file of {} bytes",
                bytes.len()
            ),
        ));
    }
    let magic = BigEndian::read_u32(bytes);
    let (kind, rank) = (bytes[2], usize::from(bytes[3]));
    if bytes[..2] != [0, 0] {
        return Err(Error::format(
            path,
            format!("magic 0x0000080N (unsigned-byte IDX of rank N) expected, found 0x{magic:08x}"),
        ));
    }
    if kind != UNSIGNED_BYTE {
        return Err(Error::format(
            path,
            format!(
                "type byte 0x08 (unsigned byte) expected, found 0x{kind:02x} (magic 0x{magic:08x})"
            ),
        ));
    }
    if !(1..=3).contains(&rank) {
        return Err(Error::format(
            path,
            format!("rank 1 to 3 expected, found rank {rank} (magic 0x{magic:08x})"),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "expected a {header}-byte header for rank {rank}, found only {} bytes",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| BigEndian::read_u32(c) as usize)
        .collect();
    // A Vec can hold at most isize::MAX bytes; a larger product cannot be a valid file.
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "expected dimensions {dims:?} whose product fits in memory, found an overflow"
                ),
            )
        })?;
    let found = bytes.len() - header;
    if found != count {
        let what = if found < count {
            "the file is truncated".to_string()
        } else {
            format!("{} trailing bytes", found - count)
        };
        return Err(Error::format(
            path,
            format!(
                "expected {count} bytes of data after the {header}-byte header (dims {dims:?}), found {found}: {what}"
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads and parses the IDX file at `path`, decompressing it first if it is gzip.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&GZIP_MAGIC) {
        let mut bytes = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|e| Error::format(path, format!("corrupt gzip stream: {e}")))?;
        parse_idx(&bytes, path)
    } else {
        parse_idx(&raw, path)
    }
}
