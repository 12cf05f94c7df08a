# One-command setup, run and test. Needs only python3 (>= 3.11), gcc and make.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: setup run reproduce bench demo test test-fast test-ros-repeat colcon-check clean

$(STAMP): requirements.txt setup.py package.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hybrid_mpc_ros needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip==26.3
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

## The main job: the simulated tuning through ROS 2 (simulator, MPC controller and tuner as
## three processes, lockstep), 60 hybrid iterations of the default scenario, the published
## paper's (under a minute on 2 cores; the README shows its output).
run: setup
	$(VENV)/bin/hybrid-mpc tune --scenario l4dc2026 --iterations 60 --out results/tuning

## The paper's experiment offline: every method of the default scenario (~3-4 min on 2 cores).
reproduce: setup
	$(VENV)/bin/hybrid-mpc reproduce --out results/reproduce

## Speed of the tuning through ROS against the same tuning offline (JSON last line).
bench: setup
	$(VENV)/bin/hybrid-mpc bench ros

## The simulator and the MPC controller as real ROS 2 nodes in separate processes (lockstep).
demo: setup
	$(VENV)/bin/hybrid-mpc demo

## The whole test suite (linters included).
test: setup
	$(VENV)/bin/python -m pytest -ra test

## The fast inner loop: the ROS-free tests (test/core) without the slow ones, 20-30 s here.
test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow" test/core test/test_layout.py

## The tests that start ROS processes (test/ros, test/system), REPEAT times in a row
## (default 5), stopping at the first failure: for anyone changing them.
REPEAT ?= 5
test-ros-repeat: setup
	@for i in $$(seq $(REPEAT)); do echo "== run $$i of $(REPEAT)"; \
	  $(VENV)/bin/python -m pytest -q test/ros test/system || exit 1; done

## Build with colcon in a scratch workspace and check the install layout ros2 run/launch rely on.
colcon-check: setup
	bash scripts/colcon_check.sh

clean:
	rm -rf $(VENV) build install log
