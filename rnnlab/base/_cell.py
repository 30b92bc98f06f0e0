"""The cell contract: one recurrent step (``Cell``), wrappers around a cell, and capabilities.

Tensors are time-major throughout: a sequence batch is ``[T, B, features]``, as in ``nn.RNN``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from rnnlab.base._params import Params

if TYPE_CHECKING:
    from rnnlab.base._taskshape import TaskShape

State = tuple[Tensor, ...]
"""A cell's recurrent state. ``state[0]`` is the hidden state h that probing measures; the model may
replace it (it adds the probe there), so a cell must read h from ``state[0]``."""

_Params = Params  # inside the classes below, ``Params`` names the nested class attribute


class Normalizer(nn.Module):
    """A normalisation applied inside a cell: ``forward(x, t)`` with ``t`` the time index
    (batch-norm keeps statistics per time step; layer-norm ignores it)."""

    def forward(self, x: Tensor, t: int | None) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


NormalizerFactory = Callable[[int, str], Normalizer]
"""``make(features, role)``, called by ``set_normalizers`` once per normaliser it places.

Roles: ``"summed"`` (one per gate, in gate order, ``features`` = hidden size: that gate's summed
pre-activation W_x x_t + W_h h_{t-1}, the biases added after it; Ba et al. 2016), ``"input"`` and
``"hidden"`` (the separate-terms form: W_x x_t and W_h h_{t-1} each on its own, ``features`` = the
width of all gates together; Cooijmans et al. 2016, Ba et al.'s LN-LSTM) and ``"cell"`` (an LSTM's
cell state c_t before its output tanh, in both forms)."""

NormTerms = Literal["summed", "separate"]
"""Which pre-activation a normaliser inside a cell sees (see :data:`NormalizerFactory`)."""


@runtime_checkable
class IdentityInit(Protocol):
    """What capability ``identity_init`` promises: the IRNN recipe (Le et al. 2015)."""

    def init_identity(self, scale: float, nonlinearity: str) -> None:
        """W_hh = ``scale`` * I, zero biases, and ``nonlinearity`` (``"relu"``) from now on."""


RecurrentInitializer = Callable[[Tensor], object]
"""``init(block)``: fills ``block`` (a ``[hidden, hidden]`` tensor) in place, as the
``torch.nn.init`` functions do (``nn.init.orthogonal_``); what it returns is ignored."""


@runtime_checkable
class RecurrentInit(Protocol):
    """What capability ``recurrent_init`` promises: the trained matrix that multiplies h_{t-1}
    can be re-initialised (the ``orthogonal`` remedy)."""

    def init_recurrent(self, init: RecurrentInitializer) -> None:
        """Call ``init(block)`` once per H x H block of the trained parameter that multiplies
        h_{t-1} (one block for an Elman cell; one per gate, in gate order, for LSTM's i, f, g, o
        and GRU's r, z, n), without autograd, on a fresh tensor of the block's shape, dtype and
        device, and write each filled block into the parameter. Draws come from torch's
        global random stream, which the run has seeded. The cell's other parameters (biases,
        input weights) are left as they are."""


@runtime_checkable
class Normalizable(Protocol):
    """What capability ``normalize`` promises: normalisers inside the step."""

    def set_normalizers(self, make: NormalizerFactory, terms: NormTerms) -> None:
        """Place normalisers made by ``make(features, role)`` inside the step: with
        ``terms="summed"`` one ``"summed"`` per gate, with ``"separate"`` an ``"input"`` and a
        ``"hidden"`` one, and (LSTM) a ``"cell"`` one in both. A cell with normalisers has no
        fused path."""


CAPABILITIES: Mapping[str, str | None] = {
    "identity_init": "init_identity",  # IdentityInit
    "normalize": "set_normalizers",  # Normalizable
    "normalize_outputs": None,  # the norm remedies act between layers (after_layer)
    "recurrent_init": "init_recurrent",  # RecurrentInit
}
"""Every capability rnnlab's remedies know, and the method a cell that declares it must have;
checked when the cell is registered (a cell may declare capabilities of its own too)."""


def capability_problem(cls: type[Cell]) -> str | None:
    """Why ``cls`` lacks a method one of its declared capabilities needs (None if it has all)."""
    for capability in sorted(cls.capabilities):
        method = CAPABILITIES.get(capability)
        if method is not None and not callable(getattr(cls, method, None)):
            return f"{cls.__name__} declares capability {capability!r} but has no {method}()"
    return None


class Cell(nn.Module):
    """One recurrent step. The model owns the time loop; a cell never loops over time.

    Contract:
        * ``__init__(input_size, hidden_size, params)`` with ``params`` an instance of ``Params``.
        * ``init_state(batch, device, dtype)`` returns the initial :data:`State`.
        * ``forward(x_t, state) -> (h_t, state)`` for ``x_t`` of shape ``[B, input_size]``;
          ``h_t`` is ``[B, hidden_size]`` and equals ``state[0]`` of the returned state.

    Optional speed-ups (the built-in cells use all three):
        * ``project_inputs(x)`` computes every step's input term at once (``[T, B, *]``) and
          ``step(u_t, state, t)`` consumes one of them, so no matrix product on x runs in the loop.
        * ``has_fused`` / ``forward_fused(x, state)``: a fused whole-sequence path (``nn.LSTM``,
          cuDNN on a GPU) that the model uses on steps where no probe is taken. It must share the
          parameters of the step path and give the same result.
        * ``probes_fused`` / ``forward_fused_probed(x, state, probe)``: the fused path on probed
          steps too. ``probe`` ``[T, B, H]`` (zeros) must enter exactly as the step loop adds it,
          h_t + probe_t carried into step t + 1, so that after backward ``probe.grad`` is the
          total dL/dh_t. For a linear recurrence h_t = a_t * h_{t-1} + b_t (``lru``, ``mingru``,
          ``minlstm``) that is adding probe_t to b_t: backward through the scan is the adjoint
          recurrence delta_t = dl/dh_t + a_{t+1} * delta_{t+1}, a reverse scan whose delta_t is
          the gradient of b_t, so the whole ||dL/dh_t|| curve comes with the training
          backward, without the unrolled loop (rnnlab/run/_model.py).

    Optional hooks: ``resolve_params(params, task)`` replaces options that follow the task
    (IndRNN's ``recurrent_max: auto``) when the config is resolved; ``init_layer(layer, layers)``
    runs once the cell is made, for initialisations that depend on its depth.

    Capabilities (``capabilities`` class attribute) tell remedies what a cell can do; each one in
    :data:`CAPABILITIES` comes with a method, checked when the cell is registered:
        * ``"identity_init"``: ``init_identity(scale, nonlinearity)`` (:class:`IdentityInit`).
        * ``"normalize"``: ``set_normalizers(make, terms)`` (:class:`Normalizable`) puts
          normalisers inside the step, on each gate's summed pre-activation (``terms="summed"``)
          or on the input and recurrent terms separately (``"separate"``); the roles are listed
          at :data:`NormalizerFactory`.
        * ``"normalize_outputs"``: norm remedies normalise the layer's output sequence between
          layers, never inside the recurrence (Li et al. 2018 for IndRNN, whose bounded u a
          normaliser inside would cancel); takes precedence over ``"normalize"``.
        * ``"recurrent_init"``: ``init_recurrent(init)`` (:class:`RecurrentInit`) re-initialises
          the trained matrix that multiplies h_{t-1}, block by block (one H x H block per gate),
          writing the real parameter; declared where that matrix is a free, full parameter
          (rnn, lstm, gru, simple, cornn, lem), not where it is built from others (indrnn's
          and unicornn's diagonal, antisymmetric's W - W^T - gamma I, lipschitz's mix, expRNN's
          exp(A), lru's Lambda). The ``orthogonal`` remedy needs it.

    ``recurrent_weight()`` is what measurements read (``weights/spectral_norm``, the dynamics):
    a 2-D tensor with H columns, the matrix (or the gates' matrices stacked, k H x H) that
    multiplies h_{t-1}, or None. Whether writing into it reaches the cell differs: it is the
    parameter itself on rnn, lstm (4H x H, gates i, f, g, o), gru (3H x H, r, z, n), cornn
    (W) and lem (3H x H); a view into ``i2h.weight`` on simple (in-place writes reach it); and
    a matrix computed from the parameters on indrnn and unicornn (diag of a vector), lru
    (Lambda as a real 2H x 2H matrix), antisymmetric, lipschitz and exprnn, where writing into
    it changes nothing. To re-initialise, use ``init_recurrent`` (capability
    ``recurrent_init``), never an in-place ``torch.nn.init`` call on ``recurrent_weight()``.

    Learning-rate groups: ``lr_groups()`` returns ``{name: (factor, [parameters])}``, parameters
    to train at ``factor`` x the run's rate (expRNN's ``orthogonal``: its skew-symmetric A at
    0.1, as the paper trains it); ``lr_group_names`` lists the names at class level, which
    ``train.lr_groups`` is checked against (it may set each group's factor or rate). A
    parameter belongs to at most one group; the rest train at ``train.lr`` (rnnlab/run/_optim.py,
    docs/plugins.md).

    ``additive = True`` declares that the update already carries the previous state through a
    sum or an interpolation (LSTM's c_t = f c_{t-1} + i g, GRU's z h_{t-1} + (1 - z) n): a
    residual connection through time would count it twice, so ``residual`` refuses the cell.
    """

    Params: ClassVar[type[Params]] = Params
    capabilities: ClassVar[frozenset[str]] = frozenset()
    additive: ClassVar[bool] = False
    lr_group_names: ClassVar[tuple[str, ...]] = ()
    """The groups ``lr_groups()`` returns, known before any cell is made (config checks)."""

    def __init__(self, input_size: int, hidden_size: int, params: _Params | None = None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.params = params if params is not None else type(self).Params()

    @classmethod
    def resolve_params(cls, params: _Params, task: TaskShape) -> _Params:
        """``params`` with every option that follows the task replaced by its value (called by
        ``rnnlab.run.resolve``; the run logs the result). Reading ``task`` builds the dataset."""
        return params

    def init_layer(self, layer: int, layers: int) -> None:
        """Called by ``build_model`` right after the cell is made, before any remedy acts: this
        cell is layer ``layer`` (0 = bottom) of ``layers``. Default: nothing."""

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return (torch.zeros(batch, self.hidden_size, device=device, dtype=dtype),)

    def project_inputs(self, x: Tensor) -> Tensor:
        """Input terms of every step at once; the identity unless a cell hoists a projection."""
        return x

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        """One step on a projected input; by default ``forward`` on the raw input."""
        result: tuple[Tensor, State] = self(u_t, state)
        return result

    @property
    def has_fused(self) -> bool:
        return False

    def forward_fused(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """The whole sequence at once; the model calls it only when ``has_fused`` is true."""
        raise NotImplementedError(f"{type(self).__name__} has no fused sequence path")

    @property
    def probes_fused(self) -> bool:
        """True when ``forward_fused_probed`` serves probed steps (only read if ``has_fused``)."""
        return False

    def forward_fused_probed(self, x: Tensor, state: State, probe: Tensor) -> tuple[Tensor, State]:
        """The fused path with ``probe[t]`` added to every h_t as the step loop adds it (h_t +
        probe_t is what step t + 1 reads and what the layer outputs); the model calls it on
        probed steps when ``has_fused`` and ``probes_fused`` are true."""
        raise NotImplementedError(f"{type(self).__name__} has no probed fused path")

    def recurrent_weight(self) -> Tensor | None:
        """The matrix that multiplies h_{t-1} (for spectral norms and the dynamics), or None.

        Shape ``[k * H, H]``: H x H, or a gated cell's k gate blocks stacked (LSTM 4H x H, GRU
        3H x H, in torch's gate order). It may be the parameter, a view of it, or a matrix
        computed from parameters (a diagonal from a vector): read it, do not write into it; a
        cell that can be re-initialised declares ``recurrent_init`` (``init_recurrent``)."""
        return None

    def input_weight(self) -> Tensor | None:
        """The parameter (or a view of it) that multiplies x_t, or None; remedies may
        re-initialise it in place (the ``relu`` remedy's ``input_std``)."""
        return None

    def constrain(self) -> None:
        """Called after every optimizer step: enforce parameter constraints in place."""

    def lr_groups(self) -> Mapping[str, tuple[float, list[nn.Parameter]]]:
        """``{group: (factor, parameters)}``: parameters to train at ``factor`` x the run's
        learning rate unless ``train.lr_groups`` sets the group's rate; the names are those of
        ``lr_group_names``, and no parameter is in two groups. Default: none."""
        return {}


class CellWrapper(Cell):
    """A cell around another cell (residual, gating, ...). No fused path: the wrapper must run."""

    def __init__(self, inner: Cell) -> None:
        super().__init__(inner.input_size, inner.hidden_size, inner.params)
        self.inner = inner

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return self.inner.init_state(batch, device, dtype)

    def project_inputs(self, x: Tensor) -> Tensor:
        return self.inner.project_inputs(x)

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        return self.inner.step(u_t, state, t)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor | None:
        return self.inner.recurrent_weight()

    def input_weight(self) -> Tensor | None:
        return self.inner.input_weight()

    def constrain(self) -> None:
        self.inner.constrain()

    def lr_groups(self) -> Mapping[str, tuple[float, list[nn.Parameter]]]:
        return self.inner.lr_groups()
