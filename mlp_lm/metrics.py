"""One loss, three ways: nats, perplexity and bits per character.

The mean negative log likelihood L (nats per symbol) is what training
minimises. Perplexity exp(L) is the size of a uniform choice that would be as
uncertain (27 for a uniform guess over names' 27 symbols); bits per character
L / ln 2 is how many bits an ideal coder driven by the model would spend per
symbol. All three order models the same way.
"""
import math

MAX_EXP = 700.0  # exp(700) is near float64's largest; beyond it a perplexity is "inf", not an overflow


def perplexity(nll):
    if math.isnan(nll):  # not a loss at all: say so, not "infinitely perplexed"
        return nll
    return math.exp(nll) if nll <= MAX_EXP else math.inf


def bits_per_char(nll):
    return nll / math.log(2)


def add_measures(losses):
    """Beside each "<name>_loss" of a dict of mean NLLs in nats, its "<name>_perplexity" and "<name>_bpc"."""
    for key in [k for k in losses if k.endswith("_loss")]:
        losses[key.removesuffix("_loss") + "_perplexity"] = perplexity(losses[key])
        losses[key.removesuffix("_loss") + "_bpc"] = bits_per_char(losses[key])


def perplexity_text(nll):
    """'8.20', '4.85e+08', or past float64's largest number 'about 1e378' (its power of ten, not 'inf')."""
    ppl = perplexity(nll)
    return (f"{ppl:.2f}" if ppl < 1e6 else f"{ppl:.3g}" if ppl < math.inf or not nll < math.inf
            else f"about 1e{nll / math.log(10):.0f}")


def describe(nll):
    """'2.1040 nats (perplexity 8.20, 3.035 bits/char)'."""
    return f"{nll:.4f} nats (perplexity {perplexity_text(nll)}, {bits_per_char(nll):.3f} bits/char)"
