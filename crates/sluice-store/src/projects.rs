//! Projects: a group of instances and members; a member's role holds inside the project only.

use serde::Serialize;
use sluice_core::ProjectRole;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::error::conflict_or;
use crate::{Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: String,
    pub user_name: String,
    pub role: ProjectRole,
}

fn project(row: &AnyRow) -> Result<ProjectRecord, StoreError> {
    Ok(ProjectRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn role(text: &str, what: &str) -> Result<ProjectRole, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt { what: what.to_string() })
}

impl Store {
    pub async fn create_project(&self, name: &str, description: &str, audit: &AuditEntry) -> Result<ProjectRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO projects (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(description)
            .bind(now)
            .bind(now)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("project `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("project/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_project(&id).await
    }

    pub async fn get_project(&self, id_or_name: &str) -> Result<ProjectRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = $1 OR name = $1 ORDER BY id LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("project {id_or_name}") })?;
        project(&row)
    }

    /// Every project, or (with `member`) the projects that user belongs to.
    pub async fn list_projects(&self, member: Option<&str>) -> Result<Vec<ProjectRecord>, StoreError> {
        let rows = match member {
            None => sqlx::query("SELECT * FROM projects ORDER BY name").fetch_all(self.pool()).await?,
            Some(user) => {
                sqlx::query("SELECT p.* FROM projects p JOIN project_members m ON m.project_id = p.id WHERE m.user_id = $1 ORDER BY p.name")
                    .bind(user)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(project).collect()
    }

    /// Adds a member, or changes an existing member's role.
    pub async fn set_member(&self, project_id: &str, user_id: &str, role: ProjectRole, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2").bind(project_id).bind(user_id).execute(&mut *tx.tx).await?;
        sqlx::query("INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)")
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx.tx)
            .await?;
        append(&mut tx, &AuditEntry { target: Some(format!("project/{project_id}/member/{user_id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    pub async fn remove_member(&self, project_id: &str, user_id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("member {user_id} of project {project_id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("project/{project_id}/member/{user_id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    pub async fn members(&self, project_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows =
            sqlx::query("SELECT m.user_id, u.name, m.role FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.name")
                .bind(project_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("role")?;
                Ok(Member { user_id: r.try_get("user_id")?, user_name: r.try_get("name")?, role: role(&text, "project_members.role")? })
            })
            .collect()
    }

    /// The user's role in the project, if a member.
    pub async fn member_role(&self, project_id: &str, user_id: &str) -> Result<Option<ProjectRole>, StoreError> {
        let row = sqlx::query("SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(role(&r.try_get::<String, _>("role")?, "project_members.role")?)),
        }
    }

    /// Puts an instance in the project (an instance may belong to several).
    pub async fn add_project_instance(&self, project_id: &str, instance_id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO project_instances (project_id, instance_id) VALUES ($1, $2)")
            .bind(project_id)
            .bind(instance_id)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("instance {instance_id} in project {project_id}")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("project/{project_id}/instance/{instance_id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    pub async fn project_instances(&self, project_id: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT instance_id FROM project_instances WHERE project_id = $1 ORDER BY instance_id").bind(project_id).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(r.try_get("instance_id")?)).collect()
    }

    /// Whether the instance belongs to the project.
    pub async fn project_has_instance(&self, project_id: &str, instance_id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 AS one FROM project_instances WHERE project_id = $1 AND instance_id = $2")
            .bind(project_id)
            .bind(instance_id)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// Ids of the instances in any project the user is a member of.
    pub async fn member_instances(&self, user_id: &str) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT pi.instance_id FROM project_instances pi JOIN project_members pm ON pm.project_id = pi.project_id WHERE pm.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("instance_id").map_err(StoreError::from)).collect()
    }
}
