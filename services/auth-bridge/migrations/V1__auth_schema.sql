-- auth-bridge schema (SPEC §13.3): hostapp links, consents and sessions.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.hostapp_users (
    client_id      text        NOT NULL,
    reference      text        NOT NULL,
    identity_id    uuid        NOT NULL UNIQUE,
    user_data      jsonb       NOT NULL,
    first_login_at timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, reference)
);

CREATE TABLE auth.consents (
    client_id      text        NOT NULL,
    app_id         text        NOT NULL,
    user_reference text        NOT NULL,
    consented_at   timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, app_id, user_reference)
);

CREATE TABLE auth.sessions (
    sid          uuid        PRIMARY KEY,
    identity_id  uuid        NOT NULL,
    client_id    text        NOT NULL,
    app_id       text        NOT NULL,
    refresh_hash text        NOT NULL UNIQUE,
    csrf_hash    text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

CREATE INDEX sessions_identity_idx ON auth.sessions (identity_id);
