"""The BERT masked-LM workload: `BertConfig`, `BertMLM`, `mlm_batches`, `mlm_loss`."""

from ._bert import (
    Attention as Attention,
    BertConfig as BertConfig,
    BertMLM as BertMLM,
    Embeddings as Embeddings,
    Intermediate as Intermediate,
    Layer as Layer,
    MLMHead as MLMHead,
    mlm_batches as mlm_batches,
    mlm_loss as mlm_loss,
    num_leaves as num_leaves,
    Output as Output,
)
