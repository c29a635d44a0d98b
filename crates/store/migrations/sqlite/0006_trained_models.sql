-- KServe TrainedModels (multi-model serving). SQLite dialect; keep in step
-- with ../postgres/0006_trained_models.sql. Conventions as in 0001: times
-- are epoch ms, JSON is TEXT.

CREATE TABLE trained_models (
    id         TEXT    NOT NULL PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    -- spec.inferenceService: the service (same namespace) whose predictor
    -- loads the model. A column of its own so that the controller finds a
    -- service's models without reading every spec.
    inference_service TEXT NOT NULL,
    -- The TrainedModel in KServe's shape (JSON), as the user last applied it.
    spec       TEXT    NOT NULL,
    -- Bumped whenever an apply changes `spec` (metadata.generation).
    generation INTEGER NOT NULL,
    -- KServe's status (url, address, conditions) as the controller last
    -- wrote it (JSON), and the generation it describes.
    status     TEXT    NOT NULL,
    observed_generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (namespace, name)
) STRICT;

CREATE INDEX trained_models_by_service ON trained_models (namespace, inference_service);
