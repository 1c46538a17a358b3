-- Other stages' state (crypto sessions and keys, group state): opaque bytes
-- by name, encrypted by the stage that owns them before they arrive here.
CREATE TABLE state (
    name       TEXT    PRIMARY KEY NOT NULL,
    value      BYTEA   NOT NULL,
    updated_at BIGINT NOT NULL
);
