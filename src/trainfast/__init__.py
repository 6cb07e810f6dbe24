"""trainfast: optimized training code whose speedups perfsuite proves.

`trainfast.eqx` (JAX/Equinox) and `trainfast.spd` (PyTorch) are independent: importing one
never imports the other's framework.
"""
