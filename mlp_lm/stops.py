"""What ends a training before its last step, besides a stop signal (cli.Interrupted): loop.train raises
or returns these, and train_run.py says what became of the run."""
from .cli import EXIT_BAD_INPUT


class Diverged(Exception):
    """The loss ran away or the arithmetic overflowed: the model is junk, not a result.

    kept: the step of the best dev evaluation (if better than a uniform guess), whose state train()
    put back to be saved in its place, or None when there was none: nothing is saved. ran: the
    steps taken in all, to the one that went wrong.
    """

    def __init__(self, cfg, where, resumed=False, kept=None, ran=None, snapshot=0):
        p = max(cfg.dropout, cfg.emb_dropout)
        heavy = (f", or less dropout (at {p:g} the units kept are scaled by {1 / (1 - p):,.4g})"
                 if p >= HEAVY_DROPOUT else "")
        retry = "start a new run with a smaller --lr" if resumed else "try a smaller --lr"  # --resume takes no --lr
        self.kept, self.ran = kept, ran
        # a resumed run's folder keeps its last snapshot, which this run may have taken on its way to the blow-up
        saved = (f"; nothing was saved but its snapshot of step {snapshot:,}, from which it would go the same way"
                 if snapshot else "; nothing was saved")
        super().__init__(f"training diverged {where}; the learning rate {cfg.lr:g} is too large, "
                         f"{retry}{heavy}" + (saved if kept is None else ""))


HEAVY_DROPOUT = 0.5  # from here on the scale-up of the kept units, 1 / (1 - p), can itself blow the loss up


class OutOfMemory(Exception):
    """What stopped a training that ran out of memory (train's interrupt): saved like a stopped run,
    which --resume continues, and then the command ends with EXIT_BAD_INPUT and this message."""

    code = EXIT_BAD_INPUT

    def __init__(self, done, evaluating=False):
        super().__init__(f"not enough memory to {'evaluate the model on dev after' if evaluating else 'train past'} "
                         f"step {done} at these sizes")


class RanAway(Exception):
    """The mean training loss of a window of steps rose past its limit (train's own signal)."""
