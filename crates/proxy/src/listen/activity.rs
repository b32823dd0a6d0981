//! Per-connection activity, for the keep-alive idle, request-head and
//! send-idle timeouts.
//!
//! The connection's IO wrapper notes when bytes arrive while no request is
//! in flight (a head has started) and when bytes go out; the pipeline notes
//! when a request starts and ends, and each response body notes when it
//! waits for the client to take its next chunk. The connection task checks
//! the clock once a second.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

const NONE: u64 = u64::MAX;

#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_since: AtomicU64,
    /// Response bodies waiting for the client to take their next chunk.
    bodies: Mutex<Vec<Weak<AtomicU64>>>,
    /// When bytes last went out to the client.
    last_write: AtomicU64,
    close: AtomicBool,
}

/// What the connection task should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    KeepGoing,
    /// Idle too long or asked to close: finish gracefully.
    Shutdown,
    /// A request head took too long, or the client stopped reading: drop the connection.
    Abort,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            bodies: Mutex::new(Vec::new()),
            last_write: AtomicU64::new(0),
            close: AtomicBool::new(false),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request started; the returned token ends it when dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn want_close(&self) {
        self.close.store(true, Ordering::Relaxed);
    }

    fn bytes_written(&self) {
        self.last_write.store(self.now(), Ordering::Relaxed);
    }

    /// Whether a request head has started arriving and is not complete yet.
    pub fn head_pending(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) != NONE
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A watch for one response body: it notes when the body has handed a
    /// chunk over and waits for the client (HTTP/1.1 socket or HTTP/2
    /// window) to take the next one.
    pub fn watch_body(self: &Arc<Self>) -> PullWatch {
        let since = Arc::new(AtomicU64::new(NONE));
        if let Ok(mut b) = self.bodies.lock() {
            b.retain(|w| w.strong_count() > 0);
            b.push(Arc::downgrade(&since));
        }
        PullWatch {
            activity: self.clone(),
            since,
        }
    }

    /// The longest time any live body has waited for the client, in ms.
    fn longest_body_wait(&self, now: u64) -> u64 {
        let Ok(b) = self.bodies.lock() else { return 0 };
        b.iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|s| *s != NONE)
            .map(|s| now.saturating_sub(s))
            .max()
            .unwrap_or(0)
    }

    /// Decides on the connection's fate. `head_timeout` is `None` for HTTP/2.
    pub fn check(
        &self,
        keepalive: Duration,
        head_timeout: Option<Duration>,
        send_idle: Duration,
    ) -> Verdict {
        let now = self.now();
        let send_idle_ms = send_idle.as_millis() as u64;
        let quiet = now.saturating_sub(self.last_write.load(Ordering::Relaxed));
        if quiet > send_idle_ms && self.longest_body_wait(now) > send_idle_ms {
            // a body is waiting and nothing at all went out for send_idle: the
            // client does not take what we send (slow read, zero window)
            return Verdict::Abort;
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::KeepGoing;
        }
        if let Some(limit) = head_timeout {
            let since = self.head_since.load(Ordering::Relaxed);
            if since != NONE && now.saturating_sub(since) > limit.as_millis() as u64 {
                return Verdict::Abort;
            }
            if since != NONE {
                return Verdict::KeepGoing;
            }
        }
        if self.close.load(Ordering::Relaxed) {
            return Verdict::Shutdown;
        }
        let idle = now.saturating_sub(self.idle_since.load(Ordering::Relaxed));
        if idle > keepalive.as_millis() as u64 {
            return Verdict::Shutdown;
        }
        Verdict::KeepGoing
    }
}

/// See `Activity::watch_body`.
pub struct PullWatch {
    activity: Arc<Activity>,
    since: Arc<AtomicU64>,
}

impl PullWatch {
    /// The body handed a chunk over: from now on we wait for the client.
    pub fn handed_over(&self) {
        self.since.store(self.activity.now(), Ordering::Relaxed);
    }
    /// The client asked for more (or the body ended).
    pub fn pulled(&self) {
        self.since.store(NONE, Ordering::Relaxed);
    }
}

/// One request in flight.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// IO wrapper that reports reads to the activity tracker.
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_aborted_even_mid_request() {
        let a = Activity::new();
        let _t = a.request_started();
        let ka = Duration::from_secs(20);
        let w = a.watch_body();
        w.handed_over();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(a.check(ka, None, SEND), Verdict::KeepGoing);
        w.pulled();
        w.handed_over();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(a.check(ka, None, SEND), Verdict::Abort);
        drop(w);
        assert_eq!(a.check(ka, None, SEND), Verdict::KeepGoing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_kept() {
        let a = Activity::new();
        let _t = a.request_started();
        let w = a.watch_body();
        w.handed_over();
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            a.bytes_written();
            assert_eq!(
                a.check(Duration::from_secs(20), None, SEND),
                Verdict::KeepGoing
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_shut_down_after_keepalive() {
        let a = Activity::new();
        let ka = Duration::from_secs(20);
        assert_eq!(
            a.check(ka, Some(Duration::from_secs(10)), SEND),
            Verdict::KeepGoing
        );
        tokio::time::advance(Duration::from_secs(21)).await;
        assert_eq!(
            a.check(ka, Some(Duration::from_secs(10)), SEND),
            Verdict::Shutdown
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_heads_are_aborted_and_requests_hold_the_connection() {
        let a = Activity::new();
        let ka = Duration::from_secs(20);
        let head = Some(Duration::from_secs(10));
        a.bytes_read();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(a.check(ka, head, SEND), Verdict::Abort);
        let t = a.request_started();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(a.check(ka, head, SEND), Verdict::KeepGoing);
        drop(t);
        assert_eq!(a.check(ka, head, SEND), Verdict::KeepGoing);
    }
}
