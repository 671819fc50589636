-- A build that fails the quality gate is kept, as `rejected`, with the figures that held it
-- back; an operator may still activate it.
ALTER TABLE index_versions DROP CONSTRAINT index_versions_state_check;
ALTER TABLE index_versions ADD CONSTRAINT index_versions_state_check
    CHECK (state IN ('ready', 'rejected', 'deleted'));
