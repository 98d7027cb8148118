"""Our hand-derived gradients against PyTorch's autograd, where torch is installed.

The finite-difference checks (test_gradcheck.py) need nothing but the forward pass. This is a
second, independent witness: the same model written with torch's own operations, whose
gradients no one derived by hand. In float64 the two differ by rounding only: about 1e-16
to 1e-15 of each tensor's largest entry. torch is optional, so without it these tests are
skipped.

test_a_short_run_follows_torch_step_for_step goes further, as llm.c's test does: 40 steps of
Trainer.step under each kind of recipe against torch.optim, every step's loss and the final
parameters. autograd() writes the model with raw tensors in our layout; test_torch_layers_line_up_as_the_docs_say
writes it as a PyTorch user would (nn.Embedding, nn.Linear) and lines it up with ours as
docs/gradcheck.md#checking-your-code-against-ours describes.
"""
import numpy as np
import pytest

from mlp_lm import finitediff, gradcheck, layers, model, onehot, optim

try:
    import torch
except ImportError:  # not installed (or broken): the comparison is optional
    pytest.skip("PyTorch is not installed", allow_module_level=True)
F = torch.nn.functional

SAME = 1e-12  # relative to the tensor's largest entry; rounding alone stays near 1e-16


def all_same(diffs):
    """Whether every difference is below SAME (a NaN is not: it compares False with everything)."""
    return all(d < SAME for d in diffs.values())


def random_case(seed, V=11, T=4, E=5, H=16, B=9, direct=False, emb_dropout=0.0, dropout=0.0):
    """The gradient checks' non-trivial float64 parameters (no zeros, tanh not saturated), a
    random batch (it repeats symbols when it has more positions than the vocabulary has symbols,
    so dC's scatter-add is tested), and fixed dropout masks."""
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
    # past onehot.IDENTITY_MAX_V and layers.ONEHOT_MAX: the softmax's and the embedding's other branches (np.add.at)
    "a large vocabulary": {"V": 300, "T": 3, "E": 4, "H": 8, "B": 1200, "smoothing": 0.1},
}


def test_the_large_case_takes_the_other_branches():
    kw = CASES["a large vocabulary"]
    assert kw["V"] > onehot.IDENTITY_MAX_V and kw["B"] * kw["T"] * kw["V"] > layers.ONEHOT_MAX


@pytest.mark.parametrize("name", CASES)
def test_every_gradient_is_autograds(name):
    kw = dict(CASES[name])
    smoothing = kw.pop("smoothing", 0.0)
    diffs = differences(*random_case(7, **kw), smoothing)
    assert len(diffs) == 1 + len(model.PARAM_NAMES) + ("direct" in kw) + 5
    assert all_same(diffs), {k: f"{v:.1e}" for k, v in diffs.items() if not v < SAME}


def test_the_comparison_catches_a_wrong_backward(monkeypatch):
    # 1 - tanh for 1 - tanh^2: everything downstream of tanh in the backward is off, the rest is not.
    monkeypatch.setattr(layers, "tanh_backward", lambda dout, out: dout * (1 - out))
    diffs = differences(*random_case(3), 0.0)
    wrong = {k for k, v in diffs.items() if not v < SAME}
    assert wrong == {"dhpreact", "dW1", "db1", "dembcat", "demb", "dC"}, wrong


def test_a_nan_gradient_is_not_agreement(monkeypatch):
    monkeypatch.setattr(layers, "tanh_backward", lambda dout, out: np.full_like(dout, np.nan))
    assert not all_same(differences(*random_case(3), 0.0))


def test_torch_layers_line_up_as_the_docs_say():
    # The model as a PyTorch user writes it: nn.Embedding and nn.Linear, whose weight is (out, in),
    # the transpose of ours; float64 by .double(); the same dropout masks, applied by hand.
    params, X, Y, masks = random_case(11, emb_dropout=0.2, dropout=0.1)
    V, E = params["C"].shape
    (TE, H), B = params["W1"].shape, len(Y)
    emb_layer, lin1, lin2 = torch.nn.Embedding(V, E), torch.nn.Linear(TE, H), torch.nn.Linear(H, V)
    for m in (emb_layer, lin1, lin2):
        m.double()
    with torch.no_grad():  # ours into theirs: a weight goes in transposed, a bias as it is
        emb_layer.weight.copy_(torch.from_numpy(params["C"]))
        lin1.weight.copy_(torch.from_numpy(params["W1"].T))
        lin1.bias.copy_(torch.from_numpy(params["b1"]))
        lin2.weight.copy_(torch.from_numpy(params["W2"].T))
        lin2.bias.copy_(torch.from_numpy(params["b2"]))
    embcat = emb_layer(torch.from_numpy(X)).view(B, -1) * torch.from_numpy(masks["embcat"])
    h = torch.tanh(lin1(embcat)) * torch.from_numpy(masks["h"])
    loss = F.cross_entropy(lin2(h), torch.from_numpy(Y), label_smoothing=0.1)
    loss.backward()
    ours_loss, grads = model.loss_and_grads(params, X, Y, masks=masks, smoothing=0.1)
    assert abs(loss.item() - ours_loss) < SAME * ours_loss  # the loss first: it checks the whole forward
    theirs = {"C": emb_layer.weight.grad, "W1": lin1.weight.grad.T, "b1": lin1.bias.grad,
              "W2": lin2.weight.grad.T, "b2": lin2.bias.grad}  # and theirs back: gradients transposed too
    for k, g in theirs.items():
        finitediff.assert_close(finitediff.compare("d" + k, g.numpy(), grads[k], shape=grads[k].shape), tol=SAME)
    with pytest.raises(AssertionError, match="shape"):  # a bias gradient kept as (1, H) is named, not passed
        finitediff.assert_close(finitediff.compare("db1", theirs["b1"].numpy()[None], grads["b1"], shape=(H,)))


@pytest.fixture(autouse=True)
def _torchs_cache_dir_put_back(monkeypatch):
    """torch's optimisers set TORCHINDUCTOR_CACHE_DIR on their first use in a process, in whichever test that is
    (the worker's test order decides): it goes back to what it was (setenv remembers that, even where it was not
    set at all, and delenv leaves it to torch to set)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")


def test_adamw_is_torchs(monkeypatch):
    # optim.AdamW says it is torch.optim.AdamW: decoupled decay on the weights and the table,
    # none on the biases (two parameter groups in torch), the same bias corrections and eps.
    params, *_ = random_case(5, direct=True)
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


RECIPES = {  # each a short run of one of the recipes the commands train, in float64
    "the lecture's: SGD, lr / 10 after half the steps": {},
    "the paper's: SGD with weight decay, lr / (1 + r t), direct connections":
        {"weight_decay": 1e-3, "schedule": "inverse", "decay_rate": 0.05, "direct": True},
    "the best preset's kind: AdamW, cosine to a floor": {"optimizer": "adamw", "lr": 1e-2, "schedule": "cosine",
                                                         "min_lr": 1e-3, "weight_decay": 0.1},
}


def torch_lr(cfg, step):
    """The schedules as their docstrings state them, written out again here."""
    if cfg.schedule == "step":
        return cfg.lr if step < cfg.steps // 2 else cfg.lr / 10
    if cfg.schedule == "inverse":
        return cfg.lr / (1 + cfg.decay_rate * step)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + np.cos(np.pi * step / (cfg.steps - 1))) / 2


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_short_run_follows_torch_step_for_step(recipe):
    # llm.c's check: the loss of every step and the parameters at the end against a reference,
    # here Trainer.step itself (minibatch, forward, backward, update) against torch.optim.
    from mlp_lm import data
    from mlp_lm.config import Config
    from mlp_lm.trainer import Trainer
    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "ella"]
    vocab = data.build_vocab(words)
    X, Y = data.build_dataset(words, vocab, 3)
    cfg = Config(block_size=3, n_embd=5, n_hidden=12, batch_size=16, steps=40, dtype="float64", eval_every=0,
                 **RECIPES[recipe])
    params = model.init_params(len(vocab), 3, 5, 12, direct=cfg.direct, seed=1, dtype=np.float64)
    start = {k: p.copy() for k, p in params.items()}
    trainer = Trainer(cfg, params, X, Y)
    losses = [trainer.step(s) for s in range(cfg.steps)]
    batches = trainer.block[:cfg.steps]  # the minibatches it drew (one block of indices holds them all)

    t = {k: torch.tensor(p, requires_grad=True) for k, p in start.items()}
    decayed = [t[k] for k in t if k in model.DECAYED]
    others = [t[k] for k in t if k not in model.DECAYED]
    groups = [{"params": decayed, "weight_decay": cfg.weight_decay}, {"params": others, "weight_decay": 0.0}]
    opt = (torch.optim.AdamW(groups, lr=cfg.lr) if cfg.optimizer == "adamw" else torch.optim.SGD(groups, lr=cfg.lr))
    t_losses = []
    for step, ix in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = torch_lr(cfg, step)
        Xb, Yb = torch.from_numpy(X[ix]), torch.from_numpy(Y[ix])
        embcat = t["C"][Xb].reshape(len(ix), -1)
        logits = torch.tanh(embcat @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
        if "Wd" in t:
            logits = logits + embcat @ t["Wd"]
        loss = F.cross_entropy(logits, Yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t_losses.append(loss.item())
    np.testing.assert_allclose(losses, t_losses, rtol=1e-12)
    for k in params:
        assert np.abs(params[k] - start[k]).max() > 1e-3, k  # training moved it
        np.testing.assert_allclose(params[k], t[k].detach().numpy(), rtol=1e-10, atol=1e-13, err_msg=k)
