-- The one resource table every Kubernetes-shaped kind lives in (the kind
-- registry describes them), its change log (what watches resume from) and
-- the resourceVersion sequence. SQLite dialect; keep in step with
-- ../postgres/0007_resources.sql.

-- metadata.resourceVersion of every object comes from this one row: each
-- write takes the next value inside its transaction, so versions follow
-- commit order (writers queue on the row).
CREATE TABLE resource_version (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;
INSERT INTO resource_version (id, value) VALUES (1, 0);

CREATE TABLE resources (
    api_group  TEXT    NOT NULL,          -- '' for the core group
    kind       TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,          -- '' for cluster-scoped kinds
    name       TEXT    NOT NULL,
    uid        TEXT    NOT NULL UNIQUE,
    resource_version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    -- ' uid1 uid2 ': the owners' uids, for cascading deletion.
    owner_uids TEXT    NOT NULL,
    -- The whole object (apiVersion, kind, metadata, spec, status, …) as
    -- JSON, metadata.resourceVersion included.
    object     TEXT    NOT NULL,
    PRIMARY KEY (api_group, kind, namespace, name)
) STRICT;

CREATE INDEX resources_by_version ON resources (resource_version);

-- Every write, in resourceVersion order; trimmed to the newest entries.
-- `type` is ADDED, MODIFIED or DELETED; `object` the object after the
-- write (before the delete, for DELETED, with the delete's version).
CREATE TABLE resource_events (
    resource_version INTEGER NOT NULL PRIMARY KEY,
    api_group  TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    object     TEXT    NOT NULL
) STRICT;

-- A kind's changes after a version (what the object cache catches up with).
CREATE INDEX resource_events_by_kind ON resource_events (api_group, kind, resource_version);

-- Who leads each controller. `token` (the fencing token) grows whenever
-- the holder changes; a write made under a lease names it, and the store
-- refuses the write in the same statement once another holder has taken
-- the lease, so a process that lost its lease cannot write.
CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    renewed_at INTEGER NOT NULL,   -- epoch ms
    expires_at INTEGER NOT NULL    -- epoch ms
) STRICT;
