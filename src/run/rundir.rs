//! A run directory with one writer: [`RunDir::open`] takes an exclusive advisory lock on
//! `DIR/LOCK` (`flock`, through `fs4`) and holds it until the `RunDir` is dropped, so a second
//! process that opens the same directory is refused at once, with the holder named. The
//! operating system releases the lock when its process ends, however it ends, so the lock of a
//! killed run is taken over by the next one without any stale-lock guessing; the `LOCK` file
//! itself stays and only describes the last holder.
//!
//! Opening also removes what a killed writer can leave behind: temporary files of atomic
//! writes (`.NAME.tmpPID`) and checkpoint generations that `CURRENT` does not name.

use super::store;
use crate::{Error, Result};
use fs4::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file of a run directory.
pub const LOCK_FILE: &str = "LOCK";

/// A run directory this process writes, locked for as long as it lives.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    // Holds the lock; closing it releases the lock.
    _lock: File,
}

impl RunDir {
    /// Creates `path` if needed, takes its lock, and cleans what an interrupted writer left.
    /// `what` says who holds it (e.g. `hypertape run`), for the message a second process
    /// gets. Errors: `path` is not a directory or cannot be written (named), or another
    /// process holds the lock ([`Error::Locked`], naming its pid and command).
    pub fn open(path: &Path, what: &str) -> Result<Self> {
        if path.exists() && !path.is_dir() {
            return Err(Error::format(
                path,
                "not a directory (a run directory is a directory)",
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another process".to_string()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let me = format!(
            "{what} (pid {}, since unix time {since})\n",
            std::process::id()
        );
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.sync_all());
        written.map_err(|e| Error::io(&lock_path, e))?;
        store::clean(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: file,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
