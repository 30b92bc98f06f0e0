"""expRNN (Lezcano-Casado & Martinez-Rubio 2019): a recurrence through an exactly orthogonal B."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import orthogonal

import rnnlab

ORTHOGONAL_GROUP = "orthogonal"
"""The name of expRNN's parameter group in ``ExpRNNCell.lr_groups()``."""


def skew_init(size: int, init: str, generator: torch.Generator | None = None) -> Tensor:
    """expRNN's block-diagonal skew-symmetric initial A (``initialization.py``): 2x2 blocks
    [[0, s], [-s, 0]] on the diagonal (a trailing 1x1 zero block when ``size`` is odd), with
    s ~ U(-pi, pi) (``henaff``, Henaff et al. 2016) or s = -sqrt((1 - cos u) / (1 + cos u)),
    u ~ U(0, pi / 2) (``cayley``, Helfrich et al. 2018's scoRNN)."""
    blocks = size // 2
    u = torch.rand(blocks, dtype=torch.float64, generator=generator)
    if init == "henaff":
        s = (2 * u - 1) * math.pi
    else:
        angle = u * (math.pi / 2)
        s = -torch.sqrt((1 - torch.cos(angle)) / (1 + torch.cos(angle)))
    upper = torch.zeros(max(size - 1, 0), dtype=torch.float64)
    upper[::2] = s
    a = torch.diag(upper, diagonal=1)
    return (a - a.T).float()


def modrelu(z: Tensor, bias: Tensor) -> Tensor:
    """modReLU (Arjovsky et al. 2016), real form as in expRNN: sign(z) * relu(|z| + b)."""
    return torch.sign(z) * F.relu(z.abs() + bias)


class ExpRNNCell(rnnlab.Cell):
    """h_t = modReLU(W x_t + B h_{t-1}), modReLU(z) = sign(z) relu(|z| + b), B = exp(A) with A
    skew-symmetric (or the Cayley map of A): B is orthogonal at every step of training.

    expRNN (Lezcano-Casado & Martinez-Rubio 2019, "Cheap orthogonal constraints in neural
    networks: a simple parametrization of the orthogonal and unitary group", ICML). B comes from
    torch's own ``torch.nn.utils.parametrizations.orthogonal`` on the recurrent ``nn.Linear``
    (``use_trivialization=False``: B is the map of the trained matrix itself, expRNN's "static"
    mode, no moving base), with ``orthogonal_map`` ``matrix_exp`` (expRNN) or ``cayley``
    (torch's (I - A/2)^(-1) (I + A/2)). A starts block-diagonal: ``init`` ``cayley`` (the
    authors' sequential-MNIST default) or ``henaff`` (their copy-task default). W has no bias
    and starts Kaiming-normal for ReLU; the modReLU bias b starts U(-0.01, 0.01).

    Source: the authors' code (github.com/Lezcano/expRNN: ``orthogonal.py`` for
    ``OrthogonalRNN`` and ``modrelu``, ``initialization.py`` for ``henaff_init_`` and
    ``cayley_init_``, ``2_mnist.py`` and ``1_copying.py`` for the settings); checked against
    those files. The code multiplies h from the left (h B); rnnlab's B h is the same model with
    A replaced by its transpose, and the initial A is transposed accordingly (for the Cayley map
    it is 2 A, as torch's map halves its argument), so that the initial recurrence is the
    code's exactly. At hidden 170 (sMNIST) the paper trains with RMSprop at lr 7e-4 and the
    orthogonal parameters at 7e-5: ``lr_groups()`` declares that group.

    Deviations: the gradient of torch's ``matrix_exp`` replaces the authors' hand-written
    ``expm32``/``differential``; the dynamic-trivialization mode (``dtriv``, a base that moves
    every K steps), the default of the authors' scripts, is not offered: this is the paper's
    expRNN. B is computed once per sequence (at step 0) and reused by later steps
    (``matrix_exp`` on every step would cost an H x H exponential per time step).
    """

    class Params(rnnlab.Params):
        orthogonal_map: Literal["matrix_exp", "cayley"] = Field(
            "matrix_exp",
            description="B = matrix_exp(A) (expRNN) or the Cayley map of A, through "
            "torch.nn.utils.parametrizations.orthogonal",
        )
        init: Literal["cayley", "henaff"] = Field(
            "cayley",
            description="initial A: cayley (the authors' sMNIST default) or henaff (their copy "
            "default), block-diagonal",
        )
        orthogonal_lr_factor: float = Field(
            0.1,
            gt=0,
            description="learning rate of A relative to the run's (the paper: 7e-5 / 7e-4), "
            "the group 'orthogonal' of lr_groups(); train.lr_groups.orthogonal overrides it",
        )

    params: Params
    lr_group_names: ClassVar[tuple[str, ...]] = (ORTHOGONAL_GROUP,)
    """The groups ``lr_groups()`` returns (a class-level list, for docs and checks)."""

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        self.input = nn.Linear(input_size, hidden_size, bias=False)
        nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu")
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
        orthogonal(self.recurrent, "weight", self.params.orthogonal_map, use_trivialization=False)
        code = skew_init(hidden_size, self.params.init)  # A as the authors' code draws it
        a = 2 * code if self.params.orthogonal_map == "cayley" else code.T
        with torch.no_grad():  # the parametrization reads tril(X) - tril(X)^T
            self.skew.copy_(a.tril())
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-0.01, 0.01))
        self._b: Tensor | None = None

    @property
    def skew(self) -> nn.Parameter:
        """The unconstrained parameter X; A = tril(X) - tril(X)^T (torch's parametrization)."""
        original: nn.Parameter = self.recurrent.parametrizations.weight.original  # type: ignore[union-attr,assignment]
        return original

    def lr_groups(self) -> dict[str, tuple[float, list[nn.Parameter]]]:
        """Parameters to train at a multiple of the run's learning rate, by group name.

        ``{"orthogonal": (orthogonal_lr_factor, [X])}``: X parametrises B, and the paper trains
        it at a tenth of the other parameters' rate (RMSprop 7e-4 / 7e-5 on sMNIST, 2e-4 /
        2e-5 on copy). Every parameter not listed keeps the run's rate; ``train.lr_groups``
        may set this group's factor (``orthogonal: 0.1``) or rate (``orthogonal: {lr: 2e-5}``)
        instead (rnnlab/run/_optim.py builds the optimizer's groups from it).
        """
        return {ORTHOGONAL_GROUP: (self.params.orthogonal_lr_factor, [self.skew])}

    def recurrent_b(self, t: int) -> Tensor:
        """B for step ``t``: recomputed at step 0 (every sequence starts there, after any
        optimizer step) and whenever the kept one cannot serve (none yet, another dtype or
        device, or made without autograd while autograd is on)."""
        kept = self._b
        x = self.skew
        stale = (
            t == 0
            or kept is None
            or kept.dtype != x.dtype
            or kept.device != x.device
            or (torch.is_grad_enabled() and x.requires_grad and not kept.requires_grad)
        )
        if stale:
            kept = self.recurrent_weight()
            self._b = kept
        assert kept is not None
        return kept

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_b"] = None  # a non-leaf tensor cannot be deep-copied or pickled
        return state

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: rnnlab.State, t: int) -> tuple[Tensor, rnnlab.State]:
        h = modrelu(u_t + F.linear(state[0], self.recurrent_b(t)), self.bias)
        return h, (h,)

    def forward(self, x_t: Tensor, state: rnnlab.State) -> tuple[Tensor, rnnlab.State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def recurrent_weight(self) -> Tensor:
        """B, computed from A by the parametrization (each call runs the exponential)."""
        weight: Tensor = self.recurrent.weight
        return weight

    def input_weight(self) -> Tensor:
        return self.input.weight
