#!/bin/sh
# The command-line tool, bin/codeartsbuild (installed as `codeartsbuild` by the rock).
#
#   sh examples/cli.sh [JOB_ID [LOGS_JOB_ID]]      (default: the reference job, the job with logs)
#
# The endpoint and credentials come from the environment (README, "Configuration");
# `spec/support/with-emulator -- sh examples/cli.sh` runs it against the emulator. The checkout's
# bin/codeartsbuild runs with the Lua that `lua` names (it finds the module `make` built, for that
# Lua or another); LUA names another interpreter to run it with.
set -eu
cd "$(dirname "$0")/.."
job=${1:-cb5fa20de5fd4cf8be681d4bd6fdd2f6}
codeartsbuild() { ${LUA:+"$LUA"} bin/codeartsbuild "$@"; }

echo "== the newest build"
newest=$(codeartsbuild latest "$job")
echo "$newest"

echo "== build 61, one field a line"
codeartsbuild record "$job" 61 | head -n 6

echo "== the last 10 builds"
codeartsbuild list "$job" --last 10

echo "== the 3 newest FAILED builds of the last 200, as CSV"
codeartsbuild list "$job" --last 200 --status failed --reverse --limit 3 --csv | cut -d, -f1-5

echo "== the last 100 builds in numbers"
codeartsbuild summary "$job"

echo "== what the tool uses, and one request to check it"
codeartsbuild config | grep -v '^cache'

echo "== the builds of the last day, from the history API"
codeartsbuild history "$job" --days 1 --limit 3 --utc

echo "== a raw GET"
codeartsbuild get "/v1/job/$job/running-status" | python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["last_build_no"])'

echo "== build 61 as JSON, one field of it"
codeartsbuild record "$job" 61 --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["commit"])'

echo "== a build that does not exist: exit status 1, one line on stderr"
status=0
codeartsbuild record "$job" 2147483647 2>&1 | sed 's/(request id [0-9a-f]*)/(request id ...)/' || true
codeartsbuild record "$job" 2147483647 2>/dev/null || status=$?
echo "exit status $status"

# After the record (steps, log, wait): the emulator's job with logs, whose build 4 FAILED.
logs_job=${2:-5eed1065e1f04e0c9a7b3d2c1b0a9f8e}

echo "== the steps of build 4"
codeartsbuild steps "$logs_job" 4

echo "== the last 2 lines of its log"
codeartsbuild log "$logs_job" 4 --tail 2

echo "== waiting for it: it has ended FAILED, so exit status 1"
status=0
codeartsbuild wait "$logs_job" 4 --timeout 30m || status=$?
echo "exit status $status"
