#!/usr/bin/env bash
# Build hybrid_mpc_ros the ROS way (colcon, ament_python) in a scratch workspace and check
# that executables, launch and config files land where `ros2 run` / `ros2 launch` look.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv"
ws="$(mktemp -d)"
trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/src"
# copy the sources (not the venv, caches or build outputs) into the workspace
mkdir -p "$ws/src/hybrid_mpc_ros"
tar -C "$here" --exclude=./.venv --exclude=./.git --exclude=./.cache --exclude=./build \
  --exclude=./install --exclude=./log --exclude=./results -cf - . | tar -C "$ws/src/hybrid_mpc_ros" -xf -
cd "$ws"
PATH="$venv/bin:$PATH" "$venv/bin/colcon" build --event-handlers console_direct- \
  --packages-select hybrid_mpc_ros > "$ws/colcon.log" 2>&1 || { cat "$ws/colcon.log"; exit 1; }
prefix="$ws/install/hybrid_mpc_ros"
fail=0
need() { if [ -e "$1" ]; then echo "ok       ${1#$ws/}"; else echo "MISSING  ${1#$ws/}"; fail=1; fi; }
for exe in simulator_node lqr_controller_node mpc_controller_node tuner_node flight_recorder_node hybrid-mpc; do need "$prefix/lib/hybrid_mpc_ros/$exe"; done
need "$prefix/share/ament_index/resource_index/packages/hybrid_mpc_ros"
need "$prefix/share/hybrid_mpc_ros/package.xml"
for f in "$here"/launch/*.launch.py; do need "$prefix/share/hybrid_mpc_ros/launch/$(basename "$f")"; done
for f in "$here"/config/*.yaml "$here"/config/*.npz; do need "$prefix/share/hybrid_mpc_ros/config/$(basename "$f")"; done
for f in $(cd "$here" && find config/scenarios -name '*.yaml' | sort); do need "$prefix/share/hybrid_mpc_ros/$f"; done
# what `ros2 run hybrid_mpc_ros hybrid-mpc --help` would execute, with the workspace sourced
( set +u; . "$ws/install/setup.sh"; "$prefix/lib/hybrid_mpc_ros/hybrid-mpc" --help > "$ws/help.txt" ) \
  && echo "ok       lib/hybrid_mpc_ros/hybrid-mpc --help runs from the colcon install" \
  || { echo "FAILED   hybrid-mpc --help from the colcon install"; cat "$ws/help.txt"; fail=1; }
# the installed tool finds the default scenario and its nominal model through the ament index
# and runs the MPC
( set +u; . "$ws/install/setup.sh"; cd "$ws"; "$prefix/lib/hybrid_mpc_ros/hybrid-mpc" bench mpc \
    --steps 20 --fd-steps 1 > "$ws/bench.txt" 2>&1 ) \
  && echo "ok       lib/hybrid_mpc_ros/hybrid-mpc bench mpc runs from the colcon install" \
  || { echo "FAILED   hybrid-mpc bench mpc from the colcon install"; tail -20 "$ws/bench.txt"; fail=1; }
# a scenario of a family folder (rotorpy/) is found in the install too
( set +u; . "$ws/install/setup.sh"; cd "$ws"; "$prefix/lib/hybrid_mpc_ros/hybrid-mpc" identify \
    --scenario rotorpy/hummingbird --specs-only --out "$ws/hummingbird_specs.npz" > "$ws/identify.txt" 2>&1 ) \
  && echo "ok       lib/hybrid_mpc_ros/hybrid-mpc identify --scenario rotorpy/hummingbird from the colcon install" \
  || { echo "FAILED   hybrid-mpc identify --scenario rotorpy/hummingbird from the colcon install"; tail -20 "$ws/identify.txt"; fail=1; }
( set +u; . "$ws/install/setup.sh"; "$venv/bin/python" -c "from ament_index_python.packages import get_package_share_directory as g; print(g('hybrid_mpc_ros'))" ) \
  || { echo "FAILED   ament index lookup"; fail=1; }
exit $fail
