-- KServe TrainedModels (multi-model serving). PostgreSQL dialect; keep in
-- step with ../sqlite/0006_trained_models.sql. Conventions as in 0001: times
-- are epoch ms, JSON is TEXT. Text columns use COLLATE "C" as in 0002.

CREATE TABLE trained_models (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    namespace  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    -- spec.inferenceService: the service (same namespace) whose predictor
    -- loads the model. A column of its own so that the controller finds a
    -- service's models without reading every spec.
    inference_service TEXT COLLATE "C" NOT NULL,
    -- The TrainedModel in KServe's shape (JSON), as the user last applied it.
    spec       TEXT COLLATE "C" NOT NULL,
    -- Bumped whenever an apply changes `spec` (metadata.generation).
    generation BIGINT NOT NULL,
    -- KServe's status (url, address, conditions) as the controller last
    -- wrote it (JSON), and the generation it describes.
    status     TEXT COLLATE "C" NOT NULL,
    observed_generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (namespace, name)
);

CREATE INDEX trained_models_by_service ON trained_models (namespace, inference_service);
