-- Portcullis schema, SQLite: the tables of the PostgreSQL file of the same version, with
-- SQLite's types (times as RFC 3339 text in UTC, fixed width); change both together.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY CHECK (id <> ''),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT REFERENCES tenants (id),
    username       TEXT NOT NULL UNIQUE,
    email          TEXT,
    full_name      TEXT,
    password_hash  TEXT,
    is_active      INTEGER NOT NULL DEFAULT 1,
    is_superuser   INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_tenant ON users (tenant_id);

-- Roles: tenant_id NULL is a role of every tenant.
CREATE TABLE roles (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT REFERENCES tenants (id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    is_superuser INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX roles_global_name ON roles (name) WHERE tenant_id IS NULL;
CREATE UNIQUE INDEX roles_tenant_name ON roles (tenant_id, name) WHERE tenant_id IS NOT NULL;

-- The action vocabulary (Aethera's permission names, or AmateRS's levels).
CREATE TABLE permissions (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT ''
);

-- One rule of a role: `effect` the action on resources matching `resource`.
CREATE TABLE role_permissions (
    role_id     INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource    TEXT NOT NULL DEFAULT '*',
    permission  TEXT NOT NULL REFERENCES permissions (name),
    effect      TEXT NOT NULL DEFAULT 'allow' CHECK (effect IN ('allow', 'deny')),
    PRIMARY KEY (role_id, resource, permission, effect)
);

CREATE TABLE role_inherits (
    role_id    INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    parent_id  INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, parent_id),
    CHECK (role_id <> parent_id)
);
CREATE INDEX role_inherits_parent ON role_inherits (parent_id);

CREATE TABLE user_roles (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id      INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    assigned_by  TEXT,
    assigned_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

-- One row: bumped by every change of roles, permissions or inheritance.
CREATE TABLE policy_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO policy_version (id, version) VALUES (1, 0);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    user_id       TEXT NOT NULL,
    tenant_id     TEXT,
    roles         TEXT NOT NULL DEFAULT '[]',
    scopes        TEXT NOT NULL DEFAULT '[]',
    scheme        TEXT NOT NULL CHECK (scheme IN ('hmac_sha256', 'sha256')),
    key_hash      TEXT NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
);
CREATE UNIQUE INDEX api_keys_sha256 ON api_keys (key_hash) WHERE scheme = 'sha256';
CREATE INDEX api_keys_user ON api_keys (user_id);

-- Refresh tokens: one row per issued token, chained in families for rotation and reuse
-- detection. Only a hash of the token is stored.
CREATE TABLE refresh_tokens (
    token_hash   TEXT PRIMARY KEY,
    family_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at    TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    revoked_at   TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Server-side sessions of browser logins. Only a hash of the session id is stored.
CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data          TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Revoked JWTs by `jti`, kept until the token would have expired anyway.
CREATE TABLE token_revocations (
    jti         TEXT PRIMARY KEY,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX token_revocations_revoked ON token_revocations (revoked_at);
CREATE INDEX token_revocations_expiry ON token_revocations (expires_at);

-- The audit trail: the Aethera columns for filtering, and the whole event as JSON.
CREATE TABLE audit_logs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    "timestamp"      TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    result           TEXT NOT NULL,
    tenant_id        TEXT,
    user_id          TEXT,
    username         TEXT,
    action           TEXT,
    resource_type    TEXT,
    resource_id      TEXT,
    ip_address       TEXT,
    user_agent       TEXT,
    request_method   TEXT,
    request_path     TEXT,
    response_status  INTEGER,
    event            TEXT NOT NULL
);
CREATE INDEX audit_logs_time ON audit_logs ("timestamp", seq);
CREATE INDEX audit_logs_user ON audit_logs (user_id, seq);
CREATE INDEX audit_logs_action ON audit_logs (action, seq);
CREATE INDEX audit_logs_resource ON audit_logs (resource_type, resource_id, seq);
CREATE INDEX audit_logs_type ON audit_logs (event_type, result, seq);
CREATE INDEX audit_logs_tenant ON audit_logs (tenant_id, seq);

