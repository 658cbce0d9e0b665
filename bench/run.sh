#!/bin/sh
# Runs the agent benchmark (as root): budgets of issue 2, podman in the same run.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench agent "$@"
