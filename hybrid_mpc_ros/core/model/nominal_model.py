"""The nominal (approximate) model the MPC plans with: an affine ``x+ = A x + B u + c``.

A linear model ``x+ = A x + B u`` (the published paper's) is the case ``c = 0``. Stored as
an NPZ archive holding ``A`` (12x12), ``B`` (12x4), ``c`` (12,) and ``header``, a YAML text
saying where the model came from (scenario, data, seed, plant constants, fit errors). The
controller and the tuner load the file their scenario names; ``hybrid-mpc identify``
regenerates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
import tempfile

import numpy as np
import yaml

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, Quadcopter


@dataclass
class AffineModel:
    """``x[t+1] = A x[t] + B u[t] + c`` with ``A`` (12x12), ``B`` (12x4), ``c`` (12,) (maybe 0)."""

    A: np.ndarray
    B: np.ndarray
    c: np.ndarray
    dt: float
    header: dict = field(default_factory=dict)

    def __post_init__(self):
        self.A = np.asarray(self.A, dtype=float)
        self.B = np.asarray(self.B, dtype=float)
        self.c = np.asarray(self.c, dtype=float).reshape(-1)
        shapes = {'A': (self.A.shape, (NX, NX)), 'B': (self.B.shape, (NX, NU)),
                  'c': (self.c.shape, (NX,))}
        for name, (got, want) in shapes.items():
            if got != want:
                raise ConfigError(f'nominal model {name} has shape {got}, expected {want}')
        for name in ('A', 'B', 'c'):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ConfigError(f'nominal model {name} has non-finite entries')

    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Predicted next state (12,)."""
        return self.A @ x + self.B @ u + self.c

    def jacobians(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dg/dx, dg/du)`` = ``(A, B)`` wherever evaluated."""
        return self.A, self.B

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically to ``path`` (.npz) with the YAML header."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        header = dict(self.header, dt=float(self.dt))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix='.npz')
        os.close(fd)
        try:
            np.savez(tmp, A=self.A, B=self.B, c=self.c,
                     header=np.array(yaml.safe_dump(header, sort_keys=False)))
            os.chmod(tmp, 0o644)           # mkstemp creates 0600; this is a shared data file
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'AffineModel':
        """Read a model written by :meth:`save`; clear errors for missing or bad files."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = yaml.safe_load(str(data['header'])) or {}
                if 'dt' not in header:
                    raise ConfigError(f'nominal model {path} header has no dt')
                return cls(data['A'], data['B'], data['c'], float(header['dt']), header)
        except FileNotFoundError as exc:
            raise ConfigError(f'nominal model file not found: {path} '
                              '(run `hybrid-mpc identify` to create one)') from exc
        except (KeyError, ValueError, OSError) as exc:
            raise ConfigError(f'nominal model file {path} is malformed: {exc}') from exc


def linearised_model(quad: Quadcopter, x_eq: np.ndarray | None = None,
                     u_eq: np.ndarray | None = None) -> AffineModel:
    """Affine model from the plant's Jacobians at an equilibrium (hover by default)."""
    x_eq = quad.hover_state() if x_eq is None else np.asarray(x_eq, float)
    u_eq = quad.params.hover_input if u_eq is None else np.asarray(u_eq, float)
    a_mat, b_mat = quad.jacobians(x_eq, u_eq)
    c_vec = quad.step(x_eq, u_eq) - a_mat @ x_eq - b_mat @ u_eq
    return AffineModel(a_mat, b_mat, c_vec, quad.dt,
                       {'source': 'linearisation of the plant at hover'})
