//! Connectors against real services: the PostgreSQL logical replication source through the runtime.

mod pg_logical;
