-- Katib resources: tuning experiments, their trials and the trials' metric
-- reports (Katib's `observation_logs`). PostgreSQL dialect; keep in step with
-- ../sqlite/0003_tuning.sql. Conventions as in 0001: times are epoch ms,
-- JSON is TEXT, booleans are 0/1. Text columns use COLLATE "C" as in 0002.

CREATE TABLE tuning_experiments (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace     TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    -- The Experiment in Katib's shape with defaults applied (JSON).
    spec          TEXT COLLATE "C" NOT NULL,
    -- The seed every suggestion derives from, fixed at creation so that a
    -- resumed experiment suggests what an uninterrupted one would have.
    seed          BIGINT NOT NULL,
    -- Oxflow's own settings that are not part of Katib's spec (JSON): where
    -- trials run when their container names no workingDir.
    options       TEXT COLLATE "C" NOT NULL,
    phase         TEXT COLLATE "C" NOT NULL CHECK (phase IN
        ('Created', 'Running', 'Restarting', 'Succeeded', 'Failed', 'Stopped')),
    -- JSON list of Katib conditions {type, status, reason, message, lastUpdateTime, lastTransitionTime}.
    conditions    TEXT COLLATE "C" NOT NULL,
    optimal_trial TEXT,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    owner         TEXT,
    heartbeat_at  BIGINT,
    UNIQUE (namespace, name)
);

CREATE INDEX tuning_experiments_created ON tuning_experiments (created_at, id);
CREATE INDEX tuning_experiments_phase ON tuning_experiments (phase);

CREATE TABLE trials (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    experiment_id TEXT COLLATE "C" NOT NULL REFERENCES tuning_experiments (id),
    name          TEXT COLLATE "C" NOT NULL,
    -- Creation order within the experiment: the history algorithms replay.
    seq           BIGINT NOT NULL,
    -- JSON list of {name, value} (Katib's parameterAssignments, values as text).
    assignments   TEXT COLLATE "C" NOT NULL,
    -- JSON object of the suggesting algorithm's bookkeeping.
    tags          TEXT COLLATE "C" NOT NULL,
    phase         TEXT COLLATE "C" NOT NULL CHECK (phase IN
        ('Created', 'Running', 'Succeeded', 'Failed', 'Killed', 'EarlyStopped', 'MetricsUnavailable')),
    message       TEXT,
    -- The objective metric's value under its strategy, when there is one.
    objective     DOUBLE PRECISION,
    -- JSON list of {name, min, max, latest}.
    observation   TEXT COLLATE "C" NOT NULL,
    log_path      TEXT,
    -- How many times the trial was started (an interrupted trial is re-run).
    attempt       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    UNIQUE (experiment_id, seq),
    UNIQUE (experiment_id, name)
);

CREATE TABLE observation_logs (
    id            BIGSERIAL PRIMARY KEY,
    trial_id      TEXT COLLATE "C" NOT NULL REFERENCES trials (id),
    time          BIGINT,
    metric_name   TEXT COLLATE "C" NOT NULL,
    value         TEXT COLLATE "C" NOT NULL
);

CREATE INDEX observation_logs_trial ON observation_logs (trial_id, id);
