#[cfg(feature = "source-mysql-binlog")]
pub mod mysql_binlog;
#[cfg(feature = "source-pg-logical")]
pub mod pg_logical;
