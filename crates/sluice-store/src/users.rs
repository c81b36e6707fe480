//! Users and API tokens. Tokens are 192-bit random strings shown once; the store keeps only their SHA-256
//! (a fast hash is right for high-entropy tokens: there is nothing to brute-force, and every request
//! checks one).

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_core::{Role, Secret};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::cache::{CachedPrincipal, Changes};
use crate::error::conflict_or;
use crate::{Store, StoreError, new_id, now_ms};

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "slc_";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub user_name: String,
    pub role: Role,
    pub token_id: String,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn generate_token() -> Secret<String> {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

fn user(row: &AnyRow) -> Result<UserRecord, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role.parse().map_err(|_| StoreError::Corrupt { what: "users.role".into() })?,
        created_at: row.try_get("created_at")?,
    })
}

fn token(row: &AnyRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    /// Creates a user, audited in the same transaction.
    pub async fn create_user(&self, name: &str, role: Role, audit: &AuditEntry) -> Result<UserRecord, StoreError> {
        let rec = UserRecord { id: new_id(), name: name.to_string(), role, created_at: now_ms() };
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&rec.id)
            .bind(&rec.name)
            .bind(role.as_str())
            .bind(rec.created_at)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("user `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("user/{}", rec.id)), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok(rec)
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, name, role, created_at FROM users ORDER BY id").fetch_all(self.pool()).await?;
        rows.iter().map(user).collect()
    }

    pub async fn get_user(&self, id: &str) -> Result<UserRecord, StoreError> {
        let row = sqlx::query("SELECT id, name, role, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("user {id}") })?;
        user(&row)
    }

    /// A user by id or name.
    pub async fn find_user(&self, id_or_name: &str) -> Result<UserRecord, StoreError> {
        let row = sqlx::query("SELECT id FROM users WHERE id = $1 OR name = $1 ORDER BY id LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("user {id_or_name}") })?;
        self.get_user(&row.try_get::<String, _>("id")?).await
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(self.pool()).await?.try_get("n")?)
    }

    /// Deletes a user and, by cascade, its tokens.
    pub async fn delete_user(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // Tokens first: SQLite enforces ON DELETE CASCADE only with foreign_keys on, which is per connection.
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1").bind(id).execute(&mut *tx.tx).await?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("user {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("user/{id}")), ..audit.clone() }).await?;
        tx.changed(Changes { tokens: true, ..Changes::default() });
        tx.commit().await?;
        Ok(())
    }

    /// Issues a token for a user; the clear token is returned once and never stored.
    pub async fn create_token(
        &self,
        user_id: &str,
        name: &str,
        expires_at: Option<i64>,
        clear: Option<Secret<String>>,
        audit: &AuditEntry,
    ) -> Result<(TokenRecord, Secret<String>), StoreError> {
        let clear = clear.unwrap_or_else(generate_token);
        let rec = TokenRecord { id: new_id(), user_id: user_id.to_string(), name: name.to_string(), created_at: now_ms(), expires_at, last_used_at: None };
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1").bind(user_id).fetch_optional(&mut *tx.tx).await?;
        if exists.is_none() {
            return Err(StoreError::NotFound { what: format!("user {user_id}") });
        }
        sqlx::query("INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&rec.id)
            .bind(user_id)
            .bind(name)
            .bind(hash_token(clear.expose()))
            .bind(rec.created_at)
            .bind(expires_at)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || "a token with this value".to_string()))?;
        append(&mut tx, &AuditEntry { target: Some(format!("token/{}", rec.id)), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok((rec, clear))
    }

    pub async fn list_tokens(&self, user_id: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        let base = "SELECT id, user_id, name, created_at, expires_at, last_used_at FROM api_tokens";
        let rows = match user_id {
            Some(u) => sqlx::query(&format!("{base} WHERE user_id = $1 ORDER BY id")).bind(u).fetch_all(self.pool()).await?,
            None => sqlx::query(&format!("{base} ORDER BY id")).fetch_all(self.pool()).await?,
        };
        rows.iter().map(token).collect()
    }

    pub async fn get_token(&self, id: &str) -> Result<TokenRecord, StoreError> {
        let row = sqlx::query("SELECT id, user_id, name, created_at, expires_at, last_used_at FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("token {id}") })?;
        token(&row)
    }

    pub async fn delete_token(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("token {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("token/{id}")), ..audit.clone() }).await?;
        tx.changed(Changes { tokens: true, ..Changes::default() });
        tx.commit().await?;
        Ok(())
    }

    /// Resolves a presented token; `None` when unknown or expired.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, StoreError> {
        if !presented.starts_with(TOKEN_PREFIX) && presented.len() < 16 {
            return Ok(None);
        }
        let hash = hash_token(presented);
        let entry = match self.cache.token(&hash) {
            Some(hit) => hit,
            None => {
                let generation = self.cache.tokens_generation();
                let row = sqlx::query(
                    "SELECT t.id AS token_id, t.expires_at, u.id AS user_id, u.name, u.role \
                     FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
                )
                .bind(&hash)
                .fetch_optional(self.pool())
                .await?;
                let Some(row) = row else { return Ok(None) };
                let role: String = row.try_get("role")?;
                let entry = CachedPrincipal {
                    principal: Principal {
                        user_id: row.try_get("user_id")?,
                        user_name: row.try_get("name")?,
                        role: role.parse().map_err(|_| StoreError::Corrupt { what: "users.role".into() })?,
                        token_id: row.try_get("token_id")?,
                    },
                    expires_at: row.try_get("expires_at")?,
                };
                self.cache.put_token(generation, hash, entry.clone());
                entry
            }
        };
        if entry.expires_at.is_some_and(|e| e <= now_ms()) {
            return Ok(None);
        }
        Ok(Some(entry.principal))
    }

    /// Records use of a token (called at most about once a minute per token, not per request).
    pub async fn touch_token(&self, token_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2").bind(now_ms()).bind(token_id).execute(&mut *tx.tx).await?;
        tx.commit().await
    }
}
