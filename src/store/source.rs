//! Where blobs are fetched from: an S3 bucket (SWH's public one, or any S3-compatible
//! server) or a local folder of gzip files named by sha1.
//!
//! Every body is read with a size cap known before reading ([`super::verify::body_cap`]):
//! a local file must be a regular file (not a FIFO, a device or a link to one) of at most the
//! cap, and an S3 body is read chunk by chunk and abandoned past it. So no source can make
//! the fetch block forever or hold more than the cap of memory per request.

use std::path::PathBuf;

use crate::config::FetchOptions;
use crate::model::Sha1;

use super::StoreError;

/// Outcome of one request.
#[derive(Debug)]
pub enum Got {
    /// The body, at most the cap.
    Body(Vec<u8>),
    /// The source has no such blob.
    Missing,
    /// The source answered with something that is not a blob of this size (a FIFO, a device,
    /// a body over the cap): retrying cannot help.
    Refused(String),
    /// A failure worth retrying (5xx, reset, timeout).
    Retry(String),
    /// The server asks to slow down (503 SlowDown, 429): worth retrying, with fewer
    /// requests in flight.
    Throttled(String),
}

/// A source of gzip blobs.
#[derive(Clone)]
pub enum Source {
    /// A local folder of `<sha1>` files.
    Local(PathBuf),
    /// An S3 bucket.
    S3 {
        /// The client.
        client: aws_sdk_s3::Client,
        /// Bucket name.
        bucket: String,
        /// Key prefix (without trailing slash).
        prefix: String,
    },
}

impl Source {
    /// The source configured by `opts`.
    pub async fn from_options(opts: &FetchOptions) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::Config {
            store: opts.store.clone(),
            reason,
        };
        if let Some(dir) = opts.store.strip_prefix("file://") {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(bad("not a folder".into()));
            }
            return Ok(Source::Local(dir));
        }
        let rest = opts
            .store
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected file:// or s3://".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let region = aws_sdk_s3::config::Region::new(opts.region.clone());
        let mut b = if opts.signed {
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(region)
                .load()
                .await;
            aws_sdk_s3::config::Builder::from(&shared)
        } else {
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(region)
        };
        // Retries and timeouts are ours, so that every failure is classified and counted.
        b = b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        // Every body is proven by its own hashes (sha1 and git id): the SDK's checksums and
        // stall detection would only add work per request; our timeouts bound each attempt.
        b = b
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .stalled_stream_protection(
                aws_sdk_s3::config::StalledStreamProtectionConfig::disabled(),
            );
        if let Some(ep) = &opts.endpoint {
            b = b.endpoint_url(ep).force_path_style(true);
        }
        Ok(Source::S3 {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: bucket.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    /// Gets the body of `sha1`, refusing one larger than `cap` bytes.
    pub async fn get(&self, sha1: &Sha1, cap: u64) -> Got {
        let key = sha1.to_hex();
        match self {
            Source::Local(dir) => {
                let path = dir.join(&key);
                match tokio::task::spawn_blocking(move || read_local(&path, cap)).await {
                    Ok(got) => got,
                    Err(e) => Got::Retry(format!("reader task: {e}")),
                }
            }
            Source::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}/{key}")
                };
                get_s3(client, bucket, &key, cap).await
            }
        }
    }
}

/// Reads a local blob file: a regular file of at most `cap` bytes, or a refusal. Opened
/// non-blocking, so that a FIFO cannot block the open, and checked on the open descriptor,
/// so that what is read is what was checked.
fn read_local(path: &std::path::Path, cap: u64) -> Got {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Got::Missing,
        Err(e) => return Got::Retry(format!("{}: {e}", path.display())),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Got::Retry(format!("{}: {e}", path.display())),
    };
    if !meta.file_type().is_file() {
        return Got::Refused(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > cap {
        return Got::Refused(format!(
            "{} has {} bytes, more than the {cap} a gzip of this blob can have",
            path.display(),
            meta.len()
        ));
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    match file.take(cap + 1).read_to_end(&mut body) {
        Ok(_) if body.len() as u64 > cap => {
            Got::Refused(format!("{} grew past the cap", path.display()))
        }
        Ok(_) => Got::Body(body),
        Err(e) => Got::Retry(format!("{}: {e}", path.display())),
    }
}

async fn get_s3(client: &aws_sdk_s3::Client, bucket: &str, key: &str, cap: u64) -> Got {
    use aws_sdk_s3::error::SdkError;
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            if out.content_length().is_some_and(|n| n as u64 > cap) {
                return Got::Refused(format!(
                    "{key}: {} bytes announced, more than the cap {cap}",
                    out.content_length().unwrap_or_default()
                ));
            }
            let mut body = out.body;
            let mut data = Vec::new();
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if (data.len() + chunk.len()) as u64 > cap {
                            return Got::Refused(format!("{key}: body longer than the cap {cap}"));
                        }
                        data.extend_from_slice(&chunk);
                    }
                    Some(Err(e)) => return Got::Retry(format!("body: {e}")),
                    None => return Got::Body(data),
                }
            }
        }
        Err(SdkError::ServiceError(e)) => {
            let status = e.raw().status().as_u16();
            if e.err().is_no_such_key() || status == 404 {
                Got::Missing
            } else if status == 503 || status == 429 || e.err().meta().code() == Some("SlowDown") {
                Got::Throttled(format!("HTTP {status}: {}", e.err()))
            } else {
                Got::Retry(format!("HTTP {status}: {}", e.err()))
            }
        }
        Err(e) => Got::Retry(format!("{e:?}").chars().take(200).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_reads_refuse_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("small"), b"12345").unwrap();
        assert!(matches!(read_local(&d.join("small"), 5), Got::Body(b) if b == b"12345"));
        assert!(matches!(read_local(&d.join("small"), 4), Got::Refused(_)));
        assert!(matches!(read_local(&d.join("absent"), 5), Got::Missing));
        std::os::unix::fs::symlink("/dev/zero", d.join("zero")).unwrap();
        assert!(matches!(read_local(&d.join("zero"), 5), Got::Refused(_)));
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_local(&fifo, 5), Got::Refused(_)));
        std::fs::create_dir(d.join("dir")).unwrap();
        assert!(matches!(read_local(&d.join("dir"), 5), Got::Refused(_)));
    }
}
