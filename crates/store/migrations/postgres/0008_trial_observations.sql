-- Katib's experiments and trials moved onto the resource model (objects in
-- `resources`); the metric reports of a trial stay a side table, now keyed
-- by the Trial object's uid (a legacy trial's id becomes its uid when
-- `oxflow_tuning::kinds::migrate_legacy` moves it), without a foreign key
-- to the old `trials` table, which only that migration still reads.
-- PostgreSQL dialect; keep in step with ../sqlite/0008_trial_observations.sql.

CREATE TABLE trial_observations (
    id          BIGSERIAL PRIMARY KEY,
    trial_uid   TEXT COLLATE "C" NOT NULL,
    time        BIGINT,
    metric_name TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL
);

INSERT INTO trial_observations (id, trial_uid, time, metric_name, value)
    SELECT id, trial_id, time, metric_name, value FROM observation_logs;
SELECT setval(pg_get_serial_sequence('trial_observations', 'id'),
              COALESCE((SELECT MAX(id) FROM trial_observations), 0) + 1, false);
DROP TABLE observation_logs;

CREATE INDEX trial_observations_trial ON trial_observations (trial_uid, id);
