"""get_user_by_email(db_path, email) on an SQLite file made here with a `users` table
(and a `user` table, the same rows): the matching row (a tuple, dict, sqlite3.Row or a
list holding it) for a known email, nothing (None or an empty result) for an unknown one;
other users' rows must not come back."""
import sqlite3

ROWS = [(1, "Ada", "ada@example.com"), (2, "Linus", "linus@example.org"), (3, "Grace", "grace@example.net")]


def flatten(result):
    if result is None:
        return []
    if isinstance(result, sqlite3.Row):
        return list(result)
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (list, tuple)):
        out = []
        for item in result:
            out.extend(flatten(item) if isinstance(item, (list, tuple, dict, sqlite3.Row)) else [item])
        return out
    return [result]


def check(candidate):
    db = "users.db"
    connection = sqlite3.connect(db)
    for table in ("users", "user"):
        connection.execute("CREATE TABLE %s (id INTEGER PRIMARY KEY, name TEXT, email TEXT)" % table)
        connection.executemany("INSERT INTO %s VALUES (?, ?, ?)" % table, ROWS)
    connection.commit()
    connection.close()
    for user_id, name, email in ROWS:
        values = flatten(candidate(db, email))
        assert name in values and email in values, "row for %s: %r" % (email, values)
        for other in ROWS:
            assert other[1] == name or other[1] not in values, "other users came back: %r" % (values,)
    assert not flatten(candidate(db, "nobody@example.com"))
