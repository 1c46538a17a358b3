//! Unit tests of the statements' text.

use super::*;

#[test]
fn the_archive_insert_skips_known_hashes_in_each_dialect() {
    let sqlite = archive_insert(2, true);
    assert!(
        sqlite.starts_with("INSERT OR IGNORE INTO messages"),
        "{sqlite}"
    );
    assert!(
        sqlite.ends_with("(?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"),
        "{sqlite}"
    );
    let postgres = archive_insert(2, false);
    assert!(
        postgres.contains("($7, $8, $9, $10, $11, $12)"),
        "{postgres}"
    );
    assert!(
        postgres.ends_with("ON CONFLICT (hash) DO NOTHING"),
        "{postgres}"
    );
}

#[test]
fn placeholders_number_rows_then_columns() {
    assert_eq!(row_placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
}

#[test]
fn passwords_are_masked() {
    assert_eq!(
        mask("postgres://murmur:hunter2@127.0.0.1:5432/db"),
        "postgres://murmur:***@127.0.0.1:5432/db"
    );
    assert_eq!(mask("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
}
