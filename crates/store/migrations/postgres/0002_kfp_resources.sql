-- KFP resources: experiments, pipelines and their versions, recurring runs,
-- and the run fields the KFP v2beta1 API returns. PostgreSQL dialect; keep in
-- step with ../sqlite/0002_kfp_resources.sql. Conventions as in 0001.
--
-- Every text column that can be filtered or sorted on uses COLLATE "C", so
-- that comparisons, ORDER BY and LOWER() work on bytes and ASCII exactly as
-- SQLite's BINARY collation does, whatever the database's locale.

ALTER TABLE runs ALTER COLUMN display_name TYPE TEXT COLLATE "C";

-- Existing runs get the defaults: no experiment, available, empty history.
ALTER TABLE runs ADD COLUMN experiment_id TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN description TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN storage_state TEXT COLLATE "C" NOT NULL DEFAULT 'AVAILABLE'
    CHECK (storage_state IN ('AVAILABLE', 'ARCHIVED'));
ALTER TABLE runs ADD COLUMN pipeline_id TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN pipeline_version_id TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN recurring_run_id TEXT COLLATE "C";
-- JSON list of {"update_time": ms, "state": "RUNNING", "error": "…"}.
ALTER TABLE runs ADD COLUMN state_history TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN scheduled_at BIGINT;

-- The runs of one experiment, newest first (the experiment page).
CREATE INDEX runs_experiment_created ON runs (experiment_id, created_at, id);
-- How many runs of a schedule are still active (max_concurrency).
CREATE INDEX runs_recurring_state ON runs (recurring_run_id, state)
    WHERE recurring_run_id IS NOT NULL;

CREATE TABLE experiments (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace           TEXT COLLATE "C" NOT NULL,
    display_name        TEXT COLLATE "C" NOT NULL,
    description         TEXT COLLATE "C" NOT NULL,
    created_at          BIGINT NOT NULL,
    storage_state       TEXT COLLATE "C" NOT NULL CHECK (storage_state IN ('AVAILABLE', 'ARCHIVED')),
    last_run_created_at BIGINT,
    UNIQUE (namespace, display_name)
);

CREATE INDEX experiments_namespace_created ON experiments (namespace, created_at, id);
CREATE INDEX experiments_created ON experiments (created_at, id);

-- `namespace` is '' for shared pipelines: NULLs would never collide in the
-- UNIQUE constraint, and shared names must be unique too.
CREATE TABLE pipelines (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace    TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description  TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (namespace, name)
);

CREATE INDEX pipelines_namespace_created ON pipelines (namespace, created_at, id);
CREATE INDEX pipelines_created ON pipelines (created_at, id);

CREATE TABLE pipeline_versions (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    pipeline_id     TEXT COLLATE "C" NOT NULL REFERENCES pipelines (id),
    name            TEXT COLLATE "C" NOT NULL,
    display_name    TEXT COLLATE "C" NOT NULL,
    description     TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL,
    spec            TEXT   NOT NULL,
    code_source_url TEXT,
    UNIQUE (pipeline_id, name)
);

CREATE INDEX pipeline_versions_created ON pipeline_versions (pipeline_id, created_at, id);

CREATE TABLE recurring_runs (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace           TEXT COLLATE "C" NOT NULL,
    display_name        TEXT COLLATE "C" NOT NULL,
    description         TEXT COLLATE "C" NOT NULL,
    experiment_id       TEXT COLLATE "C",
    pipeline_id         TEXT COLLATE "C",
    pipeline_version_id TEXT COLLATE "C",
    spec                TEXT,
    runtime_config      TEXT   NOT NULL,
    trigger_spec        TEXT   NOT NULL,
    max_concurrency     BIGINT NOT NULL,
    no_catchup          BIGINT NOT NULL CHECK (no_catchup IN (0, 1)),
    enabled             BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    last_fired_at       BIGINT
);

CREATE INDEX recurring_runs_namespace_created ON recurring_runs (namespace, created_at, id);
CREATE INDEX recurring_runs_created ON recurring_runs (created_at, id);
CREATE INDEX recurring_runs_experiment_created ON recurring_runs (experiment_id, created_at, id);
