//! A fault-injecting HTTP proxy between unearth and a real S3 server.
//!
//! It sits between unearth and a real S3 server (s3s-fs) and, per request, from a seeded
//! random sequence: adds latency, answers `503 SlowDown`, resets the connection, truncates
//! the body, or flips one byte of it. S3's own throttling is modelled too: beyond a request
//! rate (S3 serves ~5,500 GET/s per prefix) and during periodic bursts (a prefix being
//! repartitioned), every request is answered `503 SlowDown`. Every request is forwarded on
//! its own upstream connection, which keeps the proxy a few dozen lines of plain HTTP/1.1.
//! Counters tell a test which faults really happened.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Rates of each fault, per request, and the latency added to every request.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Seed of the fault sequence.
    pub seed: u64,
    /// Latency added before answering, milliseconds.
    pub latency_ms: u64,
    /// Share of requests answered `503 SlowDown`.
    pub slowdown: f64,
    /// Share of connections reset without an answer.
    pub reset: f64,
    /// Share of bodies cut in half (the announced length kept).
    pub truncate: f64,
    /// Share of bodies with one byte flipped.
    pub corrupt: f64,
    /// Requests per second served at most (a token bucket holding one second of them);
    /// beyond, `503 SlowDown`. 0: no cap.
    pub max_rate: f64,
    /// Every `burst_every_ms`, for `burst_ms`, every request is answered `503 SlowDown`
    /// (the first burst starts one period after the proxy). 0: no bursts.
    pub burst_every_ms: u64,
    /// Length of a burst, milliseconds.
    pub burst_ms: u64,
}

impl FaultPlan {
    /// Latency only.
    pub fn latency(ms: u64) -> Self {
        Self {
            seed: 0,
            latency_ms: ms,
            slowdown: 0.0,
            reset: 0.0,
            truncate: 0.0,
            corrupt: 0.0,
            max_rate: 0.0,
            burst_every_ms: 0,
            burst_ms: 0,
        }
    }
}

/// S3-like throttling: a rate cap and periodic bursts, shared by every connection.
struct Throttle {
    start: Instant,
    /// (tokens, when last refilled) of the rate cap.
    bucket: Mutex<(f64, Instant)>,
}

impl Throttle {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            bucket: Mutex::new((0.0, now)),
        }
    }

    /// Whether a request arriving now must be throttled under `plan`.
    fn refuses(&self, plan: &FaultPlan) -> bool {
        if plan.burst_every_ms > 0 && plan.burst_ms > 0 {
            let ms = self.start.elapsed().as_millis() as u64;
            if ms >= plan.burst_every_ms && ms % plan.burst_every_ms < plan.burst_ms {
                return true;
            }
        }
        if plan.max_rate > 0.0 {
            let mut b = self.bucket.lock().expect("bucket");
            let now = Instant::now();
            let refill = now.duration_since(b.1).as_secs_f64() * plan.max_rate;
            *b = ((b.0 + refill).min(plan.max_rate), now);
            if b.0 < 1.0 {
                return true;
            }
            b.0 -= 1.0;
        }
        false
    }
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Requests received.
    pub requests: AtomicU64,
    /// Answered 503.
    pub slowdowns: AtomicU64,
    /// Connections reset.
    pub resets: AtomicU64,
    /// Bodies truncated.
    pub truncated: AtomicU64,
    /// Bodies corrupted.
    pub corrupted: AtomicU64,
}

impl FaultCounts {
    /// Snapshot as (requests, slowdowns, resets, truncated, corrupted).
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.requests.load(Ordering::Relaxed),
            self.slowdowns.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
            self.truncated.load(Ordering::Relaxed),
            self.corrupted.load(Ordering::Relaxed),
        ]
    }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    loop {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&byte[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head_len = end + 4;
            let text = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
            let body_len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_len + body_len {
                let n = stream.read(&mut byte).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&byte[..n]);
            }
            return Ok(buf);
        }
    }
}

/// `msg` with the `Connection` header of its head removed and, when `value` is given, set to
/// it (`close` for the upstream request; none in the response, whose client connection stays
/// open).
fn with_connection(msg: &[u8], value: Option<&str>) -> Vec<u8> {
    let Some(end) = msg.windows(4).position(|w| w == b"\r\n\r\n") else {
        return msg.to_vec();
    };
    let head = String::from_utf8_lossy(&msg[..end]);
    let mut out: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(str::to_string)
        .collect();
    out.extend(value.map(|v| format!("Connection: {v}")));
    let mut bytes = out.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(&msg[end + 4..]);
    bytes
}

/// Closes with a TCP reset: a zero linger time makes close send RST at once. (tokio deprecates
/// `set_linger` because a non-zero linger blocks on drop; zero does not.)
#[allow(deprecated)]
fn reset(client: TcpStream) {
    let _ = client.set_linger(Some(Duration::from_secs(0)));
    drop(client);
}

/// Serves the requests of one client connection, kept alive between requests as S3 does
/// (each request still goes to the upstream server on a connection of its own), until the
/// client closes it or a fault ends it.
async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    plan: FaultPlan,
    rng: Arc<Mutex<rand_chacha::ChaCha8Rng>>,
    throttle: Arc<Throttle>,
    counts: Arc<FaultCounts>,
) -> std::io::Result<()> {
    loop {
        let request = read_head(&mut client).await?;
        if request.is_empty() {
            return Ok(());
        }
        let faults = Faults {
            plan: &plan,
            rng: &rng,
            throttle: &throttle,
            counts: &counts,
        };
        if !answer(&mut client, &request, upstream, &faults).await? {
            reset(client);
            return Ok(());
        }
    }
}

/// What decides the faults, shared by every connection.
struct Faults<'a> {
    plan: &'a FaultPlan,
    rng: &'a Mutex<rand_chacha::ChaCha8Rng>,
    throttle: &'a Throttle,
    counts: &'a FaultCounts,
}

/// Answers one request; `false` when the connection must be reset (a fault).
async fn answer(
    client: &mut TcpStream,
    request: &[u8],
    upstream: SocketAddr,
    f: &Faults<'_>,
) -> std::io::Result<bool> {
    let (plan, counts) = (f.plan, f.counts);
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let roll: f64 = f.rng.lock().expect("rng").random();
    // Throttling is decided on arrival, as S3 counts requests when they reach it.
    let throttled = f.throttle.refuses(plan);
    if plan.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
    }
    let mut edge = plan.slowdown;
    if throttled || roll < edge {
        counts.slowdowns.fetch_add(1, Ordering::Relaxed);
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                    <Message>Please reduce your request rate.</Message></Error>";
        let resp = format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(resp.as_bytes()).await?;
        return Ok(true);
    }
    edge += plan.reset;
    if roll < edge {
        counts.resets.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&with_connection(request, Some("close")))
        .await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    let mut response = with_connection(&response, None);
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(response.len());
    let ok = response.starts_with(b"HTTP/1.1 200");
    edge += plan.truncate;
    if ok && roll < edge && response.len() > body_start + 1 {
        counts.truncated.fetch_add(1, Ordering::Relaxed);
        let cut = body_start + (response.len() - body_start) / 2;
        client.write_all(&response[..cut]).await?;
        return Ok(false);
    }
    edge += plan.corrupt;
    if ok && roll < edge && response.len() > body_start {
        counts.corrupted.fetch_add(1, Ordering::Relaxed);
        let at = body_start + (response.len() - body_start) / 2;
        response[at] ^= 0x5a;
    }
    client.write_all(&response).await?;
    Ok(true)
}

/// Serves the proxy on `listener`, forwarding to `upstream`, until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: FaultPlan,
    counts: Arc<FaultCounts>,
) {
    let rng = Arc::new(Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(
        plan.seed,
    )));
    let throttle = Arc::new(Throttle::new());
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (plan, rng, counts) = (plan.clone(), rng.clone(), counts.clone());
        let throttle = throttle.clone();
        tokio::spawn(async move {
            let _ = handle(client, upstream, plan, rng, throttle, counts).await;
        });
    }
}
