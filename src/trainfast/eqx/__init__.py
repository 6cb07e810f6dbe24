"""trainfast.eqx: one-pass model transforms, tensor parallelism, and fast train steps.

The BERT workload lives in `trainfast.eqx.bert`; reusable perf/asv workload builders in
`trainfast.eqx.workloads`.
"""

from . import bert as bert, workloads as workloads
from ._optimizer import Optimizer as Optimizer
from ._tensor_parallel import (
    bert_tp_plan as bert_tp_plan,
    column_parallel as column_parallel,
    make_module_opt as make_module_opt,
    module_shardings as module_shardings,
    ParallelLinear as ParallelLinear,
    row_parallel as row_parallel,
)
from ._train_step import make_train_step as make_train_step
from ._transforms import (
    apply_transforms as apply_transforms,
    apply_transforms_sequential as apply_transforms_sequential,
    apply_transforms_tree_at as apply_transforms_tree_at,
    iter_module as iter_module,
)
