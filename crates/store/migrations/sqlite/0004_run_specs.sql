-- A run's spec in a table of its own, in pieces. SQLite rewrites a whole row
-- on UPDATE, and a run's row changes on every state change and heartbeat:
-- with the spec in it, each heartbeat of a 10,000-task pipeline rewrote
-- megabytes. And every copy of a value the driver and SQLite make while
-- writing or reading it is as large as the value: pieces of at most 64 KiB
-- keep those copies small. SQLite dialect; keep in step with
-- ../postgres/0004_run_specs.sql.

CREATE TABLE run_specs (
    run_id TEXT    NOT NULL REFERENCES runs (id),
    -- The pieces in order, from 0; their concatenation is the spec,
    -- {"pipeline_spec": …, "platform_spec": …} as submitted (JSON).
    seq    INTEGER NOT NULL,
    chunk  TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

INSERT INTO run_specs (run_id, seq, chunk) SELECT id, 0, spec FROM runs;
ALTER TABLE runs DROP COLUMN spec;
