ALTER TABLE job_statements ADD COLUMN plan TEXT;
