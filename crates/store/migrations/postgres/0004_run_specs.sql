-- A run's spec in a table of its own, in pieces. A run's row changes on
-- every state change and heartbeat, and SQLite rewrites a whole row on
-- UPDATE; every copy of a value the driver makes while writing or reading it
-- is as large as the value: pieces of at most 64 KiB keep those copies
-- small. Both dialects share one layout. PostgreSQL dialect; keep in step
-- with ../sqlite/0004_run_specs.sql.

CREATE TABLE run_specs (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    -- The pieces in order, from 0; their concatenation is the spec,
    -- {"pipeline_spec": …, "platform_spec": …} as submitted (JSON).
    seq    INTEGER NOT NULL,
    chunk  TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);

INSERT INTO run_specs (run_id, seq, chunk) SELECT id, 0, spec FROM runs;
ALTER TABLE runs DROP COLUMN spec;
