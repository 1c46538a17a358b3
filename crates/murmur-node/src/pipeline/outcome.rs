//! How a batch of envelopes went out, and a chat message's state followed
//! from queued to published as the outbox sends what waited.

/// How a batch of envelopes went out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// Published now.
    pub(crate) published: usize,
    /// In the outbox, to be published when the network takes them.
    pub(crate) queued: usize,
    /// The queued ones, to follow until the network takes them.
    pub(crate) waiting: Vec<crate::Publication>,
}

impl Outcome {
    /// The state a chat message sent in these envelopes is in now; and,
    /// if some wait in the outbox, moves `state` on to published when the
    /// first of them goes out (a send's state would otherwise stay queued
    /// until a receipt, and a group's, which gets none, for ever).
    pub(crate) fn follow(
        self,
        state: std::sync::Arc<tokio::sync::watch::Sender<crate::chat::DeliveryState>>,
    ) {
        use crate::chat::DeliveryState;
        if self.published > 0 {
            state.send_if_modified(|s| {
                let queued = *s == DeliveryState::Queued;
                if queued {
                    *s = DeliveryState::Published {
                        envelopes: self.published,
                    };
                }
                queued
            });
        }
        if self.waiting.is_empty() {
            return;
        }
        let published = self.published;
        tokio::spawn(async move {
            let mut went = published;
            for mut waiting in self.waiting {
                // Nothing waits longer than the outbox keeps trying.
                let now = waiting.published(WAITING_FOLLOWED).await;
                if matches!(
                    now,
                    crate::PublishState::Published | crate::PublishState::Acknowledged
                ) {
                    went += 1;
                    state.send_if_modified(|s| {
                        let moved =
                            matches!(s, DeliveryState::Queued | DeliveryState::Published { .. });
                        if moved {
                            *s = DeliveryState::Published { envelopes: went };
                        }
                        moved
                    });
                }
            }
        });
    }
}

/// How long a queued chat message's state is followed to published: after
/// that it shows published once a receipt comes (1:1) or not at all.
const WAITING_FOLLOWED: std::time::Duration = std::time::Duration::from_secs(3600);
