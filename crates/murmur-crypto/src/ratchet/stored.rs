//! A session's stored form: the whole state, versioned, kept (encrypted)
//! by whoever holds the session.

use super::*;

impl Session {
    /// The whole session state, versioned, to keep (encrypted) somewhere.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(SESSION_VERSION);
        w.bytes(&self.peer_account.0)
            .bytes(&self.peer_device.0)
            .var(&self.ad)
            .bytes(&self.root.0)
            .bytes(&self.ours.secret_bytes());
        match &self.theirs {
            Some(k) => w.u8(1).bytes(&k.0),
            None => w.u8(0),
        };
        for chain in [&self.send, &self.recv] {
            match chain {
                Some(c) => w.u8(1).bytes(&c.key.0).u32(c.index),
                None => w.u8(0),
            };
        }
        w.u32(self.previous);
        let live: Vec<_> = self
            .skipped_order
            .iter()
            .filter_map(|id| self.skipped.get(id).map(|mk| (id, mk)))
            .collect();
        w.u32(live.len() as u32);
        for (id, mk) in live {
            w.bytes(&id.0 .0).u32(id.1).bytes(&mk.0);
        }
        w.u32(self.retired.len() as u32);
        for k in &self.retired {
            w.bytes(&k.0);
        }
        w.u32(self.limits.max_skip)
            .u64(self.limits.max_stored as u64);
        match &self.pending {
            Some(p) => {
                w.u8(1);
                p.write(&mut w);
            }
            None => {
                w.u8(0);
            }
        }
        w.bytes(&self.peer_identity.0);
        w.finish()
    }

    /// Reads what [`Session::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "session", SESSION_VERSION)?;
        let peer_account = AccountId(r.array("peer account")?);
        let peer_device = DeviceId(r.array("peer device")?);
        let ad = r.var("associated data")?.to_vec();
        let root = Secret(r.array("root key")?);
        let ours = KeyPair::from_secret(r.array("ratchet key")?);
        let theirs = if r.bool("their ratchet key")? {
            Some(r.key("their ratchet key")?)
        } else {
            None
        };
        let chain = |r: &mut Reader<'_>| -> Result<Option<Chain>, DecodeError> {
            Ok(if r.bool("chain")? {
                Some(Chain {
                    key: Secret(r.array("chain key")?),
                    index: r.u32("chain index")?,
                })
            } else {
                None
            })
        };
        let send = chain(&mut r)?;
        let recv = chain(&mut r)?;
        let previous = r.u32("previous chain length")?;
        let n = r.count(68, "skipped keys")?;
        let mut skipped = HashMap::with_capacity(n);
        let mut skipped_order = VecDeque::with_capacity(n);
        for _ in 0..n {
            let id = (r.key("skipped ratchet key")?, r.u32("skipped index")?);
            skipped.insert(id, Secret(r.array("skipped key")?));
            skipped_order.push_back(id);
        }
        let n = r.count(32, "retired keys")?;
        let mut retired = VecDeque::with_capacity(n);
        for _ in 0..n {
            retired.push_back(r.key("retired key")?);
        }
        let limits = Limits {
            max_skip: r.u32("max skip")?,
            max_stored: usize::try_from(r.u64("max stored")?)
                .map_err(|_| DecodeError::Invalid("max stored"))?,
        };
        let pending = if r.bool("pending initiation")? {
            Some(Initiation::read(&mut r)?)
        } else {
            None
        };
        let peer_identity = r.key("peer identity key")?;
        r.finish()?;
        Ok(Self {
            peer_account,
            peer_device,
            peer_identity,
            ad,
            root,
            ours,
            theirs,
            send,
            recv,
            previous,
            skipped,
            skipped_order,
            retired,
            limits,
            pending,
        })
    }
}
