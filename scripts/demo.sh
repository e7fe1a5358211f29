#!/usr/bin/env bash
# Installs the dependencies, builds isola and runs the main demo: a tour of
# the foundation (start methods, exit codes, messages), then the three
# applications of DESIGN.md in their short modes, a few seconds each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DISOLA_BUILD_TESTS=OFF -DISOLA_BUILD_BENCH=OFF
cmake --build build -j"$(nproc)" --target example_demo example_isolated_service example_game_server \
  example_pipeline

section() { printf '\n==== %s\n\n' "$1"; }

section "1. Processes, start methods, exit codes, messages (examples/tutorial/demo.cpp)"
./build/examples/demo

section "2. A fault-isolated service: poisonous inputs crash, hang or blow the memory limit of supervised workers; every request is answered (examples/scenarios/isolated_service/)"
./build/examples/isolated_service --requests 240 --every 8 --workers 4 --deadline 2

section "3. A game server: one process per session, 40 players, 3 sessions SIGKILLed mid-game and restarted on the same connection (examples/scenarios/game_server/)"
./build/examples/game_server 40 50 3 4

section "4. A pipeline: 2000 files through 3 workers over bounded queues, workers killed mid-run, a manifest proves nothing was lost or duplicated (examples/scenarios/pipeline/)"
./build/examples/pipeline --count 2000 --workers 3 --kill 700
