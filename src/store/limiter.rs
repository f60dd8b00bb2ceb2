//! Adaptive concurrency of the fetch: additive increase, multiplicative decrease (AIMD), as
//! TCP does for its window.
//!
//! S3 serves some thousands of GET per second per key prefix and answers `503 SlowDown`
//! beyond; the latency of one request (~100-200 ms from outside AWS) fixes how many must be in
//! flight to reach that rate. So the limit starts low, doubles every round trip while the
//! latency holds (slow start), and after the first throttling grows by a fixed step per
//! round trip; each throttling halves it, at most once per round trip, never below the
//! minimum. A request slot is a semaphore permit; lowering the limit forgets permits as
//! they come back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limit never goes below this.
pub const MIN_LIMIT: usize = 4;

/// How the limit moved over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// The limit at the end.
    pub limit: usize,
    /// The highest limit reached.
    pub peak: usize,
    /// Times the limit was halved.
    pub cuts: u64,
    /// The lowest limit after the first halving (the limit at the end when never halved):
    /// how far throttling pushed it down, against which `limit` shows the recovery.
    pub low: usize,
}

struct State {
    limit: usize,
    /// Permits to forget as they come back (the limit was lowered below those in use).
    debt: usize,
    /// Successes since the limit last grew (congestion avoidance).
    acked: usize,
    slow_start: bool,
    /// The lowest latency seen: the round trip without queueing.
    base: Option<Duration>,
    last_cut: Option<Instant>,
    /// The highest limit reached.
    peak: usize,
    /// Times the limit was halved.
    cuts: u64,
    /// The lowest limit after the first halving.
    low: Option<usize>,
}

/// The request limiter of one fetch.
pub struct Limiter {
    slots: Arc<Semaphore>,
    state: Mutex<State>,
    max: usize,
    /// Increase per round trip after slow start.
    step: usize,
    adaptive: bool,
}

/// One request slot, returned (or forgotten, when the limit went down) when dropped.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limiter: Arc<Limiter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.limiter.lock();
        if st.debt > 0 {
            st.debt -= 1;
            if let Some(p) = self.permit.take() {
                p.forget();
            }
        }
    }
}

impl Limiter {
    /// A limiter starting at `initial` requests in flight, at most `max`; not `adaptive`,
    /// it stays at `max`.
    pub fn new(initial: usize, max: usize, adaptive: bool) -> Arc<Self> {
        let max = max.max(1);
        let start = if adaptive {
            initial.clamp(MIN_LIMIT.min(max), max)
        } else {
            max
        };
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(start)),
            state: Mutex::new(State {
                limit: start,
                debt: 0,
                acked: 0,
                slow_start: true,
                base: None,
                last_cut: None,
                peak: start,
                cuts: 0,
                low: None,
            }),
            max,
            step: (max / 64).max(1),
            adaptive,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent numbers: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a request slot.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = self.slots.clone().acquire_owned().await.ok();
        Slot {
            permit,
            limiter: self.clone(),
        }
    }

    /// Raises the limit by `by` (paying the debt first).
    fn grow(&self, st: &mut State, by: usize) {
        let by = by.min(self.max - st.limit);
        if by == 0 {
            return;
        }
        st.limit += by;
        st.peak = st.peak.max(st.limit);
        let pay = by.min(st.debt);
        st.debt -= pay;
        self.slots.add_permits(by - pay);
    }

    /// A request answered (whatever the answer, short of throttling) after `latency`.
    pub fn success(&self, latency: Duration) {
        if !self.adaptive {
            return;
        }
        let mut st = self.lock();
        let base = *st.base.get_or_insert(latency);
        st.base = Some(base.min(latency));
        // The latency holds while requests do not queue: within twice the round trip (and
        // 20 ms, so that a fast local server's jitter does not stop the growth).
        if latency > base * 2 + Duration::from_millis(20) {
            return;
        }
        if st.slow_start {
            self.grow(&mut st, 1);
        } else {
            st.acked += 1;
            if st.acked >= st.limit {
                st.acked = 0;
                self.grow(&mut st, self.step);
            }
        }
    }

    /// The server asked to slow down (503 SlowDown, 429): halve the limit, once per round
    /// trip.
    pub fn throttled(&self) {
        if !self.adaptive {
            return;
        }
        let mut st = self.lock();
        let rtt = st.base.unwrap_or(Duration::from_millis(100));
        if st.last_cut.is_some_and(|t| t.elapsed() < rtt) {
            return;
        }
        let new = (st.limit / 2).max(MIN_LIMIT.min(self.max));
        st.debt += st.limit - new;
        st.limit = new;
        st.slow_start = false;
        st.acked = 0;
        st.last_cut = Some(Instant::now());
        st.cuts += 1;
        st.low = Some(st.low.map_or(new, |l| l.min(new)));
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// How the limit moved.
    pub fn stats(&self) -> LimiterStats {
        let st = self.lock();
        LimiterStats {
            limit: st.limit,
            peak: st.peak,
            cuts: st.cuts,
            low: st.low.unwrap_or(st.limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_use(l: &Limiter) -> usize {
        l.limit() - l.slots.available_permits()
    }

    #[tokio::test]
    async fn grows_while_latency_holds_halves_on_throttling_and_recovers() {
        let l = Limiter::new(8, 1024, true);
        let ms = Duration::from_millis;
        // Slow start: one more slot per answer.
        for _ in 0..8 {
            l.success(ms(100));
        }
        assert_eq!(l.limit(), 16);
        // Latency far above the round trip: no growth.
        l.success(ms(500));
        assert_eq!(l.limit(), 16);
        // Slots in use when the limit is cut are forgotten as they come back.
        let held: Vec<Slot> = futures_lite_join(&l, 16).await;
        assert_eq!(in_use(&l), 16);
        l.throttled();
        assert_eq!(l.limit(), 8);
        l.throttled(); // within a round trip: once
        assert_eq!(l.limit(), 8);
        drop(held);
        assert_eq!(l.slots.available_permits(), 8);
        // Congestion avoidance: one step (1024 / 64) per window of `limit` answers.
        for _ in 0..8 {
            l.success(ms(100));
        }
        assert_eq!(l.limit(), 24);
        let s = l.stats();
        assert_eq!((s.peak, s.cuts), (24, 1));
        // Never below the minimum, never above the maximum.
        for _ in 0..4 {
            std::thread::sleep(ms(101));
            l.throttled();
        }
        assert_eq!(l.limit(), MIN_LIMIT);
        let fixed = Limiter::new(8, 300, false);
        fixed.throttled();
        fixed.success(ms(1));
        assert_eq!(fixed.limit(), 300);
    }

    async fn futures_lite_join(l: &Arc<Limiter>, n: usize) -> Vec<Slot> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(l.acquire().await);
        }
        v
    }
}
