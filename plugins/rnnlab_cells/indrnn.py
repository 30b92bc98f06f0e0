"""IndRNN (Li et al. 2018): independently recurrent neurons with a bounded recurrent weight.

The defaults follow the authors' code (github.com/Sunnydreamrain/IndRNN_Theano_Lasagne,
``adding/adding.py`` and ``mnist/pixelmnist.py``, and IndRNN_pytorch's README):

- input weights from N(0, 0.001^2): ``W_in_to_hid=lasagne.init.Normal(0.001)`` in the adding code
  (lasagne's ``Normal(std, mean)`` takes the standard deviation), zero biases;
- u uniform in [0, bound], and clipped to [-bound, bound] after every update with
  bound = MAG^(1/T), MAG = 2 (``U_bound=pow(args.MAG, 1.0 / seq_len)``); the README adds that
  [-1, 1] works as well "for simplicity", which is this cell's default bound;
- the last layer's u uniform in [MAG^(-1/T), bound] (``U_lowbound``) on the last-step tasks
  (adding, MNIST): "only the last one not all", since only long memory is needed there.

Batch-norm and layer-norm are not put inside the recurrence (capability ``normalize_outputs``):
Li et al. normalise between layers, frame-wise, with statistics over the batch and the time steps
together (IndRNN_pytorch ``pixelMNIST/utils.py``: ``Batch_norm_overtime`` is ``nn.BatchNorm1d`` on
``[B, F, T]``; IndRNN_Theano_Lasagne ``mnist/pixelmnist.py``: ``BatchNormLayer(axes=(0, 1))``).
rnnlab normalises each layer's output sequence, as the PyTorch code's ``--bn_location bn_after``
(its ``run.sh`` and the logs of its 6 x 128 MNIST results); the Theano code's default normalises
the input projection instead, before the recurrent ReLU. Inside the recurrence a normaliser would
divide u * h_{t-1} by its own spread, so the bound on |u| would no longer bound the per-step gain.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator
from torch import Tensor, nn

import rnnlab
from rnnlab import Cell, State, TaskKind

Auto = Literal["auto"]


class IndRNNCell(Cell):
    """h_t = f(W x_t + b + u * h_{t-1}) with an element-wise recurrent weight u, |u| <= bound.

    u is clipped in place after every optimizer step (``constrain``), as the paper clips it, so it
    keeps learning at the bound, and the forward pass also uses the clamped value, so the bound
    holds however the cell is used. ``auto`` options follow the task's length T and are replaced
    by their values when the config is resolved (``resolve_params``); the run logs the values.
    """

    class Params(rnnlab.Params):
        nonlinearity: Literal["relu", "tanh"] = Field("relu", description="f in the update")
        recurrent_max: float | Auto = Field(
            1.0,
            description="bound on |u|; auto = 2**(1/T) as in Li et al.'s code, so a gradient "
            "can at most double over the T steps",
        )
        recurrent_min: float = Field(0.0, ge=0, description="lower end of u's uniform init")
        top_recurrent_min: float | Auto | None = Field(
            None,
            description="lower end of the top layer's u init (null: recurrent_min); auto = "
            "2**(-1/T) on last-step tasks, as in Li et al.'s code, recurrent_min otherwise",
        )
        input_std: float | None = Field(
            0.001,
            gt=0,
            description="std of the input weights' normal init (Li et al.'s adding code: "
            "0.001); null keeps torch's nn.Linear init",
        )

        @field_validator("recurrent_max", "top_recurrent_min", mode="before")
        @classmethod
        def _number_or_auto(cls, value: Any, info: ValidationInfo) -> Any:
            if value == "auto" or (value is None and info.field_name == "top_recurrent_min"):
                return value
            positive = info.field_name == "recurrent_max"
            want = "a number > 0" if positive else "a number >= 0, null"
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"expected {want} or 'auto'") from None
            if number < 0 or (positive and number == 0) or isinstance(value, bool):
                raise ValueError(f"expected {want} or 'auto'")
            return number

        @model_validator(mode="after")
        def _init_range(self) -> IndRNNCell.Params:
            if isinstance(self.recurrent_max, str):
                return self
            for name in ("recurrent_min", "top_recurrent_min"):
                value = getattr(self, name)
                if isinstance(value, float) and value > self.recurrent_max:
                    raise ValueError(
                        f"{name} ({value}) must not exceed recurrent_max ({self.recurrent_max}):"
                        " u is initialised uniformly between them"
                    )
            return self

    params: Params
    capabilities: ClassVar[frozenset[str]] = frozenset({"normalize_outputs"})

    @classmethod
    def resolve_params(cls, params: rnnlab.Params, task: rnnlab.TaskShape) -> rnnlab.Params:
        """``auto`` replaced by its value for the task's length T: recurrent_max = 2^(1/T);
        top_recurrent_min = 2^(-1/T) on a last-step task, else recurrent_min."""
        values = params.model_dump()
        if values["recurrent_max"] == "auto":
            values["recurrent_max"] = 2.0 ** (1.0 / task.seq_len)
        if values["top_recurrent_min"] == "auto":
            last_step = task.kind is not TaskKind.CLASSIFY_EVERY
            top = 2.0 ** (-1.0 / task.seq_len) if last_step else values["recurrent_min"]
            values["top_recurrent_min"] = top
        return cls.Params.model_validate(values)

    def __init__(
        self, input_size: int, hidden_size: int, params: rnnlab.Params | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, params)
        p = self.params
        if "auto" in (p.recurrent_max, p.top_recurrent_min):
            raise ValueError(
                "IndRNNCell: 'auto' options follow the task's length; resolve them first with "
                "IndRNNCell.resolve_params(params, task) (rnnlab run and rnnlab sweep do)"
            )
        self.input = nn.Linear(input_size, hidden_size)
        self.u = nn.Parameter(torch.empty(hidden_size))
        with torch.no_grad():
            self.u.uniform_(p.recurrent_min, float(p.recurrent_max))
            if p.input_std is not None:
                self.input.weight.normal_(0.0, p.input_std)
            self.input.bias.zero_()

    def init_layer(self, layer: int, layers: int) -> None:
        low = self.params.top_recurrent_min
        if layer == layers - 1 and low is not None:
            with torch.no_grad():
                self.u.uniform_(float(low), float(self.params.recurrent_max))

    def bounded_u(self) -> Tensor:
        bound = float(self.params.recurrent_max)
        return self.u.clamp(-bound, bound)

    def constrain(self) -> None:
        bound = float(self.params.recurrent_max)
        with torch.no_grad():
            self.u.clamp_(-bound, bound)

    def recurrent_weight(self) -> Tensor:
        return torch.diag(self.bounded_u())

    def input_weight(self) -> Tensor:
        return self.input.weight

    def project_inputs(self, x: Tensor) -> Tensor:
        out: Tensor = self.input(x)
        return out

    def step(self, u_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        a = u_t + self.bounded_u() * state[0]
        h = torch.relu(a) if self.params.nonlinearity == "relu" else torch.tanh(a)
        return h, (h,)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step(self.project_inputs(x_t), state, 0)

    def step_jacobian(self, u_t: Tensor, state: State, t: int) -> Tensor:
        """dh_t/dh_{t-1} = diag(f'(a_t) u), ``[B, H, H]`` (the seam of rnnlab.step_jacobian): the
        recurrence is element-wise, so the Jacobian is diagonal."""
        u = self.bounded_u()
        a = u_t + u * state[0]
        if self.params.nonlinearity == "relu":
            slope = (a > 0).to(a.dtype)  # relu's derivative at 0 is 0, as autograd's
        else:
            slope = 1 - torch.tanh(a).square()
        return torch.diag_embed(slope * u)
