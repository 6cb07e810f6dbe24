"""trainfast.spd: Stochastic Parameter Decomposition training in PyTorch.

A faithful re-implementation of upstream's training step (see `../shared/docs/spd.md`) with every
optimization behind one flag of `Flags`; all flags off is the baseline.

Targets: the registered workloads use random targets (timing only needs shapes);
`get_workload(name, target="trained")` or `Workload.trained(seed)` gives the target trained
with upstream's recipe (`train_target`, shipped or cached), and `evaluate_decomposition` says
which components are alive, which feature each answers to and how well it matches the target.

Language models: `get_workload("gpt2_simple")` / `"gpt2_tiny"` (`LM_WORKLOADS`, `_lm.py`) is
an HF GPT-2 built from a config (needs `transformers`, imported lazily), its Conv1Ds
decomposed through hooks, fed by a CPU `DataLoader` where the data flags act.

Example:
    >>> from trainfast.spd import run
    >>> result = run("tms_5-2", 2, overrides={"batch_size": 16, "faithfulness_warmup_steps": 1})
"""

from ._component_model import CIOutputs as CIOutputs
from ._component_model import ComponentModel as ComponentModel
from ._component_model import tie_components as tie_components
from ._components import LinearComponents as LinearComponents
from ._components import MaskInfo as MaskInfo
from ._components import make_ci_fn as make_ci_fn
from ._config import SPDConfig as SPDConfig
from ._decompose import Decomposition as Decomposition
from ._decompose import decompose as decompose
from ._evaluate import ModuleDecomposition as ModuleDecomposition
from ._evaluate import evaluate_decomposition as evaluate_decomposition
from ._flags import APPROX_FLAGS as APPROX_FLAGS
from ._flags import DATA_FLAGS as DATA_FLAGS
from ._flags import EXACT_FLAGS as EXACT_FLAGS
from ._flags import Flags as Flags
from ._lm import LM_WORKLOADS as LM_WORKLOADS
from ._lm import GPT2Shape as GPT2Shape
from ._lm import LMTarget as LMTarget
from ._lm import LMWorkload as LMWorkload
from ._lm import TokenSequences as TokenSequences
from ._lm import lm_workload as lm_workload
from ._loop import Trainer as Trainer
from ._loop import lr_at as lr_at
from ._loop import make_trainer as make_trainer
from ._run import RunResult as RunResult
from ._run import run as run
from ._sigmoids import lower_leaky as lower_leaky
from ._sigmoids import upper_leaky as upper_leaky
from ._trained_targets import RECIPES as RECIPES
from ._trained_targets import TargetRecipe as TargetRecipe
from ._trained_targets import TrainedTarget as TrainedTarget
from ._trained_targets import cache_dir as cache_dir
from ._trained_targets import load_target as load_target
from ._trained_targets import save_target as save_target
from ._trained_targets import train_target as train_target
from ._trained_targets import trained_target as trained_target
from ._workloads import WORKLOADS as WORKLOADS
from ._workloads import Workload as Workload
from ._workloads import get_workload as get_workload
from ._workloads import resid_mlp_workload as resid_mlp_workload
from ._workloads import tms_workload as tms_workload
