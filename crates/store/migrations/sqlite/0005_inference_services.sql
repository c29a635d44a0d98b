-- KServe InferenceServices. SQLite dialect; keep in step with
-- ../postgres/0005_inference_services.sql. Conventions as in 0001: times are
-- epoch ms, JSON is TEXT.

CREATE TABLE inference_services (
    id         TEXT    NOT NULL PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    -- The InferenceService in KServe's shape with every default spelled out
    -- (JSON), as the user last applied it.
    spec       TEXT    NOT NULL,
    -- Bumped whenever an apply changes `spec` (KServe's metadata.generation).
    generation INTEGER NOT NULL,
    -- KServe's status (url, components, conditions, modelStatus, …) as the
    -- controller last wrote it (JSON), and the generation it describes.
    status     TEXT    NOT NULL,
    -- The revision that last took all the traffic (JSON {revision,
    -- generation, predictor}): a canary rollout splits traffic between it
    -- and the newest revision, also after a restart. NULL until one has.
    rolled_out TEXT,
    observed_generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (namespace, name)
) STRICT;
