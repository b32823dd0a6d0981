//! The users a Finesse cluster knows, their agent state, and Finesse's own
//! sign-in lockout: 5 failed sign-ins in a row lock a user for 5 minutes.
//!
//! Pure data with the clock passed in, so the lockout is tested without
//! waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A Finesse role. A supervisor may read other users; an administrator may
/// also list them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Agent,
    Supervisor,
    Administrator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "Agent",
            Role::Supervisor => "Supervisor",
            Role::Administrator => "Administrator",
        }
    }
}

/// An agent state as Finesse reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    Logout,
    NotReady,
    Ready,
    Work,
    WorkReady,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Logout => "LOGOUT",
            AgentState::NotReady => "NOT_READY",
            AgentState::Ready => "READY",
            AgentState::Work => "WORK",
            AgentState::WorkReady => "WORK_READY",
        }
    }
}

/// A state an agent may ask for with `PUT /finesse/api/User/<id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRequest {
    Login,
    Logout,
    Ready,
    NotReady,
    Work,
    WorkReady,
}

impl StateRequest {
    pub fn parse(s: &str) -> Option<StateRequest> {
        Some(match s {
            "LOGIN" => StateRequest::Login,
            "LOGOUT" => StateRequest::Logout,
            "READY" => StateRequest::Ready,
            "NOT_READY" => StateRequest::NotReady,
            "WORK" => StateRequest::Work,
            "WORK_READY" => StateRequest::WorkReady,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub login_name: String,
    pub first_name: String,
    pub last_name: String,
    pub roles: Vec<Role>,
    pub state: AgentState,
    pub extension: Option<String>,
    password: String,
}

impl User {
    pub fn new(id: &str, password: &str, first: &str, last: &str, roles: &[Role]) -> User {
        User {
            id: id.to_string(),
            login_name: format!("{}{}", first.to_lowercase(), id),
            first_name: first.to_string(),
            last_name: last.to_string(),
            roles: roles.to_vec(),
            state: AgentState::Logout,
            extension: None,
            password: password.to_string(),
        }
    }
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    /// May this user read or change `other`?
    pub fn may_see(&self, other: &str) -> bool {
        self.id == other || self.has(Role::Supervisor) || self.has(Role::Administrator)
    }
}

/// The outcome of one sign-in attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    Ok,
    /// Wrong password, or no such user: Finesse answers both the same way.
    Failed,
    /// Locked after too many failures; the password was not even compared.
    Locked,
}

/// Why a state change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum StateError {
    NoSuchUser,
    /// LOGIN without an extension.
    ExtensionRequired,
    /// READY, NOT_READY, ... while signed out.
    NotLoggedIn,
}

/// How many failures lock a user, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct LockoutPolicy {
    pub failures: u32,
    pub duration: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            failures: 5,
            duration: Duration::from_secs(300),
        }
    }
}

#[derive(Default)]
struct Strikes {
    consecutive: u32,
    locked_until: Option<Instant>,
}

/// Users by id, with their lockout counters.
pub struct Directory {
    users: HashMap<String, User>,
    strikes: HashMap<String, Strikes>,
    policy: LockoutPolicy,
}

impl Directory {
    pub fn new(users: Vec<User>, policy: LockoutPolicy) -> Directory {
        Directory {
            users: users.into_iter().map(|u| (u.id.clone(), u)).collect(),
            strikes: HashMap::new(),
            policy,
        }
    }

    pub fn get(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// All users, sorted by id.
    pub fn all(&self) -> Vec<&User> {
        let mut v: Vec<&User> = self.users.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Checks one sign-in. Consecutive failures of an existing user count
    /// towards its lockout; a success resets them.
    pub fn sign_in(&mut self, id: &str, password: &str, now: Instant) -> SignIn {
        let Some(user) = self.users.get(id) else {
            return SignIn::Failed;
        };
        let strikes = self.strikes.entry(id.to_string()).or_default();
        if let Some(until) = strikes.locked_until {
            if now < until {
                return SignIn::Locked;
            }
            strikes.locked_until = None;
            strikes.consecutive = 0;
        }
        if user.password == password {
            strikes.consecutive = 0;
            return SignIn::Ok;
        }
        strikes.consecutive += 1;
        if strikes.consecutive >= self.policy.failures {
            strikes.locked_until = Some(now + self.policy.duration);
            strikes.consecutive = 0;
        }
        SignIn::Failed
    }

    /// Applies a state request; returns the user as it is afterwards.
    pub fn change_state(
        &mut self,
        id: &str,
        req: StateRequest,
        extension: Option<&str>,
    ) -> Result<User, StateError> {
        let user = self.users.get_mut(id).ok_or(StateError::NoSuchUser)?;
        let logged_in = user.state != AgentState::Logout;
        user.state = match req {
            StateRequest::Login => {
                let ext = extension
                    .filter(|e| !e.is_empty())
                    .ok_or(StateError::ExtensionRequired)?;
                user.extension = Some(ext.to_string());
                AgentState::NotReady
            }
            StateRequest::Logout => {
                user.extension = None;
                AgentState::Logout
            }
            _ if !logged_in => return Err(StateError::NotLoggedIn),
            StateRequest::Ready => AgentState::Ready,
            StateRequest::NotReady => AgentState::NotReady,
            StateRequest::Work => AgentState::Work,
            StateRequest::WorkReady => AgentState::WorkReady,
        };
        Ok(user.clone())
    }

    /// Changes a password (revocation tests: the old one stops working).
    pub fn set_password(&mut self, id: &str, password: &str) -> bool {
        match self.users.get_mut(id) {
            Some(u) => {
                u.password = password.to_string();
                true
            }
            None => false,
        }
    }

    /// Removes a user (revocation tests).
    pub fn remove(&mut self, id: &str) -> bool {
        self.strikes.remove(id);
        self.users.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        Directory::new(
            vec![User::new("1001", "pw", "Ann", "Agent", &[Role::Agent])],
            LockoutPolicy::default(),
        )
    }

    #[test]
    fn five_failures_lock_for_five_minutes_even_with_the_right_password() {
        let mut d = dir();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(d.sign_in("1001", "wrong", t0), SignIn::Failed);
        }
        assert_eq!(d.sign_in("1001", "pw", t0), SignIn::Locked);
        let later = t0 + Duration::from_secs(299);
        assert_eq!(d.sign_in("1001", "pw", later), SignIn::Locked);
        let after = t0 + Duration::from_secs(300);
        assert_eq!(d.sign_in("1001", "pw", after), SignIn::Ok);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut d = dir();
        let t = Instant::now();
        for _ in 0..4 {
            d.sign_in("1001", "wrong", t);
        }
        assert_eq!(d.sign_in("1001", "pw", t), SignIn::Ok);
        for _ in 0..4 {
            d.sign_in("1001", "wrong", t);
        }
        assert_eq!(d.sign_in("1001", "pw", t), SignIn::Ok);
    }

    #[test]
    fn a_changed_password_or_a_removed_user_stops_signing_in() {
        let mut d = dir();
        let t = Instant::now();
        assert!(d.set_password("1001", "new"));
        assert_eq!(d.sign_in("1001", "pw", t), SignIn::Failed);
        assert_eq!(d.sign_in("1001", "new", t), SignIn::Ok);
        assert!(d.remove("1001"));
        assert_eq!(d.sign_in("1001", "new", t), SignIn::Failed);
        assert!(!d.set_password("1001", "x"));
    }

    #[test]
    fn unknown_users_fail_like_wrong_passwords() {
        let mut d = dir();
        assert_eq!(d.sign_in("9999", "pw", Instant::now()), SignIn::Failed);
    }

    #[test]
    fn login_needs_an_extension_and_other_states_need_a_login() {
        let mut d = dir();
        assert_eq!(
            d.change_state("1001", StateRequest::Ready, None).err(),
            Some(StateError::NotLoggedIn)
        );
        assert_eq!(
            d.change_state("1001", StateRequest::Login, None).err(),
            Some(StateError::ExtensionRequired)
        );
        let u = d
            .change_state("1001", StateRequest::Login, Some("1001"))
            .expect("login");
        assert_eq!(u.state, AgentState::NotReady);
        let u = d
            .change_state("1001", StateRequest::Ready, None)
            .expect("ready");
        assert_eq!(u.state, AgentState::Ready);
        let u = d
            .change_state("1001", StateRequest::Logout, None)
            .expect("logout");
        assert_eq!((u.state, u.extension), (AgentState::Logout, None));
    }
}
