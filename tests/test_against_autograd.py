"""Our hand-derived gradients against PyTorch's autograd, where torch is installed.

The finite-difference checks (test_gradcheck.py) need nothing but the forward pass. This is a
second, independent witness: the same model written with torch's own operations, whose
gradients no one derived by hand. In float64 the two can differ only in the order of float
additions. torch is optional, so without it these tests are skipped.

It is also the worked example of docs/gradcheck.md#checking-your-code-against-ours: how to
line up another implementation's tensors with ours (names, shapes, which side of dropout).
"""
import numpy as np
import pytest

from mlp_lm import gradcheck, layers, model, optim

torch = pytest.importorskip("torch")
F = torch.nn.functional

SAME = 1e-12  # float64 sums in another order: about 1e-16 here, relative to the tensor's largest entry


def random_case(seed, V=11, T=4, E=5, H=16, B=9, direct=False, emb_dropout=0.0, dropout=0.0):
    """The gradient checks' non-trivial float64 parameters (no zeros, tanh not saturated), a
    batch that repeats symbols, and fixed dropout masks."""
    rng = np.random.default_rng(seed)
    params = gradcheck.random_params(V, T, E, H, seed=seed, direct=direct)
    X = rng.integers(0, V, size=(B, T))
    Y = rng.integers(0, V, size=B)
    masks = {"embcat": layers.dropout_mask((B, T * E), emb_dropout, rng),
             "h": layers.dropout_mask((B, H), dropout, rng)}
    return params, X, Y, masks


def autograd(params, X, Y, masks, smoothing):
    """The model in torch, with the tensors named and placed as ours: W is (inputs, outputs), so
    x @ W (torch.nn.Linear keeps weight as W.T); h and embcat are the values after dropout; the
    loss is the mean over the batch, F.cross_entropy's default."""
    t = {k: torch.tensor(p, requires_grad=True) for k, p in params.items()}
    B = len(Y)
    emb = t["C"][torch.from_numpy(X)]  # (B, T, E)
    embcat = emb.reshape(B, -1)  # (B, T*E): row b is emb[b, 0], ..., emb[b, T-1]
    if masks["embcat"] is not None:
        embcat = embcat * torch.from_numpy(masks["embcat"])
    hpreact = embcat @ t["W1"] + t["b1"]
    h = torch.tanh(hpreact)
    if masks["h"] is not None:
        h = h * torch.from_numpy(masks["h"])
    logits = h @ t["W2"] + t["b2"]
    if "Wd" in t:
        logits = logits + embcat @ t["Wd"]
    inter = {"emb": emb, "embcat": embcat, "hpreact": hpreact, "h": h, "logits": logits}
    for v in inter.values():
        v.retain_grad()  # autograd keeps the gradients of leaves only, unless asked
    loss = F.cross_entropy(logits, torch.from_numpy(Y), label_smoothing=smoothing)
    loss.backward()
    return (loss.item(), {k: v.grad.numpy() for k, v in t.items()},
            {k: v.grad.numpy() for k, v in inter.items()})


def differences(params, X, Y, masks, smoothing):
    """{tensor: max |ours - torch's| / max |torch's|} over the loss, every parameter and every intermediate."""
    loss, grads, inter = model.loss_and_grads(params, X, Y, masks=masks, smoothing=smoothing,
                                              return_intermediates=True)
    t_loss, t_grads, t_inter = autograd(params, X, Y, masks, smoothing)
    out = {"loss": abs(loss - t_loss) / abs(t_loss)}
    for name, ours, theirs in ([(f"d{k}", grads[k], t_grads[k]) for k in params]
                               + [(f"d{k}", inter[k], t_inter[k]) for k in t_inter]):
        assert ours.shape == theirs.shape and ours.dtype == np.float64, name
        out[name] = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    return out


CASES = {
    "lecture": {},
    "direct": {"direct": True},
    "dropout": {"emb_dropout": 0.3, "dropout": 0.2},
    "smoothing": {"smoothing": 0.1},
    "everything": {"direct": True, "emb_dropout": 0.1, "dropout": 0.25, "smoothing": 0.2},
    "T=1, more symbols than examples": {"T": 1, "V": 40, "B": 7},
}


@pytest.mark.parametrize("name", CASES)
def test_every_gradient_is_autograds(name):
    kw = dict(CASES[name])
    smoothing = kw.pop("smoothing", 0.0)
    diffs = differences(*random_case(7, **kw), smoothing)
    assert len(diffs) == 1 + len(model.PARAM_NAMES) + ("direct" in kw) + 5
    assert max(diffs.values()) < SAME, {k: f"{v:.1e}" for k, v in diffs.items() if v >= SAME}


def test_the_comparison_catches_a_wrong_backward(monkeypatch):
    # 1 - tanh for 1 - tanh^2: everything downstream of tanh in the backward is off, the rest is not.
    monkeypatch.setattr(layers, "tanh_backward", lambda dout, out: dout * (1 - out))
    diffs = differences(*random_case(3), 0.0)
    wrong = {k for k, v in diffs.items() if v >= SAME}
    assert wrong == {"dhpreact", "dW1", "db1", "dembcat", "demb", "dC"}, wrong


def test_adamw_is_torchs():
    # optim.AdamW says it is torch.optim.AdamW: decoupled decay on the weights and the table,
    # none on the biases (two parameter groups in torch), the same bias corrections and eps.
    params, *_ = random_case(5)
    rng = np.random.default_rng(6)
    grads = [{k: rng.standard_normal(p.shape) for k, p in params.items()} for _ in range(6)]
    lrs = [3e-2, 1e-2, 2e-2, 5e-3, 1e-2, 4e-2]  # a schedule: torch reads the group's lr every step
    ours = {k: p.copy() for k, p in params.items()}
    opt = optim.AdamW(weight_decay=0.3, beta1=0.8, beta2=0.95, eps=1e-6)
    t = {k: torch.tensor(p) for k, p in params.items()}
    groups = [{"params": [t[k] for k in t if k in model.DECAYED], "weight_decay": 0.3},
              {"params": [t[k] for k in t if k not in model.DECAYED], "weight_decay": 0.0}]
    t_opt = torch.optim.AdamW(groups, lr=lrs[0], betas=(0.8, 0.95), eps=1e-6)
    for g, lr in zip(grads, lrs):
        opt.step(ours, g, lr)
        for group in t_opt.param_groups:
            group["lr"] = lr
        for k, p in t.items():
            p.grad = torch.tensor(g[k])
        t_opt.step()
    for k in params:
        assert np.abs(ours[k] - params[k]).max() > 1e-3, k  # the parameters did move
        np.testing.assert_allclose(ours[k], t[k].numpy(), rtol=1e-12, atol=1e-14, err_msg=k)
