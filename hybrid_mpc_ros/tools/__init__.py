"""What users run: the ``hybrid-mpc`` command, reproduction, benchmarks, demo, node processes."""
