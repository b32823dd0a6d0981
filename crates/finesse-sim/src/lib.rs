//! A Cisco Finesse simulator, faithful enough to stand in for the real
//! upstream in deskgate's demo, tests and benchmarks (../shared/FINESSE-API.md):
//!
//! - `rest.rs`: the REST API (`User`, `Users`, `SystemInfo`, `UserAuthMode`)
//!   with Basic authentication, Finesse's XML errors and its lockout;
//! - `desktop.rs`: a small agent desktop page and its static files, and the
//!   desktop configuration;
//! - `xmpp/`: notifications over XMPP-over-WebSocket at `/ws/`;
//! - `names.rs`: proxy awareness (allowed proxies, the polled proxy map);
//! - `server.rs`: HTTPS (HTTP/1.1 and HTTP/2), optionally requiring a client
//!   certificate, and the dispatch to the above.
//!
//! A [`Cluster`] is the shared state of a Finesse pair (users, agent states,
//! who is connected); each [`Node`] is one server of it.
#![forbid(unsafe_code)]

pub mod desktop;
pub mod directory;
pub mod names;
pub mod resources;
pub mod rest;
pub mod server;
pub mod sso;
pub mod xml;
pub mod xmpp;

pub use directory::{AgentState, LockoutPolicy, Role, SignIn, User};
pub use names::HostPort;
pub use server::{Node, NodeConfig};

use directory::{Directory, StateError, StateRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use xmpp::hub::Hub;

/// How long a signed-in agent may be without any notification session
/// before Finesse signs it out (presence loss signs the agent out).
pub const DEFAULT_PRESENCE_GRACE: Duration = Duration::from_secs(60);

/// The password of every demo user.
pub const DEMO_PASSWORD: &str = "deskgate-demo";

/// The state a Finesse pair shares.
pub struct Cluster {
    directory: Mutex<Directory>,
    pub hub: Hub,
    pub xmpp_domain: String,
    pub deployment_type: String,
    pub started: SystemTime,
    outage: AtomicBool,
    presence_grace_ms: AtomicU64,
    counters: Mutex<HashMap<String, u64>>,
    seq: AtomicU64,
    sso: std::sync::OnceLock<Option<sso::Issuer>>,
    sso_mode: AtomicBool,
}

/// `iss` and `aud` of the simulator's SSO tokens.
pub const SSO_ISSUER: &str = "https://ids.cc.deskgate.test:8553/ids/v1";
pub const SSO_AUDIENCE: &str = "finesse";

impl Cluster {
    pub fn new(users: Vec<User>, xmpp_domain: &str, lockout: LockoutPolicy) -> Arc<Cluster> {
        Arc::new(Cluster {
            directory: Mutex::new(Directory::new(users, lockout)),
            hub: Hub::default(),
            xmpp_domain: xmpp_domain.to_string(),
            deployment_type: "UCCE".to_string(),
            started: SystemTime::now(),
            outage: AtomicBool::new(false),
            presence_grace_ms: AtomicU64::new(DEFAULT_PRESENCE_GRACE.as_millis() as u64),
            counters: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(1),
            sso: std::sync::OnceLock::new(),
            sso_mode: AtomicBool::new(false),
        })
    }

    /// Agents 1001..=1000+agents, supervisor 2001, administrator `admin`,
    /// all with [`DEMO_PASSWORD`].
    pub fn demo(agents: u32) -> Arc<Cluster> {
        Cluster::new(
            demo_users(agents, DEMO_PASSWORD),
            "cc.deskgate.test",
            LockoutPolicy::default(),
        )
    }

    fn dir(&self) -> MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the user directory (tests change passwords, remove users).
    pub fn with_directory<R>(&self, f: impl FnOnce(&mut Directory) -> R) -> R {
        f(&mut self.dir())
    }

    pub fn sign_in(&self, id: &str, password: &str) -> SignIn {
        self.dir().sign_in(id, password, Instant::now())
    }

    /// The simulated IdS that signs SSO tokens (its RSA key is made on first use).
    pub fn sso(&self) -> Option<&sso::Issuer> {
        self.sso
            .get_or_init(|| match sso::Issuer::new(SSO_ISSUER, SSO_AUDIENCE) {
                Ok(i) => Some(i),
                Err(e) => {
                    tracing::error!("SSO is unavailable: {e}");
                    None
                }
            })
            .as_ref()
    }

    /// Switches the cluster to SSO (`systemAuthMode` SSO): desktops sign in
    /// with a token from `/desktop/sso/token`.
    pub fn set_sso_mode(&self, on: bool) {
        self.sso_mode.store(on, Ordering::Relaxed);
        if on {
            let _ = self.sso();
        }
    }

    pub fn sso_mode(&self) -> bool {
        self.sso_mode.load(Ordering::Relaxed)
    }

    /// `SSO` or `NON_SSO`.
    pub fn auth_mode(&self) -> &'static str {
        if self.sso_mode() {
            "SSO"
        } else {
            "NON_SSO"
        }
    }

    /// XMPP sign-in: the password, or (SSO) an access token for that user.
    pub fn check_secret(&self, id: &str, secret: &str) -> bool {
        if secret.matches('.').count() == 2 {
            if let Some(user) = self.sso().and_then(|s| s.verify(secret)) {
                return user == id;
            }
        }
        self.check_password(id, secret)
    }

    pub fn check_password(&self, id: &str, password: &str) -> bool {
        self.sign_in(id, password) == SignIn::Ok
    }

    pub fn user(&self, id: &str) -> Option<User> {
        self.dir().get(id).cloned()
    }

    /// Changes a state and publishes the `Update` to the user's sessions.
    pub fn change_state(
        &self,
        id: &str,
        req: StateRequest,
        extension: Option<&str>,
    ) -> Result<User, StateError> {
        // publish under the directory lock: two changes at once (a double
        // click) are notified in the order they were applied
        let mut dir = self.dir();
        let user = dir.change_state(id, req, extension)?;
        let node = format!("/finesse/api/User/{}", user.id);
        let request_id = self.next_id();
        let update = resources::update(&node, &resources::user(&user), &request_id);
        let frame =
            xmpp::session::pubsub_event(&self.xmpp_domain, &user.id, &node, &request_id, &update);
        let delivered = self.hub.send(&user.id, frame.into());
        drop(dir);
        tracing::debug!(user = %user.id, state = user.state.as_str(), delivered, "state change published");
        Ok(user)
    }

    pub fn set_presence_grace(&self, grace: Duration) {
        self.presence_grace_ms
            .store(grace.as_millis() as u64, Ordering::Relaxed);
    }

    fn presence_grace(&self) -> Duration {
        Duration::from_millis(self.presence_grace_ms.load(Ordering::Relaxed))
    }

    /// A notification session of `user` ended. If it was the last one, the
    /// agent is signed out after the presence grace, unless a session has
    /// come back by then.
    pub fn session_ended(self: &Arc<Cluster>, user: &str) {
        let (open, mark) = self.hub.presence(user);
        if open > 0 {
            return;
        }
        let cluster = self.clone();
        let user = user.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(cluster.presence_grace()).await;
            cluster.sign_out_if_absent(&user, mark);
        });
    }

    /// Signs `user` out if it has had no session since join `mark`; true if
    /// it did.
    pub fn sign_out_if_absent(&self, user: &str, mark: u64) -> bool {
        let absent = self.hub.presence(user) == (0, mark);
        let signed_in = self
            .user(user)
            .is_some_and(|u| u.state != AgentState::Logout);
        if !(absent && signed_in) {
            return false;
        }
        tracing::info!(%user, "presence lost: signing the agent out");
        self.change_state(user, StateRequest::Logout, None).is_ok()
    }

    /// While on, authenticated REST calls answer 503 (a dependency is down).
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::Relaxed);
    }

    pub fn outage(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
    }

    /// Counts one request under `label` (`GET /finesse/api/User`, ...).
    pub fn count(&self, label: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(label.to_string()).or_default() += 1;
    }

    /// How many requests were counted under `label`: tests use it to see how
    /// often the proxy asked Finesse.
    pub fn requests(&self, label: &str) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.get(label).copied().unwrap_or(0)
    }

    /// A fresh identifier (stream ids, request ids).
    pub fn next_id(&self) -> String {
        self.seq.fetch_add(1, Ordering::Relaxed).to_string()
    }
}

pub fn demo_users(agents: u32, password: &str) -> Vec<User> {
    let mut users: Vec<User> = (1..=agents)
        .map(|i| {
            User::new(
                &format!("{}", 1000 + i),
                password,
                "Agent",
                &format!("{i:02}"),
                &[Role::Agent],
            )
        })
        .collect();
    users.push(User::new(
        "2001",
        password,
        "Sam",
        "Supervisor",
        &[Role::Agent, Role::Supervisor],
    ));
    users.push(User::new(
        "admin",
        password,
        "Ada",
        "Admin",
        &[Role::Administrator],
    ));
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_loss_signs_out_unless_a_session_came_back() {
        let c = Cluster::demo(2);
        c.change_state("1001", StateRequest::Login, Some("5001"))
            .expect("login");
        let (reg, _rx) = c.hub.join("1001");
        drop(reg);
        let mark = c.hub.latest_join("1001");
        // came back (and left again) since: the old timer does nothing
        let again = c.hub.join("1001");
        assert!(!c.sign_out_if_absent("1001", mark));
        drop(again);
        assert!(!c.sign_out_if_absent("1001", mark));
        assert_eq!(c.user("1001").expect("user").state, AgentState::NotReady);
        // gone for good: signed out
        let mark = c.hub.latest_join("1001");
        assert!(c.sign_out_if_absent("1001", mark));
        assert_eq!(c.user("1001").expect("user").state, AgentState::Logout);
        // already signed out: nothing to do
        assert!(!c.sign_out_if_absent("1001", mark));
    }
}
