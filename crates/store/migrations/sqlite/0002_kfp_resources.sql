-- KFP resources: experiments, pipelines and their versions, recurring runs,
-- and the run fields the KFP v2beta1 API returns. SQLite dialect; keep in
-- step with ../postgres/0002_kfp_resources.sql. Conventions as in 0001.

-- Existing runs get the defaults: no experiment, available, empty history.
ALTER TABLE runs ADD COLUMN experiment_id TEXT;
ALTER TABLE runs ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN storage_state TEXT NOT NULL DEFAULT 'AVAILABLE'
    CHECK (storage_state IN ('AVAILABLE', 'ARCHIVED'));
ALTER TABLE runs ADD COLUMN pipeline_id TEXT;
ALTER TABLE runs ADD COLUMN pipeline_version_id TEXT;
ALTER TABLE runs ADD COLUMN recurring_run_id TEXT;
-- JSON list of {"update_time": ms, "state": "RUNNING", "error": "…"}.
ALTER TABLE runs ADD COLUMN state_history TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN scheduled_at INTEGER;

-- The runs of one experiment, newest first (the experiment page).
CREATE INDEX runs_experiment_created ON runs (experiment_id, created_at, id);
-- How many runs of a schedule are still active (max_concurrency).
CREATE INDEX runs_recurring_state ON runs (recurring_run_id, state)
    WHERE recurring_run_id IS NOT NULL;

CREATE TABLE experiments (
    id                  TEXT    NOT NULL PRIMARY KEY,
    namespace           TEXT    NOT NULL,
    display_name        TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    storage_state       TEXT    NOT NULL CHECK (storage_state IN ('AVAILABLE', 'ARCHIVED')),
    last_run_created_at INTEGER,
    UNIQUE (namespace, display_name)
) STRICT;

CREATE INDEX experiments_namespace_created ON experiments (namespace, created_at, id);
CREATE INDEX experiments_created ON experiments (created_at, id);

-- `namespace` is '' for shared pipelines: NULLs would never collide in the
-- UNIQUE constraint, and shared names must be unique too.
CREATE TABLE pipelines (
    id           TEXT    NOT NULL PRIMARY KEY,
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (namespace, name)
) STRICT;

CREATE INDEX pipelines_namespace_created ON pipelines (namespace, created_at, id);
CREATE INDEX pipelines_created ON pipelines (created_at, id);

CREATE TABLE pipeline_versions (
    id              TEXT    NOT NULL PRIMARY KEY,
    pipeline_id     TEXT    NOT NULL REFERENCES pipelines (id),
    name            TEXT    NOT NULL,
    display_name    TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    spec            TEXT    NOT NULL,
    code_source_url TEXT,
    UNIQUE (pipeline_id, name)
) STRICT;

CREATE INDEX pipeline_versions_created ON pipeline_versions (pipeline_id, created_at, id);

CREATE TABLE recurring_runs (
    id                  TEXT    NOT NULL PRIMARY KEY,
    namespace           TEXT    NOT NULL,
    display_name        TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    experiment_id       TEXT,
    pipeline_id         TEXT,
    pipeline_version_id TEXT,
    spec                TEXT,
    runtime_config      TEXT    NOT NULL,
    trigger_spec        TEXT    NOT NULL,
    max_concurrency     INTEGER NOT NULL,
    no_catchup          INTEGER NOT NULL CHECK (no_catchup IN (0, 1)),
    enabled             INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_fired_at       INTEGER
) STRICT;

CREATE INDEX recurring_runs_namespace_created ON recurring_runs (namespace, created_at, id);
CREATE INDEX recurring_runs_created ON recurring_runs (created_at, id);
CREATE INDEX recurring_runs_experiment_created ON recurring_runs (experiment_id, created_at, id);
