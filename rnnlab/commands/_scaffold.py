"""``rnnlab new-plugin``: write a ready-to-install plugin package for one cell, dataset or remedy.

The package has a pyproject with the ``rnnlab`` entry point, a cheap hook module, a commented
working example class, a test that runs the matching contract suite of :mod:`rnnlab.testing`, and
a README. Its tests pass as generated. No torch import here: templates are plain strings.

Example:
    >>> plan = plan_plugin("my-cell", "cell")
    >>> (plan.distribution, plan.package, plan.plugin_name)
    ('rnnlab-my-cell', 'rnnlab_my_cell', 'my_cell')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from rnnlab._names import HOOKS, KINDS, PLURALS
from rnnlab.errors import RnnlabError

PREFIX = "rnnlab-"
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# rnnlab's own plugin packages: a plugin package with one of these names would shadow them
RESERVED_PACKAGES = frozenset({"rnnlab_cells", "rnnlab_tasks", "rnnlab_remedies"})
CONTRACTS = {"cell": "CellContract", "dataset": "DatasetContract", "remedy": "RemedyContract"}
CLASS_ATTRS = {"cell": "cell_cls", "dataset": "dataset_cls", "remedy": "remedy_cls"}


class ScaffoldError(RnnlabError):
    """A plugin name or target folder that ``rnnlab new-plugin`` cannot use."""

    exit_code = 2


@dataclass(frozen=True)
class PluginPlan:
    """The names of a plugin package to generate."""

    kind: str
    distribution: str  # rnnlab-my-cell
    package: str  # rnnlab_my_cell
    plugin_name: str  # my_cell: the entry-point name and the name the class registers as
    class_name: str  # MyCell
    module: str  # cell, dataset or remedy

    @property
    def contract(self) -> str:
        return CONTRACTS[self.kind]


PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "${distribution}"
version = "0.1.0"
description = "An rnnlab plugin that adds the ${kind} '${plugin_name}'."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["rnnlab"]

[project.optional-dependencies]
test = ["pytest"]

# how rnnlab finds the plugin: the entry-point name is the plugin's name, the value its module
[project.entry-points.rnnlab]
${plugin_name} = "${package}"

[tool.setuptools]
packages = ["${package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 100

[tool.ruff.lint.isort]
known-first-party = ["${package}"]
"""

INIT = '''\
"""${distribution}: adds the ${kind} '${plugin_name}' to rnnlab.

rnnlab imports this module at every start (``rnnlab --help`` included): keep it cheap. The hook
registers a lazy reference, "module:Class": the class, and torch with it, is imported only when a
run asks for the ${kind} (``rnnlab plugins`` lists it without importing it).
"""

import rnnlab


@rnnlab.hookimpl
def ${hook}(register):
    # the name configs use, as in ${usage}
    register("${plugin_name}", "${package}.${module}:${class_name}")
'''

CELL = '''\
"""The cell '${plugin_name}': h_t = tanh(W [x_t, h_{t-1}] + b), one Linear over input and state.

The contract (docs/plugins.md, "A cell"): ``forward(x_t, state)`` does ONE step, with ``x_t`` of
shape [batch, input_size]; it reads h from ``state[0]`` and returns ``(h_t, state)`` with
``state[0]`` being ``h_t``. Never loop over time here: the model owns the loop.
"""

import rnnlab
import torch
from pydantic import Field
from torch import nn


class ${class_name}(rnnlab.Cell):
    """A small tanh RNN cell (rnnlab's ``simple`` cell with a tanh)."""

    # Options a config may set next to the name: cell: {name: ${plugin_name}, init_scale: 0.5}.
    # rnnlab.Params rejects unknown keys, so a typo in a config is an error, not a silent default.
    class Params(rnnlab.Params):
        init_scale: float = Field(1.0, gt=0, description="multiplies the initial weights")

    params: Params  # what self.params is: typed, validated before the class is built

    def __init__(self, input_size, hidden_size, params=None):
        super().__init__(input_size, hidden_size, params)  # stores self.params (validated)
        self.linear = nn.Linear(input_size + hidden_size, hidden_size)
        with torch.no_grad():
            self.linear.weight.mul_(self.params.init_scale)

    def forward(self, x_t, state):
        # the default init_state gives state = (zeros[batch, hidden_size],)
        h = torch.tanh(self.linear(torch.cat((x_t, state[0]), dim=-1)))
        return h, (h,)

    def recurrent_weight(self):
        # the block of the weight that multiplies h_{t-1}: enables spectral diagnostics
        return self.linear.weight[:, self.input_size :]
'''

DATASET = '''\
"""The dataset '${plugin_name}': remember the sign of the first input until the last step.

Each sequence is T steps of Gaussian noise with one input channel; the target, read at the last
step, is +1 or -1: the sign of the first step's input (regression, MSE). Predicting 0 gives a
loss of 1. The longer the sequence, the further the gradient must travel back.

The contract (docs/plugins.md, "A dataset"): ``kind``, ``input_size``, ``output_size``,
``seq_len``; ``batches("train", n)`` never ends and depends only on the seed; ``"val"`` and
``"test"`` iterate once over a set fixed for the seed. ``x`` is time-major: [T, batch, input_size].
rnnlab.SeededDataset writes ``batches`` from ``generate`` (subclass rnnlab.Dataset and write
``batches`` yourself for data you read rather than generate).
"""

import rnnlab
import torch
from pydantic import Field


class ${class_name}(rnnlab.SeededDataset):
    """Regress the sign of the first input at the last step."""

    # Options a config may set next to the name: dataset: {name: ${plugin_name}, seq_len: 20}.
    class Params(rnnlab.Params):
        seq_len: int = Field(20, ge=1, description="sequence length T")
        val_size: int = Field(256, gt=0, description="sequences in the fixed val set")
        test_size: int = Field(256, gt=0, description="sequences in the fixed test set")

    params: Params  # what self.params is: typed, validated before the class is built

    kind = rnnlab.TaskKind.REGRESSION_LAST  # y is [batch, output_size]; loss is MSE

    def __init__(self, params=None, seed=0):
        super().__init__(params, seed)  # stores self.params and self.seed
        self.seq_len = self.params.seq_len
        self.input_size = 1
        self.output_size = 1
        self.baseline_loss = 1.0  # always predicting 0

    def generate(self, n, generator):
        # n sequences from a generator seeded per split: endless train batches, and the fixed
        # val and test sets (val_size, test_size), come from here
        x = torch.randn(self.seq_len, n, 1, generator=generator)
        y = torch.where(x[0] > 0, 1.0, -1.0)  # [n, 1]
        return x, y

    def label(self):
        return f"${plugin_name} T={self.seq_len}"  # appears in run names
'''

REMEDY = '''\
"""The remedy '${plugin_name}': annealed Gaussian gradient noise (Neelakantan et al. 2015).

After backward and before the optimizer step, every gradient gets N(0, sigma_t^2) noise with
sigma_t = std / (1 + t) ** decay. A remedy can also change the cells (``apply_cell``) or the
model (``apply_model``); see docs/plugins.md, "A remedy".
"""

import rnnlab
import torch
from pydantic import Field


class ${class_name}(rnnlab.Remedy):
    """Add annealed Gaussian noise to every gradient."""

    # Options a config may set: remedies: [{name: ${plugin_name}, std: 0.01}].
    class Params(rnnlab.Params):
        std: float = Field(0.01, ge=0, description="noise standard deviation at step 0")
        decay: float = Field(0.55, ge=0, description="anneal exponent: std / (1 + t) ** decay")

    params: Params  # what self.params is: typed, validated before the class is built

    # Declare what this remedy cannot run with; rnnlab refuses such configs before training.
    conflicts = frozenset()  # e.g. frozenset({"clip"})
    requires = frozenset()  # cell capabilities needed, e.g. frozenset({"normalize"})

    def __init__(self, params=None):
        super().__init__(params)  # stores self.params
        self.t = 0

    def after_backward(self, parameters, grad_norm):
        # grad_norm is the gradient norm before any remedy changed the gradients
        sigma = self.params.std / (1 + self.t) ** self.params.decay
        self.t += 1
        for p in parameters:
            if p.grad is not None:
                p.grad.add_(torch.randn_like(p.grad), alpha=sigma)
        # floats, logged like rnnlab's own metrics; self.CLIPPED (grad/clipped, a core metric)
        # says on which steps a remedy changed the gradients
        return {"grad/noise_std": float(sigma), self.CLIPPED: float(sigma > 0)}
'''

TEST = '''\
"""rnnlab's contract suite on ${class_name}.

What every rnnlab ${kind} must do (see rnnlab.testing), ending with a short real training run.
"""

from rnnlab.testing import ${contract}

from ${package}.${module} import ${class_name}


class Test${class_name}(${contract}):
    ${class_attr} = ${class_name}
    # tune the suite with class attributes, e.g. params = ${class_name}.Params(...)
'''

README = """\
# ${distribution}

An [rnnlab](https://pypi.org/project/rnnlab/) plugin that adds the ${kind} `${plugin_name}`
(`${package}/${module}.py`, class `${class_name}`). Use it in a config as
`${usage}`.

## Install

```bash
pip install -e .
```

## Test

```bash
pip install -e ".[test]"
pytest
```

The test runs rnnlab's `${contract}` suite (`rnnlab.testing`) on `${class_name}`.

## Check that rnnlab finds it

```bash
rnnlab plugins
```

lists `${distribution}` with `${kind_plural}: ${plugin_name}`. If it is missing or marked BROKEN,
`RNNLAB_TRACE_PLUGINS=1 rnnlab plugins` shows why (see rnnlab's docs/plugins.md).
"""

USAGE = {
    "cell": "cell: {name: ${plugin_name}, hidden_size: 32}",
    "dataset": "dataset: {name: ${plugin_name}, seq_len: 20}",
    "remedy": "remedies: [${plugin_name}]",
}
EXAMPLES = {"cell": CELL, "dataset": DATASET, "remedy": REMEDY}


def plan_plugin(name: str, kind: str) -> PluginPlan:
    """The names for plugin ``name`` (``my-cell`` or ``rnnlab-my-cell``) of ``kind``."""
    if kind not in KINDS:
        raise ScaffoldError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    lowered = name.strip().lower()
    bare = lowered[len(PREFIX) :] if lowered.startswith(PREFIX) else lowered
    plugin_name = bare.replace("-", "_")
    if not PLUGIN_NAME.match(plugin_name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use letters, digits, '-' and '_', starting with a "
            f"letter, optionally prefixed with 'rnnlab-' (e.g. 'my-cell' or 'rnnlab-my-cell')"
        )
    package = f"rnnlab_{plugin_name}"
    if package in RESERVED_PACKAGES:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: package {package!r} is one of rnnlab's own; "
            "pick another name"
        )
    class_name = "".join(part.capitalize() for part in plugin_name.split("_") if part)
    if class_name.startswith("Test"):  # pytest would try to collect it in the test module
        class_name = kind.capitalize() + class_name
    return PluginPlan(
        kind=kind,
        distribution=f"{PREFIX}{bare}",
        package=package,
        plugin_name=plugin_name,
        class_name=class_name,
        module=kind,
    )


def render(plan: PluginPlan) -> dict[str, str]:
    """The files of the package, relative path -> text."""
    names = {
        "kind": plan.kind,
        "kind_plural": PLURALS[plan.kind],
        "distribution": plan.distribution,
        "package": plan.package,
        "plugin_name": plan.plugin_name,
        "class_name": plan.class_name,
        "module": plan.module,
        "hook": HOOKS[plan.kind],
        "contract": plan.contract,
        "class_attr": CLASS_ATTRS[plan.kind],
    }
    names["usage"] = Template(USAGE[plan.kind]).substitute(names)

    def fill(template: str) -> str:
        return Template(template).substitute(names)

    return {
        "pyproject.toml": fill(PYPROJECT),
        "README.md": fill(README),
        f"{plan.package}/__init__.py": fill(INIT),
        f"{plan.package}/{plan.module}.py": fill(EXAMPLES[plan.kind]),
        f"tests/test_{plan.module}.py": fill(TEST),
    }


def new_plugin(name: str, kind: str, directory: str | Path = ".") -> tuple[Path, list[Path]]:
    """Write the plugin package into ``directory/<distribution>``; return it and its files.

    Refuses, writing nothing, when the name is invalid or the folder exists and is not empty.
    """
    plan = plan_plugin(name, kind)
    target = Path(directory) / plan.distribution
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(
            f"{target} already exists and is not empty; remove it or choose another --dir"
        )
    written = []
    for relative, text in render(plan).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return target, written


def next_steps(target: Path) -> str:
    """What to do after generating, as printed by ``rnnlab new-plugin``."""
    return (
        "next steps:\n"
        f"  cd {target}\n"
        '  pip install -e ".[test]"\n'
        "  pytest                 # rnnlab's contract suite on the example\n"
        "  rnnlab plugins         # check that rnnlab finds it"
    )
