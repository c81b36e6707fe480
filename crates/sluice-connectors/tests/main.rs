//! Connectors against real services: the PostgreSQL logical replication source through the runtime.

mod http_sink;
mod mysql_binlog;
mod pg_logical;
