//! Streaming body wrappers: limits and idle timeouts on the way in, byte
//! counting and the log guard on the way out. Nothing is buffered whole.

use crate::listen::activity::PullWatch;
use crate::progress::Progress;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The one body type responses and upstream requests use.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A small fixed body.
pub fn full(text: impl Into<Bytes>) -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// What happened to a request body, for the forwarding stage: errors to
/// map, and the upload's progress (the response timeout counts from it,
/// so a slow upload is not a slow upstream).
#[derive(Debug, Default)]
pub struct BodyFlags {
    pub too_large: AtomicBool,
    pub timed_out: AtomicBool,
    /// The client's side of the body failed (bad chunked encoding, cut off).
    pub broken: AtomicBool,
    /// Touched by every chunk sent upstream, and by the end of the body.
    pub progress: Progress,
}

#[derive(Debug)]
struct BodyError(&'static str);
impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for BodyError {}

/// A body with a size cap and an idle timeout between frames: client
/// request bodies on the way up, and (with `idle_only`) upstream response
/// bodies on the way down.
pub struct LimitedBody<B> {
    inner: B,
    seen: u64,
    max: u64,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    flags: Arc<BodyFlags>,
}

impl<B> LimitedBody<B> {
    /// Only the idle timeout: for upstream response bodies.
    pub fn idle_only(inner: B, idle: Duration) -> Self {
        LimitedBody::new(inner, u64::MAX, idle, Arc::default())
    }

    pub fn new(inner: B, max: u64, idle: Duration, flags: Arc<BodyFlags>) -> Self {
        LimitedBody {
            inner,
            seen: 0,
            max,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            flags,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.seen += d.len() as u64;
                    if this.seen > this.max {
                        this.flags.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyError(
                            "request body too large",
                        )))));
                    }
                }
                let deadline = Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                this.flags.progress.touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.flags.broken.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.flags.progress.touch();
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.flags.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(Box::new(BodyError("body idle timeout")))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for LimitedBody<B> {
    fn drop(&mut self) {
        // the client dropped it once it wrote what it needed (for example
        // Content-Length bytes without END_STREAM yet): nothing more goes up
        self.flags.progress.touch();
    }
}

/// Called once when a response body ends, fails or is dropped.
pub trait OnFinish: Send + 'static {
    fn finish(self: Box<Self>, bytes: u64, completed: bool);
}

/// A response body that counts bytes, tells the connection when it waits
/// for the client, and reports once at the end.
pub struct CountedBody {
    inner: ProxyBody,
    bytes: u64,
    done: Option<Box<dyn OnFinish>>,
    watch: PullWatch,
}

impl CountedBody {
    pub fn new(inner: ProxyBody, done: Box<dyn OnFinish>, watch: PullWatch) -> Self {
        CountedBody {
            inner,
            bytes: 0,
            done: Some(done),
            watch,
        }
    }
    fn finish(&mut self, completed: bool) {
        self.watch.pulled();
        if let Some(d) = self.done.take() {
            d.finish(self.bytes, completed);
        }
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        this.watch.pulled();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes += d.len() as u64;
                }
                this.watch.handed_over();
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.finish(completed);
    }
}

/// What was already read of a body, then the rest of it: a cache fill that
/// found the answer too large to keep sends it on without losing a byte.
pub struct Prefixed {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Prefixed {
    pub fn boxed(prefix: Bytes, rest: ProxyBody) -> ProxyBody {
        use http_body_util::BodyExt;
        let prefix = (!prefix.is_empty()).then_some(prefix);
        Prefixed { prefix, rest }.boxed()
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let h = self.rest.size_hint();
        let p = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        // upper first: set_lower checks against the upper bound
        let mut out = SizeHint::new();
        if let Some(u) = h.upper() {
            out.set_upper(u + p);
        }
        out.set_lower(h.lower() + p);
        out
    }
}
