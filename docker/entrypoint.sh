#!/bin/sh
# Container start: bring the schema to head, then serve. Extra arguments go to uvicorn,
# e.g. `docker run IMAGE /app/docker/entrypoint.sh --workers 2` (one worker leads the
# scheduler, on SQLite too; it needs the WECOM_* settings, as `campbot serve --workers` does).
set -eu
campbot migrate
# exec: uvicorn becomes PID 1's replacement and receives docker's SIGTERM directly.
exec uvicorn app.main:app --host 0.0.0.0 --port 8000 "$@"
