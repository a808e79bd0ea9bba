//! TLS sessions a rotation step opens for the step after it. Secrets Manager calls the
//! four steps one after another, on the same warm function as a rule; asking for TLS and
//! the handshake need no credentials, so a step opens the next one's sessions while it
//! works, and the next step's logins start with their startup message: three round
//! trips each instead of five.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Error;
use super::postgres::{Opened, OpenedTo, PgTls};
use super::values::Endpoint;
use crate::events::{RotationRequest, RotationStep};
use crate::spec::DatabaseTls;

/// How long sessions wait for their step. PostgreSQL closes a session that sends no
/// startup message within `authentication_timeout` (60 s by default, 1 s at the least);
/// a login finding its session closed opens a new one (`PgTls::connect`), so this only
/// spares it that detour when the next step comes late.
const CARRY_FOR: Duration = Duration::from_secs(20);

/// One set per rotation in progress (a Lambda runs one at a time; a process that runs
/// several keeps the last few).
static CARRIED: Mutex<Vec<Carried>> = Mutex::new(Vec::new());

const ROTATIONS_KEPT: usize = 4;

struct Carried {
    secret: String,
    token: String,
    step: RotationStep,
    tls: DatabaseTls,
    at: Instant,
    sessions: Vec<(Endpoint, JoinHandle<Result<Opened, Error>>)>,
}

/// Opens `count` sessions to `endpoint` with `tls` (set up as `tls_spec` says) for
/// `step` of `request`'s rotation, in the background; replaces its set not taken.
pub fn carry(
    request: &RotationRequest,
    step: RotationStep,
    tls_spec: &DatabaseTls,
    tls: &PgTls,
    endpoint: &Endpoint,
    count: usize,
) {
    let sessions = (0..count)
        .map(|_| {
            let (tls, to) = (tls.clone(), endpoint.clone());
            (
                endpoint.clone(),
                tokio::spawn(async move { tls.open(&to).await }),
            )
        })
        .collect();
    let carried = Carried {
        secret: request.secret_id.clone(),
        token: request.token.clone(),
        step,
        tls: tls_spec.clone(),
        at: Instant::now(),
        sessions,
    };
    let mut kept = CARRIED.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|c| c.secret != carried.secret);
    kept.push(carried);
    let excess = kept.len().saturating_sub(ROTATIONS_KEPT);
    kept.drain(..excess);
}

/// The sessions opened for `request`'s step under `tls_spec`, those that opened; none
/// when the set is for another step, rotation or TLS set-up, or waited too long. The
/// secret's set is taken at once (dropped when it is not for this step), its sessions
/// awaited by the future.
pub fn take(
    request: &RotationRequest,
    tls_spec: &DatabaseTls,
) -> impl Future<Output = Vec<OpenedTo>> + use<> {
    let carried = {
        let mut kept = CARRIED.lock().unwrap_or_else(|e| e.into_inner());
        let i = kept.iter().position(|c| c.secret == request.secret_id);
        i.map(|i| kept.remove(i))
    };
    let sessions = carried
        .filter(|c| {
            c.token == request.token
                && c.step == request.step
                && c.tls == *tls_spec
                && c.at.elapsed() < CARRY_FOR
        })
        .map(|c| c.sessions)
        .unwrap_or_default();
    async move {
        let mut opened = Vec::new();
        for (to, task) in sessions {
            // One that failed to open then is no reason to fail now: the login opens anew.
            if let Ok(Ok(session)) = task.await {
                opened.push((to, Ok(session)));
            }
        }
        opened
    }
}
