//! Scenarios run identically on PostgreSQL and SQLite; each file calls them with its engine.

use super::{ITEMS, Scratch};

/// A migration failing half-way leaves schema, data and bookkeeping as they were, and the
/// next migrator is not blocked by a leftover lock: it fails on the same file.
pub async fn failing_migration_changes_nothing(s: Scratch) {
    s.add("0001_items.sql", ITEMS).add(
        "0002_bad.sql",
        "CREATE TABLE t2 (n INT);\nINSERT INTO items VALUES ('a', 'b', 'c');\nSELECT * FROM missing_table;\n",
    );
    let out = s.migrator(&["run"]).await.expect(1);
    assert!(
        out.stderr.contains("migration 0002_bad.sql failed"),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("missing_table"), "{}", out.all());
    assert!(
        !s.has_table("t2").await,
        "schema change must be rolled back"
    );
    assert_eq!(s.count("SELECT count(*) FROM items").await, 0);
    assert_eq!(s.count("SELECT count(*) FROM _sqlx_migrations").await, 1);
    let again = s.migrator(&["run", "--lock-timeout", "2s"]).await.expect(1);
    assert!(again.stderr.contains("0002_bad.sql"), "{}", again.all());
}

/// Two migrators started together both succeed and every migration runs once. `body(n)` is
/// the SQL of migration n; it must take long enough for the processes to overlap.
pub async fn two_migrators_apply_each_once(s: Scratch, body: fn(u32) -> String) {
    s.add("0001_items.sql", ITEMS)
        .add("0002_log.sql", "CREATE TABLE log (n INT);\n");
    for n in 3..11 {
        s.add(
            &format!("{n:04}_m.sql"),
            &format!("{}\nINSERT INTO log VALUES ({n});\n", body(n)),
        );
    }
    let (a, b) = tokio::join!(s.migrator(&["run"]), s.migrator(&["run"]));
    let (a, b) = (a.expect(0), b.expect(0));
    let firsts: Vec<&str> = [&a.stdout, &b.stdout]
        .iter()
        .map(|o| o.lines().next().unwrap_or(""))
        .collect();
    let total: usize = firsts
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        total, 10,
        "each migration applied by exactly one process: {firsts:?}"
    );
    assert_eq!(s.count("SELECT count(*) FROM log").await, 8);
    assert_eq!(s.count("SELECT count(DISTINCT n) FROM log").await, 8);
    assert_eq!(s.count("SELECT count(*) FROM _sqlx_migrations").await, 10);
}

/// A new migration numbered below the newest applied one is refused and not applied.
pub async fn out_of_order_is_refused(s: Scratch) {
    s.add("0001_items.sql", ITEMS)
        .add("0003_c.sql", "CREATE TABLE c (n INT);\n");
    s.migrator(&["run"]).await.expect(0);
    s.add("0002_b.sql", "CREATE TABLE b (n INT);\n");
    let out = s.migrator(&["run"]).await.expect(3);
    assert!(
        out.stderr.contains("0002_b.sql is new but numbered below"),
        "{}",
        out.all()
    );
    assert!(!s.has_table("b").await);
    s.migrator(&["verify"]).await.expect(3);
}

/// `revert --to` undoes newer migrations with their down files, and refuses (changing
/// nothing) when one of them has none.
pub async fn reverts_with_down_files(s: Scratch) {
    s.add("0001_items.sql", ITEMS)
        .add("0002_t.up.sql", "CREATE TABLE t (n INT);\n")
        .add("0002_t.down.sql", "DROP TABLE t;\n");
    s.migrator(&["run"]).await.expect(0);
    let out = s.migrator(&["revert", "--to", "0"]).await.expect(3);
    assert!(
        out.stderr.contains("no .down.sql file for 0001_items.sql"),
        "{}",
        out.all()
    );
    assert!(s.has_table("t").await, "a refused revert changes nothing");
    s.migrator(&["revert", "--to", "1"]).await.expect(0);
    assert!(!s.has_table("t").await);
    assert_eq!(s.count("SELECT count(*) FROM _sqlx_migrations").await, 1);
    s.migrator(&["verify"]).await.expect(1);
    s.migrator(&["run"]).await.expect(0);
    assert!(s.has_table("t").await);
}
