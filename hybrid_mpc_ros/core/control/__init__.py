"""The controller's side of the episode protocol: when to step, the revision, hold, reset."""
