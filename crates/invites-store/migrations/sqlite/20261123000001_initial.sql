-- The whole data model: tenants, principals and their roles, credentials, invitations, audit log.
-- Portable SQL: the same text runs on SQLite and PostgreSQL. Ids of the Atlas family are 24-hex
-- TEXT; community ids are integers. Timestamps are BIGINT milliseconds since the Unix epoch, UTC.
-- Secrets are never stored: API keys keep the Digest HA1 values RFC 7616 needs, service-account
-- secrets and access tokens keep a SHA-256 of a 256-bit random value.

-- Server-wide settings shared by every replica (the nonce-signing secret, the demo marker).
CREATE TABLE server_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'api_key', 'service_account')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    principal_id  TEXT NOT NULL UNIQUE REFERENCES principals (id) ON DELETE CASCADE,
    username      TEXT NOT NULL UNIQUE,
    real_name     TEXT NOT NULL DEFAULT '',
    avatar        TEXT,
    ext_id        TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE org_roles (
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    principal_id  TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    PRIMARY KEY (org_id, principal_id, role)
);
CREATE INDEX org_roles_principal ON org_roles (principal_id);

CREATE TABLE project_roles (
    project_id    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    principal_id  TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    PRIMARY KEY (project_id, principal_id, role)
);
CREATE INDEX project_roles_principal ON project_roles (principal_id);

CREATE TABLE api_keys (
    principal_id  TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    public_key    TEXT NOT NULL UNIQUE,
    description   TEXT NOT NULL DEFAULT '',
    ha1_md5       TEXT NOT NULL,
    ha1_sha256    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_key_access_list (
    api_key_id    TEXT NOT NULL REFERENCES api_keys (principal_id) ON DELETE CASCADE,
    cidr          TEXT NOT NULL,
    PRIMARY KEY (api_key_id, cidr)
);

CREATE TABLE service_accounts (
    principal_id   TEXT PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    org_id         TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    secret_sha256  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE access_tokens (
    token_sha256  TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    expires_at    BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX access_tokens_principal ON access_tokens (principal_id);

CREATE TABLE community_groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE courses (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    creator_user_id  BIGINT NOT NULL REFERENCES users (id),
    created_at       BIGINT NOT NULL
);

CREATE TABLE community_group_members (
    group_id  BIGINT NOT NULL REFERENCES community_groups (id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('manager', 'member')),
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE course_members (
    course_id  BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('manager', 'member')),
    PRIMARY KEY (course_id, user_id)
);

-- Atlas and Ops Manager invitations. project_id NULL: an organization invitation.
CREATE TABLE invitations (
    id                      TEXT PRIMARY KEY,
    org_id                  TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    project_id              TEXT REFERENCES projects (id) ON DELETE CASCADE,
    username                TEXT NOT NULL,
    inviter_username        TEXT NOT NULL,
    roles                   TEXT NOT NULL,
    team_ids                TEXT NOT NULL DEFAULT '[]',
    group_role_assignments  TEXT NOT NULL DEFAULT '[]',
    status                  TEXT NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED')),
    created_at              BIGINT NOT NULL,
    expires_at              BIGINT NOT NULL,
    accepted_at             BIGINT
);
CREATE INDEX invitations_org ON invitations (org_id, username);
CREATE INDEX invitations_project ON invitations (project_id, username);

-- Community invitations: exactly one of group_id and course_id is set.
CREATE TABLE community_invitations (
    id               INTEGER PRIMARY KEY,
    group_id         BIGINT REFERENCES community_groups (id) ON DELETE CASCADE,
    course_id        BIGINT REFERENCES courses (id) ON DELETE CASCADE,
    user_id          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inviter_user_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    status           TEXT NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED')),
    created_at       BIGINT NOT NULL,
    accepted_at      BIGINT,
    CHECK ((group_id IS NULL) <> (course_id IS NULL))
);
CREATE UNIQUE INDEX community_invitations_group_user
    ON community_invitations (group_id, user_id) WHERE group_id IS NOT NULL;
CREATE UNIQUE INDEX community_invitations_course_user
    ON community_invitations (course_id, user_id) WHERE course_id IS NOT NULL;

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY,
    at             BIGINT NOT NULL,
    actor_kind     TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    actor_display  TEXT NOT NULL,
    action         TEXT NOT NULL,
    target_kind    TEXT NOT NULL,
    target_id      TEXT NOT NULL,
    remote_addr    TEXT,
    detail         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_target ON audit_log (target_kind, target_id);
