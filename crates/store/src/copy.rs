//! Moving an installation from one database to another (`keyward migrate`): every table of
//! keyward's schema, row for row, from one [`Store`] into an empty other, whatever their
//! backends. Backends read and write rows as neutral [`Cell`]s ([`Store::read_rows`],
//! [`Store::write_rows`]) with the column types their own catalog states; this module converts
//! between the two ([`Cell::into_kind`]) and decides the order, the batches and the checks.
//!
//! The source should not be written to meanwhile (stop its servers): each table is read in key
//! order, page by page, not in one snapshot.

use uuid::Uuid;

use crate::{Store, StoreError};

/// A value of a row, as it travels between backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Uuid(Uuid),
}

/// What a column holds, as a backend's catalog states it (SQLite has no UUID or boolean type: it
/// keeps them as TEXT and INTEGER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
    Bool,
    Uuid,
}

/// A column of a table, by name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

impl Cell {
    /// This value as a column of `kind` holds it: a UUID as text and back, a boolean as an
    /// integer and back; anything else must already be of the kind.
    pub fn into_kind(self, kind: Kind, column: &str) -> Result<Cell, StoreError> {
        let mismatch = |what: &str| {
            StoreError::Other(format!(
                "column {column}: a {what} cannot be copied into a {kind:?} column"
            ))
        };
        Ok(match (self, kind) {
            (Cell::Null, _) => Cell::Null,
            (Cell::Text(s), Kind::Uuid) => Cell::Uuid(
                Uuid::try_parse(&s)
                    .map_err(|_| StoreError::Other(format!("column {column}: {s:?} is no UUID")))?,
            ),
            (Cell::Uuid(u), Kind::Text) => Cell::Text(u.to_string()),
            (Cell::Int(i), Kind::Bool) => Cell::Bool(i != 0),
            (Cell::Bool(b), Kind::Int) => Cell::Int(i64::from(b)),
            (c @ Cell::Int(_), Kind::Int)
            | (c @ Cell::Text(_), Kind::Text)
            | (c @ Cell::Bytes(_), Kind::Bytes)
            | (c @ Cell::Bool(_), Kind::Bool)
            | (c @ Cell::Uuid(_), Kind::Uuid) => c,
            (Cell::Int(_), _) => return Err(mismatch("integer")),
            (Cell::Text(_), _) => return Err(mismatch("text")),
            (Cell::Bytes(_), _) => return Err(mismatch("blob")),
            (Cell::Bool(_), _) => return Err(mismatch("boolean")),
            (Cell::Uuid(_), _) => return Err(mismatch("UUID")),
        })
    }
}

/// Every table of keyward's schema with its key columns, in the order a copy writes them (a
/// table after the tables it refers to). NEVER LEAVE ONE OUT: a table missing here is not
/// copied; the conformance case `every_table_is_in_the_copy_list` compares it with each
/// backend's catalog, and a copy refuses a database with a table it does not name.
pub const TABLES: &[(&str, &[&str])] = &[
    ("tenants", &["id"]),
    ("users", &["id"]),
    ("api_keys", &["id"]),
    ("key_last_used", &["key_id"]),
    ("key_usage", &["key_id", "day", "code"]),
    ("usage_batches", &["id"]),
    ("key_notices", &["key_id", "notice"]),
    ("rate_limit_windows", &["key_id"]),
    ("owner_limits", &["user_id"]),
    ("console_sessions", &["digest"]),
    ("api_sessions", &["id"]),
    ("webhook_endpoints", &["id"]),
    ("webhook_deliveries", &["id"]),
    ("key_shapes", &["id"]),
    ("audit_log", &["id"]),
];

/// Rows per page read, and at most per transaction written.
pub const PAGE_ROWS: u32 = 5_000;

/// One table's rows in the source and in the target after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

/// Copies every table of `from` into `to`, which must hold no row of any (else `Conflict`
/// naming the first table that has some). `progress` hears each table's name and the rows it
/// copied so far. Returns the count of rows per table on both sides, read again at the end.
pub async fn copy_installation(
    from: &dyn Store,
    to: &dyn Store,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Vec<TableCount>, StoreError> {
    let known: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    for side in [from, to] {
        if let Some(unknown) = side
            .table_names()
            .await?
            .into_iter()
            .find(|t| !known.contains(&t.as_str()))
        {
            return Err(StoreError::Other(format!(
                "table {unknown} is not one this keyward copies: run the same keyward version on \
                 both databases"
            )));
        }
    }
    let mut source_rows = 0;
    for (table, _) in TABLES {
        if to.count_rows(table).await? > 0 {
            return Err(StoreError::Conflict(format!(
                "the target is not empty: table {table} has rows"
            )));
        }
        source_rows += from.count_rows(table).await?;
    }
    if source_rows == 0 {
        return Err(StoreError::Other(
            "the source holds nothing to copy: is it the right database?".into(),
        ));
    }
    copy_tables(from, to, progress).await.map_err(|e| {
        StoreError::Other(format!(
            "{e}; the target now holds part of the installation: drop and recreate it before \
             trying again"
        ))
    })?;
    let mut counts = Vec::with_capacity(TABLES.len());
    for (table, _) in TABLES {
        counts.push(TableCount {
            table,
            source: from.count_rows(table).await?,
            target: to.count_rows(table).await?,
        });
    }
    Ok(counts)
}

async fn copy_tables(
    from: &dyn Store,
    to: &dyn Store,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<(), StoreError> {
    for (table, key) in TABLES {
        let source_columns = from.table_columns(table).await?;
        let target_columns = to.table_columns(table).await?;
        let names = |cols: &[Column]| {
            let mut n: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            n.sort();
            n
        };
        if names(&source_columns) != names(&target_columns) {
            return Err(StoreError::Other(format!(
                "table {table} has other columns in the source than in the target: run the same \
                 keyward version on both"
            )));
        }
        // Written in the source's column order, as the target's kinds want them.
        let kinds: Vec<Kind> = source_columns
            .iter()
            .map(|c| {
                target_columns
                    .iter()
                    .find(|t| t.name == c.name)
                    .map(|t| t.kind)
                    .unwrap_or(c.kind)
            })
            .collect();
        let names: Vec<String> = source_columns.iter().map(|c| c.name.clone()).collect();
        let key_at: Vec<usize> = key
            .iter()
            .map(|k| {
                names.iter().position(|n| n == k).ok_or_else(|| {
                    StoreError::Other(format!("table {table} has no key column {k}"))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut after: Option<Vec<Cell>> = None;
        let mut copied = 0u64;
        progress(table, 0);
        loop {
            let page = from
                .read_rows(table, &names, key, after.as_deref(), PAGE_ROWS)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(key_at.iter().map(|&i| last[i].clone()).collect());
            let full = page.len() == PAGE_ROWS as usize;
            let rows = page
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .zip(&kinds)
                        .zip(&names)
                        .map(|((cell, kind), name)| cell.into_kind(*kind, name))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            copied += rows.len() as u64;
            to.write_rows(table, &names, &rows).await?;
            progress(table, copied);
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// `SELECT COUNT(*)` of `table`, once its name is checked.
pub fn count_sql(table: &str) -> Result<String, StoreError> {
    known_table(table)?;
    Ok(format!("SELECT COUNT(*) FROM {table}"))
}

/// The SQL of a page of [`Store::read_rows`], once the names are checked: the text before the
/// `after` key's values (bound by the backend, comma-separated, when `after`), and the text
/// after them, to which the backend binds the page's size.
pub fn read_sql(
    table: &str,
    columns: &[String],
    key: &[&str],
    after: bool,
) -> Result<(String, String), StoreError> {
    known_table(table)?;
    for c in columns
        .iter()
        .map(String::as_str)
        .chain(key.iter().copied())
    {
        plain_name(c)?;
    }
    let key = key.join(", ");
    let mut head = format!("SELECT {} FROM {table}", columns.join(", "));
    let mut tail = String::new();
    if after {
        head.push_str(&format!(" WHERE ({key}) > ("));
        tail.push(')');
    }
    tail.push_str(&format!(" ORDER BY {key} LIMIT "));
    Ok((head, tail))
}

/// The head of [`Store::write_rows`]'s inserts, once the names are checked, and how many rows
/// one statement may carry when a statement binds at most `max_binds` values.
pub fn insert_sql(
    table: &str,
    columns: &[String],
    max_binds: usize,
) -> Result<(String, usize), StoreError> {
    known_table(table)?;
    for c in columns {
        plain_name(c)?;
    }
    let rows = (max_binds / columns.len().max(1)).max(1);
    Ok((
        format!("INSERT INTO {table} ({}) ", columns.join(", ")),
        rows,
    ))
}

/// Whether `table` is one of [`TABLES`] (so that a backend may put its name in SQL).
pub fn known_table(table: &str) -> Result<(), StoreError> {
    if TABLES.iter().any(|(t, _)| *t == table) {
        Ok(())
    } else {
        Err(StoreError::Other(format!(
            "no table {table} in keyward's schema"
        )))
    }
}

/// Whether `column` is a plain identifier (so that a backend may put it in SQL).
pub fn plain_name(column: &str) -> Result<(), StoreError> {
    if !column.is_empty()
        && column
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(StoreError::Other(format!("{column:?} is no column name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_the_target_columns_kind() {
        let id = Uuid::from_u128(7);
        assert_eq!(
            Cell::Text(id.to_string()).into_kind(Kind::Uuid, "id"),
            Ok(Cell::Uuid(id))
        );
        assert_eq!(
            Cell::Uuid(id).into_kind(Kind::Text, "id"),
            Ok(Cell::Text(id.to_string()))
        );
        assert_eq!(
            Cell::Int(1).into_kind(Kind::Bool, "enabled"),
            Ok(Cell::Bool(true))
        );
        assert_eq!(
            Cell::Bool(false).into_kind(Kind::Int, "enabled"),
            Ok(Cell::Int(0))
        );
        assert_eq!(Cell::Null.into_kind(Kind::Uuid, "x"), Ok(Cell::Null));
        assert!(Cell::Text("nope".into())
            .into_kind(Kind::Uuid, "id")
            .is_err());
        assert!(Cell::Bytes(vec![1]).into_kind(Kind::Int, "n").is_err());
    }
}
