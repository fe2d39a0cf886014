//! Where workflow instances live: PostgreSQL (shared by every replica) or
//! memory (one replica, lost on restart). Both keep the same contract, and
//! one test suite runs against both:
//!
//! - every read and write is scoped by tenant and partition;
//! - `update` applies only when the stored version is the one read
//!   (optimistic locking) and appends the history entries in the same
//!   transaction;
//! - `claim_due` hands each due instance to exactly one caller at a time
//!   (`FOR UPDATE SKIP LOCKED`), so timeouts fire once across replicas.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};
use thesa_core::config::WorkflowStoreConfig;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{HistoryEntry, Instance, Status};

/// A store failure (the database did not answer or refused).
#[derive(Debug, thiserror::Error)]
#[error("workflow store: {0}")]
pub struct StoreError(String);

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self(crate::backends::outbound::error_chain(&err))
    }
}

/// The result of an optimistic update.
#[derive(Debug, PartialEq, Eq)]
pub enum Updated {
    /// The change was applied.
    Applied,
    /// Someone changed the instance since it was read.
    Conflict,
}

/// Filters of a listing.
#[derive(Debug, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only these workflows (the ones the caller may see).
    pub workflows: Vec<String>,
    /// Only instances assigned to one of these (`user:x`, `role:y`).
    pub assignees: Option<Vec<String>>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// The workflow store.
#[derive(Debug)]
pub enum Store {
    /// PostgreSQL via sqlx.
    Postgres(PgPool),
    /// In memory.
    Memory(Memory),
}

/// The in-memory store: instances with their history, behind one lock.
#[derive(Debug, Default)]
pub struct Memory {
    rows: Mutex<HashMap<Uuid, (Instance, Vec<HistoryEntry>)>>,
}

const COLUMNS: &str = "id, tenant_id, partition_id, workflow_id, current_step, status, state, \
     assignee, started_by, step_entered_at, step_due_at, due_at, created_at, updated_at, version";

impl Store {
    /// Connects to PostgreSQL (DSN from the variable `dsn_env` names),
    /// checks it answers and runs the migrations when `auto_migrate` is on.
    pub async fn postgres(config: &WorkflowStoreConfig, dsn: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_open_conns.max(1))
            .min_connections(config.max_idle_conns.min(config.max_open_conns))
            .max_lifetime(config.conn_max_lifetime.get())
            // Fail fast when the database is gone: workflow requests answer
            // 503 rather than hang (the guide's runbook).
            .acquire_timeout(Duration::from_secs(3))
            .connect(dsn)
            .await?;
        sqlx::query("SELECT 1").execute(&pool).await?;
        if config.auto_migrate {
            sqlx::migrate!("./migrations")
                .run(&pool)
                .await
                .map_err(|e| StoreError(format!("migrations: {e}")))?;
        }
        Ok(Self::Postgres(pool))
    }

    /// `postgres` or `memory`.
    pub fn driver(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Memory(_) => "memory",
        }
    }

    /// How long a trivial query takes.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        if let Self::Postgres(pool) = self {
            sqlx::query("SELECT 1").execute(pool).await?;
        }
        Ok(started.elapsed())
    }

    /// Closes the pool (shutdown).
    pub async fn close(&self) {
        if let Self::Postgres(pool) = self {
            pool.close().await;
        }
    }

    /// Stores a new instance with its first history entries.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "insert", driver = self.driver()))]
    pub async fn insert(
        &self,
        instance: &Instance,
        history: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(memory) => {
                let mut rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                rows.insert(instance.id, (instance.clone(), history.to_vec()));
                Ok(())
            }
            Self::Postgres(pool) => {
                static SQL: LazyLock<String> = LazyLock::new(|| {
                    format!(
                        "WITH inserted AS ( \
                       INSERT INTO workflow_instances (id, tenant_id, partition_id, workflow_id, \
                         current_step, status, state, assignee, started_by, step_entered_at, \
                         step_due_at, due_at, next_due_at, created_at, updated_at, version) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15, $16) \
                       RETURNING id) \
                     {}",
                        append_from("inserted", 17)
                    )
                });
                let query = sqlx::query(SQL.as_str());
                bind_history(bind_instance(query, instance), history)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// The instance `id` of `tenant` in `partition`.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "get", driver = self.driver()))]
    pub async fn get(
        &self,
        tenant: &str,
        partition: &str,
        id: Uuid,
    ) -> Result<Option<Instance>, StoreError> {
        match self {
            Self::Memory(memory) => {
                let rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                Ok(rows
                    .get(&id)
                    .map(|(i, _)| i)
                    .filter(|i| i.tenant == tenant && i.partition == partition)
                    .cloned())
            }
            Self::Postgres(pool) => {
                let row = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM workflow_instances \
                     WHERE id = $1 AND tenant_id = $2 AND partition_id = $3"
                ))
                .bind(id)
                .bind(tenant)
                .bind(partition)
                .fetch_optional(pool)
                .await?;
                row.map(|r| instance(&r)).transpose()
            }
        }
    }

    /// The history of the instance `id` of `tenant` in `partition`, oldest
    /// first.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "history", driver = self.driver()))]
    pub async fn history(
        &self,
        tenant: &str,
        partition: &str,
        id: Uuid,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        match self {
            Self::Memory(memory) => {
                let rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                Ok(rows
                    .get(&id)
                    .filter(|(i, _)| i.tenant == tenant && i.partition == partition)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_default())
            }
            Self::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT seq, from_step, to_step, event, actor, at FROM workflow_history \
                     WHERE instance_id = $1 AND tenant_id = $2 AND partition_id = $3 \
                     ORDER BY seq",
                )
                .bind(id)
                .bind(tenant)
                .bind(partition)
                .fetch_all(pool)
                .await?;
                rows.iter().map(history_entry).collect()
            }
        }
    }

    /// Replaces the instance when its stored version is `read_version`
    /// (the new one carries `read_version + 1`) and appends `history`.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "update", driver = self.driver()))]
    pub async fn update(
        &self,
        instance: &Instance,
        read_version: i64,
        history: &[HistoryEntry],
    ) -> Result<Updated, StoreError> {
        match self {
            Self::Memory(memory) => {
                let mut rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                let Some((stored, entries)) = rows.get_mut(&instance.id).filter(|(s, _)| {
                    s.tenant == instance.tenant && s.partition == instance.partition
                }) else {
                    return Ok(Updated::Conflict);
                };
                if stored.version != read_version {
                    return Ok(Updated::Conflict);
                }
                *stored = instance.clone();
                entries.extend_from_slice(history);
                Ok(Updated::Applied)
            }
            Self::Postgres(pool) => {
                update_with_history(pool, instance, read_version, history).await
            }
        }
    }

    /// A page of the instances of `tenant` in `partition`, newest first,
    /// and the total matching.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "list", driver = self.driver()))]
    pub async fn list(
        &self,
        tenant: &str,
        partition: &str,
        filter: &ListFilter,
    ) -> Result<(Vec<Instance>, i64), StoreError> {
        match self {
            Self::Memory(memory) => {
                let rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                let mut matching: Vec<&Instance> = rows
                    .values()
                    .map(|(i, _)| i)
                    .filter(|i| i.tenant == tenant && i.partition == partition)
                    .filter(|i| filter.status.is_none_or(|s| i.status == s))
                    .filter(|i| filter.workflows.contains(&i.workflow_id))
                    .filter(|i| {
                        filter.assignees.as_ref().is_none_or(|wanted| {
                            i.assignee.as_ref().is_some_and(|a| wanted.contains(a))
                        })
                    })
                    .collect();
                matching.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
                let total = matching.len() as i64;
                let page = matching
                    .into_iter()
                    .skip(filter.offset.max(0) as usize)
                    .take(filter.limit.max(0) as usize)
                    .cloned()
                    .collect();
                Ok((page, total))
            }
            Self::Postgres(pool) => {
                let condition = "tenant_id = $1 AND partition_id = $2 \
                     AND ($3::text IS NULL OR status = $3) AND workflow_id = ANY($4) \
                     AND ($5::text[] IS NULL OR assignee = ANY($5))";
                let status = filter.status.map(Status::as_str);
                let total: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM workflow_instances WHERE {condition}"
                ))
                .bind(tenant)
                .bind(partition)
                .bind(status)
                .bind(&filter.workflows)
                .bind(&filter.assignees)
                .fetch_one(pool)
                .await?;
                let rows = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM workflow_instances WHERE {condition} \
                     ORDER BY created_at DESC, id LIMIT $6 OFFSET $7"
                ))
                .bind(tenant)
                .bind(partition)
                .bind(status)
                .bind(&filter.workflows)
                .bind(&filter.assignees)
                .bind(filter.limit)
                .bind(filter.offset)
                .fetch_all(pool)
                .await?;
                let page = rows.iter().map(instance).collect::<Result<_, _>>()?;
                Ok((page, total))
            }
        }
    }

    /// Claims up to `limit` active instances due at `now` that no one else
    /// holds, lets `apply` change each (a timeout firing: it returns the new
    /// instance and its history entry, or `None` to leave it), stores the
    /// changes and returns them. Every tenant's instances are considered:
    /// this is the timeout processor's query.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "claim_due", driver = self.driver()))]
    pub async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: i64,
        mut apply: impl FnMut(&Instance) -> Option<(Instance, HistoryEntry)>,
    ) -> Result<Vec<Instance>, StoreError> {
        match self {
            Self::Memory(memory) => {
                let mut rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                let mut changed = Vec::new();
                for (stored, entries) in rows.values_mut() {
                    if changed.len() as i64 >= limit {
                        break;
                    }
                    if stored.status != Status::Active || stored.next_due().is_none_or(|d| d > now)
                    {
                        continue;
                    }
                    if let Some((next, entry)) = apply(stored) {
                        *stored = next.clone();
                        entries.push(entry);
                        changed.push(next);
                    }
                }
                Ok(changed)
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM workflow_instances \
                     WHERE status = 'active' AND next_due_at <= $1 \
                     ORDER BY next_due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut changed = Vec::new();
                for row in &rows {
                    let stored = instance(row)?;
                    if let Some((next, entry)) = apply(&stored) {
                        // The row is locked: the version cannot have moved.
                        update_with_history(&mut *tx, &next, stored.version, &[entry]).await?;
                        changed.push(next);
                    }
                }
                tx.commit().await?;
                Ok(changed)
            }
        }
    }

    /// Active instances by workflow (all tenants), for the gauge.
    #[tracing::instrument(name = "workflow store", skip_all, fields(call = "active_counts", driver = self.driver()))]
    pub async fn active_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        match self {
            Self::Memory(memory) => {
                let rows = memory.rows.lock().unwrap_or_else(|e| e.into_inner());
                let mut counts: HashMap<String, i64> = HashMap::new();
                for (i, _) in rows.values().filter(|(i, _)| i.status == Status::Active) {
                    *counts.entry(i.workflow_id.clone()).or_default() += 1;
                }
                Ok(counts.into_iter().collect())
            }
            Self::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT workflow_id, count(*) FROM workflow_instances \
                     WHERE status = 'active' GROUP BY workflow_id",
                )
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            }
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds the 16 columns of an insert, in table order.
fn bind_instance<'q>(query: Query<'q>, i: &'q Instance) -> Query<'q> {
    query
        .bind(i.id)
        .bind(&i.tenant)
        .bind(&i.partition)
        .bind(&i.workflow_id)
        .bind(&i.step)
        .bind(i.status.as_str())
        .bind(sqlx::types::Json(&i.state))
        .bind(&i.assignee)
        .bind(&i.started_by)
        .bind(i.step_entered_at)
        .bind(i.step_due_at)
        .bind(i.due_at)
        .bind(i.next_due())
        .bind(i.created_at)
        .bind(i.updated_at)
        .bind(i.version)
}

/// `INSERT INTO workflow_history … SELECT … FROM <source>`: the history
/// rows, given as six arrays from parameter `$first` on (see
/// [`bind_history`]), for the instance row the CTE `source` returns (none
/// when it returns none). `$2` and `$3` are the tenant and the partition.
fn append_from(source: &str, first: usize) -> String {
    let [seq, from, to, event, actor, at] = std::array::from_fn(|k| format!("${}", first + k));
    format!(
        "INSERT INTO workflow_history (instance_id, seq, tenant_id, partition_id, \
           from_step, to_step, event, actor, at) \
         SELECT {source}.id, h.seq, $2, $3, h.from_step, h.to_step, h.event, h.actor, h.at \
         FROM {source}, unnest({seq}::bigint[], {from}::text[], {to}::text[], \
           {event}::text[], {actor}::text[], {at}::timestamptz[]) \
           AS h(seq, from_step, to_step, event, actor, at)"
    )
}

/// Binds `history` as the six arrays [`append_from`] reads.
fn bind_history<'q>(query: Query<'q>, history: &'q [HistoryEntry]) -> Query<'q> {
    query
        .bind(history.iter().map(|h| h.seq).collect::<Vec<i64>>())
        .bind(
            history
                .iter()
                .map(|h| h.from_step.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(
            history
                .iter()
                .map(|h| h.to_step.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            history
                .iter()
                .map(|h| h.event.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            history
                .iter()
                .map(|h| h.actor.as_str())
                .collect::<Vec<&str>>(),
        )
        .bind(
            history
                .iter()
                .map(|h| h.at)
                .collect::<Vec<OffsetDateTime>>(),
        )
}

/// The versioned update and its history rows in one statement: one round
/// trip and one implicit transaction (a data-modifying CTE runs whole or
/// not at all). The history is inserted only for the row the update
/// matched; 0 rows updated is a conflict.
async fn update_with_history<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    i: &Instance,
    read_version: i64,
    history: &[HistoryEntry],
) -> Result<Updated, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH updated AS ( \
           UPDATE workflow_instances SET current_step = $4, status = $5, state = $6, \
             assignee = $7, step_entered_at = $8, step_due_at = $9, due_at = $10, \
             next_due_at = $11, updated_at = $12, version = $13 \
           WHERE id = $1 AND tenant_id = $2 AND partition_id = $3 AND version = $14 \
           RETURNING id), \
         appended AS ({}) \
         SELECT count(*) FROM updated",
            append_from("updated", 15)
        )
    });
    let query = sqlx::query(SQL.as_str())
        .bind(i.id)
        .bind(&i.tenant)
        .bind(&i.partition)
        .bind(&i.step)
        .bind(i.status.as_str())
        .bind(sqlx::types::Json(&i.state))
        .bind(&i.assignee)
        .bind(i.step_entered_at)
        .bind(i.step_due_at)
        .bind(i.due_at)
        .bind(i.next_due())
        .bind(i.updated_at)
        .bind(i.version)
        .bind(read_version);
    let row = bind_history(query, history).fetch_one(executor).await?;
    let updated: i64 = row.try_get(0)?;
    Ok(if updated == 1 {
        Updated::Applied
    } else {
        Updated::Conflict
    })
}

fn instance(row: &PgRow) -> Result<Instance, StoreError> {
    let status: String = row.try_get("status")?;
    let state: sqlx::types::Json<Map<String, Value>> = row.try_get("state")?;
    Ok(Instance {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        partition: row.try_get("partition_id")?,
        workflow_id: row.try_get("workflow_id")?,
        step: row.try_get("current_step")?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError(format!("unknown instance status {status:?}")))?,
        state: state.0,
        assignee: row.try_get("assignee")?,
        started_by: row.try_get("started_by")?,
        step_entered_at: row.try_get("step_entered_at")?,
        step_due_at: row.try_get("step_due_at")?,
        due_at: row.try_get("due_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn history_entry(row: &PgRow) -> Result<HistoryEntry, StoreError> {
    Ok(HistoryEntry {
        seq: row.try_get("seq")?,
        from_step: row.try_get("from_step")?,
        to_step: row.try_get("to_step")?,
        event: row.try_get("event")?,
        actor: row.try_get("actor")?,
        at: row.try_get("at")?,
    })
}

/// The store contract, run against both stores.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::features::workflow::{self, fire_timeout, transition};
    use crate::test_postgres as postgres;

    fn config() -> WorkflowStoreConfig {
        WorkflowStoreConfig {
            max_open_conns: 8,
            max_idle_conns: 0,
            ..WorkflowStoreConfig::default()
        }
    }

    fn workflow() -> thesa_core::model::Workflow {
        serde_json::from_value(json!({
            "id": "w", "name": "W", "initial_step": "wait",
            "steps": [
                {"id": "wait", "type": "human", "timeout": 1,
                 "assignee": {"type": "role", "value": "lead"}},
                {"id": "done", "type": "terminal"},
                {"id": "late", "type": "terminal"}
            ],
            "transitions": [
                {"from": "wait", "to": "done", "event": "ok"},
                {"from": "wait", "to": "late", "event": "timeout"}
            ]
        }))
        .unwrap()
    }

    fn now() -> OffsetDateTime {
        // Whole microseconds: what PostgreSQL keeps.
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap()
    }

    fn new(tenant: &str, partition: &str) -> (Instance, HistoryEntry) {
        let input = json!({"order_id": "o1"}).as_object().unwrap().clone();
        workflow::start(&workflow(), tenant, partition, "alice", input, now())
    }

    /// Runs `suite` against memory and a throwaway PostgreSQL database.
    async fn both<F, Fut>(suite: F)
    where
        F: Fn(Arc<Store>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        suite(Arc::new(Store::Memory(Memory::default()))).await;
        let server = postgres::Postgres::start();
        let database = server.database();
        let store = Store::postgres(&config(), &database.url).await.unwrap();
        let store = Arc::new(store);
        suite(store.clone()).await;
        store.close().await;
    }

    #[tokio::test]
    async fn instances_and_history_round_trip() {
        both(|store| async move {
            let (instance, entry) = new("acme", "eu");
            store
                .insert(&instance, std::slice::from_ref(&entry))
                .await
                .unwrap();
            let read = store.get("acme", "eu", instance.id).await.unwrap();
            assert_eq!(read.as_ref(), Some(&instance), "{}", store.driver());
            let history = store.history("acme", "eu", instance.id).await.unwrap();
            assert_eq!(history, [entry]);
            assert_eq!(instance.assignee.as_deref(), Some("role:lead"));
        })
        .await;
    }

    #[tokio::test]
    async fn tenants_and_partitions_never_see_each_other() {
        both(|store| async move {
            let (instance, entry) = new("acme", "eu");
            store.insert(&instance, &[entry]).await.unwrap();
            for (tenant, partition) in [("other", "eu"), ("acme", "us"), ("acme", "")] {
                let driver = store.driver();
                assert_eq!(
                    store.get(tenant, partition, instance.id).await.unwrap(),
                    None,
                    "{driver}"
                );
                assert!(
                    store
                        .history(tenant, partition, instance.id)
                        .await
                        .unwrap()
                        .is_empty()
                );
                let filter = ListFilter {
                    workflows: vec!["w".into()],
                    limit: 10,
                    ..ListFilter::default()
                };
                let (items, total) = store.list(tenant, partition, &filter).await.unwrap();
                assert!(items.is_empty() && total == 0, "{driver}");
                // A change made under another tenant does not apply.
                let mut foreign = instance.clone();
                foreign.tenant = tenant.into();
                foreign.partition = partition.into();
                let (moved, entry) =
                    transition(&workflow(), &foreign, "done", "ok", "mallory", now());
                let updated = store
                    .update(&moved, instance.version, &[entry])
                    .await
                    .unwrap();
                assert_eq!(updated, Updated::Conflict, "{driver}");
            }
            let read = store.get("acme", "eu", instance.id).await.unwrap().unwrap();
            assert_eq!(read.step, "wait", "unchanged");
        })
        .await;
    }

    #[tokio::test]
    async fn of_two_updates_from_one_read_one_applies() {
        both(|store| async move {
            let (instance, entry) = new("acme", "");
            store.insert(&instance, &[entry]).await.unwrap();
            let w = workflow();
            let a = transition(&w, &instance, "done", "ok", "bob", now());
            let b = transition(&w, &instance, "late", "timeout", "carol", now());
            let (ra, rb) = tokio::join!(
                store.update(&a.0, instance.version, std::slice::from_ref(&a.1)),
                store.update(&b.0, instance.version, std::slice::from_ref(&b.1)),
            );
            let mut results = [ra.unwrap(), rb.unwrap()];
            results.sort_by_key(|u| *u == Updated::Conflict);
            assert_eq!(
                results,
                [Updated::Applied, Updated::Conflict],
                "{}",
                store.driver()
            );
            let history = store.history("acme", "", instance.id).await.unwrap();
            assert_eq!(history.len(), 2, "start and exactly one transition");
            let read = store.get("acme", "", instance.id).await.unwrap().unwrap();
            assert_eq!(read.version, 2);
        })
        .await;
    }

    #[tokio::test]
    async fn lists_filter_and_page() {
        both(|store| async move {
            let mut ids = Vec::new();
            for n in 0..5 {
                let (mut instance, entry) = new("acme", "");
                instance.created_at += time::Duration::seconds(n);
                if n == 4 {
                    instance.status = workflow::Status::Completed;
                    instance.assignee = None;
                }
                store.insert(&instance, &[entry]).await.unwrap();
                ids.push(instance.id);
            }
            let filter = |status, assignees, limit, offset| ListFilter {
                status,
                workflows: vec!["w".into()],
                assignees,
                limit,
                offset,
            };
            let (page, total) = store
                .list("acme", "", &filter(None, None, 2, 0))
                .await
                .unwrap();
            assert_eq!(total, 5);
            assert_eq!(
                page.iter().map(|i| i.id).collect::<Vec<_>>(),
                [ids[4], ids[3]],
                "newest first"
            );
            let (page, _) = store
                .list("acme", "", &filter(None, None, 2, 4))
                .await
                .unwrap();
            assert_eq!(page.len(), 1);
            let active = filter(Some(workflow::Status::Active), None, 10, 0);
            assert_eq!(store.list("acme", "", &active).await.unwrap().1, 4);
            let lead = filter(None, Some(vec!["role:lead".into()]), 10, 0);
            assert_eq!(store.list("acme", "", &lead).await.unwrap().1, 4);
            let nobody = filter(None, Some(vec!["user:zed".into()]), 10, 0);
            assert_eq!(store.list("acme", "", &nobody).await.unwrap().1, 0);
            let mut other = filter(None, None, 10, 0);
            other.workflows = vec!["x".into()];
            assert_eq!(store.list("acme", "", &other).await.unwrap().1, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn each_due_instance_is_claimed_once_by_concurrent_processors() {
        both(|store| async move {
            let w = workflow();
            let count = 40;
            for _ in 0..count {
                let (instance, entry) = new("acme", "");
                store.insert(&instance, &[entry]).await.unwrap();
            }
            let later = now() + time::Duration::seconds(5);
            let claim = |store: Arc<Store>| {
                let w = w.clone();
                async move {
                    let mut fired = 0;
                    loop {
                        let batch = store
                            .claim_due(later, 3, |i| fire_timeout(&w, i, later))
                            .await
                            .unwrap();
                        if batch.is_empty() {
                            return fired;
                        }
                        fired += batch.len();
                        tokio::task::yield_now().await;
                    }
                }
            };
            let (a, b) = tokio::join!(
                tokio::spawn(claim(store.clone())),
                tokio::spawn(claim(store.clone()))
            );
            assert_eq!(a.unwrap() + b.unwrap(), count, "{}", store.driver());
            let filter = ListFilter {
                workflows: vec!["w".into()],
                limit: 100,
                ..ListFilter::default()
            };
            let (items, _) = store.list("acme", "", &filter).await.unwrap();
            for i in items {
                assert_eq!(i.step, "late");
                let history = store.history("acme", "", i.id).await.unwrap();
                let timeouts = history.iter().filter(|h| h.event == "timeout").count();
                assert_eq!(timeouts, 1, "fired once");
            }
            assert!(
                store
                    .claim_due(later, 10, |i| fire_timeout(&w, i, later))
                    .await
                    .unwrap()
                    .is_empty()
            );
        })
        .await;
    }
}
