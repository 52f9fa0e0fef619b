//! The fold: merging one event into a user's fold state. Pure and free of I/O.

use super::register::{Merge, Stamp, merge};
use super::state::*;
use crate::event::payload::{PreferencesUpdate, UserCreated};
use crate::event::{Event, EventKind};

/// At most this many bookings are kept per user. Past it, cancelled bookings
/// go first, then those that start earliest.
// NOTE: eviction is the one place where order can matter: an event for an
// evicted booking that arrives later recreates a partial entry. With the
// served window at a few entries and this bound at 1000 it needs a user with
// 1000 bookings and a very late event. Replaying the user's events from
// empty state repairs it; no `rebuild` command exists yet.
pub const MAX_BOOKINGS: usize = 1000;
/// At most this many subscriptions are kept per user, evicting ended ones first.
pub const MAX_SUBSCRIPTIONS: usize = 200;

/// The effect of folding one event into the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldEffect {
    /// At least one field took the event's value.
    pub changed: bool,
    /// Fields where another event had the same entity version (producer bug).
    pub conflicts: u32,
    /// The user is deleted, so the event was dropped.
    pub dropped_for_deleted_user: bool,
}

impl FoldEffect {
    fn record(&mut self, merge: Merge) {
        match merge {
            Merge::Applied => self.changed = true,
            Merge::Conflict => {
                self.conflicts += 1;
                // The tie may have gone either way; treat it as a change so
                // the document is rewritten when this event won.
                self.changed = true;
            }
            Merge::Stale => {}
        }
    }
}

/// Folds all `events` into `state`, in the order given.
pub fn fold_all<'a>(mut state: FoldState, events: impl IntoIterator<Item = &'a Event>) -> FoldState {
    for event in events {
        apply(&mut state, event);
    }
    state
}

/// Merges one event into the state. Applying the same events in any order,
/// any number of times each, gives the same state (see `register`).
pub fn apply(state: &mut FoldState, event: &Event) -> FoldEffect {
    let stamp = Stamp::new(event.version, &event.id);
    let mut effect = FoldEffect::default();

    if let EventKind::UserDeleted = event.kind {
        // Deletion wins over everything, in any order: the state shrinks to
        // the tombstone and personal data is gone from the projection too.
        let tombstone = match state.deleted {
            Some(current) if current >= stamp => current,
            _ => stamp,
        };
        effect.changed = state.deleted != Some(tombstone) || *state != deleted_state(tombstone);
        *state = deleted_state(tombstone);
        return effect;
    }
    if state.deleted.is_some() {
        effect.dropped_for_deleted_user = true;
        return effect;
    }

    let user = &mut state.user;
    match &event.kind {
        EventKind::UserCreated(created) => apply_created(user, stamp, created, &mut effect),
        EventKind::UserProfileUpdated(update) => {
            if let Some(email) = &update.email {
                effect.record(merge(&mut user.email, stamp, email.clone()));
            }
            if let Some(name) = &update.name {
                effect.record(merge(&mut user.name, stamp, name.clone()));
            }
            if let Some(avatar_url) = &update.avatar_url {
                effect.record(merge(&mut user.avatar_url, stamp, avatar_url.clone()));
            }
        }
        EventKind::UserPreferencesChanged(preferences) => {
            apply_preferences(user, stamp, preferences, &mut effect)
        }
        EventKind::UserRoleChanged { role, owner_approved } => {
            effect.record(merge(&mut user.role, stamp, *role));
            if let Some(approved) = owner_approved {
                effect.record(merge(&mut user.owner_approved, stamp, *approved));
            }
        }
        EventKind::UserVerified => effect.record(merge(&mut user.verified, stamp, true)),
        EventKind::UserDeactivated => {
            effect.record(merge(&mut user.active, stamp, false));
            // A maximum, not a register: every deactivation revokes the
            // tokens issued before it, whatever order they are folded in.
            let time = event.time.timestamp();
            if state.tokens_valid_after.is_none_or(|current| current < time) {
                state.tokens_valid_after = Some(time);
                effect.changed = true;
            }
        }
        EventKind::UserReactivated => effect.record(merge(&mut user.active, stamp, true)),
        EventKind::UserSessionsRevoked { token_version } => {
            if *token_version > state.token_version {
                state.token_version = *token_version;
                effect.changed = true;
            }
        }
        EventKind::UserDeleted => unreachable!("handled above"),
        EventKind::BookingCreated(created) => {
            let entry = state.bookings.entry(created.booking_id.clone()).or_default();
            let details = BookingDetails::from(created);
            let times = Interval {
                starts_at: created.starts_at,
                ends_at: created.ends_at,
            };
            effect.record(merge(&mut entry.details, stamp, details));
            effect.record(merge(&mut entry.times, stamp, times));
            effect.record(merge(&mut entry.status, stamp, BookingStatus::Confirmed));
            compact_booking(entry);
            evict_bookings(state);
        }
        EventKind::BookingRescheduled(rescheduled) => {
            let entry = state.bookings.entry(rescheduled.booking_id.clone()).or_default();
            let times = Interval {
                starts_at: rescheduled.starts_at,
                ends_at: rescheduled.ends_at,
            };
            effect.record(merge(&mut entry.times, stamp, times));
            compact_booking(entry);
            evict_bookings(state);
        }
        EventKind::BookingCancelled { booking_id, .. } => {
            let entry = state.bookings.entry(booking_id.clone()).or_default();
            effect.record(merge(&mut entry.status, stamp, BookingStatus::Cancelled));
            compact_booking(entry);
            evict_bookings(state);
        }
        EventKind::BookingCompleted { booking_id } => {
            let entry = state.bookings.entry(booking_id.clone()).or_default();
            effect.record(merge(&mut entry.status, stamp, BookingStatus::Completed));
            compact_booking(entry);
            evict_bookings(state);
        }
        EventKind::SubscriptionActivated(activated) => {
            let entry = state
                .subscriptions
                .entry(activated.subscription_id.clone())
                .or_default();
            let details = SubscriptionDetails {
                plan_id: activated.plan_id.clone(),
                plan_name: activated.plan_name.clone(),
                shaala_id: activated.shaala_id.clone(),
                starts_at: activated.starts_at,
            };
            effect.record(merge(&mut entry.details, stamp, details));
            effect.record(merge(&mut entry.ends_at, stamp, activated.ends_at));
            effect.record(merge(
                &mut entry.classes_remaining,
                stamp,
                activated.classes_remaining,
            ));
            effect.record(merge(&mut entry.status, stamp, SubscriptionStatus::Active));
            evict_subscriptions(state);
        }
        EventKind::SubscriptionRenewed(renewed) => {
            let entry = state
                .subscriptions
                .entry(renewed.subscription_id.clone())
                .or_default();
            effect.record(merge(&mut entry.ends_at, stamp, renewed.ends_at));
            if let Some(classes_remaining) = renewed.classes_remaining {
                effect.record(merge(&mut entry.classes_remaining, stamp, classes_remaining));
            }
            effect.record(merge(&mut entry.status, stamp, SubscriptionStatus::Active));
            evict_subscriptions(state);
        }
        EventKind::SubscriptionCancelled { subscription_id } => {
            let entry = state.subscriptions.entry(subscription_id.clone()).or_default();
            effect.record(merge(&mut entry.status, stamp, SubscriptionStatus::Cancelled));
            evict_subscriptions(state);
        }
        EventKind::SubscriptionExpired { subscription_id } => {
            let entry = state.subscriptions.entry(subscription_id.clone()).or_default();
            effect.record(merge(&mut entry.status, stamp, SubscriptionStatus::Expired));
            evict_subscriptions(state);
        }
    }
    effect
}

fn deleted_state(tombstone: Stamp) -> FoldState {
    FoldState {
        deleted: Some(tombstone),
        ..FoldState::default()
    }
}

fn apply_created(user: &mut UserFields, stamp: Stamp, created: &UserCreated, effect: &mut FoldEffect) {
    if user.created.is_none_or(|current| current < stamp) {
        user.created = Some(stamp);
        effect.changed = true;
    }
    effect.record(merge(&mut user.email, stamp, Some(created.email.clone())));
    effect.record(merge(&mut user.name, stamp, Some(created.name.clone())));
    effect.record(merge(&mut user.avatar_url, stamp, created.avatar_url.clone()));
    // Absent optional fields leave their registers unwritten, so the render
    // applies the configured defaults (DEFAULT_USER_ROLE and friends).
    if let Some(role) = created.role {
        effect.record(merge(&mut user.role, stamp, role));
    }
    if let Some(active) = created.is_active {
        effect.record(merge(&mut user.active, stamp, active));
    }
    if let Some(verified) = created.is_verified {
        effect.record(merge(&mut user.verified, stamp, verified));
    }
    if let Some(approved) = created.owner_approved {
        effect.record(merge(&mut user.owner_approved, stamp, approved));
    }
    apply_preferences(user, stamp, &created.preferences, effect);
}

fn apply_preferences(
    user: &mut UserFields,
    stamp: Stamp,
    preferences: &PreferencesUpdate,
    effect: &mut FoldEffect,
) {
    if let Some(theme) = &preferences.theme {
        effect.record(merge(&mut user.theme, stamp, theme.clone()));
    }
    if let Some(language) = &preferences.language {
        effect.record(merge(&mut user.language, stamp, language.clone()));
    }
    if let Some(notifications) = preferences.notifications {
        effect.record(merge(&mut user.notifications, stamp, notifications));
    }
}

/// A cancelled booking is never shown again, so it keeps only its status
/// register: the tombstone that stops a late `booking.created` from bringing
/// it back. Normalising after every merge keeps the state independent of the
/// order in which the cancel and the other events arrived.
fn compact_booking(entry: &mut BookingEntry) {
    if entry.is_cancelled() {
        entry.details = None;
        entry.times = None;
    }
}

fn evict_bookings(state: &mut FoldState) {
    while state.bookings.len() > MAX_BOOKINGS {
        let victim = state
            .bookings
            .iter()
            .min_by_key(|(id, entry)| {
                let starts_at = entry.times.as_ref().map(|times| times.value.starts_at);
                (!entry.is_cancelled(), starts_at, (*id).clone())
            })
            .map(|(id, _)| id.clone());
        match victim {
            Some(id) => state.bookings.remove(&id),
            None => break,
        };
    }
}

fn evict_subscriptions(state: &mut FoldState) {
    while state.subscriptions.len() > MAX_SUBSCRIPTIONS {
        let victim = state
            .subscriptions
            .iter()
            .min_by_key(|(id, entry)| {
                let active = matches!(
                    entry.status.as_ref().map(|r| r.value),
                    Some(SubscriptionStatus::Active)
                );
                let ends_at = entry.ends_at.as_ref().map(|r| r.value);
                (active, ends_at, (*id).clone())
            })
            .map(|(id, _)| id.clone());
        match victim {
            Some(id) => state.subscriptions.remove(&id),
            None => break,
        };
    }
}
