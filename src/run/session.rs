//! Who ran which tasks of a run: a run continued with `--resume` is learned by several
//! processes, possibly by different builds on different machines. Each process that learns
//! a task adds one [`Session`] to the run's record; the results list them, so every number
//! can be traced to the build and the process that made it.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// One process's share of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// When its first task began: UTC, RFC 3339 to the second.
    pub started: String,
    /// hypertape's version (Cargo.toml).
    pub version: String,
    /// The build: the first 16 hex digits of the SHA-256 of the running executable's bytes
    /// (`"unknown"` if it could not be read). Two sessions of one build give the same bits.
    pub build: String,
    /// Threads of the process's pool (results do not depend on it).
    pub threads: usize,
    /// Tasks the run had completed when it began: it learned tasks `first_task..` on.
    pub first_task: usize,
    /// Per task it learned, in order: seconds training and evaluating it.
    pub task_seconds: Vec<f64>,
    /// The process's peak resident memory (MB, 10⁶ bytes) after its last task, where the
    /// system reports it (Linux); `None` elsewhere. The whole process's: the cells `compare`
    /// runs in one process share it.
    pub peak_mb: Option<f64>,
}

impl Session {
    /// A session of this process whose first task, `first_task`, began at `began`.
    pub fn begin(first_task: usize, began: std::time::SystemTime) -> Self {
        Self {
            started: humantime::format_rfc3339_seconds(began).to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            build: build_id().to_string(),
            threads: rayon::current_num_threads(),
            first_task,
            task_seconds: Vec::new(),
            peak_mb: None,
        }
    }

    /// Records one more task learned in `seconds`, and the peak memory so far.
    pub fn add_task(&mut self, seconds: f64) {
        self.task_seconds.push(seconds);
        self.peak_mb = peak_resident_mb();
    }

    /// Tasks it learned.
    pub fn tasks(&self) -> std::ops::Range<usize> {
        self.first_task..self.first_task.saturating_add(self.task_seconds.len())
    }
}

/// The first 16 hex digits of the SHA-256 of this executable, computed once per process.
pub fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| crate::fsio::sha256_file(&exe).ok())
            .map(|hex| hex[..16].to_string())
            .unwrap_or_else(|| "unknown".to_string())
    })
}

/// The peak resident memory of this process in MB (Linux: `VmHWM` of `/proc/self/status`).
pub fn peak_resident_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_counts_its_tasks_from_where_it_began() {
        let mut s = Session::begin(3, std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(s.tasks(), 3..3);
        s.add_task(1.5);
        s.add_task(2.0);
        assert_eq!(s.tasks(), 3..5);
        assert_eq!(s.task_seconds, vec![1.5, 2.0]);
        assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(s.started, "1970-01-01T00:00:00Z");
        assert_eq!(s.build.len(), 16);
        assert!(
            s.build.chars().all(|c| c.is_ascii_hexdigit()),
            "{}",
            s.build
        );
        if cfg!(target_os = "linux") {
            assert!(s.peak_mb.is_some_and(|mb| mb > 0.0));
        }
    }
}
