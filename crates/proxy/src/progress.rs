//! "Quiet for this long" on a stream that something keeps touching: the
//! one idle mechanism for uploads (the response timeout counts from their
//! last progress) and WebSocket tunnels (closed after a silence).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Progress {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last touch.
    last: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Progress {
    /// Something moved.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `quiet` (counted from creation
    /// if nothing ever did).
    pub async fn quiet_for(&self, quiet: Duration) {
        loop {
            let last = self.last.load(Ordering::Relaxed);
            tokio::time::sleep_until(self.epoch + Duration::from_millis(last) + quiet).await;
            if self.last.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn touches_push_the_deadline_back() {
        let p = std::sync::Arc::new(Progress::default());
        let started = Instant::now();
        let toucher = {
            let p = p.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    p.touch();
                }
            })
        };
        p.quiet_for(Duration::from_secs(1)).await;
        // last touch at 2.5 s, then one quiet second
        assert_eq!(started.elapsed().as_millis() / 100, 35);
        toucher.await.expect("toucher");
    }
}
