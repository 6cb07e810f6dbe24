"""JAX: block until every array in the output pytree is ready."""

from __future__ import annotations

from typing import Any

from ._base import Instrument, iter_leaves


class JaxInstrument(Instrument):
    name = "jax"

    @staticmethod
    def holds(output: Any) -> bool:
        import jax

        return any(isinstance(leaf, jax.Array) for leaf in iter_leaves(output))

    def wait(self, output: Any) -> None:
        import jax

        jax.block_until_ready(output)

    def describe(self) -> dict[str, Any]:
        import jax

        return {"name": self.name, "backend": jax.default_backend()}
