"""The store's tables (SQLAlchemy Core). Times are UTC seconds since the epoch (float), so SQLite and
PostgreSQL sort and compare them the same way; JSON columns hold the open-ended parts of a record."""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    BigInteger,
    LargeBinary,
)

metadata = MetaData()

# BigInteger that is still SQLite's rowid alias when used as an autoincrement primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")

projects = Table(
    "projects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", BigId, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("framework", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("last_seen_at", Float, nullable=False),
    Column("on_critical", String(8), nullable=False, server_default="warn"),
    Column("world_size", Integer, nullable=False, server_default="1"),
    Column("pause_timeout_s", Float),
    Column("epochs", Integer, nullable=False, server_default="0"),
    Column("steps", BigInteger, nullable=False, server_default="0"),
    Column("health_score", Float),
    Column("hyperparameters", JSON),
    Column("versions", JSON),
    Column("device", JSON),
    Column("thresholds", JSON),
    Column("git_commit", String(64)),
    Column("error_type", String(200)),
    Column("error_message", Text),
    Column("traceback", Text),
    Index("ix_runs_project_started", "project_id", "started_at"),
    Index("ix_runs_name_started", "name", "started_at"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_started", "started_at"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Index("ix_run_tags_tag", "tag"),
)

# Highest contiguous sequence committed per (run, rank, session): what Ack reports and what dedups replays.
ingest_cursors = Table(
    "ingest_cursors",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("session", String(36), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

architectures = Table(
    "architectures",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("model_class", String(200)),
    Column("total_parameters", BigInteger),
    Column("payload", JSON, nullable=False),
)

# One row per (run, rank, epoch); the scalars that queries filter or plot on are columns, the rest of
# the EpochSummary is `payload` (its protobuf JSON form).
epochs = Table(
    "epochs",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("ended_at", Float),
    Column("duration_seconds", Float),
    Column("global_step", BigInteger),
    Column("loss_mean", Float),
    Column("loss_min", Float),
    Column("loss_max", Float),
    Column("val_loss", Float),
    Column("samples_per_sec", Float),
    Column("process_rss_mb", Float),
    Column("cumulative_co2_kg", Float),
    Column("payload", JSON, nullable=False),
)

# One row per ingested StepBatch message (see _steps.py): the range it covers, and the batch itself, serialized.
step_batches = Table(
    "step_batches",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("first_epoch", Integer, nullable=False),
    Column("last_epoch", Integer, nullable=False),
    Column("first_time", Float),
    Column("last_time", Float),
    Column("count", Integer, nullable=False),
    Column("samples", LargeBinary, nullable=False),  # a serialized atlas.v1.StepBatch
    Index("ix_step_batches_run_rank_step", "run_id", "rank", "first_step"),
    Index("ix_step_batches_last_time", "last_time"),
)

# User metrics (0007): one row per (point, key) a trainer logged (MetricBatch; see _metrics.py). The value is a
# finite float or NULL with `nonfinite` "NaN"/"Infinity"/"-Infinity" (SQLite stores a NaN float as NULL). Bounded
# as step samples are: retention keeps the newest `retention_steps_per_run` points per run and key.
metric_points = Table(
    "metric_points",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("key", String(200), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("time", Float),
    Column("value", Float),
    Column("nonfinite", String(9)),
    Index("ix_metric_points_run_key_step", "run_id", "key", "step"),
    Index("ix_metric_points_time", "time"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("time", Float),
    Column("level", String(16), nullable=False),
    Column("logger", String(200)),
    Column("message", Text, nullable=False),
    Column("epoch", Integer),
    Column("kind", String(16)),
    Index("ix_logs_run", "run_id", "id"),
    Index("ix_logs_run_level", "run_id", "level"),
)

# Commands to a run (PAUSE, RESUME, STOP): who sent them, why, and when the trainer applied them.
commands = Table(
    "commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # pause, resume, stop
    Column("reason", Text),
    Column("sender", String(200)),  # "policy" for on_critical, else what the client said (e.g. "cli:alice")
    Column("issue_check", String(64)),  # the check id of the issue that caused it; NULL for a user command
    Column("issued_at", Float, nullable=False),
    Column("delivered_at", Float),  # the trainer's CommandAck.applied_at (or receive time)
    Column("delivered_step", BigInteger),
    Index("ix_commands_run_issued", "run_id", "issued_at"),
)

# One row per diagnosis pass that judged an epoch (or was asked for): the run's health at that point.
diagnostic_runs = Table(
    "diagnostic_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("trigger", String(16), nullable=False),  # epoch, step, time, manual, rebuild
    Column("epoch", Integer),
    Column("health_score", Float),
    Column("issue_count", Integer, nullable=False, server_default="0"),
    Column("arch_type", String(16)),
    Column("summary", JSON),
    Index("ix_diagnostic_runs_run", "run_id", "id"),
)

# One row per persistent issue of a run: (run, check, key) is its identity; first/last seen epoch; active flag.
issues = Table(
    "issues",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("check_id", String(64), nullable=False),
    Column("key", String(300), nullable=False, server_default=""),
    Column("severity", String(8), nullable=False),
    Column("category", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("suggestion", Text, nullable=False),
    Column("epoch", Integer),
    Column("step", BigInteger),
    Column("layer", String(300)),
    Column("metric_key", String(200)),
    Column("metric_value", JSON),  # a number, "NaN"/"Infinity", or a string
    Column("thresholds", JSON),
    Column("evidence", JSON),  # the numbers and facts behind the finding (an object)
    Column("insight", Text),  # a short explanation written when it opened (LLM or from the evidence); 0006
    Column("first_seen_epoch", Integer),
    Column("last_seen_epoch", Integer),
    Column("active", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ux_issues_run_check_key", "run_id", "check_id", "key", unique=True),
    Index("ix_issues_severity_active", "severity", "active"),
)

# The alerts outbox (0006): one row per message to one route, written in the transaction that opened the issue
# (or recorded the run's status), sent after commit by the dispatcher (_alerts.py), retried with backoff.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE")),  # NULL: `atlas alerts test`
    Column("route", String(200), nullable=False),
    Column("event", String(16), nullable=False),  # issue, alert, failed, stopped, paused, stalled, completed, test
    Column("issue_id", BigId),
    Column("check_id", String(64)),
    Column("severity", String(8)),
    Column("title", Text, nullable=False),
    Column("payload", JSON, nullable=False),  # the message's fields (the generic webhook body)
    Column("state", String(8), nullable=False),  # pending, sent, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Index("ix_notifications_state_next", "state", "next_attempt_at"),
    Index("ix_notifications_run", "run_id", "id"),
    Index("ix_notifications_created", "created_at"),
)

# Which collector replica holds a stream of which run (PostgreSQL scale-out: tells SendCommand whether a
# command sent through one replica reached a trainer connected to another). Rows of a crashed replica stay
# until the run is seen again; a holder only counts while the run is live.
run_streams = Table(
    "run_streams",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("replica_id", String(36), primary_key=True),
    Column("since", Float, nullable=False),
)

# Alembic's own bookkeeping, declared here so that `metadata.drop_all` leaves a truly empty database.
alembic_version = Table(
    "alembic_version",
    metadata,
    Column("version_num", String(32), primary_key=True),
)
