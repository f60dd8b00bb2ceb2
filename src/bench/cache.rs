//! Cold-cache runs: the page cache is emptied of a phase's input files before it runs, so
//! that it reads them from storage as a first run on a large archive would.
//!
//! `posix_fadvise(POSIX_FADV_DONTNEED)` drops a file's clean cached pages; dirty pages are
//! written first (`fdatasync`), since DONTNEED leaves them in place. Only files are touched,
//! never removed or changed.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Every regular file under `roots` (files themselves, or folders walked recursively).
/// Symbolic links to files are followed (the phases read through them); links to folders
/// are not, so that a cycle cannot loop.
pub fn files_under(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(link) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_file() {
            out.push(p);
        } else if meta.is_dir() && !link.is_symlink() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    out.sort();
    out
}

/// Drops `path`'s pages from the page cache (writing dirty ones first).
pub fn drop_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    // Files opened read-only can still be synced on Linux; errors (e.g. on read-only
    // mounts) only mean there was nothing to write.
    let _ = file.sync_data();
    // SAFETY: the descriptor is open for the duration of the call.
    let r = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Drops every file under `roots` from the page cache; returns how many bytes they hold.
pub fn drop_all(roots: &[PathBuf]) -> std::io::Result<u64> {
    let mut bytes = 0;
    for f in files_under(roots) {
        bytes += std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        drop_file(&f)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", f.display())))?;
    }
    Ok(bytes)
}

/// Bytes of `path` resident in the page cache (`mincore` over a read-only mapping).
pub fn resident_bytes(path: &Path) -> std::io::Result<u64> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len() as usize;
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: a shared read-only mapping of an open file, unmapped before returning; the
    // vector has one byte per page (of a checked, positive page size) as mincore requires.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if page <= 0 {
            libc::munmap(addr, len);
            return Err(std::io::Error::other("no page size (sysconf)"));
        }
        let page = page as usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        let r = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn dropped_files_leave_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 4 << 20]).unwrap();
        let mut buf = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        assert!(resident_bytes(&path).unwrap() > 0, "just read: cached");
        assert_eq!(drop_all(&[dir.path().to_path_buf()]).unwrap(), 4 << 20);
        assert_eq!(resident_bytes(&path).unwrap(), 0, "dropped");
    }
}
