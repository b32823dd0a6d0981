//! Asking Finesse whether a credential is valid (SPEC 3): one request with
//! the client's own Authorization header to the configured check URL;
//! 200 = valid, 401/403/404 = rejected, anything else (5xx, timeout,
//! unreachable) = no answer, which is never counted as a failure.
//!
//! Concurrent requests with the same new credential share one validation
//! (single flight), and validations in flight towards Finesse are bounded,
//! so credential stuffing cannot be amplified onto Finesse.

use crate::body::empty;
use crate::Snapshot;
use deskgate_config::{Node, UpstreamCheck};
use deskgate_policy::credentials::CredKey;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Finesse's answer about one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Valid,
    Rejected(u16),
    /// No yes or no; the reason is for the logs.
    Inconclusive(&'static str),
}

/// What a leader does with the answer before the followers see it.
pub type OnAnswer = Box<dyn FnOnce(Answer) + Send>;

pub struct Validator {
    permits: Arc<Semaphore>,
    flights: Mutex<HashMap<CredKey, watch::Receiver<Option<Answer>>>>,
    timeout: Duration,
    /// Requests sent to Finesse (for status and tests).
    sent: AtomicU64,
}

impl Validator {
    pub fn new(max_in_flight: usize, timeout: Duration) -> Validator {
        Validator {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            flights: Mutex::new(HashMap::new()),
            timeout,
            sent: AtomicU64::new(0),
        }
    }

    /// Is a check of this credential on its way?
    pub fn in_flight(&self, key: &CredKey) -> bool {
        self.flights().contains_key(key)
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn flights(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CredKey, watch::Receiver<Option<Answer>>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates `authorization` (keyed `key`) for `user`, joining a
    /// validation of the same credential already on its way. The check runs
    /// in its own task, so a client that goes away does not cancel it for
    /// the others; `on_answer` runs once, before anyone is told.
    pub async fn validate(
        self: &Arc<Self>,
        snap: Arc<Snapshot>,
        check: Check,
        key: CredKey,
        authorization: String,
        user: String,
        on_answer: OnAnswer,
    ) -> Answer {
        let mut rx = {
            let mut flights = self.flights();
            match flights.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key, rx.clone());
                    let this = self.clone();
                    tokio::spawn(async move {
                        let answer = this.ask(&snap, &check, &authorization, &user).await;
                        on_answer(answer);
                        let _ = tx.send(Some(answer));
                        this.flights().remove(&key);
                    });
                    rx
                }
            }
        };
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(a) => a.unwrap_or(Answer::Inconclusive("validation_lost")),
            Err(_) => Answer::Inconclusive("validation_lost"),
        };
        answer
    }

    /// A validation nobody waits for (background revalidation). Returns
    /// `false` when too many are in flight, so the caller can retry later.
    pub fn spawn_background(
        self: &Arc<Self>,
        snap: Arc<Snapshot>,
        check: Check,
        authorization: String,
        user: String,
        on_answer: OnAnswer,
    ) -> bool {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return false;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let answer = this.ask_with(&snap, &check, &authorization, &user).await;
            drop(permit);
            on_answer(answer);
        });
        true
    }

    async fn ask(&self, snap: &Snapshot, check: &Check, authorization: &str, user: &str) -> Answer {
        let permit = tokio::time::timeout(self.timeout, self.permits.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            return Answer::Inconclusive("too_many_validations");
        };
        self.ask_with(snap, check, authorization, user).await
    }

    /// Tries the nodes in order until one gives a yes or a no; a rejection
    /// is never retried on another node (Finesse counts failed sign-ins).
    async fn ask_with(
        &self,
        snap: &Snapshot,
        check: &Check,
        authorization: &str,
        user: &str,
    ) -> Answer {
        let mut last = Answer::Inconclusive("no_node");
        for node in check.nodes.iter() {
            self.sent.fetch_add(1, Ordering::Relaxed);
            last = match self
                .one(snap, node, &check.request, authorization, user)
                .await
            {
                Ok(StatusCode::OK) => return Answer::Valid,
                Ok(
                    s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                ) => return Answer::Rejected(s.as_u16()),
                Ok(s) if s.is_server_error() => Answer::Inconclusive("upstream_5xx"),
                Ok(s) => {
                    tracing::warn!(
                        status = s.as_u16(),
                        "the credential check got an unexpected answer; check [auth] validate"
                    );
                    Answer::Inconclusive("unexpected_status")
                }
                Err(reason) => Answer::Inconclusive(reason),
            };
        }
        last
    }

    async fn one(
        &self,
        snap: &Snapshot,
        node: &Arc<Node>,
        req: &UpstreamCheck,
        authorization: &str,
        user: &str,
    ) -> Result<StatusCode, &'static str> {
        let client = snap.upstreams.get(node).ok_or("no_client")?;
        let uri = req.path_for(user);
        let method = Method::from_bytes(req.method.as_bytes()).map_err(|_| "bad_method")?;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, node.external_authority())
            .header(header::AUTHORIZATION, authorization)
            .header(header::USER_AGENT, "deskgate-auth")
            .header(header::ACCEPT, "application/xml")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-port", node.external_port.to_string())
            .body(empty())
            .map_err(|_| "bad_request")?;
        let exchange = async {
            let resp = client
                .pool
                .send(request, false)
                .await
                .map_err(|_| "upstream_unreachable")?;
            let status = resp.status();
            // read the small answer so the pooled connection can be reused
            let _ = http_body_util::Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await;
            Ok(status)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| "upstream_timeout")?
    }
}

/// Where and how to check: the check-against component's nodes on this
/// side, and the request to send.
#[derive(Clone)]
pub struct Check {
    pub nodes: Arc<[Arc<Node>]>,
    pub request: UpstreamCheck,
}

/// Login ids and names of a Finesse `Users` document, lower-cased.
pub fn parse_users(xml: &[u8]) -> Result<std::collections::HashSet<String>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut users = std::collections::HashSet::new();
    let mut in_field = false;
    let mut saw_root = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = e.name();
                if name.as_ref() == b"Users" {
                    saw_root = true;
                }
                in_field = matches!(name.as_ref(), b"loginId" | b"loginName");
            }
            Ok(Event::Text(t)) if in_field => {
                let v = t.unescape().map_err(|e| e.to_string())?;
                let v = v.trim();
                if !v.is_empty() {
                    users.insert(v.to_ascii_lowercase());
                }
            }
            Ok(Event::End(_)) => in_field = false,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        buf.clear();
    }
    if !saw_root {
        return Err("not a Users document".into());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_documents_give_ids_and_names() {
        let xml = b"<Users><User><loginId>1001</loginId><loginName>CSmith</loginName></User>\
                    <User><loginId>1002</loginId><loginName/></User></Users>";
        let users = parse_users(xml).expect("parsed");
        assert!(users.contains("1001") && users.contains("csmith") && users.contains("1002"));
        assert_eq!(users.len(), 3);
        assert!(parse_users(b"<ApiErrors/>").is_err());
        assert!(parse_users(b"<Users><User>").is_ok());
    }
}
