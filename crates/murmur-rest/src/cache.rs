//! What nwaku's REST API keeps between two reads of a subscribed topic:
//! per pubsub topic (`/relay/v1/messages/{pubsubTopic}`) and per content
//! topic (`/relay/v1/auto/messages/{contentTopic}`,
//! `/filter/v2/messages/{contentTopic}`), at most `capacity` messages each,
//! the oldest dropped first; a read takes them all.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use murmur_core::{Delivery, PubsubTopic, WakuMessage};

/// The caches of one server.
pub(crate) struct Caches {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pubsub: HashMap<PubsubTopic, Topic>,
    content: HashMap<String, Topic>,
}

#[derive(Default)]
struct Topic {
    messages: VecDeque<WakuMessage>,
    /// Asked for through the REST API (not only a shard the node relays
    /// anyway): given up when the API is asked to unsubscribe.
    ours: bool,
}

impl Caches {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `delivery` for each subscribed topic it travels on.
    pub(crate) fn offer(&self, delivery: &Delivery) {
        let capacity = self.capacity;
        let push = |topic: &mut Topic| {
            if topic.messages.len() == capacity {
                topic.messages.pop_front();
            }
            topic.messages.push_back(delivery.message.clone());
        };
        let mut inner = self.lock();
        if let Some(topic) = inner.pubsub.get_mut(&delivery.pubsub_topic) {
            push(topic);
        }
        if let Some(topic) = inner.content.get_mut(&delivery.message.content_topic) {
            push(topic);
        }
    }

    /// Starts keeping `topic`; whether it was new. `ours`: the REST API
    /// subscribed the node to it.
    pub(crate) fn watch_pubsub(&self, topic: PubsubTopic, ours: bool) -> bool {
        let mut inner = self.lock();
        if inner.pubsub.contains_key(&topic) {
            return false;
        }
        inner.pubsub.insert(
            topic,
            Topic {
                ours,
                ..Topic::default()
            },
        );
        true
    }

    /// Whether the REST API is keeping `topic`.
    pub(crate) fn watches_pubsub(&self, topic: &PubsubTopic) -> bool {
        self.lock().pubsub.contains_key(topic)
    }

    /// Stops keeping `topic`; whether the REST API had subscribed the node
    /// to it (and should give it up).
    pub(crate) fn forget_pubsub(&self, topic: &PubsubTopic) -> bool {
        self.lock().pubsub.remove(topic).is_some_and(|t| t.ours)
    }

    /// What came on `topic` since the last read; `None` if it is not kept.
    pub(crate) fn take_pubsub(&self, topic: &PubsubTopic) -> Option<Vec<WakuMessage>> {
        self.lock()
            .pubsub
            .get_mut(topic)
            .map(|t| t.messages.drain(..).collect())
    }

    /// Starts keeping content topic `topic`.
    pub(crate) fn watch_content(&self, topic: &str) {
        self.lock().content.entry(topic.to_owned()).or_default();
    }

    /// Stops keeping content topic `topic`.
    pub(crate) fn forget_content(&self, topic: &str) {
        self.lock().content.remove(topic);
    }

    /// Stops keeping every content topic.
    pub(crate) fn forget_all_content(&self) {
        self.lock().content.clear();
    }

    /// What came on content topic `topic` since the last read; `None` if it
    /// is not kept.
    pub(crate) fn take_content(&self, topic: &str) -> Option<Vec<WakuMessage>> {
        self.lock()
            .content
            .get_mut(topic)
            .map(|t| t.messages.drain(..).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: u8) -> Delivery {
        let topic: PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
        Delivery::new(topic, WakuMessage::new("/a/1/b/proto", vec![n]))
    }

    #[test]
    fn a_cache_keeps_the_newest_and_a_read_empties_it() {
        let caches = Caches::new(3);
        let topic: PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
        assert!(caches.take_pubsub(&topic).is_none());
        assert!(caches.watch_pubsub(topic.clone(), true));
        assert!(!caches.watch_pubsub(topic.clone(), false));
        caches.watch_content("/a/1/b/proto");
        for n in 0..5 {
            caches.offer(&delivery(n));
        }
        let kept: Vec<u8> = caches
            .take_pubsub(&topic)
            .unwrap()
            .iter()
            .map(|m| m.payload[0])
            .collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(caches.take_pubsub(&topic), Some(Vec::new()));
        assert_eq!(caches.take_content("/a/1/b/proto").unwrap().len(), 3);
        assert!(caches.take_content("/other/1/b/proto").is_none());
        assert!(caches.forget_pubsub(&topic));
        assert!(caches.take_pubsub(&topic).is_none());
    }
}
