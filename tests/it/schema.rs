//! The two hand-kept schemas (`migrations/sqlite/`, `migrations/postgres/`) stay one schema: an
//! empty SQLite file and an empty PostgreSQL database are migrated by the store, then their
//! tables, columns (type by family, NOT NULL, primary key), indexes (columns, unique, partial)
//! and foreign keys are compared. Any difference fails unless `ALLOWED` lists it with its
//! reason; an allowed difference that no longer exists fails too, so the list stays true.
//! Runs in the PostgreSQL pass of `scripts/test.sh` (the SQLite pass has no server).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row as _;

use crate::support::db;
use crate::support::service::temp_dir;

/// Differences the two backends are meant to have, each with why.
const ALLOWED: &[(&str, &str)] = &[];

/// One backend's schema, in words both can say.
#[derive(Debug, Default)]
struct Schema {
    /// `table.column` → `family not-null pk`.
    columns: BTreeMap<String, String>,
    /// `table(columns)` with `unique` / `partial` marks (constraint-backed ones included).
    indexes: BTreeSet<String>,
    /// `table.column -> table.column`.
    foreign_keys: BTreeSet<String>,
}

fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text"
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
        "float"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else if t.contains("bool") {
        "boolean"
    } else {
        "other"
    }
}

fn column(table: &str, name: &str, declared: &str, not_null: bool, pk: bool) -> (String, String) {
    // A primary key is never NULL, whatever the backend reports for it.
    let not_null = if not_null || pk { " not-null" } else { "" };
    let pk = if pk { " pk" } else { "" };
    (
        format!("{table}.{name}"),
        format!("{}{not_null}{pk}", family(declared)),
    )
}

fn index(table: &str, columns: &[String], unique: bool, partial: bool) -> String {
    format!(
        "{table}({}){}{}",
        columns.join(", "),
        if unique { " unique" } else { "" },
        if partial { " partial" } else { "" }
    )
}

const SKIPPED: [&str; 2] = ["_sqlx_migrations", "sqlite_sequence"];

async fn sqlite_schema(file: &std::path::Path) -> Schema {
    let url = format!("sqlite://{}", file.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    let mut schema = Schema::default();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&pool)
            .await
            .expect("tables");
    for table in tables.iter().filter(|t| !SKIPPED.contains(&t.as_str())) {
        let rows = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
            .fetch_all(&pool)
            .await
            .expect("columns");
        for r in rows {
            let (k, v) = column(
                table,
                &r.get::<String, _>("name"),
                &r.get::<String, _>("type"),
                r.get::<i64, _>("notnull") != 0,
                r.get::<i64, _>("pk") != 0,
            );
            schema.columns.insert(k, v);
        }
        let list = sqlx::query(&format!("PRAGMA index_list(\"{table}\")"))
            .fetch_all(&pool)
            .await
            .expect("indexes");
        for r in list {
            let name: String = r.get("name");
            let origin: String = r.get("origin");
            if origin == "pk" {
                continue; // the primary key is compared with the columns
            }
            let cols: Vec<String> = sqlx::query(&format!("PRAGMA index_info(\"{name}\")"))
                .fetch_all(&pool)
                .await
                .expect("index columns")
                .iter()
                .map(|c| c.get::<String, _>("name"))
                .collect();
            schema.indexes.insert(index(
                table,
                &cols,
                r.get::<i64, _>("unique") != 0,
                r.get::<i64, _>("partial") != 0,
            ));
        }
        let fks = sqlx::query(&format!("PRAGMA foreign_key_list(\"{table}\")"))
            .fetch_all(&pool)
            .await
            .expect("foreign keys");
        for r in fks {
            let to: Option<String> = r.get("to");
            schema.foreign_keys.insert(format!(
                "{table}.{} -> {}.{}",
                r.get::<String, _>("from"),
                r.get::<String, _>("table"),
                to.unwrap_or_else(|| "id".into())
            ));
        }
    }
    pool.close().await;
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.expect("postgres");
    let mut schema = Schema::default();
    let rows = sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS d,
                c.is_nullable::text AS n,
                EXISTS (SELECT 1 FROM information_schema.table_constraints tc
                        JOIN information_schema.key_column_usage k
                          ON k.constraint_name = tc.constraint_name
                         AND k.table_schema = tc.table_schema
                        WHERE tc.constraint_type = 'PRIMARY KEY'
                          AND tc.table_schema = c.table_schema
                          AND tc.table_name = c.table_name
                          AND k.column_name = c.column_name) AS pk
         FROM information_schema.columns c
         WHERE c.table_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .expect("columns");
    for r in rows {
        let table: String = r.get("t");
        if SKIPPED.contains(&table.as_str()) {
            continue;
        }
        let (k, v) = column(
            &table,
            &r.get::<String, _>("c"),
            &r.get::<String, _>("d"),
            r.get::<String, _>("n") == "NO",
            r.get::<bool, _>("pk"),
        );
        schema.columns.insert(k, v);
    }
    let rows = sqlx::query(
        "SELECT t.relname::text AS t, i.indisunique AS u, i.indisprimary AS p,
                (i.indpred IS NOT NULL) AS partial,
                ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n
                      ORDER BY k.o) AS cols
         FROM pg_index i
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace s ON s.oid = t.relnamespace
         WHERE s.nspname = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    for r in rows {
        let table: String = r.get("t");
        if SKIPPED.contains(&table.as_str()) || r.get::<bool, _>("p") {
            continue;
        }
        schema.indexes.insert(index(
            &table,
            &r.get::<Vec<String>, _>("cols"),
            r.get("u"),
            r.get("partial"),
        ));
    }
    let rows = sqlx::query(
        "SELECT tc.table_name::text AS t, k.column_name::text AS c,
                u.table_name::text AS rt, u.column_name::text AS rc
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage k
           ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema
         JOIN information_schema.constraint_column_usage u
           ON u.constraint_name = tc.constraint_name AND u.table_schema = tc.table_schema
         WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .expect("foreign keys");
    for r in rows {
        schema.foreign_keys.insert(format!(
            "{}.{} -> {}.{}",
            r.get::<String, _>("t"),
            r.get::<String, _>("c"),
            r.get::<String, _>("rt"),
            r.get::<String, _>("rc")
        ));
    }
    pool.close().await;
    schema
}

/// Every difference, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let keys: BTreeSet<&String> = sqlite
        .columns
        .keys()
        .chain(postgres.columns.keys())
        .collect();
    for k in keys {
        match (sqlite.columns.get(k), postgres.columns.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                out.insert(format!(
                    "column {k}: sqlite {}, postgres {}",
                    a.map_or("missing", String::as_str),
                    b.map_or("missing", String::as_str)
                ));
            }
        }
    }
    for i in sqlite.indexes.symmetric_difference(&postgres.indexes) {
        let only = if sqlite.indexes.contains(i) {
            "sqlite"
        } else {
            "postgres"
        };
        out.insert(format!("index {i}: only on {only}"));
    }
    for f in sqlite
        .foreign_keys
        .symmetric_difference(&postgres.foreign_keys)
    {
        let only = if sqlite.foreign_keys.contains(f) {
            "sqlite"
        } else {
            "postgres"
        };
        out.insert(format!("foreign key {f}: only on {only}"));
    }
    out
}

#[tokio::test]
async fn sqlite_and_postgresql_migrate_to_the_same_schema() {
    if !db::on_postgres() {
        // The PostgreSQL pass of scripts/test.sh runs it.
        return;
    }
    let root = temp_dir();
    let sqlite_file = root.path().join("sqlite").join("rushes.db");
    std::fs::create_dir_all(sqlite_file.parent().expect("folder")).expect("folder");
    rushes::store::Store::open(&sqlite_file)
        .await
        .expect("sqlite migrated")
        .close()
        .await;
    let pg_file = root.path().join("pg").join("rushes.db");
    std::fs::create_dir_all(pg_file.parent().expect("folder")).expect("folder");
    db::open_store(&pg_file).await.close().await;
    let url = db::url_for(pg_file.parent().expect("folder")).expect("postgres url");

    let sqlite = sqlite_schema(&sqlite_file).await;
    let postgres = postgres_schema(&url).await;
    assert!(
        sqlite.columns.len() > 50 && postgres.columns.len() > 50,
        "both schemas read: {} / {} columns",
        sqlite.columns.len(),
        postgres.columns.len()
    );
    let found = differences(&sqlite, &postgres);
    let allowed: BTreeSet<String> = ALLOWED.iter().map(|(d, _)| d.to_string()).collect();
    let unexplained: Vec<&String> = found.difference(&allowed).collect();
    let stale: Vec<&String> = allowed.difference(&found).collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "the schemas differ where ALLOWED does not say why:\n{}\nallowed differences that are gone (remove them):\n{}",
        unexplained
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        stale
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
