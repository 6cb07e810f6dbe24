"""The leaky-hard sigmoids: forward values and the custom lower-leaky backward."""

from __future__ import annotations

import torch

from trainfast.spd import lower_leaky, upper_leaky


X = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 1.5, 3.0])


def test_lower_forward_is_clamp():
    assert torch.equal(lower_leaky(X), X.clamp(0, 1))


def test_lower_backward_leaks_only_negative_grads_below_zero():
    for sign in (1.0, -1.0):
        x = X.clone().requires_grad_(True)
        g = torch.full_like(X, sign)
        lower_leaky(x).backward(g)
        below = 0.01 * sign if sign < 0 else 0.0
        want = torch.tensor([below, below, below, sign, sign, 0.0, 0.0])
        assert torch.equal(x.grad, want), (sign, x.grad)


def test_upper_forward_and_grad():
    x = X.clone().requires_grad_(True)
    y = upper_leaky(x)
    want = torch.tensor([0.0, 0.0, 0.0, 0.3, 1.0, 1.005, 1.02])
    torch.testing.assert_close(y, want)
    y.sum().backward()
    # torch's clamp passes the gradient at the boundaries (x = 0 and x = 1).
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 0.01, 0.01]))
