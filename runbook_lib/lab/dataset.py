"""The lab's source data: a few applications and tenants, as a production server has them.

It is made to give preflight real findings: a table without a primary key, a
stored function and a trigger (binlog trust), application accounts that a
restore from S3 will not carry, and a large ``persona`` table like the blog's.
Rows are generated server-side with a recursive CTE (500,000 rows in ~4 s).
"""
from __future__ import annotations

import pymysql

APP_ACCOUNTS = {  # account -> schema it may use
    "crm_app": "app_crm",
    "billing_app": "app_billing",
    "acme_app": "tenant_acme",
    "globex_app": "tenant_globex",
}

SCHEMA_SQL = [
    "CREATE DATABASE IF NOT EXISTS app_crm",
    "CREATE DATABASE IF NOT EXISTS app_billing",
    "CREATE DATABASE IF NOT EXISTS tenant_acme",
    "CREATE DATABASE IF NOT EXISTS tenant_globex",
    """CREATE TABLE IF NOT EXISTS app_crm.persona (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        first_name VARCHAR(40) NOT NULL, last_name VARCHAR(40) NOT NULL,
        email VARCHAR(120) NOT NULL, country CHAR(2) NOT NULL,
        score INT NOT NULL DEFAULT 0, created_at DATETIME(6) NOT NULL,
        updated_at DATETIME(6) NULL, origin VARCHAR(16) NOT NULL DEFAULT 'seed',
        KEY ix_email (email)) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS app_crm.segment (
        id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(60) NOT NULL UNIQUE,
        rule_text VARCHAR(255) NOT NULL) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS app_billing.invoice (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, persona_id BIGINT UNSIGNED NOT NULL,
        amount DECIMAL(12,2) NOT NULL, tax DECIMAL(12,2) NOT NULL DEFAULT 0,
        total DECIMAL(12,2) NOT NULL DEFAULT 0, issued_at DATETIME NOT NULL,
        KEY ix_persona (persona_id)) ENGINE=InnoDB""",
    # no primary key: row-based replication must scan for every change (a preflight finding)
    """CREATE TABLE IF NOT EXISTS app_billing.payment_log (
        invoice_id BIGINT UNSIGNED NOT NULL, paid_at DATETIME NOT NULL,
        method VARCHAR(16) NOT NULL, amount DECIMAL(12,2) NOT NULL) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS tenant_acme.orders (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(20) NOT NULL,
        qty INT NOT NULL, placed_at DATETIME NOT NULL) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS tenant_globex.orders (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(20) NOT NULL,
        qty INT NOT NULL, placed_at DATETIME NOT NULL) ENGINE=InnoDB""",
]

ROUTINE_SQL = [
    "DROP FUNCTION IF EXISTS app_billing.tax_for",
    """CREATE FUNCTION app_billing.tax_for(amount DECIMAL(12,2)) RETURNS DECIMAL(12,2)
       DETERMINISTIC NO SQL RETURN ROUND(amount * 0.19, 2)""",
    "DROP TRIGGER IF EXISTS app_billing.invoice_before_insert",
    """CREATE TRIGGER app_billing.invoice_before_insert BEFORE INSERT ON app_billing.invoice
       FOR EACH ROW SET NEW.tax = app_billing.tax_for(NEW.amount), NEW.total = NEW.amount + NEW.tax""",
]


def _seq(n: int) -> str:
    return f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {int(n)})"


def seed(conn: pymysql.Connection, *, persona_rows: int = 500_000, app_password: str) -> dict[str, int]:
    """Create the schemas, routines, accounts and rows.  Returns rows per table."""
    small = max(1, persona_rows // 25)
    with conn.cursor() as cur:
        cur.execute("SET SESSION cte_max_recursion_depth = 100000000")
        for sql in SCHEMA_SQL:
            cur.execute(sql)
        # The server is not yet trusted to log routines (log_bin_trust_function_creators=OFF):
        # a superuser may still create them; the runbook's preflight reports it.
        for sql in ROUTINE_SQL:
            cur.execute(sql)
        cur.execute(f"""INSERT INTO app_crm.persona (first_name, last_name, email, country, score, created_at)
            {_seq(persona_rows)} SELECT ELT(1 + n % 8, 'Ana','Luis','Mia','Noah','Ivan','Sara','Omar','Lena'),
              ELT(1 + n % 7, 'Gonzalez','Scott','Silva','Okafor','Novak','Tanaka','Moreau'),
              CONCAT('user', n, '@example.com'), ELT(1 + n % 5, 'CO','US','DE','JP','BR'),
              n % 1000, TIMESTAMP('2023-01-01') + INTERVAL n SECOND FROM s""")
        cur.execute("""INSERT IGNORE INTO app_crm.segment (name, rule_text) VALUES
            ('vip', 'score >= 900'), ('new', 'created_at > NOW() - INTERVAL 30 DAY'),
            ('latam', "country IN ('CO','BR')")""")
        cur.execute(f"""INSERT INTO app_billing.invoice (persona_id, amount, issued_at)
            {_seq(small)} SELECT 1 + (n * 7919) % {persona_rows}, 10 + (n % 500),
              TIMESTAMP('2024-01-01') + INTERVAL n MINUTE FROM s""")
        cur.execute(f"""INSERT INTO app_billing.payment_log (invoice_id, paid_at, method, amount)
            {_seq(small // 4)} SELECT n, TIMESTAMP('2024-01-02') + INTERVAL n MINUTE,
              ELT(1 + n % 3, 'card','wire','cash'), 10 + (n % 500) FROM s""")
        for tenant in ("tenant_acme", "tenant_globex"):
            cur.execute(f"""INSERT INTO {tenant}.orders (sku, qty, placed_at)
                {_seq(small // 2)} SELECT CONCAT('SKU-', n % 300), 1 + n % 9,
                  TIMESTAMP('2024-03-01') + INTERVAL n MINUTE FROM s""")
        for user, schema in APP_ACCOUNTS.items():
            cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s", (app_password,))
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON {schema}.* TO '{user}'@'%'")
        cur.execute("""SELECT CONCAT(table_schema, '.', table_name) AS t, table_name FROM information_schema.tables
                       WHERE table_schema IN ('app_crm','app_billing','tenant_acme','tenant_globex')""")
        tables = [r["t"] if isinstance(r, dict) else r[0] for r in cur.fetchall()]
        counts = {}
        for t in sorted(tables):
            cur.execute(f"SELECT COUNT(*) AS c FROM {t}")
            row = cur.fetchone()
            counts[t] = int(row["c"] if isinstance(row, dict) else row[0])
    return counts
