//! The state every HTTP handler shares.

use std::sync::Arc;

use kiln_core::Kiln;

use crate::conn::{JobSlots, LogLimiter};

/// Shared state of the HTTP layer.
pub struct AppState {
    /// The use cases.
    pub kiln: Arc<Kiln>,
    /// Body size limit.
    pub max_body_bytes: usize,
    /// Blocking jobs per access key.
    pub jobs: JobSlots,
    /// Bounds the "request refused" lines a flood of bad requests writes.
    pub refusals: LogLimiter,
}

impl AppState {
    /// The state for `config`.
    pub fn new(kiln: Arc<Kiln>, config: &crate::Config) -> AppState {
        AppState {
            kiln,
            max_body_bytes: config.max_body_bytes,
            jobs: JobSlots::new(config.jobs_per_client),
            refusals: LogLimiter::new(50, std::time::Duration::from_secs(10)),
        }
    }
}
