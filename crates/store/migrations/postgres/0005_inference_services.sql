-- KServe InferenceServices. PostgreSQL dialect; keep in step with
-- ../sqlite/0005_inference_services.sql. Conventions as in 0001: times are
-- epoch ms, JSON is TEXT. Text columns use COLLATE "C" as in 0002.

CREATE TABLE inference_services (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    -- The InferenceService in KServe's shape with every default spelled out
    -- (JSON), as the user last applied it.
    spec       TEXT COLLATE "C" NOT NULL,
    -- Bumped whenever an apply changes `spec` (KServe's metadata.generation).
    generation BIGINT NOT NULL,
    -- KServe's status (url, components, conditions, modelStatus, …) as the
    -- controller last wrote it (JSON), and the generation it describes.
    status     TEXT COLLATE "C" NOT NULL,
    -- The revision that last took all the traffic (JSON {revision,
    -- generation, predictor}): a canary rollout splits traffic between it
    -- and the newest revision, also after a restart. NULL until one has.
    rolled_out TEXT COLLATE "C",
    observed_generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (namespace, name)
);
