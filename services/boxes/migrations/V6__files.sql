-- Encrypted files (issue 18): one row per blob in the object store, named by the row's id, and
-- the identities' saved references to them.
--
-- A row is `pending` from before its blob is written until the transaction that inserts its
-- `msg.file` event marks it `live`; a pending row older than the grace period is swept with its
-- blob. `box_id` is NULL once the file left its box (its message deleted, or the box deleted)
-- while saved files still reference it; the row and blob go with the last of them.
CREATE TABLE boxes.files (
    id          uuid PRIMARY KEY,
    box_id      uuid REFERENCES boxes.boxes (id) ON DELETE SET NULL,
    uploader_id uuid NOT NULL REFERENCES boxes.identities (id),
    state       text NOT NULL CHECK (state IN ('pending', 'live')),
    size        bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    sha256      text,
    event_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX files_box ON boxes.files (box_id) WHERE box_id IS NOT NULL;
CREATE INDEX files_uploader ON boxes.files (uploader_id) WHERE state = 'live';
CREATE INDEX files_pending ON boxes.files (created_at) WHERE state = 'pending';
CREATE UNIQUE INDEX files_event ON boxes.files (event_id) WHERE event_id IS NOT NULL;

CREATE TABLE boxes.saved_files (
    id                 uuid PRIMARY KEY,
    identity_id        uuid NOT NULL REFERENCES boxes.identities (id),
    file_id            uuid NOT NULL REFERENCES boxes.files (id) ON DELETE CASCADE,
    encrypted_metadata text NOT NULL,
    key_fingerprint    text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT saved_files_identity_file UNIQUE (identity_id, file_id)
);
CREATE INDEX saved_files_identity ON boxes.saved_files (identity_id, created_at);
CREATE INDEX saved_files_file ON boxes.saved_files (file_id);
