-- Workflow instances and their append-only history. Every row carries the
-- tenant and partition; every query of the BFF filters by both.
CREATE TABLE workflow_instances (
    id              uuid PRIMARY KEY,
    tenant_id       text        NOT NULL,
    partition_id    text        NOT NULL,
    workflow_id     text        NOT NULL,
    current_step    text        NOT NULL,
    status          text        NOT NULL,
    state           jsonb       NOT NULL,
    assignee        text,
    started_by      text        NOT NULL,
    step_entered_at timestamptz NOT NULL,
    step_due_at     timestamptz,
    due_at          timestamptz,
    next_due_at     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- Optimistic locking: every change is `WHERE version = <read>` and
    -- increments it.
    version         bigint      NOT NULL
);

CREATE INDEX workflow_instances_listing
    ON workflow_instances (tenant_id, partition_id, created_at DESC);
CREATE INDEX workflow_instances_due
    ON workflow_instances (next_due_at)
    WHERE status = 'active' AND next_due_at IS NOT NULL;

CREATE TABLE workflow_history (
    instance_id  uuid        NOT NULL REFERENCES workflow_instances (id) ON DELETE CASCADE,
    -- The instance version the transition produced.
    seq          bigint      NOT NULL,
    tenant_id    text        NOT NULL,
    partition_id text        NOT NULL,
    from_step    text,
    to_step      text        NOT NULL,
    event        text        NOT NULL,
    actor        text        NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

-- History is append-only.
CREATE FUNCTION workflow_history_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'workflow_history is append-only';
END;
$$;

CREATE TRIGGER workflow_history_no_update
    BEFORE UPDATE ON workflow_history
    FOR EACH ROW EXECUTE FUNCTION workflow_history_append_only();
