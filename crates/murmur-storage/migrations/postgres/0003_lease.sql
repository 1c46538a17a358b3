-- Which process runs the node when several share this database (replicas):
-- the holder renews its lease before it lapses, and every write it makes
-- checks, in its own transaction, that it still holds it. The epoch grows
-- each time the lease changes hands.
CREATE TABLE lease (
    name    TEXT   PRIMARY KEY NOT NULL,
    holder  TEXT   NOT NULL,
    epoch   BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch, by the database's clock.
    expires BIGINT NOT NULL
);
