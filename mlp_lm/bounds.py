"""What no trained model's parameters can be: bounds on the network's activations over every
possible context, by interval arithmetic through model.forward.

A checkpoint or a saved training state whose parameters are finite can still be junk (1e38 is
finite in float32); checkpoint.load and trainer.Trainer.load_state refuse such parameters
with magnitude_problem's reason.
"""
import numpy as np


def activation_bounds(params):
    """Bounds on |hpreact| (H,) and |logits| (V,) that hold for every possible context, in float64.

    Interval arithmetic through model.forward: a column of embcat is one coordinate of an embedding,
    so |embcat_i| <= max_v |C[v, i mod E]|; a matrix product is at most the sum of its terms'
    magnitudes, which bounds every partial sum too, in whatever order BLAS adds them; and
    |tanh| <= 1 whatever its input, so the logits' bound does not depend on W1 or b1.
    """
    T = params["W1"].shape[0] // max(params["C"].shape[1], 1)
    with np.errstate(over="ignore"):  # a bound past float64's range is inf: an answer, not an error
        embcat = np.tile(np.abs(params["C"]).max(axis=0).astype(np.float64), T)  # (T*E,)
        hpreact = embcat @ np.abs(params["W1"].astype(np.float64)) + np.abs(params["b1"])  # (H,)
        z = np.abs(params["W2"].astype(np.float64)).sum(axis=0) + np.abs(params["b2"])  # (V,)
        if "Wd" in params:
            z = z + embcat @ np.abs(params["Wd"].astype(np.float64))  # (V,)
    return hpreact, z


def magnitude_problem(params):
    """Why these (finite, same-dtype) parameters cannot be a trained model's, or None.

    Two bounds from activation_bounds, both far beyond any trained model (whose logits stay
    within a few hundred): the hidden layer must not be able to overflow the dtype, and the
    logits must stay below 1 / eps of the dtype, past which rounding a logit moves it by more
    than a nat and the probabilities are noise (float32: 8.4e6).
    """
    info = np.finfo(params["W1"].dtype)
    largest, eps = float(info.max), float(info.eps)  # Python floats: z * a float32 eps would be float32, and overflow
    hpreact, z = (float(b.max(initial=0.0)) for b in activation_bounds(params))
    if not hpreact <= largest:
        return (f"its hidden layer could reach {hpreact:.3g}, past the largest {info.dtype} ({largest:.3g}), "
                f"so its arithmetic overflows")
    if not z * eps < 1:
        return (f"its logits could reach {z:.3g}, so large that {info.dtype} rounds them by more than a nat "
                f"(or overflows), so its probabilities are noise")
    return None
