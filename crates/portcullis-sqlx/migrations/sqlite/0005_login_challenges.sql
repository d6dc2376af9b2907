-- Logins waiting for their second factor: the password was right, the account has a
-- confirmed authenticator. Only the SHA-256 of the challenge is stored; it is short-lived and
-- taken (deleted) by its one use, right or wrong.
CREATE TABLE login_challenges (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);
