//! Who is connected for notifications: open XMPP sessions by user, so an
//! event reaches every session of its user on any node of the cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Frames queued per session before new ones are dropped (a session that
/// does not read its socket must not grow without bound).
const QUEUE: usize = 64;

/// One user's sessions. The entry stays after the last session leaves (only
/// signed-in users get one, so there are at most as many as users) to
/// remember the latest join.
#[derive(Default)]
struct UserSessions {
    latest_join: u64,
    open: Vec<(u64, mpsc::Sender<Arc<str>>)>,
}

type Sessions = HashMap<String, UserSessions>;

#[derive(Default, Clone)]
pub struct Hub {
    sessions: Arc<Mutex<Sessions>>,
    next: Arc<AtomicU64>,
}

/// A session's place in the hub; dropping it leaves the hub.
pub struct Registration {
    sessions: Arc<Mutex<Sessions>>,
    user: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(u) = lock(&self.sessions).get_mut(&self.user) {
            u.open.retain(|(id, _)| *id != self.id);
        }
    }
}

fn lock(m: &Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// Joins `user` (case-insensitive, as JIDs are).
    pub fn join(&self, user: &str) -> (Registration, mpsc::Receiver<Arc<str>>) {
        let user = user.to_ascii_lowercase();
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(QUEUE);
        {
            let mut s = lock(&self.sessions);
            let u = s.entry(user.clone()).or_default();
            u.latest_join = id;
            u.open.push((id, tx));
        }
        (
            Registration {
                sessions: self.sessions.clone(),
                user,
                id,
            },
            rx,
        )
    }

    /// Queues `frame` for every session of `user`; returns how many took it.
    pub fn send(&self, user: &str, frame: Arc<str>) -> usize {
        let s = lock(&self.sessions);
        let Some(u) = s.get(&user.to_ascii_lowercase()) else {
            return 0;
        };
        u.open
            .iter()
            .filter(|(_, tx)| tx.try_send(frame.clone()).is_ok())
            .count()
    }

    /// Open sessions of `user`.
    pub fn sessions_of(&self, user: &str) -> usize {
        lock(&self.sessions)
            .get(&user.to_ascii_lowercase())
            .map_or(0, |u| u.open.len())
    }

    /// The latest join of `user` (0 if never): a sign-out timer started when
    /// a session ended holds its value and is void if it has changed.
    pub fn latest_join(&self, user: &str) -> u64 {
        self.presence(user).1
    }

    /// Open sessions and the latest join of `user`, read together.
    pub fn presence(&self, user: &str) -> (usize, u64) {
        lock(&self.sessions)
            .get(&user.to_ascii_lowercase())
            .map_or((0, 0), |u| (u.open.len(), u.latest_join))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_every_session_of_the_user_until_it_leaves() {
        let hub = Hub::default();
        let (a, mut ra) = hub.join("1001");
        let (_b, mut rb) = hub.join("1001");
        let (_c, mut rc) = hub.join("1002");
        assert_eq!(hub.send("1001", "x".into()), 2);
        assert_eq!(&*ra.recv().await.expect("a"), "x");
        assert_eq!(&*rb.recv().await.expect("b"), "x");
        assert!(rc.try_recv().is_err());
        drop(a);
        assert_eq!(hub.sessions_of("1001"), 1);
        assert_eq!(hub.send("nobody", "x".into()), 0);
    }

    #[test]
    fn latest_join_changes_with_every_join() {
        let hub = Hub::default();
        assert_eq!(hub.latest_join("1001"), 0);
        let (a, _) = hub.join("1001");
        let first = hub.latest_join("1001");
        drop(a);
        assert_eq!(hub.latest_join("1001"), first);
        let _b = hub.join("1001");
        assert_ne!(hub.latest_join("1001"), first);
    }
}
