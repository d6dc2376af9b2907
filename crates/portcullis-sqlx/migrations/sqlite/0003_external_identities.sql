-- Accounts of an external OpenID provider linked to local accounts (`/auth/oauth/login`): the
-- provider's issuer and subject name one person there, and at most one local account.
CREATE TABLE external_identities (
    issuer         TEXT NOT NULL CHECK (issuer <> ''),
    subject        TEXT NOT NULL CHECK (subject <> ''),
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    email          TEXT,
    linked_at      TEXT NOT NULL,
    last_login_at  TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user ON external_identities (user_id);
