//! The chat side of the handle: accounts, devices, contacts,
//! conversations, groups and communities, inboxes and catching up.

use super::*;

impl Node {
    pub(crate) fn chat(&self) -> Result<&murmur_core::crypto::Handle, Error> {
        self.inner.chat.as_ref().ok_or(Error::ChatDisabled)
    }
    /// This node's chat account and device (the account changes once, when
    /// a new device is paired).
    pub async fn chat_identity(&self) -> Result<(AccountId, DeviceId), Error> {
        Ok(self
            .chat()?
            .identity
            .send(murmur_core::crypto::Identity)
            .await??)
    }
    /// A one-time code, valid ten minutes, that lets a new device join this
    /// account (`Node::pair` on the new device). Only the account's first
    /// device can issue one.
    pub async fn pairing_code(&self) -> Result<String, Error> {
        Ok(self
            .chat()?
            .pairing_code
            .send(murmur_core::crypto::PairingCode)
            .await??)
    }
    /// Joins the account that issued `code`: sends the request and returns;
    /// the device takes the account's identity when the answer arrives
    /// (watch [`Node::chat_identity`]). Contacts learn the new device from
    /// the first one.
    pub async fn pair(&self, code: &str) -> Result<(), Error> {
        let sealed = self
            .chat()?
            .pair
            .send(murmur_core::crypto::Pair(code.to_owned()))
            .await??;
        self.inner.pipeline.send(PublishEnvelopes(sealed)).await??;
        Ok(())
    }
    /// Revokes one of this account's devices (a lost phone): contacts and
    /// the other devices stop sealing for it and refuse what it sends.
    pub async fn revoke(&self, device: DeviceId) -> Result<(), Error> {
        let sealed = self
            .chat()?
            .revoke
            .send(murmur_core::crypto::Revoke(device))
            .await??;
        if !sealed.is_empty() {
            self.inner.pipeline.send(PublishEnvelopes(sealed)).await??;
        }
        // The revoked device held this account's group chains: every group
        // moves to new ones it never gets.
        if let Ok(groups) = self.groups_stage() {
            let (account, _) = self.chat_identity().await?;
            let effects = groups
                .revoked
                .send(murmur_core::groups::Revoked { account, device })
                .await??;
            self.inner.pipeline.send(ApplyEffects(effects)).await??;
        }
        Ok(())
    }
    /// Accounts that wrote to this one and wait for an answer (message
    /// requests): their messages arrived with `ChatMessage::request` set,
    /// and they got no receipt, no device list and no group join.
    pub async fn requests(&self) -> Result<Vec<AccountId>, Error> {
        Ok(self
            .chat()?
            .requests
            .send(murmur_core::crypto::Requests)
            .await??)
    }
    /// This account's contacts: the accounts it added, wrote to or
    /// accepted.
    pub async fn contacts(&self) -> Result<Vec<AccountId>, Error> {
        Ok(self
            .chat()?
            .contacts
            .send(murmur_core::crypto::Contacts)
            .await??)
    }
    /// Accepts `account`: it gets receipts and may add this account to
    /// groups from now on, and its devices learn this account's others
    /// now. Writing to an account, or adding its contact code, accepts it
    /// too; so does `chat.accept = "everyone"` (bots).
    pub async fn accept(&self, account: AccountId) -> Result<(), Error> {
        let request = self.requests().await?.contains(&account);
        let sealed = self
            .chat()?
            .accept
            .send(murmur_core::crypto::Accept(account))
            .await??;
        if !sealed.is_empty() {
            self.inner.pipeline.send(PublishEnvelopes(sealed)).await??;
        }
        self.inner
            .pipeline
            .send(crate::pipeline::Accepted { account, request })
            .await?;
        Ok(())
    }
    /// Declines `account`'s message request: its sessions and devices are
    /// forgotten; it may ask again.
    pub async fn decline(&self, account: AccountId) -> Result<(), Error> {
        self.decline_or_block(account, false).await
    }
    /// Blocks `account`: declined, and nothing it sends is opened again
    /// until it is accepted.
    pub async fn block(&self, account: AccountId) -> Result<(), Error> {
        self.decline_or_block(account, true).await
    }
    async fn decline_or_block(&self, account: AccountId, block: bool) -> Result<(), Error> {
        let sealed = self
            .chat()?
            .decline
            .send(murmur_core::crypto::Decline { account, block })
            .await??;
        self.inner
            .pipeline
            .send(crate::pipeline::Declined(account))
            .await?;
        if !sealed.is_empty() {
            self.inner.pipeline.send(PublishEnvelopes(sealed)).await??;
        }
        Ok(())
    }
    /// The devices of `account` this node knows (for its own account: the
    /// other devices).
    pub async fn devices(&self, account: AccountId) -> Result<Vec<DeviceId>, Error> {
        Ok(self
            .chat()?
            .devices
            .send(murmur_core::crypto::Devices(account))
            .await??)
    }
    /// This device's contact code (`murmur:…`): share it, and whoever adds
    /// it can write to this account, even while it is offline.
    pub async fn contact_code(&self) -> Result<String, Error> {
        Ok(self
            .chat()?
            .contact_code
            .send(murmur_core::crypto::ContactCode)
            .await??)
    }
    /// Adds a contact's device from its contact code; answers its account.
    pub async fn add_contact(&self, code: &str) -> Result<AccountId, Error> {
        Ok(self
            .chat()?
            .add_contact
            .send(murmur_core::crypto::AddContact(code.to_owned()))
            .await??)
    }
    /// A conversation with `peer`.
    pub fn conversation(&self, peer: AccountId) -> Conversation {
        Conversation::new(self.clone(), peer)
    }
    pub(crate) async fn send_chat(
        &self,
        to: AccountId,
        id: Option<crate::chat::MessageId>,
        body: Body,
    ) -> Result<Sent, Error> {
        self.inner.pipeline.send(SendChat { to, body, id }).await?
    }
    pub(crate) fn groups_stage(&self) -> Result<&murmur_core::groups::Handle, Error> {
        self.inner.groups.as_ref().ok_or(Error::ChatDisabled)
    }
    /// Creates a private group with this account as its creator and first
    /// admin (on the device that holds the account key).
    pub async fn create_group(&self, name: &str) -> Result<Group, Error> {
        let (id, effects) = self
            .groups_stage()?
            .create
            .send(murmur_core::groups::Create {
                name: name.to_owned(),
            })
            .await??;
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(Group::new(self.clone(), id))
    }
    /// Creates a community: a group with these channels, in `mode`, this
    /// account its owner. Any admin's device carries out joins and
    /// moderation, so the community works while the owner is offline.
    pub async fn create_community(
        &self,
        name: &str,
        channels: &[&str],
        mode: murmur_core::groups::JoinMode,
    ) -> Result<Group, Error> {
        let group = self.create_group(name).await?;
        for channel in channels {
            group.open_channel(*channel).await?;
        }
        group.set_join_mode(mode).await?;
        Ok(group)
    }
    /// Asks to join with an invite code or link ([`Group::invite_code`],
    /// [`Group::link`]): the request goes to the admin who made it, whose
    /// device adds this account (or, for a link to a group that asks for
    /// approval, keeps the request for an admin). Answers the group, which
    /// this device learns once it is added.
    pub async fn join(&self, code: &str) -> Result<GroupId, Error> {
        let (group, effects) = self
            .groups_stage()?
            .join
            .send(murmur_core::groups::Join(code.to_owned()))
            .await??;
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(group)
    }
    /// Receives, from now on, every message this device could not open,
    /// with why and the repair it attempted ([`crate::chat::Unreadable`]). A
    /// subscriber that falls 1,024 events behind misses the next ones.
    pub async fn unreadable(&self) -> Result<crate::chat::Unreadables, Error> {
        let rx = self
            .inner
            .pipeline
            .send(crate::pipeline::AddUnreadable { capacity: 1024 })
            .await??;
        Ok(crate::chat::Unreadables { rx })
    }
    /// Receives what changes in this account's groups from now on: joins
    /// and departures, deletions, pins, join requests.
    pub async fn notices(&self) -> Result<Notices, Error> {
        let rx = self
            .inner
            .pipeline
            .send(AddNotices { capacity: 1024 })
            .await??;
        Ok(Notices { rx })
    }
    pub(crate) async fn group_invite(&self, group: GroupId, admit: bool) -> Result<String, Error> {
        let (code, effects) = self
            .groups_stage()?
            .create_invite
            .send(murmur_core::groups::CreateInvite { group, admit })
            .await??;
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(code)
    }
    pub(crate) async fn group_requests(&self, group: GroupId) -> Result<Vec<AccountId>, Error> {
        Ok(self
            .groups_stage()?
            .requests
            .send(murmur_core::groups::Requests(group))
            .await??)
    }
    /// A group this device knows (see [`Node::groups`]).
    pub fn group(&self, id: GroupId) -> Group {
        Group::new(self.clone(), id)
    }
    /// Every group this device knows, with its members, including those
    /// this account has left.
    pub async fn groups(&self) -> Result<Vec<Summary>, Error> {
        Ok(self
            .groups_stage()?
            .list
            .send(murmur_core::groups::List)
            .await??)
    }
    pub(crate) async fn group_info(&self, id: GroupId) -> Result<Summary, Error> {
        Ok(self
            .groups_stage()?
            .info
            .send(murmur_core::groups::Info(id))
            .await??)
    }
    pub(crate) async fn change_group(
        &self,
        group: GroupId,
        action: murmur_core::groups::Action,
    ) -> Result<(), Error> {
        let effects = self
            .groups_stage()?
            .change
            .send(murmur_core::groups::Change { group, action })
            .await??;
        // Published (or durably queued) before this returns: keys handed
        // over before anything is sent on them.
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(())
    }
    pub(crate) async fn send_group(
        &self,
        group: GroupId,
        channel: Option<&str>,
        id: Option<crate::chat::MessageId>,
        body: Body,
    ) -> Result<Sent, Error> {
        let outgoing = crate::chat::Outgoing::new(crate::chat::Target::Group(group), body);
        let body = self.inner.pipeline.send(ChatOutbound(outgoing)).await??;
        let id = id.unwrap_or_else(crate::chat::random_id);
        let earlier = self
            .inner
            .pipeline
            .send(crate::pipeline::GroupEarlier { group, id })
            .await?;
        let plaintext = crate::chat::encode_group(id, channel, &body, &earlier);
        // Sealed with those that wait beside it; a channel's message
        // alone, in its turn: the membership stage checks that its channel
        // is open on the plaintext's own channel.
        let outcome = self
            .inner
            .pipeline
            .send(crate::pipeline::SendGroup {
                group,
                plaintext,
                alone: channel.is_some(),
            })
            .await??;
        let (tx, rx) = tokio::sync::watch::channel(DeliveryState::Queued);
        outcome.follow(std::sync::Arc::new(tx));
        Ok(Sent::new(id, rx))
    }
    /// Reads what the application saved under `key` with
    /// [`Node::save_app_state`].
    pub async fn load_app_state(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .inner
            .storage
            .load_state
            .send(storage::LoadState(crate::handle::app_state_name(key)))
            .await??)
    }
    /// Keeps `value` under `key` in the node's database (`None` deletes
    /// it), beside the node's own state but never mixed with it. Stored as
    /// given: seal what must stay secret at rest.
    pub async fn save_app_state(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), Error> {
        Ok(self
            .inner
            .storage
            .save_state
            .send(storage::SaveState(vec![(
                crate::handle::app_state_name(key),
                value,
            )]))
            .await??)
    }
    /// The membership stage's counters.
    pub fn group_metrics(&self) -> &crate::groups::Metrics {
        &self.inner.group_metrics
    }
    /// The durable inbox as subscriber `name` reads it: every chat message
    /// at least once, from the position `name` saved (from the oldest kept,
    /// the first time), across restarts and crashes. See
    /// [`crate::chat::Durable`].
    pub async fn durable_inbox(&self, name: &str) -> Result<crate::chat::Durable, Error> {
        crate::chat::Durable::chat(self, name, SUBSCRIBER_QUEUE).await
    }
    /// Forgets durable subscriber `name`, of the chat inbox and of raw
    /// topics: its position goes, and with it what the inboxes kept only
    /// for it (what it asked to be kept is kept on, by its topics, until
    /// the next start).
    pub async fn forget_durable(&self, name: &str) -> Result<(), Error> {
        if let Some(shelf) = self.inner.inbox.as_ref() {
            shelf.forget(name).await?;
            let forgotten = Position(Which::Chat, name.to_owned(), None);
            self.inner.pipeline.send(forgotten).await?;
        }
        self.inner.raw.forget(name).await?;
        let forgotten = Position(Which::Raw, name.to_owned(), None);
        self.inner.pipeline.send(forgotten).await?;
        Ok(())
    }
    /// Receives the chat messages that arrive from now on, decrypted, with
    /// their verified sender. Nothing is kept for it: a message that comes
    /// while its queue is full is missed (counted in the log), and nothing
    /// is handed again after a restart. [`Node::durable_inbox`] is the
    /// subscriber that loses nothing.
    pub async fn inbox(&self) -> Result<Inbox, Error> {
        let rx = self
            .inner
            .pipeline
            .send(AddInbox {
                capacity: SUBSCRIBER_QUEUE,
            })
            .await??;
        Ok(Inbox { rx })
    }
    /// Fetches from the store node at `peer` (an address ending in
    /// `/p2p/<peer id>`) what arrived on this account's chat topics since
    /// `since` (nanoseconds since the Unix epoch; `None` for everything the
    /// store keeps), and passes it through the pipeline like relay traffic:
    /// archived by hash first, so nothing is delivered twice, then opened
    /// and delivered to the inboxes in the store's order. Answers how many
    /// messages the store returned.
    pub async fn catch_up(&self, peer: &str, since: Option<i64>) -> Result<usize, Error> {
        let crypto = self.chat()?;
        let topics = crypto.topics.send(murmur_core::crypto::Topics).await??;
        let mut fetched = self.catch_up_topics(peer, since, &topics).await?;
        // Groups after the pairwise topics: the keys a group's messages
        // need come in pairwise sessions.
        let groups = self
            .groups_stage()?
            .topics
            .send(murmur_core::groups::Topics)
            .await??;
        fetched += self.catch_up_topics(peer, since, &groups).await?;
        Ok(fetched)
    }
    pub(crate) async fn catch_up_topics(
        &self,
        peer: &str,
        since: Option<i64>,
        topics: &[ContentTopic],
    ) -> Result<usize, Error> {
        let mut fetched = 0;
        for (shard, content_topics) in self.by_shard(topics) {
            let content_topics = content_topics
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect();
            let ask = murmur_core::sync::CatchUp::new(shard, content_topics)
                .since(since)
                .from_store(peer);
            fetched += self.inner.sync.catch_up.send(ask).await??;
        }
        Ok(fetched)
    }
    /// Publishes this device's bundle (signed, without one-time prekeys) on
    /// its account's bundle topic, where store nodes keep it for contacts
    /// ([`Node::refresh_contact`]). The node does this by itself every six
    /// hours; answers the bundle's publication.
    ///
    /// The revocations of this account's devices go beside it, first, so
    /// that whoever fetches the account's bundles learns them before it
    /// could learn a revoked device there.
    pub async fn publish_bundle(&self) -> Result<crate::Publication, Error> {
        let crypto = self.chat()?;
        let (topic, bundle) = crypto
            .own_bundle
            .send(murmur_core::crypto::OwnBundle)
            .await??;
        let (account, _) = self.chat_identity().await?;
        let revocations = crypto
            .revocations
            .send(murmur_core::crypto::Revocations(account))
            .await??;
        for revocation in revocations {
            let message = WakuMessage::new(topic.as_str(), revocation)
                .with_timestamp(murmur_core::now_nanos());
            self.publish(self.pubsub_topic(&topic), message).await?;
        }
        let message =
            WakuMessage::new(topic.as_str(), bundle).with_timestamp(murmur_core::now_nanos());
        self.publish(self.pubsub_topic(&topic), message).await
    }
    /// Fetches the bundles `account`'s devices published from the store node
    /// at `peer`, and keeps those newer than what this node knows (a
    /// rotated signed prekey, a new device). Enough to write to an account
    /// known only by its id. Answers how many bundles were kept.
    pub async fn refresh_contact(&self, peer: &str, account: AccountId) -> Result<usize, Error> {
        let crypto = self.chat()?;
        let topic = crypto
            .bundle_topic
            .send(murmur_core::crypto::BundleTopic(account))
            .await??;
        let mut query = murmur_core::store::Query::content(
            Some(self.pubsub_topic(&topic)),
            vec![topic.as_str().to_owned()],
        );
        let mut bundles = Vec::new();
        loop {
            let page = self.query_store(peer, query.clone()).await?;
            bundles.extend(
                page.messages
                    .into_iter()
                    .filter_map(|m| m.message.map(|m| m.payload)),
            );
            match page.cursor {
                Some(cursor) => query = query.with_cursor(Some(cursor)),
                None => break,
            }
        }
        let before = self.revoked_devices(account).await?;
        let kept = crypto
            .learn_bundles
            .send(murmur_core::crypto::LearnBundles { account, bundles })
            .await??;
        // A device revoked on the topic held this account's group chains
        // if it was in a group with it: its chain goes, and new ones go to
        // the members that remain, as for a revocation inside a session.
        if let Ok(groups) = self.groups_stage() {
            for device in self.revoked_devices(account).await?.difference(&before) {
                let effects = groups
                    .revoked
                    .send(murmur_core::groups::Revoked {
                        account,
                        device: *device,
                    })
                    .await??;
                self.inner.pipeline.send(ApplyEffects(effects)).await??;
            }
        }
        Ok(kept)
    }
    /// The devices of `account` this node knows to be revoked.
    async fn revoked_devices(
        &self,
        account: AccountId,
    ) -> Result<std::collections::BTreeSet<DeviceId>, Error> {
        Ok(self
            .chat()?
            .revocations
            .send(murmur_core::crypto::Revocations(account))
            .await??
            .iter()
            .filter_map(|r| murmur_crypto::Revocation::from_bytes(r).ok())
            .map(|r| DeviceId(r.device.0))
            .collect())
    }
    /// The crypto stage's counters.
    pub fn crypto_metrics(&self) -> &crate::crypto::Metrics {
        &self.inner.crypto_metrics
    }
}
