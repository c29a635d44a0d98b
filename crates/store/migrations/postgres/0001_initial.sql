-- Oxflow schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_initial.sql.
--
-- Conventions (the sqlx `Any` driver carries only integers, floats, text and
-- bytes): ids and names are TEXT, JSON is TEXT (not JSONB), timestamps are
-- BIGINT epoch milliseconds, booleans are BIGINT 0/1.
--
-- Text keys use COLLATE "C" so that ORDER BY and prefix ranges compare bytes,
-- exactly as SQLite's BINARY collation does, whatever the database's locale.

CREATE TABLE runs (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace     TEXT COLLATE "C" NOT NULL,
    display_name  TEXT   NOT NULL,
    pipeline_name TEXT   NOT NULL,
    spec          TEXT   NOT NULL,
    parameters    TEXT   NOT NULL,
    options       TEXT   NOT NULL,
    state         TEXT COLLATE "C" NOT NULL,
    error         TEXT,
    outputs       TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    owner         TEXT COLLATE "C",
    heartbeat_at  BIGINT
);

-- Pages of one namespace sorted by submission time (the UI's run list).
CREATE INDEX runs_namespace_created ON runs (namespace, created_at, id);
-- Pages across namespaces (admin view, engine start-up).
CREATE INDEX runs_created ON runs (created_at, id);
-- Engine recovery: the few non-terminal runs among many finished ones.
CREATE INDEX runs_state_created ON runs (state, created_at, id);
-- Heartbeats touch every run of one owner.
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;

CREATE TABLE tasks (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    run_id       TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    path         TEXT COLLATE "C" NOT NULL,
    parent_path  TEXT COLLATE "C" NOT NULL,
    name         TEXT   NOT NULL,
    display_name TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    attempt      BIGINT NOT NULL,
    cached       BIGINT NOT NULL CHECK (cached IN (0, 1)),
    inputs       TEXT   NOT NULL,
    outputs      TEXT   NOT NULL,
    error        TEXT,
    log_path     TEXT,
    cache_key    TEXT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    UNIQUE (run_id, path)
);

CREATE TABLE artifacts (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace    TEXT COLLATE "C" NOT NULL,
    run_id       TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    task_path    TEXT COLLATE "C" NOT NULL,
    output_key   TEXT COLLATE "C" NOT NULL,
    name         TEXT   NOT NULL,
    uri          TEXT COLLATE "C" NOT NULL,
    schema_title TEXT   NOT NULL,
    metadata     TEXT   NOT NULL,
    digest       TEXT,
    created_at   BIGINT NOT NULL,
    UNIQUE (run_id, task_path, output_key, uri)
);

-- No foreign key to runs: cache entries outlive the run that produced them.
CREATE TABLE cache_entries (
    namespace  TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    outputs    TEXT   NOT NULL,
    run_id     TEXT   NOT NULL,
    task_path  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE secrets (
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
