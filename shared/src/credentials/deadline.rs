//! The invocation's deadline. Database attempts and the master-login retries shrink to
//! the time Lambda has left, so a slow step ends with a typed, retryable error that
//! Secrets Manager retries, instead of being killed mid-statement with nothing logged.

use std::time::{Duration, Instant, SystemTime};

use super::postgres::Timeouts;

/// Time kept back at the end of an invocation to log and return the outcome.
pub const REPORT_MARGIN: Duration = Duration::from_millis(500);
/// The shortest database attempt worth starting (connect, TLS, SCRAM, one statement).
pub const MIN_ATTEMPT: Duration = Duration::from_millis(300);
/// Budget when the caller names no deadline: Lambda's maximum timeout.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(15 * 60);

/// When the invocation must be done by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    /// From Lambda's wall-clock deadline (`lambda_runtime::Context::deadline()`). The
    /// epoch itself means "not set" (`Context::default()`) and gets [`DEFAULT_BUDGET`].
    pub fn from_system_time(deadline: SystemTime) -> Self {
        if deadline == SystemTime::UNIX_EPOCH {
            return Deadline::after(DEFAULT_BUDGET);
        }
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Deadline::after(remaining)
    }

    /// Time left until the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::after(DEFAULT_BUDGET)
    }
}

/// The timeouts of one database attempt with `remaining` left: the defaults, cut to what
/// fits before the report margin; `None` when not even a minimal attempt fits.
pub fn attempt_timeouts(defaults: Timeouts, remaining: Duration) -> Option<Timeouts> {
    let usable = remaining.checked_sub(REPORT_MARGIN)?;
    if usable < MIN_ATTEMPT {
        return None;
    }
    Some(Timeouts {
        connect: defaults.connect.min(usable),
        statement: defaults.statement.min(usable),
    })
}

/// Whether pausing for `pause` still leaves time for a minimal attempt and the report.
pub fn retry_fits(pause: Duration, remaining: Duration) -> bool {
    remaining
        .checked_sub(pause)
        .is_some_and(|left| left >= REPORT_MARGIN + MIN_ATTEMPT)
}
