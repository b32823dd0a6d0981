//! Per-connection activity, for keep-alive idle and request-head timeouts.
//!
//! The connection's IO wrapper notes when bytes arrive while no request is
//! in flight (a head has started); the pipeline notes when a request
//! starts and ends. The connection task checks the clock once a second.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Since when a write to the client has been waiting (a client not reading).
    write_stalled_since: AtomicU64,
    close: AtomicBool,
}

/// What the connection task should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    KeepGoing,
    /// Idle too long or asked to close: finish gracefully.
    Shutdown,
    /// A request head took too long: drop the connection.
    Abort,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            write_stalled_since: AtomicU64::new(NONE),
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

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn write_progress(&self, stalled: bool) {
        let since = self.write_stalled_since.load(Ordering::Relaxed);
        if stalled && since == NONE {
            self.write_stalled_since
                .store(self.now(), Ordering::Relaxed);
        } else if !stalled && since != NONE {
            self.write_stalled_since.store(NONE, Ordering::Relaxed);
        }
    }

    /// Decides on the connection's fate. `head_timeout` is `None` for HTTP/2.
    pub fn check(
        &self,
        keepalive: Duration,
        head_timeout: Option<Duration>,
        send_idle: Duration,
    ) -> Verdict {
        let now = self.now();
        let stalled = self.write_stalled_since.load(Ordering::Relaxed);
        if stalled != NONE && now.saturating_sub(stalled) > send_idle.as_millis() as u64 {
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
        self.activity.write_progress(r.is_pending());
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
        self.activity.write_progress(r.is_pending());
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
        a.write_progress(true);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            a.check(Duration::from_secs(20), None, SEND),
            Verdict::KeepGoing
        );
        a.write_progress(false);
        a.write_progress(true);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(a.check(Duration::from_secs(20), None, SEND), Verdict::Abort);
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
