"""Policy optimisation: episodes, closed-loop cost, gradient estimates, schedules, tuning."""
