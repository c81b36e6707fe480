//! Counts over the store for Sluice's own business metrics (issue 13: tickets by state, execution outcomes,
//! backup age), sampled by the monitor into the time-series store.

use sqlx::Row;

use crate::{Store, StoreError};

/// The newest successful backup of one instance under one policy (or run by hand: no policy).
#[derive(Debug, Clone, PartialEq)]
pub struct LastBackup {
    pub policy_id: Option<String>,
    pub instance_id: String,
    pub finished_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BusinessCounts {
    /// Tickets per state.
    pub tickets: Vec<(String, i64)>,
    /// Finished execution jobs per end state (`done`, `failed`, `unknown`).
    pub jobs: Vec<(String, i64)>,
    pub backups: Vec<LastBackup>,
}

impl Store {
    pub async fn business_counts(&self) -> Result<BusinessCounts, StoreError> {
        let tickets = sqlx::query("SELECT state, COUNT(*) AS n FROM tickets GROUP BY state ORDER BY state").fetch_all(self.pool()).await?;
        let jobs = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs WHERE state IN ('done', 'failed', 'unknown') GROUP BY state ORDER BY state")
            .fetch_all(self.pool())
            .await?;
        let backups = sqlx::query(
            "SELECT policy_id, instance_id, MAX(finished_at) AS finished_at FROM backup_runs \
             WHERE state = 'done' AND deleted_at IS NULL AND finished_at IS NOT NULL GROUP BY policy_id, instance_id",
        )
        .fetch_all(self.pool())
        .await?;
        let pairs = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<(String, i64)>, StoreError> {
            rows.iter().map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?))).collect()
        };
        Ok(BusinessCounts {
            tickets: pairs(tickets)?,
            jobs: pairs(jobs)?,
            backups: backups
                .iter()
                .map(|r| Ok(LastBackup { policy_id: r.try_get("policy_id")?, instance_id: r.try_get("instance_id")?, finished_at: r.try_get("finished_at")? }))
                .collect::<Result<_, StoreError>>()?,
        })
    }
}

/// A ticket that ran on an instance: what an alert on that instance links to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RecentChange {
    pub ticket_id: String,
    pub project_id: String,
    pub title: String,
    /// `ddl` (a schema change), `dml`, `export`, `restore`.
    pub kind: String,
    /// The ticket's state now.
    pub state: String,
    /// When its run on this instance last moved (finished, or is running).
    pub ran_at: i64,
}

impl Store {
    /// Tickets whose execution on `instance_id` ran between `since` and `until` (ms), newest first, at most
    /// `limit`.
    pub async fn changes_on_instance(&self, instance_id: &str, since: i64, until: i64, limit: i64) -> Result<Vec<RecentChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.project_id, t.title, t.kind, t.state, MAX(j.updated_at) AS ran_at FROM jobs j JOIN tickets t ON t.id = j.ticket_id \
             WHERE j.instance_id = $1 AND j.state IN ('running', 'done', 'failed', 'unknown') AND j.updated_at >= $2 AND j.updated_at <= $3 \
             GROUP BY t.id, t.project_id, t.title, t.kind, t.state ORDER BY ran_at DESC LIMIT $4",
        )
        .bind(instance_id)
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecentChange {
                    ticket_id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    title: r.try_get("title")?,
                    kind: r.try_get("kind")?,
                    state: r.try_get("state")?,
                    ran_at: r.try_get("ran_at")?,
                })
            })
            .collect()
    }
}
