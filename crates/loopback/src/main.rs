//! `unearth-loopback`: serves a folder of blobs as `s3://BUCKET/PREFIX` from a real S3 server
//! (s3s-fs) on loopback, behind a proxy that adds latency and injects faults, and prints the
//! endpoint (`http://127.0.0.1:PORT`) on its first line of output. Runs until killed.
//!
//! ```sh
//! unearth-loopback --store demo-archive/objects/content --latency-ms 150
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use unearth_loopback::{FaultCounts, FaultPlan, S3Server};

#[derive(Parser)]
#[command(about = "A loopback S3 server behind a latency and fault proxy, for unearth's fetch")]
struct Args {
    /// Folder of `<sha1>` gzip blobs to serve.
    #[arg(long)]
    store: PathBuf,
    /// Bucket and key prefix it is served as.
    #[arg(long, default_value = "softwareheritage/content")]
    key_prefix: String,
    /// Milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered 503 SlowDown.
    #[arg(long, default_value_t = 0.0)]
    slowdown: f64,
    /// Share of connections reset.
    #[arg(long, default_value_t = 0.0)]
    reset: f64,
    /// Requests per second served at most; beyond, 503 SlowDown (0: no cap).
    #[arg(long, default_value_t = 0.0)]
    max_rate: f64,
    /// Every this many milliseconds, a burst of 503 SlowDown to every request (0: none).
    #[arg(long, default_value_t = 0)]
    burst_every_ms: u64,
    /// Length of a burst, milliseconds.
    #[arg(long, default_value_t = 0)]
    burst_ms: u64,
    /// Seed of the fault sequence.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let data = std::env::temp_dir().join(format!("unearth-loopback-{}", std::process::id()));
    let (bucket, prefix) = args
        .key_prefix
        .split_once('/')
        .unwrap_or((args.key_prefix.as_str(), ""));
    let holder = if prefix.is_empty() {
        data.clone()
    } else {
        data.join(bucket)
    };
    std::fs::create_dir_all(&holder).map_err(|e| e.to_string())?;
    let store =
        std::fs::canonicalize(&args.store).map_err(|e| format!("{}: {e}", args.store.display()))?;
    let link = if prefix.is_empty() {
        data.join(bucket)
    } else {
        holder.join(prefix)
    };
    std::os::unix::fs::symlink(&store, &link).map_err(|e| e.to_string())?;
    let server = S3Server::start(&data)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("http://{addr}");
    let plan = FaultPlan {
        seed: args.seed,
        latency_ms: args.latency_ms,
        slowdown: args.slowdown,
        reset: args.reset,
        truncate: 0.0,
        corrupt: 0.0,
        max_rate: args.max_rate,
        burst_every_ms: args.burst_every_ms,
        burst_ms: args.burst_ms,
    };
    // Until SIGTERM or SIGINT; returning drops the server, which stops s3s-fs with us.
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = unearth_loopback::serve(listener, server.addr, plan, Arc::new(FaultCounts::default())) => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), String>(())
    })?;
    drop(server);
    std::fs::remove_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    Ok(())
}
