//! The WebSocket tunnel: bytes both ways until either side closes, the
//! tunnel is idle for too long (no frame either way), or the server drains.
//!
//! Frames pass unchanged: deskgate does not reframe, so large and
//! fragmented messages arrive exactly as sent.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Runs a tunnel to its end. `stop` resolves when the server gives up draining.
pub async fn run(
    client: Upgraded,
    upstream: Upgraded,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> (u64, u64) {
    let start = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let (cr, cw) = tokio::io::split(TokioIo::new(client));
    let (ur, uw) = tokio::io::split(TokioIo::new(upstream));
    let up = copy_half(cr, uw, activity.clone(), start);
    let down = copy_half(ur, cw, activity.clone(), start);
    let both = async { tokio::join!(up, down) };
    tokio::pin!(both);
    tokio::pin!(stop);
    loop {
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        let deadline = start + last + idle;
        tokio::select! {
            (a, b) = &mut both => return (a, b),
            _ = tokio::time::sleep_until(deadline) => {
                let now_last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if now_last == last {
                    tracing::debug!("tunnel idle for {idle:?}: closing");
                    return (0, 0);
                }
            }
            _ = &mut stop => return (0, 0),
        }
    }
}

async fn copy_half<R, W>(mut r: R, mut w: W, activity: Arc<AtomicU64>, start: Instant) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
            break;
        }
        total += n as u64;
        activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
    total
}
