//! Large bodies kept with a ticket target (a backup's rows, an export's file) as ordered text chunks, each
//! a row, so no single value grows past what both stores handle well.

use sqlx::Row;

use crate::{StoreError, WriteTx};

/// Whose chunks: the table that holds them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chunks {
    Backup,
    Export,
}

impl Chunks {
    fn table(self) -> &'static str {
        match self {
            Chunks::Backup => "ticket_backup_chunks",
            Chunks::Export => "ticket_export_chunks",
        }
    }

    /// Replaces the target's chunks with `bodies`, in order.
    pub(crate) async fn replace(self, tx: &mut WriteTx<'_>, ticket_id: &str, target_seq: i64, bodies: &[String]) -> Result<(), StoreError> {
        let table = self.table();
        sqlx::query(&format!("DELETE FROM {table} WHERE ticket_id = $1 AND target_seq = $2")).bind(ticket_id).bind(target_seq).execute(&mut *tx.tx).await?;
        for (i, body) in bodies.iter().enumerate() {
            sqlx::query(&format!("INSERT INTO {table} (ticket_id, target_seq, chunk, body) VALUES ($1, $2, $3, $4)"))
                .bind(ticket_id)
                .bind(target_seq)
                .bind(i as i64)
                .bind(body)
                .execute(&mut *tx.tx)
                .await?;
        }
        Ok(())
    }

    /// The target's chunks, in order.
    pub(crate) async fn read<'c>(self, db: impl sqlx::Executor<'c, Database = sqlx::Any>, ticket_id: &str, target_seq: i64) -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT body FROM {} WHERE ticket_id = $1 AND target_seq = $2 ORDER BY chunk", self.table());
        let rows = sqlx::query(&sql).bind(ticket_id).bind(target_seq).fetch_all(db).await?;
        Ok(rows.iter().map(|r| r.try_get("body")).collect::<Result<_, _>>()?)
    }
}
