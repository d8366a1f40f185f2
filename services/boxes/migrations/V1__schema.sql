-- The boxes schema: public identities, boxes, their ordered events, key shares, crypto actions,
-- per-identity box settings, and the derived membership table kept in step with the events.
CREATE SCHEMA IF NOT EXISTS boxes;

CREATE TABLE boxes.identities (
    id                    uuid PRIMARY KEY,
    display_name          text NOT NULL,
    identifier_value      text NOT NULL DEFAULT '',
    identifier_kind       text NOT NULL DEFAULT '',
    pubkey                text,
    non_identified_pubkey text,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE boxes.boxes (
    id              uuid PRIMARY KEY,
    creator_id      uuid NOT NULL REFERENCES boxes.identities (id),
    title           text NOT NULL,
    public_key      text NOT NULL,
    access_mode     text NOT NULL DEFAULT 'limited' CHECK (access_mode IN ('limited', 'public')),
    created_at      timestamptz NOT NULL,
    -- time of the newest event of any type: new events never get an earlier time
    last_event_at   timestamptz NOT NULL,
    -- time of the newest visible event: the order of the joined-boxes list
    last_visible_at timestamptz NOT NULL,
    last_seq        bigint NOT NULL DEFAULT 0
);

CREATE TABLE boxes.events (
    id          uuid PRIMARY KEY,
    box_id      uuid NOT NULL REFERENCES boxes.boxes (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    sender_id   uuid NOT NULL REFERENCES boxes.identities (id),
    content     jsonb,
    referrer_id uuid,
    created_at  timestamptz NOT NULL,
    CONSTRAINT events_box_seq UNIQUE (box_id, seq)
);
CREATE INDEX events_referrer ON boxes.events (referrer_id) WHERE referrer_id IS NOT NULL;
CREATE INDEX events_box_type ON boxes.events (box_id, type);

-- Members other than through events: one row per current member, the admin included.
CREATE TABLE boxes.members (
    box_id        uuid NOT NULL REFERENCES boxes.boxes (id) ON DELETE CASCADE,
    identity_id   uuid NOT NULL REFERENCES boxes.identities (id),
    join_event_id uuid,
    joined_seq    bigint NOT NULL,
    PRIMARY KEY (box_id, identity_id)
);
CREATE INDEX members_identity ON boxes.members (identity_id);

CREATE TABLE boxes.key_shares (
    other_share_hash               text PRIMARY KEY,
    box_id                         uuid NOT NULL REFERENCES boxes.boxes (id) ON DELETE CASCADE,
    misakey_share                  text NOT NULL,
    encrypted_invitation_key_share text,
    creator_id                     uuid NOT NULL REFERENCES boxes.identities (id),
    created_at                     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX key_shares_box ON boxes.key_shares (box_id, created_at);

CREATE TABLE boxes.crypto_actions (
    id                    uuid PRIMARY KEY,
    identity_id           uuid NOT NULL REFERENCES boxes.identities (id),
    type                  text NOT NULL CHECK (type IN ('invitation', 'set_box_key_share')),
    box_id                uuid REFERENCES boxes.boxes (id) ON DELETE CASCADE,
    sender_id             uuid NOT NULL REFERENCES boxes.identities (id),
    encryption_public_key text NOT NULL,
    encrypted             text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX crypto_actions_identity ON boxes.crypto_actions (identity_id, created_at);

CREATE TABLE boxes.box_settings (
    identity_id uuid NOT NULL REFERENCES boxes.identities (id),
    box_id      uuid NOT NULL REFERENCES boxes.boxes (id) ON DELETE CASCADE,
    muted       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (identity_id, box_id)
);
