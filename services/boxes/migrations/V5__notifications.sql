-- Stored notifications (issue 17): what happened to an identity rather than in a box it can still
-- read (invited, kicked, box deleted, access lost). Written in the transaction of the change that
-- causes them; `details` hold ids and the box title, never ciphertext. `seq` orders them (newest
-- first in the listing) and bounds an acknowledgement ("this one and every older one").
-- Rows older than NOTIFICATIONS_RETENTION_SECS are never read and are deleted by later writes.
CREATE TABLE boxes.notifications (
    id              uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    identity_id     uuid NOT NULL REFERENCES boxes.identities (id) ON DELETE CASCADE,
    type            text NOT NULL
                    CHECK (type IN ('box.auto_invite', 'member.kick', 'box.delete', 'box.access_lost')),
    details         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    acknowledged_at timestamptz
);
CREATE INDEX notifications_identity ON boxes.notifications (identity_id, seq);
CREATE INDEX notifications_unread ON boxes.notifications (identity_id, created_at) WHERE acknowledged_at IS NULL;
CREATE INDEX notifications_created_at ON boxes.notifications (created_at);
