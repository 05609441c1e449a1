//! Reader for the IDX format of the MNIST files (unsigned-byte arrays of rank 1 to 3),
//! plain or gzip-compressed (single- or multi-member, as `cat a.gz b.gz` makes).
//!
//! Layout: a 4-byte magic `0x00 0x00 0x08 rank` (0x08 = unsigned byte), `rank` big-endian
//! u32 dimensions, then the product of the dimensions in bytes, row-major, nothing after.
//!
//! Files are streamed: the header is read first, its dimensions are checked (by the caller
//! too, see [`read_idx_with`]) and bounded, and only then is the data read, never more than
//! the header announces plus one byte to detect trailing data. A gzip bomb or a header
//! claiming absurd dimensions is refused without allocating what it claims.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};
use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

/// The IDX type byte for unsigned bytes, the only element type MNIST uses.
const UNSIGNED_BYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most data bytes an IDX array may hold (1 GiB; the MNIST training images are 47 MB):
/// a header announcing more is refused before anything is allocated.
pub const MAX_IDX_DATA: usize = 1 << 30;

/// The most bytes deflate can expand one compressed byte to (zlib's documented limit):
/// a gzip file of `n` bytes cannot hold more than `n * MAX_DEFLATE_RATIO` bytes.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// An unsigned-byte IDX array: its dimensions and its row-major data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// What is known of the size of the byte stream being parsed.
#[derive(Clone, Copy)]
enum Size {
    /// Exactly this many bytes (a regular file or a slice).
    Exact(u64),
    /// Unknown (a pipe or another special file).
    Unknown,
    /// The decompressed stream of a gzip file of this many bytes, if known.
    Gzip(Option<u64>),
}

impl Size {
    /// What the stream is called in messages.
    fn noun(self) -> &'static str {
        match self {
            Size::Exact(_) | Size::Unknown => "file",
            Size::Gzip(_) => "decompressed stream",
        }
    }
}

/// Parses an unsigned-byte IDX array of rank 1 to 3 from `bytes`; `path` is only used in
/// error messages.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    parse_stream(bytes, path, Size::Exact(bytes.len() as u64), |_| Ok(()))
}

/// Reads and parses the IDX file at `path`, decompressing it first if it is gzip.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    read_idx_with(path, |_| Ok(()))
}

/// Reads and parses the IDX file at `path` (decompressing it if it is gzip), calling
/// `check` with the dimensions of its header before any data is read, so a caller that
/// expects a shape refuses another one without reading or allocating it.
pub fn read_idx_with(path: &Path, check: impl FnOnce(&[usize]) -> Result<()>) -> Result<IdxArray> {
    let io = |e| Error::io(path, e);
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let len = meta.is_file().then_some(meta.len());
    let mut reader = BufReader::with_capacity(1 << 16, file);
    // A read returns at least 2 bytes of any file that has them, but a pipe may not.
    if reader.fill_buf().map_err(io)?.starts_with(&GZIP_MAGIC) {
        let decoder = MultiGzDecoder::new(reader);
        parse_stream(decoder, path, Size::Gzip(len), check)
    } else {
        let size = len.map_or(Size::Unknown, Size::Exact);
        parse_stream(reader, path, size, check)
    }
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Parses an IDX array from `reader`, whose size is `size`: the header, then `check` on its
/// dimensions, then the size limits, then exactly the announced data.
fn parse_stream<R: Read>(
    mut reader: R,
    path: &Path,
    size: Size,
    check: impl FnOnce(&[usize]) -> Result<()>,
) -> Result<IdxArray> {
    let noun = size.noun();
    // A read error in a gzip file is its stream being corrupt (or cut short).
    let read_err = |e: std::io::Error| match size {
        Size::Gzip(_) => Error::format(path, format!("corrupt gzip stream: {e}")),
        Size::Exact(_) | Size::Unknown => Error::io(path, e),
    };
    let mut magic = [0u8; 4];
    let n = read_full(&mut reader, &mut magic).map_err(read_err)?;
    if n < 4 {
        return Err(Error::format(
            path,
            format!("expected a 4-byte IDX magic number, found a {noun} of {n} bytes"),
        ));
    }
    let magic_u32 = BigEndian::read_u32(&magic);
    let (kind, rank) = (magic[2], usize::from(magic[3]));
    if magic[..2] != [0, 0] {
        return Err(Error::format(
            path,
            format!(
                "magic 0x0000080N (unsigned-byte IDX of rank N) expected, found 0x{magic_u32:08x}"
            ),
        ));
    }
    if kind != UNSIGNED_BYTE {
        return Err(Error::format(
            path,
            format!(
                "type byte 0x08 (unsigned byte) expected, found 0x{kind:02x} (magic 0x{magic_u32:08x})"
            ),
        ));
    }
    if !(1..=3).contains(&rank) {
        return Err(Error::format(
            path,
            format!("rank 1 to 3 expected, found rank {rank} (magic 0x{magic_u32:08x})"),
        ));
    }
    let header = 4 + 4 * rank;
    let mut dim_bytes = [0u8; 12];
    let n = read_full(&mut reader, &mut dim_bytes[..4 * rank]).map_err(read_err)?;
    if n < 4 * rank {
        return Err(Error::format(
            path,
            format!(
                "expected a {header}-byte header for rank {rank}, found only {} bytes",
                4 + n
            ),
        ));
    }
    let dims: Vec<usize> = dim_bytes[..4 * rank]
        .chunks_exact(4)
        .map(|c| BigEndian::read_u32(c) as usize)
        .collect();
    // The caller's expectations first: a file of another kind is named as such.
    check(&dims)?;
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
    if count > MAX_IDX_DATA {
        return Err(Error::format(
            path,
            format!(
                "expected at most {MAX_IDX_DATA} bytes of data (the reader's limit), found a header announcing {count} (dims {dims:?})"
            ),
        ));
    }
    match size {
        Size::Exact(len) => {
            // The whole size is known: a wrong one is reported before reading the data.
            let found = len.saturating_sub(header as u64);
            if found != count as u64 {
                return Err(size_mismatch(path, header, &dims, count, found, true));
            }
        }
        Size::Unknown | Size::Gzip(None) => {}
        Size::Gzip(Some(compressed)) => {
            let most = compressed.saturating_mul(MAX_DEFLATE_RATIO);
            if count as u64 > most {
                return Err(Error::format(
                    path,
                    format!(
                        "expected at most {most} bytes of data, the most a {compressed}-byte gzip file can expand to, found a header announcing {count} (dims {dims:?}): the file is truncated or its header corrupt"
                    ),
                ));
            }
        }
    }
    // Read at most one byte more than announced: enough to tell that there is more.
    let mut data = Vec::with_capacity(count);
    reader
        .take(count as u64 + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() != count {
        let found = data.len() as u64;
        return Err(size_mismatch(path, header, &dims, count, found, false));
    }
    Ok(IdxArray { dims, data })
}

/// The error for `found` data bytes where the header announces `count`; past `count`,
/// `found` is the whole rest of the stream if `exact`, else only a lower bound.
fn size_mismatch(
    path: &Path,
    header: usize,
    dims: &[usize],
    count: usize,
    found: u64,
    exact: bool,
) -> Error {
    let count64 = count as u64;
    let what = if found < count64 {
        format!("{found}: the file is truncated")
    } else if exact {
        format!("{found}: {} trailing bytes", found - count64)
    } else {
        "more: trailing data after the announced bytes".to_string()
    };
    Error::format(
        path,
        format!(
            "expected {count} bytes of data after the {header}-byte header (dims {dims:?}), found {what}"
        ),
    )
}
