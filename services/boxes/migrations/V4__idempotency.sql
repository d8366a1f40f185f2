-- Answers of writes sent with an `Idempotency-Key` (issue 17): written in the transaction of the
-- write itself, so a stored answer always means the effect is committed and the reverse.
-- `box_id` is set for event posts only: deleting the box drops their answers, which may hold
-- ciphertext; `body` is emptied when the message they hold is deleted (then re-rendered).
CREATE TABLE boxes.idempotency_keys (
    identity_id  uuid NOT NULL REFERENCES boxes.identities (id) ON DELETE CASCADE,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       smallint NOT NULL,
    body         text,
    box_id       uuid REFERENCES boxes.boxes (id) ON DELETE CASCADE,
    event_id     uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identity_id, key)
);
CREATE INDEX idempotency_keys_created_at ON boxes.idempotency_keys (created_at);
CREATE INDEX idempotency_keys_event ON boxes.idempotency_keys (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX idempotency_keys_box ON boxes.idempotency_keys (box_id) WHERE box_id IS NOT NULL;
