//! Runs one phase in its own process and measures it: wall and CPU time, peak resident and
//! peak anonymous memory, and bytes read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BenchError;

/// What one process used.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Wall time, seconds (process start and graph loading included).
    pub wall: f64,
    /// User CPU time, seconds.
    pub user: f64,
    /// System CPU time, seconds.
    pub system: f64,
    /// Peak resident memory, bytes (memory-mapped file pages included).
    pub max_rss: u64,
    /// Peak anonymous resident memory (heap and stacks: what the process allocates),
    /// sampled every 2 ms, bytes.
    pub max_anon: u64,
    /// Bytes the process made storage read (`read_bytes`: page-cache misses, mapped files
    /// included).
    pub storage_read: u64,
    /// Bytes passed by `read` system calls (`rchar`: cache hits included, mapped files not).
    pub syscall_read: u64,
}

fn io_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Runs `exe args...`, its stderr into `log`, and measures it.
pub fn run(exe: &Path, args: &[&str], log: &Path) -> Result<Usage, BenchError> {
    let log_file = std::fs::File::create(log).map_err(|e| BenchError::io(log, e))?;
    let start = Instant::now();
    let child = std::process::Command::new(exe)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| BenchError::io(exe, e))?;
    let pid = child.id() as libc::pid_t;
    let (io_path, status_path) = (format!("/proc/{pid}/io"), format!("/proc/{pid}/status"));
    let mut u = Usage::default();
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // Has it exited? (Not reaped yet, so that its final counters can still be read.)
        // SAFETY: an all-zero siginfo_t is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child; info is a valid out-pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled info (or left it zeroed, in which case si_pid is 0).
        let exited = r == 0 && unsafe { info.si_pid() } == pid;
        if let Ok(text) = std::fs::read_to_string(&io_path) {
            u.storage_read = io_field(&text, "read_bytes:").unwrap_or(u.storage_read);
            u.syscall_read = io_field(&text, "rchar:").unwrap_or(u.syscall_read);
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            let anon = text
                .lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            u.max_anon = u.max_anon.max(anon.unwrap_or(0) * 1024);
        }
        if exited {
            // SAFETY: pid is our exited child; status and usage are valid out-pointers.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if r != pid {
                let e = std::io::Error::last_os_error();
                stop(pid);
                return Err(BenchError::io(exe, e));
            }
            break;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            stop(pid);
            return Err(BenchError::io(exe, e));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    u.wall = start.elapsed().as_secs_f64();
    u.user = seconds(usage.ru_utime);
    u.system = seconds(usage.ru_stime);
    u.max_rss = usage.ru_maxrss as u64 * 1024;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(BenchError::Child {
            what: args.join(" "),
            status,
            log: log.to_path_buf(),
        });
    }
    Ok(u)
}

/// Kills and reaps `pid` (our child), so that an error leaves no process behind.
fn stop(pid: libc::pid_t) {
    // SAFETY: pid is our child, not reaped yet; a null status pointer is allowed.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// The log file of `what` in `dir`.
pub fn log_path(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!("{what}.log"))
}
