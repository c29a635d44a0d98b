-- Katib resources: tuning experiments, their trials and the trials' metric
-- reports (Katib's `observation_logs`). SQLite dialect; keep in step with
-- ../postgres/0003_tuning.sql. Conventions as in 0001: times are epoch ms,
-- JSON is TEXT, booleans are 0/1.

CREATE TABLE tuning_experiments (
    id           TEXT    NOT NULL PRIMARY KEY,
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    -- The Experiment in Katib's shape with defaults applied (JSON).
    spec         TEXT    NOT NULL,
    -- The seed every suggestion derives from, fixed at creation so that a
    -- resumed experiment suggests what an uninterrupted one would have.
    seed         INTEGER NOT NULL,
    -- Oxflow's own settings that are not part of Katib's spec (JSON): where
    -- trials run when their container names no workingDir.
    options      TEXT    NOT NULL,
    phase        TEXT    NOT NULL CHECK (phase IN
        ('Created', 'Running', 'Restarting', 'Succeeded', 'Failed', 'Stopped')),
    -- JSON list of Katib conditions {type, status, reason, message, lastUpdateTime, lastTransitionTime}.
    conditions   TEXT    NOT NULL,
    optimal_trial TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    owner        TEXT,
    heartbeat_at INTEGER,
    UNIQUE (namespace, name)
) STRICT;

CREATE INDEX tuning_experiments_created ON tuning_experiments (created_at, id);
CREATE INDEX tuning_experiments_phase ON tuning_experiments (phase);

CREATE TABLE trials (
    id            TEXT    NOT NULL PRIMARY KEY,
    experiment_id TEXT    NOT NULL REFERENCES tuning_experiments (id),
    name          TEXT    NOT NULL,
    -- Creation order within the experiment: the history algorithms replay.
    seq           INTEGER NOT NULL,
    -- JSON list of {name, value} (Katib's parameterAssignments, values as text).
    assignments   TEXT    NOT NULL,
    -- JSON object of the suggesting algorithm's bookkeeping.
    tags          TEXT    NOT NULL,
    phase         TEXT    NOT NULL CHECK (phase IN
        ('Created', 'Running', 'Succeeded', 'Failed', 'Killed', 'EarlyStopped', 'MetricsUnavailable')),
    message       TEXT,
    -- The objective metric's value under its strategy, when there is one.
    objective     REAL,
    -- JSON list of {name, min, max, latest}.
    observation   TEXT    NOT NULL,
    log_path      TEXT,
    -- How many times the trial was started (an interrupted trial is re-run).
    attempt       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    UNIQUE (experiment_id, seq),
    UNIQUE (experiment_id, name)
) STRICT;

CREATE TABLE observation_logs (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    trial_id    TEXT    NOT NULL REFERENCES trials (id),
    time        INTEGER,
    metric_name TEXT    NOT NULL,
    value       TEXT    NOT NULL
) STRICT;

CREATE INDEX observation_logs_trial ON observation_logs (trial_id, id);
