//! unearth's fetch harness: a real S3 server on loopback ([`S3Server`], the `s3s-fs` binary
//! serving a folder) and a fault-injecting HTTP proxy in front of it ([`faults`]). Tests use
//! it as a library; benchmarks start the `unearth-loopback` binary. None of it is part of
//! unearth itself.

#![warn(missing_docs)]

pub mod faults;

pub use faults::{serve, FaultCounts, FaultPlan};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `s3s-fs` binary: `$HOME/.cargo/bin/s3s-fs` or the one on `PATH`.
pub fn s3s_fs_binary() -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    [
        PathBuf::from(format!("{home}/.cargo/bin/s3s-fs")),
        PathBuf::from("s3s-fs"),
    ]
    .into_iter()
    .find(|c| {
        Command::new(c)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

/// A free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running s3s-fs serving a folder whose subfolders are buckets; stopped when dropped.
pub struct S3Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl S3Server {
    /// Starts s3s-fs on a free loopback port, unsigned requests only, and waits until it
    /// listens.
    pub fn start(data: &Path) -> Result<Self, String> {
        let exe =
            s3s_fs_binary().ok_or("s3s-fs is not installed (scripts/setup.sh installs it)")?;
        let port = free_port().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start s3s-fs: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Self { child, addr };
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err(format!("s3s-fs did not listen on {addr} within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
