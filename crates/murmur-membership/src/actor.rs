//! The actor: supervision and the stage's messages.

use super::*;

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        if std::mem::take(&mut self.reload) {
            self.reload(ctx);
        }
    }
}

impl Supervised for Membership {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("membership stage restarting");
        self.forget_unwritten();
        self.reload = true;
    }
}

impl supervise::Restartable for Membership {
    const NAME: &'static str = "membership";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Membership);

impl Handler<Create> for Membership {
    type Result = supervise::Reply<Self, Result<(GroupId, Effects), Error>>;

    fn handle(&mut self, msg: Create, ctx: &mut Context<Self>) -> Self::Result {
        supervise::staged(self, ctx, |this, _| {
            if msg.name.len() > murmur_groups::MAX_NAME {
                return Box::pin(fut::ready(now(Err(Error::Forbidden(format!(
                    "a group name is at most {} bytes",
                    murmur_groups::MAX_NAME
                ))))));
            }
            let crypto = this.crypto.clone();
            let max_skip = this.max_skip;
            let sign = async move {
                let me = crypto
                    .identity
                    .send(crypto::Identity)
                    .await
                    .map_err(state_error)??;
                let unsigned = murmur_groups::Unsigned::create(member(me.0), &msg.name);
                let signature = crypto
                    .sign_event
                    .send(crypto::SignEvent(Bytes::from(unsigned.signed_bytes())))
                    .await
                    .map_err(state_error)??;
                Ok::<_, Error>((me, unsigned.sign(signature)))
            };
            Box::pin(sign.into_actor(this).map(move |signed, act, ctx| {
                let created = signed.and_then(|(me, create)| {
                    Group::create((member(me.0), me.1 .0), create, max_skip)
                        .map_err(|e| Error::InvalidEvent(e.to_string()))
                });
                let result = created.map(|(group, _)| {
                    let id = gid(group.id());
                    act.insert_group(group);
                    id
                });
                match result {
                    Ok(id) => {
                        let mut effects = Effects::default();
                        effects.subscribe.push(group_topic(id));
                        act.persist(id, true, (id, effects), ctx)
                    }
                    Err(e) => now(Err(e)),
                }
            }))
        })
    }
}

impl Handler<Change> for Membership {
    type Result = supervise::Reply<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Change, ctx: &mut Context<Self>) -> Self::Result {
        supervise::staged(self, ctx, |this, _| match log_action(msg.action) {
            Ok(action) => {
                if let murmur_groups::Action::Add(m) = &action {
                    if let Some(r) = this.requests.get_mut(&msg.group) {
                        r.remove(&account(*m));
                    }
                }
                this.author(msg.group, action)
            }
            Err(e) => Box::pin(fut::ready(now(Err(e)))),
        })
    }
}

impl Handler<CreateInvite> for Membership {
    type Result = supervise::Reply<Self, Result<(String, Effects), Error>>;

    fn handle(&mut self, msg: CreateInvite, ctx: &mut Context<Self>) -> Self::Result {
        supervise::staged(self, ctx, |this, _| {
            let id = msg.group;
            let crypto = this.crypto.clone();
            let checked = this.group(id).map(|g| g.state().clone());
            let code = async move {
                let state = checked?;
                let me = crypto
                    .identity
                    .send(crypto::Identity)
                    .await
                    .map_err(state_error)??;
                if !state
                    .role(&member(me.0))
                    .is_some_and(murmur_groups::Role::is_admin)
                {
                    return Err(Error::Forbidden("only admins make invite codes".to_owned()));
                }
                let bundles = crypto
                    .bundles
                    .send(crypto::Bundles(me.0))
                    .await
                    .map_err(state_error)??;
                Ok::<_, Error>(Invite {
                    group: murmur_groups::EventId(id.0),
                    admin: member(me.0),
                    secret: msg.admit.then(rand::random::<[u8; 32]>),
                    bundles: bundles.into_iter().map(|b| b.to_vec()).collect(),
                })
            };
            Box::pin(
                code.into_actor(this)
                    .then(move |invite, act, _| match invite {
                        Ok(invite) => {
                            let code = invite.encode();
                            match invite.secret {
                                Some(secret) => act
                                    .author(
                                        id,
                                        murmur_groups::Action::Invite(invite::hash(&secret)),
                                    )
                                    .map(move |effects, _, _| -> Later<_> {
                                        Box::pin(async move { effects.await.map(|e| (code, e)) })
                                    })
                                    .boxed_local(),
                                None => {
                                    fut::ready(now(Ok((code, Effects::default())))).boxed_local()
                                }
                            }
                        }
                        Err(e) => fut::ready(now(Err(e))).boxed_local(),
                    }),
            )
        })
    }
}

impl Handler<Join> for Membership {
    type Result = Result<(GroupId, Effects), Error>;

    fn handle(&mut self, Join(code): Join, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |_, _| {
            let invite = Invite::decode(&code).map_err(|e| Error::Malformed(e.to_string()))?;
            let admin = account(invite.admin);
            let mut effects = Effects::default();
            effects
                .learn
                .push((admin, invite.bundles.into_iter().map(Bytes::from).collect()));
            let request = Content {
                id: rand::random::<[u8; 16]>().to_vec(),
                sent_at: now_millis(),
                group: Some(GroupControl {
                    group: invite.group.0.to_vec(),
                    join: Some(JoinRequest {
                        secret: invite.secret.map(|s| s.to_vec()),
                    }),
                    ..GroupControl::default()
                }),
                ..Content::default()
            };
            effects
                .pairwise
                .push((admin, Bytes::from(request.encode_to_vec())));
            Ok((gid(invite.group), effects))
        })?
    }
}

impl Handler<Requests> for Membership {
    type Result = Result<Vec<AccountId>, Error>;

    fn handle(&mut self, Requests(id): Requests, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.requests
                .get(&id)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default()
        })
        .map_err(Error::from)
    }
}

impl Handler<Revoked> for Membership {
    type Result = supervise::Reply<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Revoked, ctx: &mut Context<Self>) -> Self::Result {
        supervise::detached(self, ctx, |this, ctx| {
            let owner = (member(msg.account), msg.device.0);
            let mut effects = Effects::default();
            let mut changed = Vec::new();
            for (id, group) in &mut this.groups {
                let e = group.revoke(owner);
                changed.push(*id);
                if e.rotated {
                    let chain = group.chain_key().map(|k| k.to_bytes().to_vec());
                    for m in e.chain_to {
                        effects.pairwise.push((
                            account(m),
                            control_message(*id, Vec::new(), chain.clone(), Vec::new()),
                        ));
                    }
                }
            }
            this.persist_all(&changed, false, None, effects, ctx)
        })
    }
}

impl Handler<Control> for Membership {
    type Result = supervise::Reply<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) -> Self::Result {
        supervise::staged(self, ctx, |this, _| {
            Box::pin(this.me().into_actor(this).then(move |me, act, _| {
                let applied = me.and_then(|me| act.apply_control(&msg, me));
                let shipments = std::mem::take(&mut act.shipments);
                match applied {
                    Ok((id, effects)) => {
                        let crypto = act.crypto.clone();
                        let gather = async move {
                            let mut more = Vec::new();
                            for s in shipments {
                                more.extend(s.messages(crypto.clone()).await);
                            }
                            more
                        };
                        gather
                            .into_actor(act)
                            .map(move |more, act, ctx| {
                                let mut effects = effects;
                                effects.pairwise.extend(more);
                                act.persist(id, true, effects, ctx)
                            })
                            .boxed_local()
                    }
                    Err(e) => fut::ready(now(Err(e))).boxed_local(),
                }
            }))
        })
    }
}

impl Handler<Post> for Membership {
    type Result = supervise::Reply<Self, Result<Sealed, Error>>;

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) -> Self::Result {
        let started = std::time::Instant::now();
        supervise::detached(self, ctx, |this, ctx| {
            // Padded here, to this stage's size buckets. Only what is exactly
            // a chat content (it reads back to the same bytes) is padded:
            // other bytes go as they are.
            let content = Content::decode(msg.plaintext.as_ref())
                .ok()
                .filter(|c| c.encode_to_vec() == msg.plaintext.as_ref());
            let channel = content.as_ref().and_then(|c| c.channel.clone());
            // With this device's log heads: a member that lacks one asks
            // for the log.
            let heads: Vec<Vec<u8>> = this
                .groups
                .get(&msg.group)
                .map(|g| {
                    g.log()
                        .heads()
                        .take(MAX_HEADS)
                        .map(|h| h.0.to_vec())
                        .collect()
                })
                .unwrap_or_default();
            let plaintext = content.map_or_else(
                || msg.plaintext.to_vec(),
                |mut c| {
                    c.heads = heads;
                    pad(c)
                },
            );
            let sealed = this.group(msg.group).and_then(|group| {
                if let Some(channel) = &channel {
                    if !group.state().channels.contains(channel) {
                        return Err(Error::Forbidden(format!("no channel #{channel}")));
                    }
                }
                group
                    .seal(&plaintext)
                    .map_err(|_| Error::NotMember(msg.group))
            });
            match sealed {
                Ok(payload) => {
                    this.metrics.posted.inc();
                    let sealed = Sealed::new(group_topic(msg.group), Bytes::from(payload));
                    let written = this.persist(msg.group, false, sealed, ctx);
                    timed(this.metrics.post_seconds.clone(), started, written)
                }
                Err(e) => now(Err(e)),
            }
        })
    }
}

impl Handler<Open> for Membership {
    type Result = supervise::Reply<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, ctx: &mut Context<Self>) -> Self::Result {
        let started = std::time::Instant::now();
        supervise::detached(self, ctx, |this, ctx| {
            let opened = this
                .topics
                .get(&delivery.message.content_topic)
                .copied()
                // A group this device is not in (yet): the pipeline keeps it a
                // while, in case the invite is on its way.
                .ok_or(Error::UnknownChain)
                .and_then(|id| {
                    let group = this.group(id)?;
                    let opened = group.open(&delivery.message.payload).map_err(|e| match e {
                        OpenError::UnknownChain => Error::UnknownChain,
                        OpenError::Own => Error::Own,
                        OpenError::NotMember => Error::NotMember(id),
                        OpenError::Chain(murmur_crypto::group::GroupError::Replay(_)) => Error::Replay,
                        OpenError::Chain(
                            e @ murmur_crypto::group::GroupError::TooFarAhead { .. },
                        ) => Error::TooFarAhead(e.to_string()),
                        other => Error::Malformed(other.to_string()),
                    })?;
                    let state = group.state();
                    let role = state.role(&opened.sender).map_or(Role::Member, role_of);
                    // What the log deleted stays deleted, whenever a copy comes;
                    // a channel that was never opened has no messages.
                    let mut missing = Vec::new();
                    let mut plaintext = opened.plaintext;
                    if let Ok(mut c) = Content::decode(plaintext.as_slice()) {
                        if <[u8; 16]>::try_from(c.id.as_slice()).is_ok_and(|m| state.deleted.contains(&m)) {
                            return Err(Error::Deleted);
                        }
                        if c.channel.as_ref().is_some_and(|ch| !state.channels.contains(ch)) {
                            return Err(Error::Malformed("a channel that is not open".to_owned()));
                        }
                        if let Some(kept) = batch::unbatch(&mut c, &state.deleted)? {
                            plaintext = kept;
                        }
                        missing = c
                            .heads
                            .iter()
                            .take(MAX_HEADS)
                            .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
                            .map(murmur_groups::EventId)
                            .filter(|h| !group.log().holds(h))
                            .collect();
                    }
                    let sender = account(opened.sender);
                    let mut effects = Effects::default();
                    if this.ask_for(id, missing) {
                        this.metrics.pulled.inc();
                        effects.pairwise.push((sender, want_message(id)));
                    }
                    Ok(Opened::new(
                        id,
                        sender,
                        DeviceId(opened.device),
                        role,
                        Bytes::from(plaintext),
                    )
                    .with_effects(effects))
                });
            match opened {
                Ok(opened) => {
                    this.metrics.opened.inc();
                    let kept = journal::record(&this.vault, &delivery.hash, &opened);
                    let written = this.persist_all(&[opened.group], false, Some(kept), opened, ctx);
                    timed(this.metrics.open_seconds.clone(), started, written)
                }
                // Not refused: its own, handled when it was sent.
                Err(Error::Own) => now(Err(Error::Own)),
                Err(e) => {
                    this.metrics.refuse(match e {
                        Error::UnknownChain => "unknown_chain",
                        Error::Replay => "replay",
                        Error::Deleted => "deleted",
                        Error::NotMember(_) => "not_member",
                        _ => "malformed",
                    });
                    now(Err(e))
                }
            }
        })
    }
}

impl Handler<RequestKey> for Membership {
    type Result = Result<Effects, Error>;

    fn handle(
        &mut self,
        RequestKey(delivery): RequestKey,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        supervise::guard(self, ctx, |this, _| this.request_key(&delivery))?
    }
}

impl Handler<Info> for Membership {
    type Result = supervise::Reply<Self, Result<Summary, Error>>;

    fn handle(&mut self, Info(id): Info, ctx: &mut Context<Self>) -> Self::Result {
        supervise::act_future(self, ctx, |this, _| {
            Box::pin(this.me().into_actor(this).map(move |me, act, _| {
                let me = me?;
                let group = act.groups.get(&id).ok_or(Error::UnknownGroup(id))?;
                Ok(act.summary(id, group, me.0))
            }))
        })
    }
}

impl Handler<List> for Membership {
    type Result = supervise::Reply<Self, Result<Vec<Summary>, Error>>;

    fn handle(&mut self, _: List, ctx: &mut Context<Self>) -> Self::Result {
        supervise::act_future(self, ctx, |this, _| {
            Box::pin(this.me().into_actor(this).map(move |me, act, _| {
                let me = me?;
                Ok(act
                    .groups
                    .iter()
                    .filter(|(_, g)| g.log().events().next().is_some())
                    .map(|(id, g)| act.summary(*id, g, me.0))
                    .collect())
            }))
        })
    }
}

impl Handler<Topics> for Membership {
    type Result = Result<Vec<ContentTopic>, Error>;

    fn handle(&mut self, _: Topics, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.groups
                .iter()
                .filter(|(_, g)| g.is_member())
                .map(|(id, _)| group_topic(*id))
                .collect()
        })
        .map_err(Error::from)
    }
}
