"""The archive's tables (SQLAlchemy Core), as the migrations in migrations/ create them.

Times are Unix seconds (double precision), as everywhere in kefu.  Text is plain
UTF-8.  What each table is for:

- conversations: one row per conversation; the live hash's fields the inbox and
  reports need as columns, the whole hash as JSON (`state`, to rebuild the agent
  API's view), figures derived from its messages (first response, resolution),
  and the head of its evidence chain (`message_count`, `head_hash`).
- messages: the transcript, one row per message; `seq` is its place in the
  conversation (the order of the change log), `grams` its CJK bigrams for search.
- evidence_links: the hash chain, one link per message — kept when retention
  purges the message, so the chain still verifies.
- evidence_anchors: chain heads logged periodically for operators to anchor.
- conversation_events: who did what when (claimed, transferred, closed, sla ...).
- tickets, csat, audit: what their change records say.
- report_daily, rollup_dirty: pre-aggregated report figures per UTC day, and the
  days whose figures must be recomputed.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid

conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False, server_default=""),
    sa.Column("channel_kind", sa.Text, nullable=False, server_default=""),
    sa.Column("customer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("customer_name", sa.Text, nullable=False, server_default=""),
    sa.Column("contact", sa.Text, nullable=False, server_default=""),
    sa.Column("role", sa.Text, nullable=False, server_default=""),
    sa.Column("tier", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.Text, nullable=False, server_default="normal"),
    sa.Column("status", sa.Text, nullable=False, server_default=""),
    sa.Column("assignee", sa.Text, nullable=False, server_default=""),
    sa.Column("opened_at", sa.Double, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.Double, nullable=False, server_default="0"),
    sa.Column("first_customer_at", sa.Double),
    sa.Column("first_response_at", sa.Double),  # first message of a human agent after it
    sa.Column("first_response_s", sa.Double),
    sa.Column("closed_at", sa.Double),
    sa.Column("closed_by", sa.Text),
    sa.Column("closed_assignee", sa.Text),  # who owned it when it closed (CSAT is theirs)
    sa.Column("resolution_s", sa.Double),
    sa.Column("sla_breached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("question", sa.Text),  # the customer's first message (top questions)
    sa.Column("question_key", sa.Text),  # ... normalised
    sa.Column("last_message_id", sa.Text),  # what a person last wrote (inbox preview)
    sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("head_hash", sa.Text),  # the last evidence link's hash
    sa.Column("anchored_seq", sa.Integer, nullable=False, server_default="0"),  # covered by an anchor up to
    sa.Column("state", sa.Text, nullable=False, server_default="{}"),  # the live hash, JSON
    sa.Column("state_ts", sa.Double, nullable=False, server_default="0"),  # time of that snapshot
    sa.Column("purged_at", sa.Double),
)

messages = sa.Table(
    "messages", metadata,
    sa.Column("pk", _PK, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("conversation_id", sa.Text, sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("channel", sa.Text, nullable=False, server_default=""),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("sender_kind", sa.Text, nullable=False),
    sa.Column("sender_id", sa.Text, nullable=False, server_default=""),
    sa.Column("sender_name", sa.Text, nullable=False, server_default=""),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("attachments", sa.Text, nullable=False, server_default="[]"),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("grams", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("conversation_id", "seq", name="messages_conversation_seq"),
)

evidence_links = sa.Table(
    "evidence_links", metadata,
    sa.Column("conversation_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False),  # SHA-256 of the message's canonical encoding
    sa.Column("hash", sa.Text, nullable=False),  # SHA-256 of previous hash + digest
)

evidence_anchors = sa.Table(
    "evidence_anchors", metadata,
    sa.Column("pk", _PK, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("prev", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.Column("heads", sa.Text, nullable=False),  # JSON [[conversation, seq, link hash], ...]
)

conversation_events = sa.Table(
    "conversation_events", metadata,
    sa.Column("pk", _PK, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("conversation_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("actor", sa.Text, nullable=False, server_default=""),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
)

tickets = sa.Table(
    "tickets", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("conversation_id", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.Text, nullable=False, server_default="normal"),
    sa.Column("status", sa.Text, nullable=False, server_default="open"),
    sa.Column("due", sa.Double),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
)

csat = sa.Table(
    "csat", metadata,
    sa.Column("conversation_id", sa.Text, primary_key=True),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("agent", sa.Text, nullable=False, server_default=""),
    sa.Column("ts", sa.Double, nullable=False),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("pk", _PK, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("actor", sa.Text, nullable=False, server_default=""),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("conversation_id", sa.Text, nullable=False, server_default=""),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
)

report_daily = sa.Table(
    "report_daily", metadata,
    sa.Column("day", sa.Integer, primary_key=True),  # days since 1970-01-01 UTC
    sa.Column("dim", sa.Text, primary_key=True),  # channel | role | sla_met | sla_breached | csat | question
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("label", sa.Text, nullable=False, server_default=""),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("total", sa.Double, nullable=False, server_default="0"),
)

rollup_dirty = sa.Table(
    "rollup_dirty", metadata,
    sa.Column("day", sa.Integer, primary_key=True),
)

# --- indexes for the reads (reader.py, reports.py, retention.py) -----------------
sa.Index("conversations_closed", conversations.c.closed_at, conversations.c.id)
sa.Index("conversations_customer", conversations.c.customer_id, conversations.c.channel, conversations.c.opened_at)
sa.Index("conversations_opened", conversations.c.opened_at, conversations.c.first_response_s,
         conversations.c.resolution_s)
sa.Index("conversation_events_conversation", conversation_events.c.conversation_id, conversation_events.c.ts)
sa.Index("tickets_status", tickets.c.status, tickets.c.due)
sa.Index("tickets_conversation", tickets.c.conversation_id)
sa.Index("audit_ts", audit.c.ts)
sa.Index("audit_conversation", audit.c.conversation_id)

# --- search (search.py) ------------------------------------------------------------
# SQLite: two FTS5 indexes kept by triggers over `messages` (external content, so the
# text is stored once): trigrams of the text for queries of 3+ characters, and the
# CJK bigrams in `grams` for 2-character Chinese queries.  `detail=none` (no positions)
# halves the cost of indexing: a query asks for all of its trigrams, and search.py's
# exact substring check does what a phrase match would.
_SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE messages_trigram USING fts5(text, content='messages', content_rowid='pk', "
    "tokenize='trigram case_sensitive 0', detail=none)",
    "CREATE VIRTUAL TABLE messages_grams USING fts5(grams, content='messages', content_rowid='pk', "
    "tokenize='unicode61', detail=none)",
    "CREATE TRIGGER messages_search_add AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_trigram(rowid, text) VALUES (new.pk, new.text); "
    "INSERT INTO messages_grams(rowid, grams) VALUES (new.pk, new.grams); END",
    "CREATE TRIGGER messages_search_remove AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_trigram(messages_trigram, rowid, text) VALUES ('delete', old.pk, old.text); "
    "INSERT INTO messages_grams(messages_grams, rowid, grams) VALUES ('delete', old.pk, old.grams); END",
)
for _stmt in _SQLITE_SEARCH:
    sa.event.listen(messages, "after_create", sa.DDL(_stmt).execute_if(dialect="sqlite"))
# PostgreSQL: pg_trgm for 3+ characters (ILIKE), a GIN over the bigram array for 2.
sa.event.listen(messages, "before_create",
                sa.DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))
sa.Index("messages_text_trgm", messages.c.text, postgresql_using="gin",
         postgresql_ops={"text": "gin_trgm_ops"}).ddl_if(dialect="postgresql")
sa.Index("messages_grams_gin", sa.func.string_to_array(messages.c.grams, sa.literal_column("' '")),
         postgresql_using="gin", postgresql_where=messages.c.grams != "").ddl_if(dialect="postgresql")
