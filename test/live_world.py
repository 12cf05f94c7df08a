"""An in-process stand-in for the ROS graph a LiveSession talks to, built from the real core.

:class:`World` holds a simulator (the scenario's :class:`Quadcopter` plant), a controller
(the node's own protocol, :class:`ControllerLoop`, around a :class:`SafeController` of the
scenario's :class:`MPCPolicy`) and a message bus with a small latency.
Time is simulated: every message and service answer is an event at a wall time, so runs
are deterministic and timeouts can be provoked by dropping events. A ``tamper(event)``
hook sees every event before it is scheduled and returns the events to schedule instead
(none: dropped; two: duplicated; with a later time: delayed).

Two clock modes, as the real nodes have them:

* ``lockstep``: the simulator steps once per command, the controller answers every new
  odometry stamp at once (odometry trigger, ``~/hold`` available), the simulator
  re-publishes its odometry after 0.5 s without a command;
* ``realtime``: the simulator steps on its own timer every period; the controller runs on
  its own timer (the timer trigger), offset by a fraction of a period, from the newest
  odometry, and refuses ``~/hold``.

Answers to calls travel as the typed answers the tuner node decodes them into
(:mod:`hybrid_mpc_ros.core.control.answers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import heapq
import itertools

import numpy as np

from hybrid_mpc_ros.core.control.answers import Accepted, HoldAnswer, Refused
from hybrid_mpc_ros.core.control.controller_loop import ControllerLoop
from hybrid_mpc_ros.core.learning import live_session as ls
from hybrid_mpc_ros.core.learning.samples import (NANOS_PER_SECOND, SensitivitySample,
                                                  Stamp)
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.safe_control import SafeController, SafetyConfig

LATENCY_S = 50e-6
REPUBLISH_S = 0.5


@dataclass(order=True)
class Event:
    """Something delivered at ``time`` [s] to ``target`` ('tuner', 'controller', 'simulator')."""

    time: float
    seq: int
    target: str = field(compare=False)
    kind: str = field(compare=False)
    payload: tuple = field(compare=False, default=())


class World:
    """Simulator, controller and bus; :meth:`run` drives a session until it is done."""

    def __init__(self, scenario, mode: str = 'lockstep', tamper=None,
                 controller_phase: float = 0.3, jitter_s: float = 0.0, seed: int = 0,
                 envelope=None):
        self.scenario = scenario
        self.mode = mode
        self.tamper = tamper
        self.period_ns = round(scenario.period_s * NANOS_PER_SECOND)
        self.now = 0.0
        self._seq = itertools.count()
        self._events: list[Event] = []
        # simulator
        self.plant = scenario.plant()
        self.x = scenario.x0.copy()
        self.hover = self.plant.params.hover_input
        self.command = self.hover.copy()
        self.sim_ns = 0
        self.last_command_time = 0.0
        self.sim_steps = 0
        # controller
        self._envelope = envelope
        self.restart_controller()
        self.samples: list[SensitivitySample] = []
        self.parameter_sets: list[dict] = []
        self.hold_calls: list[bool] = []
        self.session = None
        self.actions: list = []
        self._controller_phase = controller_phase
        # realtime timers fire a little early or late, as wall timers do
        self._jitter_s = jitter_s
        self._rng = np.random.default_rng(seed)
        self._publish_odometry()
        if mode == 'realtime':
            self._schedule(self.period_ns / NANOS_PER_SECOND, 'simulator', 'timer')
            self._schedule(controller_phase * self.period_ns / NANOS_PER_SECOND,
                           'controller', 'timer')
        else:
            self._schedule(REPUBLISH_S, 'simulator', 'republish')

    def restart_controller(self) -> None:
        """A new controller process: start theta and x_ref, revision 0, no odometry yet."""
        config = self.scenario.mpc_config
        self.controller = SafeController(self.scenario.policy(), SafetyConfig(1e9, 3, 0.9),
                                         config.u_min, config.u_max, self._envelope)
        self.loop = ControllerLoop(self.controller,
                                   'odometry' if self.mode == 'lockstep' else 'timer')
        self.restarts = getattr(self, 'restarts', -1) + 1

    @property
    def held(self) -> bool:
        """Whether the controller holds (keeps odometry without answering it)."""
        return self.loop.held

    def _timer_period(self) -> float:
        return self.period_ns / NANOS_PER_SECOND + self._rng.uniform(-1.0, 1.0) * \
            self._jitter_s

    # -- the bus ---------------------------------------------------------------------------
    def _schedule(self, delay: float, target: str, kind: str, *payload) -> None:
        event = Event(self.now + delay, next(self._seq), target, kind, payload)
        events = [event] if self.tamper is None or kind in ('timer', 'republish') else \
            self.tamper(self, event)
        for item in events:
            heapq.heappush(self._events, item)

    def _send(self, target: str, kind: str, *payload) -> None:
        self._schedule(LATENCY_S, target, kind, *payload)

    # -- the simulator ---------------------------------------------------------------------
    def _publish_odometry(self) -> None:
        measured = ls.measured_state(self.x)
        stamp = self.sim_ns if self.mode == 'lockstep' else round(self.now * NANOS_PER_SECOND)
        self._send('controller', 'odom', stamp, measured)
        self._send('tuner', 'odom', stamp, measured)

    def _simulator(self, event: Event) -> None:
        if event.kind == 'command':
            self.command = np.clip(event.payload[0], self.plant.params.omega_min,
                                   self.plant.params.omega_max)
            self.last_command_time = self.now
            if self.mode == 'lockstep':
                self._step()
        elif event.kind == 'timer':
            self._step()
            self._schedule(self._timer_period(), 'simulator', 'timer')
        elif event.kind == 'republish':
            if self.now - self.last_command_time >= REPUBLISH_S:
                self.last_command_time = self.now
                self._publish_odometry()
            self._schedule(REPUBLISH_S, 'simulator', 'republish')
        elif event.kind == 'reset':
            self.x = self.scenario.x0.copy()
            self.command = self.hover.copy()
            self.last_command_time = self.now
            self._publish_odometry()
            self._send('tuner', 'result', event.payload[0], Accepted('reset'))

    def _step(self) -> None:
        self.x = self.plant.step(self.x, self.command)
        self.sim_ns += self.period_ns
        self.sim_steps += 1
        self._publish_odometry()

    # -- the controller ----------------------------------------------------------------------
    def _controller(self, event: Event) -> None:
        # the node's translation: the same calls of the same class, events for messages
        kind, loop = event.kind, self.loop
        if kind == 'odom':
            stamp, x = event.payload
            try:
                step = loop.odometry(stamp, x, self.now)
            except ValueError as exc:          # an older stamp: refused and counted
                loop.reject(str(exc))
                return
            if step:
                self._control_step()
        elif kind == 'timer':
            if loop.timer():
                self._control_step()
            self._schedule(self._timer_period(), 'controller', 'timer')
        elif kind == 'set':
            call, values = event.payload
            theta = {k: v for k, v in values.items() if k in th.PARAMETER_NAMES}
            unknown = set(values) - set(theta) - set(th.SAFE_PARAMETER_NAMES) - {'x_ref'}
            reason = (f'unknown parameters {sorted(unknown)}' if unknown else
                      th.validate_parameters(theta) or
                      th.validate_parameters(th.unprefix_safe(values)))
            if not reason:
                self.parameter_sets.append(dict(values))
                loop.set_policy(theta, values.get('x_ref'))
                loop.set_safe_theta(values)
            self._send('tuner', 'result', call, Refused(reason) if reason else Accepted())
        elif kind == 'hold':
            call, data = event.payload
            answer, step = loop.hold(data)
            if isinstance(answer, HoldAnswer):
                self.hold_calls.append(data)
            if step:
                self._control_step()   # as the node: the step goes out before the answer
            self._send('tuner', 'result', call, answer)
        elif kind == 'reset':
            self._send('tuner', 'result', event.payload[0], loop.reset())

    def _control_step(self) -> None:
        result = self.loop.command(self.now)
        self._send('simulator', 'command', result.u)
        _, sample = self.loop.report(
            result, lambda: Stamp.from_nanoseconds(round(self.now * 1e9)))
        self.samples.append(sample)
        self._send('tuner', 'sample', sample)

    # -- the tuner side ----------------------------------------------------------------------
    def _perform(self, actions: list) -> None:
        for action in actions:
            self.actions.append(action)
            if isinstance(action, ls.SetParameters):
                self._send('controller', 'set', action.call, action.values)
            elif isinstance(action, ls.CallService):
                if action.service == 'hold':
                    self._send('controller', 'hold', action.call, action.data)
                elif action.service == 'controller_reset':
                    self._send('controller', 'reset', action.call)
                else:
                    self._send('simulator', 'reset', action.call)

    def _tuner(self, event: Event) -> None:
        session = self.session
        if event.kind == 'odom':
            self._perform(session.odometry(Stamp.from_nanoseconds(event.payload[0]),
                                           event.payload[1]))
        elif event.kind == 'sample':
            self._perform(session.sample(event.payload[0]))
        elif event.kind == 'result':
            self._perform(session.result(*event.payload))

    def clock(self) -> float:
        """The world's time [s] (the session's wall clock)."""
        return self.now

    def run(self, session, max_events: int = 2_000_000) -> list:
        """Drive ``session`` until it is done; return every action it took."""
        self.session = session
        self._perform(session.start())
        handlers = {'tuner': self._tuner, 'controller': self._controller,
                    'simulator': self._simulator}
        for _ in range(max_events):
            if session.done:
                return self.actions
            event = heapq.heappop(self._events)
            self.now = max(self.now, event.time)
            handlers[event.target](event)
            self._perform(session.tick())
        raise AssertionError(f'session not done after {max_events} events (phase '
                             f'{session.phase})')

    def of_type(self, kind) -> list:
        """The actions of one type the session took."""
        return [action for action in self.actions if isinstance(action, kind)]
