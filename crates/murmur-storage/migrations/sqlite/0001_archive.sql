-- The archive of raw Waku messages, the outbox and reader cursors.
CREATE TABLE messages (
    hash          BLOB    PRIMARY KEY NOT NULL,
    pubsub_topic  TEXT    NOT NULL,
    content_topic TEXT    NOT NULL,
    timestamp     INTEGER NOT NULL,
    -- The WakuMessage as it was received, protobuf-encoded: payload, meta and
    -- every other field, byte for byte.
    message       BLOB    NOT NULL,
    stored_at     INTEGER NOT NULL
);
CREATE INDEX messages_by_topic ON messages (pubsub_topic, content_topic, timestamp, hash);
CREATE INDEX messages_by_time ON messages (timestamp, hash);

CREATE TABLE outbox (
    hash         BLOB    PRIMARY KEY NOT NULL,
    pubsub_topic TEXT    NOT NULL,
    message      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER
);
CREATE INDEX outbox_pending ON outbox (sent_at, created_at);

CREATE TABLE cursors (
    name       TEXT    PRIMARY KEY NOT NULL,
    timestamp  INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);
