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
pub mod xml;
pub mod xmpp;

pub use directory::{AgentState, LockoutPolicy, Role, SignIn, User};
pub use names::HostPort;
pub use server::{Node, NodeConfig};

use directory::{Directory, StateError, StateRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};
use xmpp::hub::Hub;

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
    counters: Mutex<HashMap<String, u64>>,
    seq: AtomicU64,
}

impl Cluster {
    pub fn new(users: Vec<User>, xmpp_domain: &str, lockout: LockoutPolicy) -> Arc<Cluster> {
        Arc::new(Cluster {
            directory: Mutex::new(Directory::new(users, lockout)),
            hub: Hub::default(),
            xmpp_domain: xmpp_domain.to_string(),
            deployment_type: "UCCE".to_string(),
            started: SystemTime::now(),
            outage: AtomicBool::new(false),
            counters: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(1),
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
        let user = self.dir().change_state(id, req, extension)?;
        let node = format!("/finesse/api/User/{}", user.id);
        let request_id = self.next_id();
        let update = resources::update(&node, &resources::user(&user), &request_id);
        let frame =
            xmpp::session::pubsub_event(&self.xmpp_domain, &user.id, &node, &request_id, &update);
        let delivered = self.hub.send(&user.id, frame.into());
        tracing::debug!(user = %user.id, state = user.state.as_str(), delivered, "state change published");
        Ok(user)
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
