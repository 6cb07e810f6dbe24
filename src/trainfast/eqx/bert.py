"""The BERT masked-LM workload: `BertConfig`, `BertMLM`, `mlm_batches`, `mlm_loss`."""

from ._bert import Attention as Attention
from ._bert import BertConfig as BertConfig
from ._bert import BertMLM as BertMLM
from ._bert import Embeddings as Embeddings
from ._bert import Intermediate as Intermediate
from ._bert import Layer as Layer
from ._bert import MLMHead as MLMHead
from ._bert import Output as Output
from ._bert import mlm_batches as mlm_batches
from ._bert import mlm_loss as mlm_loss
from ._bert import num_leaves as num_leaves
