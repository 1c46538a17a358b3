//! The actor: supervision and the stage's messages.

use super::*;

impl Actor for Crypto {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        if std::mem::take(&mut self.reload) {
            self.reload(ctx);
        }
        // Rotate the signed prekey and top one-time prekeys up, hourly.
        ctx.run_interval(std::time::Duration::from_secs(3600), |act, ctx| {
            let saves = act.device.maintain(now());
            // In the order of every save: each group's tip record lands
            // after the group before it.
            if let supervise::Reply::Detached(save) = act.persist(saves, (), ctx) {
                actix::spawn(async move {
                    if let Err(e) = save.await {
                        tracing::warn!(error = %e, "prekeys not saved");
                    }
                });
            }
        });
    }
}

impl Supervised for Crypto {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("crypto stage restarting");
        self.reload = true;
        self.forget_unwritten();
    }
}

impl supervise::Restartable for Crypto {
    const NAME: &'static str = "crypto";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Crypto);

impl Handler<Reset> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, msg: Reset, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let peer = (
                murmur_crypto::AccountId(msg.account.0),
                murmur_crypto::DeviceId(msg.device.0),
            );
            let (out, saves) = act.on_device(|d, now| d.reset(peer, now))?;
            if !out.is_empty() {
                act.metrics.resets.inc();
            }
            act.metrics.sealed.inc_by(out.len() as u64);
            Ok((act.sealed(out), saves))
        });
        let reply = self.respond(outcome, ctx);
        self.in_turn(reply)
    }
}

impl Handler<AddContact> for Crypto {
    type Result = supervise::Reply<Self, Result<AccountId, Error>>;

    fn handle(&mut self, AddContact(code): AddContact, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let (account, saves) = act.on_device(|d, now| d.add_contact(&code, now))?;
            Ok((account_id(account), saves))
        });
        self.respond(outcome, ctx)
    }
}

impl Handler<ContactCode> for Crypto {
    type Result = Result<String, Error>;

    fn handle(&mut self, _: ContactCode, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| act.device.contact_code(now())).map_err(Error::from)
    }
}

impl Handler<Topics> for Crypto {
    type Result = Result<Vec<ContentTopic>, Error>;

    fn handle(&mut self, _: Topics, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| vec![act.topic_of(act.account())]).map_err(Error::from)
    }
}

impl Handler<OwnBundle> for Crypto {
    type Result = Result<(ContentTopic, Bytes), Error>;

    fn handle(&mut self, _: OwnBundle, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            (
                act.bundle_topic_of(act.account()),
                Bytes::from(act.device.bundle(now()).to_bytes()),
            )
        })
        .map_err(Error::from)
    }
}

impl Handler<BundleTopic> for Crypto {
    type Result = Result<ContentTopic, Error>;

    fn handle(
        &mut self,
        BundleTopic(account): BundleTopic,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        supervise::guard(self, ctx, |act, _| act.bundle_topic_of(account)).map_err(Error::from)
    }
}

impl Handler<LearnBundles> for Crypto {
    type Result = supervise::Reply<Self, Result<usize, Error>>;

    fn handle(&mut self, msg: LearnBundles, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let account = murmur_crypto::AccountId(msg.account.0);
            act.on_device(|d, now| Ok(d.learn_bundles(account, &msg.bundles, now)))
        });
        self.respond(outcome, ctx)
    }
}

impl Handler<Identity> for Crypto {
    type Result = Result<(AccountId, DeviceId), Error>;

    fn handle(&mut self, _: Identity, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| (act.account(), act.device())).map_err(Error::from)
    }
}

impl Handler<PairingCode> for Crypto {
    type Result = Result<String, Error>;

    fn handle(&mut self, _: PairingCode, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.on_device(|d, now| d.pairing_code(now))
        })?
    }
}

impl Handler<Pair> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Pair(code): Pair, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let (out, saves) = act.on_device(|d, now| d.pair(&code, now))?;
            Ok((act.sealed(out), saves))
        });
        let reply = self.respond(outcome, ctx);
        self.in_turn(reply)
    }
}

impl Handler<Revoke> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Revoke(device): Revoke, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let device = murmur_crypto::DeviceId(device.0);
            let (out, saves) = act.on_device(|d, now| d.revoke(device, now))?;
            Ok((act.sealed(out), saves))
        });
        let reply = self.respond(outcome, ctx);
        self.in_turn(reply)
    }
}

impl Handler<Bundles> for Crypto {
    type Result = Result<Vec<Bytes>, Error>;

    fn handle(&mut self, Bundles(account): Bundles, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.device
                .bundles(murmur_crypto::AccountId(account.0), now())
                .into_iter()
                .map(Bytes::from)
                .collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<SignEvent> for Crypto {
    type Result = Result<[u8; 64], Error>;

    fn handle(&mut self, SignEvent(bytes): SignEvent, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.device.sign_group_event(&bytes).map_err(contract_error)
        })?
    }
}

impl Handler<Devices> for Crypto {
    type Result = Result<Vec<DeviceId>, Error>;

    fn handle(&mut self, Devices(account): Devices, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.device
                .devices_of(murmur_crypto::AccountId(account.0))
                .into_iter()
                .map(device_id)
                .collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<Revocations> for Crypto {
    type Result = Result<Vec<Bytes>, Error>;

    fn handle(
        &mut self,
        Revocations(account): Revocations,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.device
                .revocations_of(murmur_crypto::AccountId(account.0))
                .into_iter()
                .map(Bytes::from)
                .collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<Requests> for Crypto {
    type Result = Result<Vec<AccountId>, Error>;

    fn handle(&mut self, _: Requests, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.device.requests().into_iter().map(account_id).collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<Contacts> for Crypto {
    type Result = Result<Vec<AccountId>, Error>;

    fn handle(&mut self, _: Contacts, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            act.device.contacts().into_iter().map(account_id).collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<Accept> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Accept(account): Accept, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let account = murmur_crypto::AccountId(account.0);
            let (out, saves) = act.on_device(|d, now| d.accept(account, now))?;
            Ok((act.sealed(out), saves))
        });
        let reply = self.respond(outcome, ctx);
        self.in_turn(reply)
    }
}

impl Handler<Decline> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, msg: Decline, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| {
            let account = murmur_crypto::AccountId(msg.account.0);
            let (out, saves) = act.on_device(|d, now| {
                if msg.block {
                    d.block(account, now)
                } else {
                    d.decline(account).map(|saves| (Vec::new(), saves))
                }
            })?;
            Ok((act.sealed(out), saves))
        });
        let reply = self.respond(outcome, ctx);
        self.in_turn(reply)
    }
}

impl Crypto {
    /// Whether this device holds its account's key (the first device does;
    /// a paired one need not).
    pub fn holds_account_key(&self) -> bool {
        self.device.holds_account_key()
    }
}
