-- The audit log is append-only at the database level too; the hash chain catches whoever drops these.
CREATE FUNCTION sluice_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION sluice_audit_log_append_only();
