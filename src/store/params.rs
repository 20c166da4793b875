//! Parameters of statements built at run time, numbered for PostgreSQL, anonymous for SQLite.

/// The parameters of a statement built at run time. PostgreSQL reads `$N`. On SQLite they are
/// anonymous `?`, bound in order: sqlx asks SQLite for every parameter's name when it binds,
/// and SQLite finds a named parameter by walking a list, so a statement of a thousand named
/// parameters cost half a million steps per execution (a sixth of a first ingest's CPU).
/// A statement must take all its parameters from one `Params` (never mix with `$N` text), and
/// bind as many values as it pushed, in order (anonymous parameters cannot be reused).
pub(super) struct Params {
    anonymous: bool,
    next: usize,
}

impl Params {
    pub(super) fn new(backend: super::Backend) -> Self {
        Self {
            anonymous: backend == super::Backend::Sqlite,
            next: 1,
        }
    }

    /// The next parameter.
    pub(super) fn push(&mut self, sql: &mut String) {
        use std::fmt::Write as _;
        if self.anonymous {
            sql.push('?');
        } else {
            let _ = write!(sql, "${}", self.next);
        }
        self.next += 1;
    }

    /// `rows` groups of `per_row` parameters, `(…), (…)` (the VALUES of a multi-row insert, or
    /// an `IN` list with `per_row` = the list's length and `rows` = 1).
    pub(super) fn push_rows(&mut self, sql: &mut String, rows: usize, per_row: usize) {
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..per_row {
                if column > 0 {
                    sql.push_str(", ");
                }
                self.push(sql);
            }
            sql.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Params;
    use crate::store::Backend;

    #[test]
    fn parameters_are_numbered_across_rows_on_postgresql() {
        let mut sql = String::new();
        let mut params = Params::new(Backend::Postgres);
        params.push(&mut sql);
        params.push_rows(&mut sql, 2, 3);
        assert_eq!(sql, "$1($2, $3, $4), ($5, $6, $7)");
    }

    #[test]
    fn parameters_are_anonymous_on_sqlite() {
        let mut sql = String::new();
        let mut params = Params::new(Backend::Sqlite);
        params.push(&mut sql);
        params.push_rows(&mut sql, 2, 2);
        assert_eq!(sql, "?(?, ?), (?, ?)");
    }
}
