//! One message's handling as one transaction: what the handler keeps in
//! its [`crate::Store`] is saved together with the bot's position in the
//! durable inbox, or not at all; and its replies go out under ids derived
//! from the message, so that a reply sent again after a crash reaches the
//! other side once.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use murmur_core::chat::{ChatMessage, MessageId};
use sha2::{Digest as _, Sha256};

/// The handling of one message.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// Keys written (`None`: removed), in the node's application state.
    writes: HashMap<String, Option<Vec<u8>>>,
    /// Replies sent so far.
    replies: u32,
    /// The message handled: whose and which.
    source: Option<(murmur_core::crypto::AccountId, MessageId)>,
}

/// A turn shared by a handler's arguments.
pub(crate) type Shared = Rc<RefCell<Turn>>;

impl Turn {
    pub(crate) fn new(message: &ChatMessage) -> Shared {
        Rc::new(RefCell::new(Self {
            source: Some((message.sender, message.id)),
            ..Self::default()
        }))
    }

    /// What was written under `key` in this turn: `Some(None)` if removed.
    pub(crate) fn written(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.writes.get(key).cloned()
    }

    pub(crate) fn write(&mut self, key: String, value: Option<Vec<u8>>) {
        self.writes.insert(key, value);
    }

    /// The id of the next reply: the same for the same message and the
    /// same place among its replies.
    pub(crate) fn next_reply(&mut self) -> Option<MessageId> {
        let (sender, id) = self.source?;
        let n = self.replies;
        self.replies += 1;
        let digest = Sha256::new()
            .chain_update(b"murmur/bot-reply/v1")
            .chain_update(sender.0)
            .chain_update(id.0)
            .chain_update(n.to_be_bytes())
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Some(MessageId(out))
    }

    /// The writes, to save with the position.
    pub(crate) fn take_writes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        self.writes.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use murmur_core::{
        chat::Body,
        crypto::{AccountId, DeviceId},
    };

    use super::*;

    fn message(id: u8) -> ChatMessage {
        ChatMessage::new(
            MessageId([id; 16]),
            AccountId([1; 32]),
            DeviceId([1; 16]),
            AccountId([2; 32]),
            Body::Text("hi".to_owned()),
        )
    }

    #[test]
    fn replies_to_the_same_message_get_the_same_ids_again() {
        let first = Turn::new(&message(1));
        let again = Turn::new(&message(1));
        let other = Turn::new(&message(2));
        let ids = |t: &Shared| {
            let mut t = t.borrow_mut();
            [t.next_reply(), t.next_reply()]
        };
        let (a, b, c) = (ids(&first), ids(&again), ids(&other));
        assert_eq!(a, b, "a retry after a crash sends the same ids");
        assert_ne!(a[0], a[1], "two replies, two ids");
        assert_ne!(a, c, "another message, other ids");
    }
}
