//! The X3DH header an initiator's first messages carry: read by the
//! ratchet's codec and written by X3DH, so that neither depends on the
//! other.

use crate::{
    codec::{DecodeError, Reader, Writer},
    identity::Certificate,
    keys::PublicKey,
};

/// The X3DH part of an initiator's first messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    /// The initiator's device certificate (its account and identity key).
    pub certificate: Certificate,
    /// The initiator's ephemeral key.
    pub ephemeral: PublicKey,
    /// The responder's signed prekey used.
    pub signed_prekey: u32,
    /// The responder's one-time prekey used, if the bundle had one.
    pub one_time: Option<u32>,
}

impl Initiation {
    pub(crate) fn write(&self, w: &mut Writer) {
        self.certificate.write(w);
        w.bytes(&self.ephemeral.0).u32(self.signed_prekey);
        match self.one_time {
            Some(id) => w.u8(1).u32(id),
            None => w.u8(0),
        };
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            certificate: Certificate::read(r)?,
            ephemeral: r.key("ephemeral key")?,
            signed_prekey: r.u32("signed prekey id")?,
            one_time: if r.bool("one-time prekey")? {
                Some(r.u32("one-time prekey id")?)
            } else {
                None
            },
        })
    }
}
