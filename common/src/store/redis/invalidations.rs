//! The invalidation subscription: one pub/sub connection per store, shared
//! by every receiver through a broadcast channel.
//!
//! Each successful `SUBSCRIBE` opens a new broadcast channel (a
//! generation). When the connection is lost, the task drops that channel's
//! sender, so every receiver sees `Closed`. Messages published while no
//! connection was subscribed are lost, so the receiver must drop what it
//! cached and subscribe again. A receiver is only ever handed out for a live
//! generation, which makes it see every message published after
//! `subscribe` returned until it sees `Closed` (or `Lagged`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::INVALIDATION_CHANNEL;
use crate::store::{INVALIDATION_CHANNEL_CAPACITY, StoreError};

/// First delay between subscription attempts. It doubles per failure.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Maximum delay between subscription attempts, so a restarted server is
/// picked up within this time.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How often the idle subscription is checked with `PING`. A connection to a
/// host that vanished (no TCP reset) is detected after at most this interval
/// plus the command timeout.
const PING_INTERVAL: Duration = Duration::from_secs(5);

struct Shared {
    /// Sender of the live generation, or `None` while not subscribed.
    live: Mutex<Option<broadcast::Sender<String>>>,
    /// Whether a subscription is live, for callers waiting on the first one.
    subscribed: watch::Sender<bool>,
    /// Reason the last subscription attempt failed or the last subscription ended.
    last_error: Mutex<Option<String>>,
}

/// The subscription task and its current channel. The task starts with the
/// first [`Invalidations::subscribe`] call and stops when this is dropped.
pub(super) struct Invalidations {
    shared: Arc<Shared>,
    clients: Vec<redis::Client>,
    timeout: Duration,
    task: OnceLock<AbortHandle>,
}

impl Invalidations {
    /// Tries `clients` in turn. In a cluster any node works, because
    /// `PUBLISH` reaches every node.
    pub(super) fn new(clients: Vec<redis::Client>, timeout: Duration) -> Self {
        let (subscribed, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                live: Mutex::new(None),
                subscribed,
                last_error: Mutex::new(None),
            }),
            clients,
            timeout,
            task: OnceLock::new(),
        }
    }

    /// Waits up to the command timeout for a live subscription and returns a
    /// receiver of it. Fails with `Unavailable` if there is none by then,
    /// while the task keeps retrying in the background.
    pub(super) async fn subscribe(&self) -> Result<broadcast::Receiver<String>, StoreError> {
        self.task.get_or_init(|| {
            let task = subscription_task(Arc::clone(&self.shared), self.clients.clone(), self.timeout);
            tokio::spawn(task).abort_handle()
        });

        let mut subscribed = self.shared.subscribed.subscribe();
        let waited = tokio::time::timeout(self.timeout, subscribed.wait_for(|live| *live)).await;
        if waited.is_ok() {
            let live = self.shared.live.lock().expect("invalidation channel lock");
            if let Some(sender) = live.as_ref() {
                return Ok(sender.subscribe());
            }
        }
        let last_error = self
            .shared
            .last_error
            .lock()
            .expect("invalidation error lock")
            .clone();
        Err(StoreError::Unavailable(format!(
            "invalidation subscription to {INVALIDATION_CHANNEL} is not connected after {} ms \
             (last error: {}); retrying in the background",
            self.timeout.as_millis(),
            last_error.as_deref().unwrap_or("none yet")
        )))
    }
}

impl Drop for Invalidations {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

async fn subscription_task(shared: Arc<Shared>, clients: Vec<redis::Client>, timeout: Duration) {
    let mut failures: u32 = 0;
    let mut node = 0;
    loop {
        let client = &clients[node % clients.len()];
        let address = client.get_connection_info().addr().to_string();
        match connect(client, timeout).await {
            Ok((mut sink, mut stream)) => {
                failures = 0;
                let (sender, _) = broadcast::channel(INVALIDATION_CHANNEL_CAPACITY);
                *shared.live.lock().expect("invalidation channel lock") = Some(sender.clone());
                shared.subscribed.send_replace(true);
                info!(node = %address, channel = INVALIDATION_CHANNEL, "subscribed to invalidations");

                let reason = forward(&sender, &mut sink, &mut stream, timeout).await;

                shared.subscribed.send_replace(false);
                // Dropping the last sender closes every receiver of this
                // generation: they may miss messages from now on.
                shared.live.lock().expect("invalidation channel lock").take();
                drop(sender);
                *shared.last_error.lock().expect("invalidation error lock") = Some(reason.clone());
                warn!(
                    node = %address,
                    reason,
                    "invalidation subscription lost; receivers are closed and must resubscribe"
                );
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                *shared.last_error.lock().expect("invalidation error lock") = Some(error.clone());
                warn!(
                    node = %address,
                    attempt = failures,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %error,
                    "cannot subscribe to invalidations; retrying"
                );
                tokio::time::sleep(delay).await;
                node += 1;
            }
        }
    }
}

async fn connect(client: &redis::Client, timeout: Duration) -> Result<(PubSubSink, PubSubStream), String> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(INVALIDATION_CHANNEL).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(halves)) => Ok(halves),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// Forwards messages until the connection fails, and returns the reason.
async fn forward(
    sender: &broadcast::Sender<String>,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    timeout: Duration,
) -> String {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once, and the connection was just checked.
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return "connection closed".to_owned();
                };
                match message.get_payload::<String>() {
                    // No receivers is normal (nothing subscribed yet).
                    Ok(user_id) => drop(sender.send(user_id)),
                    Err(error) => warn!(error = %error, "ignoring an invalidation message that is not UTF-8"),
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return format!("PING failed: {error}"),
                    Err(_) => return format!("PING timed out after {} ms", timeout.as_millis()),
                }
            }
        }
    }
}

fn retry_delay(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    MIN_RETRY_DELAY.saturating_mul(factor).min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_maximum() {
        assert_eq!(retry_delay(1), Duration::from_millis(100));
        assert_eq!(retry_delay(2), Duration::from_millis(200));
        assert_eq!(retry_delay(4), Duration::from_millis(800));
        assert_eq!(retry_delay(7), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }
}
