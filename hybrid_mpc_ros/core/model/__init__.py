"""The vehicle: plant dynamics, the nominal model and its identification, frames, hover LQR."""
