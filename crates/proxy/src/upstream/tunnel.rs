//! The WebSocket tunnel: bytes both ways until either side closes, the
//! tunnel is idle for too long (no frame either way), or the server stops.
//!
//! Frames pass unchanged: deskgate does not reframe, so large and
//! fragmented messages arrive exactly as sent. It only watches where the
//! frames towards the client begin, so that at shutdown it can end the
//! session with a proper close frame (1001, going away) instead of a cut.

use crate::progress::Progress;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Close frame, status 1001 "going away", unmasked (server to client).
const GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];

/// The buffer each direction of a tunnel keeps while idle.
const SMALL: usize = 512;
/// The buffer it borrows while a burst fills the small one.
const BIG: usize = 16 * 1024;

/// Runs a tunnel to its end. `stop` resolves when the server stops.
pub async fn run(
    client: Upgraded,
    upstream: Upgraded,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let activity = Progress::default();
    let going_away = Notify::new();
    let (cr, cw) = tokio::io::split(TokioIo::new(client));
    let (ur, uw) = tokio::io::split(TokioIo::new(upstream));
    let up = copy(cr, uw, &activity, None);
    let down = copy(ur, cw, &activity, Some(&going_away));
    let both = async { tokio::join!(up, down) };
    tokio::pin!(both);
    tokio::select! {
        _ = &mut both => {}
        _ = activity.quiet_for(idle) => tracing::debug!("tunnel idle for {idle:?}: closing"),
        _ = stop => {
            going_away.notify_one();
            // give the client a moment to answer the close frame
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut both).await;
        }
    }
}

/// Copies one direction until EOF or error. Towards the client
/// (`going_away` set) it follows frame boundaries, so that when told to it
/// can end with a close frame between two frames, never inside one.
async fn copy<R, W>(mut r: R, mut w: W, activity: &Progress, going_away: Option<&Notify>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // An idle tunnel holds only the small buffer (the desktop's sockets
    // are idle between pings); a read that fills it borrows a large one
    // for the rest of the burst.
    let mut small = [0u8; SMALL];
    let mut big: Option<Vec<u8>> = None;
    let mut frames = FrameTracker::default();
    loop {
        let buf: &mut [u8] = match big.as_mut() {
            Some(b) => b,
            None => &mut small,
        };
        let n = tokio::select! {
            r = r.read(buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = async {
                match going_away {
                    Some(g) => g.notified().await,
                    None => std::future::pending().await,
                }
            } => {
                if frames.at_boundary() {
                    let _ = w.write_all(&GOING_AWAY).await;
                }
                break;
            }
        };
        if going_away.is_some() {
            frames.feed(&buf[..n]);
        }
        if w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
            break;
        }
        let full = n == buf.len();
        activity.touch();
        if full && big.is_none() {
            big = Some(vec![0u8; BIG]);
        } else if !full {
            big = None;
        }
    }
    let _ = w.shutdown().await;
}

/// Follows WebSocket frame boundaries in a byte stream (RFC 6455 5.2).
#[derive(Default, Debug)]
struct FrameTracker {
    header: Vec<u8>,
    remaining: u64,
}

impl FrameTracker {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header.push(data[0]);
            data = &data[1..];
            if let Some(len) = payload_len(&self.header) {
                self.remaining = len;
                self.header.clear();
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.header.is_empty()
    }
}

/// The payload length once `h` holds a whole frame header.
fn payload_len(h: &[u8]) -> Option<u64> {
    let b1 = *h.get(1)?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (ext, len) = match b1 & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    if h.len() < 2 + ext + mask {
        return None;
    }
    Some(match len {
        Some(n) => n,
        None => h[2..2 + ext]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match len {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn boundaries_are_followed_across_any_split() {
        let mut stream = Vec::new();
        for (len, masked) in [
            (0, false),
            (5, true),
            (125, false),
            (126, false),
            (70_000, true),
            (1, false),
        ] {
            stream.extend(frame(len, masked));
        }
        for piece in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut t = FrameTracker::default();
            for chunk in stream.chunks(piece) {
                t.feed(chunk);
            }
            assert!(t.at_boundary(), "split by {piece}");
        }
        let mut t = FrameTracker::default();
        t.feed(&stream[..stream.len() - 1]);
        assert!(!t.at_boundary());
        let mut t = FrameTracker::default();
        t.feed(&frame(300, false)[..3]);
        assert!(!t.at_boundary(), "inside an extended header");
    }
}
