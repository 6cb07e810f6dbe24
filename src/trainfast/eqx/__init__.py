"""trainfast.eqx: one-pass model transforms, tensor parallelism, and fast train steps.

The BERT workload lives in `trainfast.eqx.bert`; reusable perf/asv workload builders in
`trainfast.eqx.workloads`.
"""

from . import bert as bert
from . import workloads as workloads
from ._optimizer import Optimizer as Optimizer
from ._packed import Packed as Packed
from ._tensor_parallel import ParallelLinear as ParallelLinear
from ._tensor_parallel import bert_tp_plan as bert_tp_plan
from ._tensor_parallel import column_parallel as column_parallel
from ._tensor_parallel import make_module_opt as make_module_opt
from ._tensor_parallel import module_shardings as module_shardings
from ._tensor_parallel import row_parallel as row_parallel
from ._train_step import make_train_step as make_train_step
from ._transforms import apply_transforms as apply_transforms
from ._transforms import apply_transforms_sequential as apply_transforms_sequential
from ._transforms import apply_transforms_tree_at as apply_transforms_tree_at
from ._transforms import iter_module as iter_module
