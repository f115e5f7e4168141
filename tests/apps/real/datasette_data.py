"""Makes the SQLite file of trioproxy's Datasette recipe test: `python datasette_data.py data.db`.

One table, ``words`` (``word``, ``computed``), with one row; ``datasette.json`` adds a
writable canned query, ``add_word``, that inserts into it (a POST with Datasette's CSRF token).
"""

import sqlite3
import sys

with sqlite3.connect(sys.argv[1] if len(sys.argv) > 1 else "data.db") as db:
    db.execute("create table if not exists words (word text, computed text)")
    db.execute("insert into words values ('datasette', 'datasette computed 42')")
