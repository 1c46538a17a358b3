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
            if act.installation.maintain(now()) {
                let saves = vec![act.sealed_installation()];
                let save = act.storage.save_state.clone();
                ctx.spawn(
                    async move {
                        if let Ok(Err(e)) = save.send(storage::SaveState(saves)).await {
                            tracing::warn!(error = %e, "prekeys not saved");
                        }
                    }
                    .into_actor(act),
                );
            }
        });
    }
}

impl Supervised for Crypto {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("crypto stage restarting");
        self.reload = true;
    }
}

impl supervise::Restartable for Crypto {
    const NAME: &'static str = "crypto";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Crypto);

impl Handler<Seal> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, msg: Seal, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.seal(msg.to, &msg.plaintext));
        self.respond(outcome)
    }
}

impl Handler<Open> for Crypto {
    type Result = supervise::Reply<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.open(&delivery.message.payload));
        self.respond(outcome)
    }
}

impl Handler<AddContact> for Crypto {
    type Result = supervise::Reply<Self, Result<AccountId, Error>>;

    fn handle(&mut self, AddContact(code): AddContact, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.add_contact(&code));
        self.respond(outcome)
    }
}

impl Handler<ContactCode> for Crypto {
    type Result = Result<String, Error>;

    fn handle(&mut self, _: ContactCode, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            // No one-time prekeys: a code is for many people, the first
            // would use each up.
            let bundle = act.installation.bundle_with(now(), 0);
            format!(
                "{CODE_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bundle.to_bytes())
            )
        })
        .map_err(Error::from)
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
            let bundle = act.installation.bundle_with(now(), 0);
            (
                act.bundle_topic_of(act.account()),
                Bytes::from(bundle.to_bytes()),
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
        let outcome = supervise::guard(self, ctx, |act, _| Ok(act.learn_bundles(&msg)));
        self.respond(outcome)
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
        supervise::guard(self, ctx, |act, _| act.pairing_code())?
    }
}

impl Handler<Pair> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Pair(code): Pair, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.pair(&code));
        self.respond(outcome)
    }
}

impl Handler<Revoke> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Revoke(device): Revoke, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.revoke(device));
        self.respond(outcome)
    }
}

impl Handler<Bundles> for Crypto {
    type Result = Result<Vec<Bytes>, Error>;

    fn handle(&mut self, Bundles(account): Bundles, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let own = (account == act.account())
                .then(|| Bytes::from(act.installation.bundle_with(now(), 0).to_bytes()));
            let known = act
                .contacts
                .get(&account)
                .into_iter()
                .flat_map(|devices| devices.values())
                .filter(|b| device_id(b.device()) != act.device())
                .map(|b| Bytes::from(b.to_bytes()));
            own.into_iter().chain(known).collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<SignEvent> for Crypto {
    type Result = Result<[u8; 64], Error>;

    fn handle(&mut self, SignEvent(bytes): SignEvent, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let account = act.account.as_ref().ok_or(Error::NotPrimary)?;
            account.sign_group_event(&bytes).ok_or(Error::NotSignable)
        })?
    }
}

impl Handler<Devices> for Crypto {
    type Result = Result<Vec<DeviceId>, Error>;

    fn handle(&mut self, Devices(account): Devices, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let me = (act.account(), act.device());
            let mut devices: Vec<DeviceId> = act
                .everyone()
                .into_iter()
                .filter(|p| p.0 == account && *p != me)
                .map(|p| p.1)
                .collect();
            devices.dedup();
            devices
        })
        .map_err(Error::from)
    }
}

impl Crypto {
    /// Whether this device holds its account's key (the first device does;
    /// a paired one need not).
    pub fn holds_account_key(&self) -> bool {
        self.account.is_some()
    }
}
