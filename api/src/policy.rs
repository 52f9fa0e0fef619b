//! Loading and periodically reloading the permission policy.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sessionfold_common::permissions::{PermissionPolicy, PermissionTable, PolicyError};
use tracing::{info, warn};

use crate::config::PolicySettings;

/// Reads the policy named by the settings (built-in roles when no file).
pub fn load(settings: &PolicySettings) -> Result<PermissionPolicy, PolicyError> {
    let mut policy = match &settings.file {
        Some(path) => PermissionPolicy::from_file(path)?,
        None => PermissionPolicy::default(),
    };
    if let Some(required) = settings.owner_approval_required {
        policy.owner_approval_required = required;
    }
    Ok(policy)
}

/// Re-reads the policy file every `reload_interval` and swaps the table in
/// when it changed. A file that became invalid is logged and the last good
/// policy stays in force.
pub async fn reload_periodically(settings: PolicySettings, table: Arc<ArcSwap<PermissionTable>>) {
    if settings.file.is_none() || settings.reload_interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(settings.reload_interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match load(&settings) {
            Ok(policy) if &policy != table.load().policy() => {
                info!(file = ?settings.file, "permission policy changed; applying");
                table.store(Arc::new(PermissionTable::new(policy)));
            }
            Ok(_) => {}
            Err(err) => warn!(error = %err, "permission policy reload failed; keeping the previous policy"),
        }
    }
}
