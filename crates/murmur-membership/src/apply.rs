//! Changes to a group: this account's own (signed through the crypto
//! stage), and those members send in pairwise sessions (events, chain keys,
//! join requests, key requests).

use std::time::Instant;

use murmur_groups::AnswerError;

use super::*;

/// What the author of a change must gather before applying it.
pub(crate) struct Prepared {
    pub(crate) me: (AccountId, DeviceId),
    pub(crate) event: murmur_groups::Event,
    /// Bundles of every account involved: the members and the joiner.
    pub(crate) bundles: BTreeMap<AccountId, Vec<Bytes>>,
}

impl Membership {
    /// Signs `action` with the account key (through the crypto stage),
    /// applies it, persists the group, and answers who must hear of it.
    pub(crate) fn author(
        &mut self,
        id: GroupId,
        action: murmur_groups::Action,
    ) -> ResponseActFuture<Self, Later<Result<Effects, Error>>> {
        let metrics = self.metrics.clone();
        let prepared = self.group(id).and_then(|group| {
            let mut involved: BTreeSet<AccountId> =
                group.state().members.keys().map(|m| account(*m)).collect();
            if let murmur_groups::Action::Add(m) = &action {
                involved.insert(account(*m));
            }
            let why = refusal(&action);
            let unsigned = group.prepare(action);
            // Refused before it is signed: a refused event in our own log
            // would be cited by our next events, which others could then
            // never place.
            if !group.allows(&unsigned) {
                metrics.refuse("unauthorized");
                return Err(Error::Forbidden(why.to_owned()));
            }
            Ok((unsigned, involved))
        });
        let crypto = self.crypto.clone();
        let gather = async move {
            let (unsigned, involved) = prepared?;
            let me = crypto
                .identity
                .send(crypto::Identity)
                .await
                .map_err(state_error)??;
            if unsigned.author() != member(me.0) {
                return Err(Error::State(
                    "the account changed since the group was joined".to_owned(),
                ));
            }
            let signature = crypto
                .sign_event
                .send(crypto::SignEvent(Bytes::from(unsigned.signed_bytes())))
                .await
                .map_err(state_error)??;
            let mut bundles = BTreeMap::new();
            for a in involved {
                let b = crypto
                    .bundles
                    .send(crypto::Bundles(a))
                    .await
                    .map_err(state_error)??;
                bundles.insert(a, b);
            }
            Ok::<_, Error>(Prepared {
                me,
                event: unsigned.sign(signature),
                bundles,
            })
        };
        Box::pin(gather.into_actor(self).map(move |prepared, act, ctx| {
            match prepared.and_then(|p| act.apply_own(id, &p)) {
                Ok(effects) => act.persist(id, true, effects, ctx),
                Err(e) => now(Err(e)),
            }
        }))
    }
}

impl Membership {
    /// Applies this account's own signed event and answers who must hear of
    /// it: every member after it, and whoever it removed; a joiner gets
    /// the whole log and every member's bundles, the others the joiner's.
    pub(crate) fn apply_own(&mut self, id: GroupId, p: &Prepared) -> Result<Effects, Error> {
        let group = self.group(id)?;
        let before: BTreeSet<AccountId> =
            group.state().members.keys().map(|m| account(*m)).collect();
        let state_before = group.state().clone();
        let (_, effects) = group
            .insert(p.event.clone())
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let state = group.state();
        if state.rejected.len() > state_before.rejected.len() {
            // Signed and logged, but it changes nothing: say why, and tell
            // no one (a rejected event of ours is harmless in others' logs).
            let why = refusal(&p.event.action);
            self.metrics.refuse("unauthorized");
            return Err(Error::Forbidden(why.to_owned()));
        }
        let after: BTreeSet<AccountId> = state.members.keys().map(|m| account(*m)).collect();
        let chain = group.chain_key().map(|k| k.to_bytes().to_vec());
        let log = shipped(group.log());
        let me = p.me.0;
        let bundles_of = |accounts: &mut dyn Iterator<Item = &AccountId>| -> Vec<AccountBundles> {
            accounts
                .filter_map(|a| {
                    p.bundles.get(a).map(|b| AccountBundles {
                        account: a.0.to_vec(),
                        bundles: b.iter().map(|x| x.to_vec()).collect(),
                    })
                })
                .collect()
        };
        let joiners: BTreeSet<AccountId> = effects.added.iter().map(|m| account(*m)).collect();
        let mut out = Effects::default();
        out.notices = notices(id, &state_before, state);
        for to in before.union(&after).filter(|a| **a != me) {
            let gets_chain = effects.chain_to.contains(&member(*to));
            let chain = gets_chain.then(|| chain.clone()).flatten();
            if joiners.contains(to) {
                let others: Vec<&AccountId> = after.iter().filter(|a| *a != to).collect();
                for message in log_messages(id, &log, chain, bundles_of(&mut others.into_iter())) {
                    out.pairwise.push((*to, message));
                }
            } else {
                let message = control_message(
                    id,
                    vec![p.event.to_bytes()],
                    chain,
                    bundles_of(&mut joiners.iter()),
                );
                out.pairwise.push((*to, message));
            }
        }
        if !joiners.is_empty() {
            out.learn = joiners
                .iter()
                .filter_map(|a| p.bundles.get(a).map(|b| (*a, b.clone())))
                .collect();
        }
        Ok(out)
    }

    /// Applies what another device sent about a group.
    pub(crate) fn apply_control(
        &mut self,
        msg: &Control,
        me: (AccountId, DeviceId),
    ) -> Result<(GroupId, Effects), Error> {
        let c =
            Content::decode(msg.message.as_ref()).map_err(|e| Error::Malformed(e.to_string()))?;
        let control = c
            .group
            .ok_or_else(|| Error::Malformed("no group control".to_owned()))?;
        let id = GroupId(
            control
                .group
                .as_slice()
                .try_into()
                .map_err(|_| Error::Malformed("a group id is 32 bytes".to_owned()))?,
        );
        if let Some(join) = &control.join {
            return self
                .on_join_request(id, msg.from, me.0, join)
                .map(|e| (id, e));
        }
        if control.want {
            return self.on_want(id, msg.from).map(|e| (id, e));
        }
        if let Some(request) = &control.chain_request {
            return self
                .on_chain_request(id, msg.from, request)
                .map(|e| (id, e));
        }
        let max_skip = self.max_skip;
        let mut learn = Vec::new();
        for b in &control.bundles {
            if let Ok(a) = <[u8; 32]>::try_from(b.account.as_slice()) {
                learn.push((
                    AccountId(a),
                    b.bundles.iter().cloned().map(Bytes::from).collect(),
                ));
            }
        }
        let metrics = self.metrics.clone();
        let new = !self.groups.contains_key(&id);
        // A stranger makes this device keep nothing for a group it does not
        // know (not even an empty one holding a key: those are few, and a
        // stranger could fill them), and its events bring this account
        // into no group it is not in. The pipeline holds what is refused
        // here until the account is accepted, by the user or by a group's
        // introduction (a member's key can come before the invite).
        let member_already = self.groups.get(&id).is_some_and(|g| g.is_member());
        if msg.request && (new || (!member_already && !control.events.is_empty())) {
            metrics.refuse("not_accepted");
            return Err(Error::NotAccepted(msg.from));
        }
        if new && self.shells() >= MAX_SHELLS {
            metrics.refuse("not_member");
            return Err(Error::NotMember(id));
        }
        let group = self.groups.entry(id).or_insert_with(|| {
            Group::join(
                (member(me.0), me.1 .0),
                murmur_groups::EventId(id.0),
                max_skip,
            )
        });
        let was_member = group.is_member();
        let state_before = group.state().clone();
        let forks_before = group.log().equivocators().clone();
        let mut chain_to = BTreeSet::new();
        for bytes in &control.events {
            let event = match murmur_groups::Event::from_bytes(bytes) {
                Ok(e) => e,
                Err(_) => {
                    metrics.refuse("malformed");
                    continue;
                }
            };
            match group.insert(event) {
                Ok((_, effects)) => {
                    for refused in &effects.refused_chains {
                        metrics.refuse(match refused {
                            murmur_groups::ChainError::NotOwn => "not_own_chain",
                            _ => "malformed",
                        });
                    }
                    if effects.removed {
                        tracing::info!(group = %id, "this account left or was removed from a group");
                    }
                    if effects.rotated {
                        chain_to.clone_from(&effects.chain_to);
                    } else {
                        chain_to.extend(effects.chain_to);
                    }
                }
                // A copy, or a member re-sending the log: nothing new.
                Err(murmur_groups::InsertError::Duplicate) => {}
                Err(e) => {
                    metrics.refuse("invalid_event");
                    tracing::debug!(group = %id, error = %e, "membership event refused");
                }
            }
        }
        if let Some(key) = &control.chain {
            let received = group.receive_chain((member(msg.from), msg.device.0), key);
            tracing::debug!(group = %id, me = %me.0, from = %msg.from, ?received, "a chain key handed over");
            match received {
                Ok(()) => {}
                Err(murmur_groups::ChainError::NotMember) => metrics.refuse("not_member"),
                Err(murmur_groups::ChainError::NotOwn) => metrics.refuse("not_own_chain"),
                Err(_) => metrics.refuse("malformed"),
            }
        }
        let is_member = group.is_member();
        let chain = group.chain_key().map(|k| k.to_bytes().to_vec());
        self.insert_topic(id);
        let mut effects = Effects::default();
        effects.learn = learn;
        if let Some(group) = self.groups.get(&id) {
            effects.notices = notices(id, &state_before, group.state());
            for m in group.log().equivocators().difference(&forks_before) {
                tracing::warn!(group = %id, "a member signed two diverging histories");
                metrics.equivocations.inc();
                effects.notices.push(Notice::Equivocated {
                    group: id,
                    account: account(*m),
                });
            }
        }
        // A key can come before the invite: the group was known (empty,
        // holding the key) before this device became a member.
        if is_member && !was_member {
            effects.subscribe.push(group_topic(id));
        }
        for m in chain_to {
            if account(m) != me.0 {
                effects.pairwise.push((
                    account(m),
                    control_message(id, Vec::new(), chain.clone(), Vec::new()),
                ));
            }
        }
        Ok((id, effects))
    }

    /// A member saw heads it lacks in a message of this device's and asks
    /// for the log: sent in chunks, to current members only (a removed
    /// member or a stranger learns nothing of the group from it).
    fn on_want(&mut self, id: GroupId, from: AccountId) -> Result<Effects, Error> {
        let group = self.groups.get(&id).ok_or(Error::UnknownGroup(id))?;
        if !group.state().members.contains_key(&member(from)) {
            self.metrics.refuse("not_member");
            return Err(Error::NotMember(id));
        }
        self.ship(id, from);
        Ok(Effects::default())
    }

    /// Sends `to` the log of group `id`, with the bundles of its members,
    /// once the Control handler gathered them (see [`Shipment`]).
    fn ship(&mut self, id: GroupId, to: AccountId) {
        let Some(group) = self.groups.get(&id) else {
            return;
        };
        self.metrics.served.inc();
        let me = group.me().0;
        self.shipments.push(Shipment {
            group: id,
            to,
            log: shipped(group.log()),
            members: group
                .state()
                .members
                .keys()
                .filter(|m| **m != me && account(**m) != to)
                .map(|m| account(*m))
                .collect(),
        });
    }

    /// A group message this device has no key for: every other member is
    /// asked for its chain, within the limits of [`crate::repair`].
    pub(crate) fn request_key(&mut self, delivery: &Delivery) -> Result<Effects, Error> {
        let mut effects = Effects::default();
        let Some(id) = self.topics.get(&delivery.message.content_topic).copied() else {
            return Ok(effects);
        };
        let Some(group) = self.groups.get(&id).filter(|g| g.is_member()) else {
            return Ok(effects);
        };
        let Some((chain, iteration)) = group.missing_chain(&delivery.message.payload) else {
            return Ok(effects);
        };
        let me = group.me().0;
        let members: Vec<AccountId> = group
            .state()
            .members
            .keys()
            .filter(|m| **m != me)
            .map(|m| account(*m))
            .collect();
        let heads = group
            .log()
            .heads()
            .take(MAX_HEADS)
            .map(|h| h.0.to_vec())
            .collect();
        let ask = self.repair.ask(id, chain, members, Instant::now());
        tracing::debug!(group = %id, me = %account(me), ?chain, iteration, asked = ask.len(), "a chain key missing");
        if ask.is_empty() {
            return Ok(effects);
        }
        self.metrics.keys_asked.inc();
        let request = chain_request_message(id, chain, iteration, heads);
        effects.pairwise = ask.into_iter().map(|a| (a, request.clone())).collect();
        Ok(effects)
    }

    /// A member could not read a message of `request.chain`: if the chain
    /// is this device's, its key from where the member joined it (see
    /// [`murmur_groups::Group::answer_chain`]) goes back to that member's
    /// devices.
    fn on_chain_request(
        &mut self,
        id: GroupId,
        from: AccountId,
        request: &ChainRequest,
    ) -> Result<Effects, Error> {
        let group = self.groups.get(&id).ok_or(Error::UnknownGroup(id))?;
        let chain = ChainId(
            request
                .chain
                .as_slice()
                .try_into()
                .map_err(|_| Error::Malformed("a chain id is 16 bytes".to_owned()))?,
        );
        let key = match group.answer_chain(member(from), chain, request.iteration) {
            Ok(key) => Some(key),
            Err(AnswerError::NotMember) => {
                self.metrics.refuse("not_member");
                return Err(Error::NotMember(id));
            }
            // Another member's chain: its owner answers.
            Err(AnswerError::NotOurs) => None,
        };
        // The asker lacks events this device holds (the one that made the
        // chain's owner a member, it may be): it gets the log too, or it
        // would not know whom to ask.
        let theirs: BTreeSet<&[u8]> = request.heads.iter().map(Vec::as_slice).collect();
        let behind = group
            .log()
            .heads()
            .any(|h| !theirs.contains(h.0.as_slice()));
        let mut effects = Effects::default();
        let answer =
            (key.is_some() || behind) && self.repair.answer(id, from, chain, Instant::now());
        tracing::debug!(group = %id, %from, ?chain, ours = key.is_some(), behind, answer, "a chain key asked for");
        if !answer {
            return Ok(effects);
        }
        if let Some(key) = key {
            self.metrics.keys_served.inc();
            effects.pairwise.push((
                from,
                control_message(id, Vec::new(), Some(key.to_bytes().to_vec()), Vec::new()),
            ));
        }
        if behind {
            self.ship(id, from);
        }
        Ok(effects)
    }

    /// A request to join, on an admin's device: admitted with a valid
    /// invite secret or in an open group, kept for approval in a group that
    /// asks for it, refused otherwise. Nothing is applied here: an admitted
    /// account is added by the pipeline through [`Change`].
    pub(crate) fn on_join_request(
        &mut self,
        id: GroupId,
        from: AccountId,
        me: AccountId,
        join: &JoinRequest,
    ) -> Result<Effects, Error> {
        let state = self.group(id)?.state();
        let secret = join.secret.as_deref();
        let admission = state
            .admission(&member(me), &member(from), secret)
            .map_err(|refused| {
                if !matches!(refused, invite::Refused::NotAdmin) {
                    self.metrics.refuse("unauthorized");
                }
                Error::Forbidden(refused.to_string())
            })?;
        let mut effects = Effects::default();
        match admission {
            Admission::Member => {}
            Admission::Admit => effects.admit.push((id, from)),
            Admission::Ask => {
                let waiting = self.requests.entry(id).or_default();
                if waiting.len() >= MAX_REQUESTS {
                    self.metrics.refuse("unauthorized");
                    return Err(Error::Forbidden("too many join requests wait".to_owned()));
                }
                if waiting.insert(from) {
                    effects.notices.push(Notice::Requested {
                        group: id,
                        account: from,
                    });
                }
            }
        }
        Ok(effects)
    }

    /// Groups known only from keys that came before their events.
    pub(crate) fn shells(&self) -> usize {
        self.groups
            .values()
            .filter(|g| g.log().events().next().is_none())
            .count()
    }

    pub(crate) fn insert_topic(&mut self, id: GroupId) {
        self.topics.insert(group_topic(id).as_str().to_owned(), id);
    }
}

/// A group's log for a member that lacks events (it asked for the log, or
/// for a key whose owner it did not know was a member), with its other
/// members: their bundles go in the first chunk, so that the member can
/// write to those it never met (to ask a newcomer for its key).
pub(crate) struct Shipment {
    group: GroupId,
    to: AccountId,
    log: Vec<Vec<u8>>,
    members: Vec<AccountId>,
}

impl Shipment {
    /// The control messages, once the members' bundles are asked of the
    /// crypto stage (a member whose bundles it cannot give goes without).
    pub(crate) async fn messages(self, crypto: crypto::Handle) -> Vec<(AccountId, Bytes)> {
        let mut bundles = Vec::new();
        for a in self.members {
            if let Ok(Ok(b)) = crypto.bundles.send(crypto::Bundles(a)).await {
                bundles.push(AccountBundles {
                    account: a.0.to_vec(),
                    bundles: b.iter().map(|x| x.to_vec()).collect(),
                });
            }
        }
        log_messages(self.group, &self.log, None, bundles)
            .into_iter()
            .map(|m| (self.to, m))
            .collect()
    }
}
