-- The archive of raw Waku messages, the outbox and reader cursors.
CREATE TABLE messages (
    hash          BYTEA   PRIMARY KEY NOT NULL,
    pubsub_topic  TEXT    NOT NULL,
    content_topic TEXT    NOT NULL,
    timestamp     BIGINT  NOT NULL,
    -- The WakuMessage as it was received, protobuf-encoded: payload, meta and
    -- every other field, byte for byte.
    message       BYTEA   NOT NULL,
    stored_at     BIGINT  NOT NULL
);
CREATE INDEX messages_by_topic ON messages (pubsub_topic, content_topic, timestamp, hash);
CREATE INDEX messages_by_time ON messages (timestamp, hash);

CREATE TABLE outbox (
    hash         BYTEA   PRIMARY KEY NOT NULL,
    pubsub_topic TEXT    NOT NULL,
    message      BYTEA   NOT NULL,
    created_at   BIGINT  NOT NULL,
    sent_at      BIGINT 
);
CREATE INDEX outbox_pending ON outbox (sent_at, created_at);

CREATE TABLE cursors (
    name       TEXT    PRIMARY KEY NOT NULL,
    timestamp  BIGINT  NOT NULL,
    hash       BYTEA   NOT NULL,
    updated_at BIGINT  NOT NULL
);
