"""trainfast.spd: Stochastic Parameter Decomposition training in PyTorch.

A faithful re-implementation of upstream's training step (see `docs/spd.md`) with every
optimization behind one flag of `Flags`; all flags off is the baseline.

Example:
    >>> from trainfast.spd import run
    >>> result = run("tms_5-2", 2, overrides={"batch_size": 16, "faithfulness_warmup_steps": 1})
"""

from ._component_model import CIOutputs as CIOutputs
from ._component_model import ComponentModel as ComponentModel
from ._components import LinearComponents as LinearComponents
from ._components import MaskInfo as MaskInfo
from ._components import make_ci_fn as make_ci_fn
from ._config import WORKLOADS as WORKLOADS
from ._config import SPDConfig as SPDConfig
from ._config import Workload as Workload
from ._config import get_workload as get_workload
from ._config import resid_mlp_workload as resid_mlp_workload
from ._config import tms_workload as tms_workload
from ._flags import APPROX_FLAGS as APPROX_FLAGS
from ._flags import EXACT_FLAGS as EXACT_FLAGS
from ._flags import Flags as Flags
from ._loop import Trainer as Trainer
from ._loop import make_trainer as make_trainer
from ._run import RunResult as RunResult
from ._run import run as run
from ._sigmoids import lower_leaky as lower_leaky
from ._sigmoids import upper_leaky as upper_leaky
