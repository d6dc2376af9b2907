-- Second factors. Recovery codes: shown once, stored as the SHA-256 of the code, each usable
-- once (`used_at` set). Generating a new set replaces the old one.
CREATE TABLE recovery_codes (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

-- One TOTP authenticator per account: the secret sealed by the store's `Encryptor` (bound
-- to this table, column and user), unconfirmed until a first code checks, and the last step
-- a code was accepted for (a code is accepted once).
CREATE TABLE totp_factors (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret        TEXT NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        BIGINT NOT NULL,
    last_step     BIGINT,
    created_at    TIMESTAMPTZ NOT NULL,
    confirmed_at  TIMESTAMPTZ
);
