"""The Optuna side of a sweep: its study, exactly-once queueing, pruning reports, outcomes.

Exactly once: every trial carries ``rnnlab.key`` (its configuration and seed). The coordinator
enqueues each key that is neither finished nor already waiting, and only then asks Optuna for
trials, so a grid point runs once however many slots there are (Optuna's own GridSampler repeats
points under parallel workers, MEASURED.md). A trial is finished for good once it has an
``rnnlab.outcome``; a trial left RUNNING by a dead sweep is failed without one and runs again.

Several coordinators (``rnnlab sweep`` on several machines, one database storage) share the
queue. Each may enqueue a missing key, so a key can be queued twice; a coordinator that draws a
trial runs it only if no other trial holds the key (finished with an outcome, or queued or running
under a lower number), and otherwise fails it as a duplicate, without an outcome. A coordinator
that dies stops heart-beating; after the grace period another one fails its trials and queues
their keys again.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from rnnlab._names import (
    COMPLETED,
    CONFIG,
    DEFINITION,
    DIVERGED,
    DUPLICATE_OF,
    FAILED,
    INCOMPATIBLE,
    KEY,
    KILLED_BY,
    LOG10_RATIO,
    LYAPUNOV_ATTR,
    LYAPUNOV_MAX,
    MESSAGE,
    OUTCOME,
    OWNER,
    PRUNED,
    RATIO_ATTR,
    SEED,
    TARGET_LOG10_RATIO,
    TARGET_RATIO_ATTR,
)
from rnnlab.sweep._generations import study_name
from rnnlab.sweep._options import SweepOptions
from rnnlab.sweep._optuna import heartbeat_interval, suggest, trial_id
from rnnlab.sweep._owners import abandoned, owner_id, this_host
from rnnlab.sweep._plan import Point, Range, SweepPlan, encode, point_key
from rnnlab.sweep._storage import Heartbeat, storage_for

STATE_OF = {
    COMPLETED: TrialState.COMPLETE,
    PRUNED: TrialState.PRUNED,
    DIVERGED: TrialState.FAIL,  # no NaN objective ever reaches the sampler
    FAILED: TrialState.FAIL,
    INCOMPATIBLE: TrialState.FAIL,
}
"""The Optuna state of each outcome."""


@dataclass
class Task:
    """A trial about to run: its Optuna trial, configuration and seed."""

    trial: Trial
    point: Point
    seed: int

    @property
    def key(self) -> str:
        return f"{self.point.key}-s{self.seed}"


class SweepStudy:
    """An Optuna study that runs a :class:`SweepPlan` exactly once, across resumes."""

    def __init__(self, plan: SweepPlan, options: SweepOptions) -> None:
        self.plan = plan
        self.storage_url = options.storage
        self.stale: list[FrozenTrial] = []  # failed by Optuna's heartbeat check, to hand back
        self.storage = storage_for(options.storage, options.heartbeat, on_stale=self._on_stale)
        self.name = study_name(self.storage, plan, options.storage, options.fresh)
        self.founder = True  # this process created the study (and so opens the parent run)
        try:
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=self.name,
                direction=plan.section.objective.direction,
                sampler=self._sampler(),
                pruner=self._pruner(),
            )
        except optuna.exceptions.DuplicatedStudyError:  # resumed, or another machine made it
            self.founder = False
            self.study = optuna.load_study(
                study_name=self.name,
                storage=self.storage,
                sampler=self._sampler(),
                pruner=self._pruner(),
            )
        if self.founder:
            self.study.set_user_attr(DEFINITION, plan.definition)
        self._points: dict[str, Point] = {p.key: p for p in plan.points}
        self.waiting = 0
        self.to_sample = 0
        self.held: set[int] = set()  # ids of the trials this process runs now
        interval = heartbeat_interval(self.storage)
        self.check_every = float(interval or 10)  # seconds between checks for dead trials
        self.heartbeat = Heartbeat(self.storage, interval) if interval else None

    def _on_stale(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.stale.append(trial)

    @contextlib.contextmanager
    def heartbeats(self) -> Iterator[None]:
        """Heartbeats for this process's running trials while the block runs (database
        storages; the journal file has none, and its trials are checked by process id)."""
        if self.heartbeat is None:
            yield
            return
        with self.heartbeat:
            yield

    def _sampler(self) -> optuna.samplers.BaseSampler:
        kind = self.plan.section.sampler
        seed = None  # fresh randomness after a resume: a re-seeded sampler would repeat itself
        if kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)  # grid: every trial is enqueued

    def _pruner(self) -> optuna.pruners.BasePruner:
        kind = self.plan.section.pruner
        train = self.plan.base.config.train
        if kind == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=max(2, len(self.plan.section.seeds))
            )
        if kind == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=train.eval_every, max_resource=train.steps
            )
        return optuna.pruners.NopPruner()

    # -- resume --------------------------------------------------------------------------------
    def prepare(self) -> list[FrozenTrial]:
        """Fail trials left RUNNING by a dead sweep and enqueue every key still to run.

        Returns the stale trials (their MLflow runs are the caller's to close)."""
        stale: list[FrozenTrial] = []
        trials = self.study.get_trials(deepcopy=False)
        for t in trials:
            if (
                t.state is TrialState.RUNNING
                and trial_id(t) not in self.held
                and abandoned(t, by_pid=self.heartbeat is None)
            ):
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    if self.storage.set_trial_state_values(trial_id(t), TrialState.FAIL):
                        stale.append(t)
        judge = getattr(self.storage, "judges_heartbeats", lambda: True)()
        if self.heartbeat is not None and judge:  # no heartbeat within the grace period
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        stale += self.stale
        self.stale = []
        trials = self.study.get_trials(deepcopy=False)
        finished = {t.user_attrs[KEY] for t in trials if OUTCOME in t.user_attrs}
        queued = {
            t.user_attrs.get(KEY)
            for t in trials
            if t.state in (TrialState.WAITING, TrialState.RUNNING)
        }
        self.waiting = sum(t.state is TrialState.WAITING for t in trials)
        section = self.plan.section
        configs: dict[str, dict[str, Any]] = {}
        for t in trials:
            if CONFIG in t.user_attrs and t.params:  # a WAITING trial's params are not set yet
                configs.setdefault(t.user_attrs[CONFIG], dict(t.params))
        if self.plan.grid:
            for point in self.plan.points:
                configs[point.key] = {k: encode(v) for k, v in point.values.items()}
        for config, params in configs.items():
            for seed in section.seeds:
                key = f"{config}-s{seed}"
                if key not in finished and key not in queued:
                    self.study.enqueue_trial(
                        params, user_attrs={KEY: key, CONFIG: config, SEED: seed}
                    )
                    self.waiting += 1
        if not self.plan.grid:
            self.to_sample = max(0, int(section.trials or 0) - len(configs))
        return stale

    def unfinished_elsewhere(self, queued: bool = True) -> bool:
        """Whether other coordinators still have work this one may have to take over: queued
        trials (unless ``queued`` is False: a stopping coordinator asks whether another still
        runs), or running ones whose death this process would notice (by heartbeat, or by
        process id on this host). With neither, a trial of another host is its own affair."""
        me = owner_id()
        if queued and self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return True
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = str(t.user_attrs.get(OWNER, ""))
            if owner == me:
                continue
            if self.heartbeat is not None or not owner or owner.rpartition(":")[0] == this_host():
                return True
        return False

    def failed_attempts(self) -> list[FrozenTrial]:
        """Attempts failed without an outcome (stopped, killed, a dead coordinator's, stopped
        while MLflow was away, an unwritable artifact location's): their keys run again."""
        failed = self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        return [t for t in failed if OUTCOME not in t.user_attrs]

    def finished(self) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False) if OUTCOME in t.user_attrs]

    def remaining(self) -> int:
        return self.waiting + self.to_sample * len(self.plan.section.seeds)

    # -- next trial ----------------------------------------------------------------------------
    def next_task(self) -> Task | None:
        """Ask Optuna for the next trial to run, or None when the sweep has nothing left."""
        while True:
            task = self._ask()
            if task is None or self._claim(task):
                return task

    def _claim(self, task: Task) -> bool:
        """Keep ``task`` unless another trial holds its key; fail a duplicate (no outcome)."""
        trial = task.trial
        key = task.key
        for other in self.study.get_trials(deepcopy=False):
            if other.number == trial.number or other.user_attrs.get(KEY) != key:
                continue
            held = OUTCOME in other.user_attrs or (
                other.state in (TrialState.WAITING, TrialState.RUNNING)
                and other.number < trial.number
            )
            if held:
                trial.set_user_attr(DUPLICATE_OF, other.number)
                self._release(trial)
                self.study.tell(trial, state=TrialState.FAIL)
                return False
        return True

    def _release(self, trial: Trial) -> None:
        self.held.discard(trial_id(trial))
        if self.heartbeat is not None:
            self.heartbeat.discard(trial_id(trial))

    def _ask_optuna(self) -> Trial:
        with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with optimize":
            warnings.simplefilter("ignore", UserWarning)  # this class beats for its trials
            return self.study.ask()

    def _ask(self) -> Task | None:
        trial = None
        if self.waiting > 0:
            self.waiting -= 1
            trial = self._ask_optuna()
            if KEY not in trial.user_attrs:  # another process emptied the queue first
                self.waiting = 0
                if self.to_sample == 0:
                    self.study.tell(trial, state=TrialState.FAIL)  # not ours to run: no outcome
                    return None
        if trial is not None and KEY in trial.user_attrs:
            seed = int(trial.user_attrs.get(SEED, self.plan.section.seeds[0]))
            values = self._suggest(trial)
        elif self.to_sample > 0:
            self.to_sample -= 1
            trial = trial or self._ask_optuna()
            seed = self.plan.section.seeds[0]
            values = self._suggest(trial)
            config = point_key(values)
            trial.set_user_attr(KEY, f"{config}-s{seed}")
            trial.set_user_attr(CONFIG, config)
            trial.set_user_attr(SEED, seed)
            for other in self.plan.section.seeds[1:]:  # every configuration once per seed
                self.study.enqueue_trial(
                    dict(trial.params),
                    user_attrs={KEY: f"{config}-s{other}", CONFIG: config, SEED: other},
                )
                self.waiting += 1
        else:
            return None
        self.held.add(trial_id(trial))
        if self.heartbeat is not None:  # at once: a trial without a heartbeat is never stale
            self.heartbeat.add(trial_id(trial))
        trial.set_user_attr(OWNER, owner_id())
        key = point_key(values)
        point = self._points.get(key)
        if point is None:
            point = self._points[key] = self.plan.resolve_point(values)
        return Task(trial, point, seed)

    def _suggest(self, trial: Trial) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, space in self.plan.section.space.items():
            if isinstance(space, Range):
                if space.integer:
                    dist: Any = IntDistribution(int(space.low), int(space.high), log=space.log)
                else:
                    dist = FloatDistribution(space.low, space.high, log=space.log)
                values[key] = suggest(trial, key, dist)
            else:
                choices = [encode(v) for v in space]
                picked = suggest(trial, key, CategoricalDistribution(choices))
                values[key] = space[choices.index(picked)]
        return values

    # -- outcomes ------------------------------------------------------------------------------
    def alive(self, task: Task) -> bool:
        """Whether ``task``'s trial is still RUNNING: False once another coordinator declared
        this one dead (no heartbeat within the grace period) and failed it to run it again."""
        return self.storage.get_trial(trial_id(task.trial)).state is TrialState.RUNNING

    def note(self, task: Task, key: str, value: Any) -> None:
        """A user attribute of a running trial; nothing once the trial was taken away."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            task.trial.set_user_attr(key, value)

    def tell(self, task: Task, outcome: str, metrics: dict[str, float], message: str = "") -> bool:
        """Record a trial's outcome; only a finite objective of a completed trial is a value.

        Returns False, recording nothing, when the trial was taken away (see :meth:`alive`)."""
        trial = task.trial
        self._release(trial)
        if not self.alive(task):
            return False
        trial.set_user_attr(OUTCOME, outcome)
        summaries = (
            (RATIO_ATTR, LOG10_RATIO),
            (TARGET_RATIO_ATTR, TARGET_LOG10_RATIO),
            (LYAPUNOV_ATTR, LYAPUNOV_MAX),
        )
        for attr, key in summaries:
            ratio = metrics.get(key)
            if ratio is not None and math.isfinite(ratio):  # for the outcome table
                trial.set_user_attr(attr, ratio)
        if message:
            trial.set_user_attr(MESSAGE, message.splitlines()[0][:500])
        value = self.plan.objective(outcome, metrics)
        if value is not None:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=STATE_OF.get(outcome, TrialState.FAIL))
        return True

    def kills(self, task: Task) -> int:
        """How many earlier attempts at ``task``'s key lost their worker to a signal."""
        key = task.key
        return sum(
            1
            for t in self.study.get_trials(deepcopy=False)
            if t.user_attrs.get(KEY) == key and KILLED_BY in t.user_attrs
        )

    def requeue_killed(self, task: Task, why: str) -> None:
        """A trial whose worker was killed: failed without an outcome, and its key queued
        again at once (so a sweep whose last trial it was does not end without it)."""
        self.note(task, KILLED_BY, why[:500])
        self.stop(task)
        params = {k: encode(v) for k, v in task.point.values.items()}
        attrs = {KEY: task.key, CONFIG: task.point.key, SEED: task.seed}
        self.study.enqueue_trial(params, user_attrs=attrs)
        self.waiting += 1

    def stop(self, task: Task) -> None:
        """A trial interrupted by the user: failed without an outcome, so it runs again."""
        self._release(task.trial)
        self.study.tell(task.trial, state=TrialState.FAIL, skip_if_finished=True)

    def stop_claimed(self) -> None:
        """Fail every trial this process still holds RUNNING (interrupted between ask and run)."""
        me = owner_id()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get(OWNER, me) == me:
                self.storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)

    def report(self, task: Task, step: int, scores: dict[str, float]) -> bool:
        """An evaluation of a running trial: report it to the pruner; True = prune now."""
        value = scores.get(self.plan.section.objective.metric)
        if value is None or not math.isfinite(value):
            return False
        try:
            task.trial.report(value, step)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            return False  # taken away: the result will not be recorded anyway
        return task.trial.should_prune()
