//! Where to reopen the change stream after a failure: a pure state machine,
//! generic over the token type so tests can drive it with plain values.
//!
//! - A network or server failure reopens from the last committed token,
//!   with exponential backoff. Changes after that token are read again,
//!   and the fold ignores the duplicates.
//! - A lost resume point (the token fell out of the oplog, or the server
//!   reports that it can never be used) discards the token for good, requires a
//!   rebuild of the projection (changes in the gap are gone), and starts a
//!   fresh stream after a backoff. The discarded token is never used again,
//!   so the same failure cannot repeat in a loop.
//! - A server error that keeps rejecting one token is treated as a lost
//!   resume point after [`MAX_REJECTIONS_PER_TOKEN`] attempts.

use std::time::Duration;

/// Server error code `ChangeStreamHistoryLost`: the resume point is no
/// longer in the oplog.
pub const CHANGE_STREAM_HISTORY_LOST: i32 = 286;
/// Server error code `ChangeStreamFatalError`: the stream cannot be resumed
/// from this token at all.
pub const CHANGE_STREAM_FATAL_ERROR: i32 = 280;

/// Failed attempts with one token, each rejected by the server with an
/// error, before the token counts as unusable. Network failures never
/// count, because they tell nothing about the token.
pub const MAX_REJECTIONS_PER_TOKEN: u32 = 5;

/// First delay before reopening; doubles per consecutive failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Maximum delay before reopening.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Cause of a stream failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Error 286 or 280: this token can never be resumed from.
    ResumePointLost { code: i32 },
    /// The stream ended with an `invalidate` event.
    Invalidated,
    /// The server returned another error (with its code, if it sent one).
    ServerError { code: Option<i32> },
    /// The server could not be reached, or the connection broke.
    Network,
}

impl Failure {
    /// Classifies a server error code; `None` for failures without one.
    pub fn from_code(code: Option<i32>) -> Self {
        match code {
            Some(code @ (CHANGE_STREAM_HISTORY_LOST | CHANGE_STREAM_FATAL_ERROR)) => {
                Failure::ResumePointLost { code }
            }
            code => Failure::ServerError { code },
        }
    }
}

/// Action to take after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    /// Wait `after`, then reopen from `token` (`None`: a fresh stream).
    Reopen { token: Option<T>, after: Duration },
    /// Delete the stored token, mark the projection for a rebuild with
    /// `reason`, wait `after`, then open a fresh stream.
    Rebuild { reason: String, after: Duration },
}

/// The resume position of one stream.
#[derive(Debug, Clone)]
pub struct ResumeState<T> {
    token: Option<T>,
    discarded: Vec<T>,
    failures: u32,
    rejections: u32,
}

impl<T: Clone + PartialEq> ResumeState<T> {
    /// Starts from the token stored by an earlier run, if any.
    pub fn new(stored: Option<T>) -> Self {
        Self {
            token: stored,
            discarded: Vec::new(),
            failures: 0,
            rejections: 0,
        }
    }

    /// Returns the token to open the stream with; `None` starts at the current time.
    pub fn token(&self) -> Option<&T> {
        self.token.as_ref()
    }

    /// Records a committed batch. A token that was discarded is ignored, so
    /// a late commit cannot bring it back.
    pub fn on_commit(&mut self, token: T) {
        self.failures = 0;
        if self.discarded.contains(&token) {
            return;
        }
        if self.token.as_ref() != Some(&token) {
            self.rejections = 0;
        }
        self.token = Some(token);
    }

    /// Decides what to do after `failure`.
    pub fn on_failure(&mut self, failure: Failure) -> Decision<T> {
        self.failures = self.failures.saturating_add(1);
        let after = backoff(self.failures);
        let reason = match failure {
            Failure::Network => None,
            Failure::ServerError { code } => {
                self.rejections += 1;
                (self.token.is_some() && self.rejections >= MAX_REJECTIONS_PER_TOKEN).then(|| {
                    format!(
                        "the server rejected resuming from the stored token {} times (last error code {})",
                        self.rejections,
                        code.map_or_else(|| "none".to_owned(), |code| code.to_string())
                    )
                })
            }
            Failure::ResumePointLost { code } => Some(format!(
                "the stored resume token can no longer be used (server error {code}); changes since the last \
                 committed batch were not projected"
            )),
            Failure::Invalidated => Some(
                "the change stream was invalidated (collection or database dropped or renamed)".to_owned(),
            ),
        };
        match reason {
            Some(reason) if self.token.is_some() || matches!(failure, Failure::Invalidated) => {
                if let Some(token) = self.token.take() {
                    self.discarded.push(token);
                }
                self.rejections = 0;
                Decision::Rebuild { reason, after }
            }
            _ => Decision::Reopen {
                token: self.token.clone(),
                after,
            },
        }
    }
}

/// `INITIAL_BACKOFF * 2^(failures - 1)`, at most `MAX_BACKOFF`.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    INITIAL_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(token: Option<&str>, after: Duration) -> Decision<&str> {
        Decision::Reopen { token, after }
    }

    #[test]
    fn starts_from_the_stored_token() {
        let state = ResumeState::new(Some("t1"));
        assert_eq!(state.token(), Some(&"t1"));
        assert_eq!(ResumeState::<&str>::new(None).token(), None);
    }

    #[test]
    fn network_failure_reopens_with_backoff() {
        let mut state = ResumeState::new(Some("t1"));
        assert_eq!(
            state.on_failure(Failure::Network),
            reopen(Some("t1"), INITIAL_BACKOFF)
        );
        assert_eq!(
            state.on_failure(Failure::Network),
            reopen(Some("t1"), INITIAL_BACKOFF * 2)
        );
        for _ in 0..20 {
            state.on_failure(Failure::Network);
        }
        assert_eq!(
            state.on_failure(Failure::Network),
            reopen(Some("t1"), MAX_BACKOFF)
        );
    }

    #[test]
    fn commit_resets_backoff_and_moves_the_token() {
        let mut state = ResumeState::new(Some("t1"));
        state.on_failure(Failure::Network);
        state.on_failure(Failure::Network);
        state.on_commit("t2");
        assert_eq!(
            state.on_failure(Failure::Network),
            reopen(Some("t2"), INITIAL_BACKOFF)
        );
    }

    #[test]
    fn history_lost_discards_the_token_and_requires_rebuild() {
        let mut state = ResumeState::new(Some("t1"));
        let decision = state.on_failure(Failure::from_code(Some(286)));
        let Decision::Rebuild { reason, after } = decision else {
            panic!("expected Rebuild, got {decision:?}");
        };
        assert!(reason.contains("server error 286"), "{reason}");
        assert_eq!(after, INITIAL_BACKOFF);
        assert_eq!(state.token(), None, "the lost token is never used again");
    }

    #[test]
    fn lost_token_is_never_retried() {
        let mut state = ResumeState::new(Some("t1"));
        state.on_failure(Failure::from_code(Some(286)));
        // The fresh stream fails too: reopen fresh, no second rebuild mark.
        assert_eq!(
            state.on_failure(Failure::from_code(Some(286))),
            reopen(None, INITIAL_BACKOFF * 2)
        );
        // A commit of the discarded token (a batch read before the loss)
        // cannot bring it back.
        state.on_commit("t1");
        assert_eq!(state.token(), None);
        state.on_commit("t3");
        assert_eq!(state.token(), Some(&"t3"));
    }

    #[test]
    fn fatal_error_counts_as_lost_resume_point() {
        assert_eq!(
            Failure::from_code(Some(280)),
            Failure::ResumePointLost { code: 280 }
        );
        assert_eq!(
            Failure::from_code(Some(11600)),
            Failure::ServerError { code: Some(11600) }
        );
        assert_eq!(Failure::from_code(None), Failure::ServerError { code: None });
    }

    #[test]
    fn repeated_rejection_of_one_token_escalates() {
        let mut state = ResumeState::new(Some("t1"));
        for attempt in 1..MAX_REJECTIONS_PER_TOKEN {
            let decision = state.on_failure(Failure::ServerError { code: Some(8000) });
            assert!(
                matches!(
                    decision,
                    Decision::Reopen {
                        token: Some("t1"),
                        ..
                    }
                ),
                "attempt {attempt}"
            );
        }
        let decision = state.on_failure(Failure::ServerError { code: Some(8000) });
        let Decision::Rebuild { reason, .. } = decision else {
            panic!("expected Rebuild, got {decision:?}");
        };
        assert!(reason.contains("5 times"), "{reason}");
        assert!(reason.contains("8000"), "{reason}");
        assert_eq!(state.token(), None);
    }

    #[test]
    fn network_failures_never_discard_the_token() {
        let mut state = ResumeState::new(Some("t1"));
        for _ in 0..100 {
            assert!(matches!(
                state.on_failure(Failure::Network),
                Decision::Reopen {
                    token: Some("t1"),
                    ..
                }
            ));
        }
    }

    #[test]
    fn rejections_reset_when_the_token_moves() {
        let mut state = ResumeState::new(Some("t1"));
        for _ in 1..MAX_REJECTIONS_PER_TOKEN {
            state.on_failure(Failure::ServerError { code: None });
        }
        state.on_commit("t2");
        assert!(matches!(
            state.on_failure(Failure::ServerError { code: None }),
            Decision::Reopen {
                token: Some("t2"),
                ..
            }
        ));
    }

    #[test]
    fn server_errors_without_a_token_reopen_fresh() {
        let mut state = ResumeState::<&str>::new(None);
        for _ in 0..10 {
            assert!(matches!(
                state.on_failure(Failure::ServerError { code: Some(13) }),
                Decision::Reopen { token: None, .. }
            ));
        }
    }

    #[test]
    fn invalidate_requires_rebuild_even_without_a_token() {
        let mut state = ResumeState::<&str>::new(None);
        assert!(matches!(
            state.on_failure(Failure::Invalidated),
            Decision::Rebuild { .. }
        ));
    }
}
