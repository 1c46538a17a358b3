//! The outbox's statements: a message waits here from before its publish
//! answers until the network took it, and then goes.

use super::*;

/// Writes that share one transaction (group commit): messages archived,
/// messages put in the outbox, outbox entries the network took, and
/// entries of stage state (no `Debug`: they are sealed secrets).
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) saves: Vec<Delivery>,
    pub(crate) queued: Vec<Delivery>,
    /// Of those, the ones that take an entry's turn: (new, old).
    pub(crate) in_place: Vec<(MessageHash, MessageHash)>,
    pub(crate) sent: Vec<MessageHash>,
    pub(crate) state: Vec<(String, Option<Vec<u8>>)>,
}

impl Batch {
    /// Puts `queued` in the outbox; in `old`'s turn, `old` taken out, if
    /// it names one.
    pub(crate) fn enqueue(&mut self, queued: Delivery, old: Option<MessageHash>) {
        if let Some(old) = old.filter(|old| *old != queued.hash) {
            self.in_place.push((queued.hash, old));
            self.sent.push(old);
        }
        self.queued.push(queued);
    }
}

impl Sql {
    /// Puts a message in the outbox (in `old`'s turn, `old` taken out, if
    /// it names one); answers its hash.
    pub(crate) async fn enqueue(
        &self,
        topic: &PubsubTopic,
        message: &WakuMessage,
        old: Option<MessageHash>,
    ) -> Result<MessageHash, Error> {
        let delivery = Delivery::new(topic.clone(), message.clone());
        let hash = delivery.hash;
        let mut batch = Batch::default();
        batch.enqueue(delivery, old);
        self.write(&batch).await?;
        Ok(hash)
    }

    /// Takes an entry the network took out of the outbox.
    pub(crate) async fn mark_sent(&self, hash: MessageHash) -> Result<(), Error> {
        let batch = Batch {
            sent: vec![hash],
            ..Batch::default()
        };
        self.write(&batch).await.map(drop)
    }

    /// The outbox entries not yet published, oldest first.
    pub(crate) async fn pending(&self) -> Result<Vec<Delivery>, Error> {
        let rows = sqlx::query(
            "SELECT pubsub_topic, message FROM outbox WHERE sent_at IS NULL ORDER BY created_at, hash",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let topic: String = row.try_get(0).map_err(backend)?;
                let bytes: Vec<u8> = row.try_get(1).map_err(backend)?;
                Ok(Delivery::new(parse_topic(&topic)?, decode(&bytes)?))
            })
            .collect()
    }
}

/// Puts `queued` in the outbox, 100 rows a statement, each stamped a
/// nanosecond after the one before it, so that what one group write puts
/// in is offered again in the order it was asked for, not by hash; then
/// gives each entry that takes another's turn that one's stamp (the other
/// is deleted after, with the entries sent). One whose old entry is gone
/// keeps its own, behind the others.
pub(super) fn enqueue(
    script: &mut script::Script,
    queued: &[Delivery],
    in_place: &[(MessageHash, MessageHash)],
    kind: super::Kind,
) {
    let mut created_at = now_nanos();
    for chunk in queued.chunks(100) {
        let sql = kind.insert_new(
            "outbox",
            &["hash", "pubsub_topic", "message", "created_at"],
            chunk.len(),
        );
        let mut args = Vec::with_capacity(4 * chunk.len());
        for d in chunk {
            args.extend([
                Arg::Blob(d.hash.as_bytes().to_vec()),
                Arg::Text(d.pubsub_topic.as_str().to_owned()),
                Arg::Blob(d.message.encode_to_vec()),
                Arg::Int(created_at),
            ]);
            created_at += 1;
        }
        script.push(sql, args);
    }
    // 100 a statement (each a round trip on PostgreSQL): each new entry's
    // old one found by a CASE over the new hashes.
    for chunk in in_place.chunks(100) {
        let blob = |h: &MessageHash| Arg::Blob(h.as_bytes().to_vec());
        let mut args: Vec<Arg> = chunk
            .iter()
            .flat_map(|(new, old)| [blob(new), blob(old)])
            .collect();
        args.extend(chunk.iter().map(|(new, _)| blob(new)));
        script.push(
            format!(
                "UPDATE outbox SET created_at = COALESCE((SELECT o.created_at FROM outbox o \
                 WHERE o.hash = CASE outbox.hash {} END), created_at) WHERE hash IN ({})",
                vec!["WHEN ? THEN ?"; chunk.len()].join(" "),
                script::list(chunk.len()),
            ),
            args,
        );
    }
}

/// Deletes the entries the network took: the outbox keeps only what still
/// waits.
pub(super) fn sent(script: &mut script::Script, sent: &[MessageHash]) {
    for chunk in sent.chunks(100) {
        script.push(
            format!(
                "DELETE FROM outbox WHERE hash IN ({})",
                script::list(chunk.len())
            ),
            chunk
                .iter()
                .map(|h| Arg::Blob(h.as_bytes().to_vec()))
                .collect(),
        );
    }
}
