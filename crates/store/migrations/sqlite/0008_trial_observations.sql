-- Katib's experiments and trials moved onto the resource model (objects in
-- `resources`); the metric reports of a trial stay a side table, now keyed
-- by the Trial object's uid (a legacy trial's id becomes its uid when
-- `oxflow_tuning::kinds::migrate_legacy` moves it), without a foreign key
-- to the old `trials` table, which only that migration still reads.
-- SQLite dialect; keep in step with ../postgres/0008_trial_observations.sql.

CREATE TABLE trial_observations (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    trial_uid   TEXT    NOT NULL,
    time        INTEGER,
    metric_name TEXT    NOT NULL,
    value       TEXT    NOT NULL
) STRICT;

INSERT INTO trial_observations (id, trial_uid, time, metric_name, value)
    SELECT id, trial_id, time, metric_name, value FROM observation_logs;
DROP TABLE observation_logs;

CREATE INDEX trial_observations_trial ON trial_observations (trial_uid, id);
