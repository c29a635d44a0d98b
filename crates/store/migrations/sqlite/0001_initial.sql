-- Oxflow schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql.
--
-- Conventions (the sqlx `Any` driver carries only integers, floats, text and
-- bytes): ids and names are TEXT, JSON is TEXT, timestamps are INTEGER epoch
-- milliseconds, booleans are INTEGER 0/1. STRICT makes SQLite reject a value
-- of the wrong type instead of silently storing it.

CREATE TABLE runs (
    id            TEXT    NOT NULL PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    pipeline_name TEXT    NOT NULL,
    spec          TEXT    NOT NULL,
    parameters    TEXT    NOT NULL,
    options       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    error         TEXT,
    outputs       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    owner         TEXT,
    heartbeat_at  INTEGER
) STRICT;

-- Pages of one namespace sorted by submission time (the UI's run list).
CREATE INDEX runs_namespace_created ON runs (namespace, created_at, id);
-- Pages across namespaces (admin view, engine start-up).
CREATE INDEX runs_created ON runs (created_at, id);
-- Engine recovery: the few non-terminal runs among many finished ones.
CREATE INDEX runs_state_created ON runs (state, created_at, id);
-- Heartbeats touch every run of one owner.
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;

CREATE TABLE tasks (
    id           TEXT    NOT NULL PRIMARY KEY,
    run_id       TEXT    NOT NULL REFERENCES runs (id),
    path         TEXT    NOT NULL,
    parent_path  TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    cached       INTEGER NOT NULL CHECK (cached IN (0, 1)),
    inputs       TEXT    NOT NULL,
    outputs      TEXT    NOT NULL,
    error        TEXT,
    log_path     TEXT,
    cache_key    TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    UNIQUE (run_id, path)
) STRICT;

CREATE TABLE artifacts (
    id           TEXT    NOT NULL PRIMARY KEY,
    namespace    TEXT    NOT NULL,
    run_id       TEXT    NOT NULL REFERENCES runs (id),
    task_path    TEXT    NOT NULL,
    output_key   TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    uri          TEXT    NOT NULL,
    schema_title TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    digest       TEXT,
    created_at   INTEGER NOT NULL,
    UNIQUE (run_id, task_path, output_key, uri)
) STRICT;

-- No foreign key to runs: cache entries outlive the run that produced them.
CREATE TABLE cache_entries (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    outputs    TEXT    NOT NULL,
    run_id     TEXT    NOT NULL,
    task_path  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) STRICT;

CREATE TABLE secrets (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;
