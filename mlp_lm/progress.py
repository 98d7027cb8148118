"""The training's progress line: redrawn in place on a terminal, periodic lines otherwise."""
import sys
import time

from .metrics import perplexity_text

QUIET_SECONDS = 30.0  # at most this long between two lines in a log file or a pipe


class Progress:
    """One line updated in place on a terminal; plain periodic lines otherwise.

    The loss shown is the mean minibatch loss over the steps since the last line of a twentieth of the run
    (or of a dev evaluation), which is steadier than any single minibatch's. The lines in between, a terminal's
    redraws and a log's lines when a twentieth takes long, show that mean so far and leave it running: the
    lines at the twentieths say the same whether the run went to a terminal or a file, on a fast machine or
    a slow one.
    """

    def __init__(self, total, stream=None, start=0, evaluations=None, evaluation_seconds=0.0):
        """evaluations(done): how many dev evaluations come after step `done`, which the ETA counts in at
        evaluation_seconds each (an estimate) until the first is timed, and then at their measured mean."""
        self.total, self.stream, self.first = total, stream or sys.stderr, start  # start: steps already done
        self.evaluations, self.evaluation_seconds = evaluations or (lambda done: 0), evaluation_seconds
        self.evaluated = [0.0, 0]  # the seconds and the number of the dev evaluations made so far
        self.tty = self.stream.isatty()
        self.every = max(1, total // 20)
        self.start = self.last_draw = time.perf_counter()
        self.loss_sum, self.loss_n = 0.0, 0

    def update(self, done, loss, dev=None, seconds=0.0):
        """Step `done`'s minibatch loss, and its dev loss with the `seconds` its evaluation took, if it had one."""
        if dev is not None:
            self.evaluated[0] += seconds
            self.evaluated[1] += 1
        self.loss_sum += loss
        self.loss_n += 1
        now = time.perf_counter()
        last = done == self.total
        window_ends = dev is not None or last or done % self.every == 0  # the loss's mean starts again after
        if self.tty:
            due = dev is not None or last or now - self.last_draw > 0.1
        else:  # every twentieth of the run, and never quiet for long: a big list's twentieth can be minutes
            due = window_ends or now - self.last_draw >= QUIET_SECONDS
        if due:
            self._draw(done, dev, now, last)
        if window_ends:
            self.loss_sum, self.loss_n = 0.0, 0

    def _draw(self, done, dev, now, last):
        rate = (done - self.first) / max(now - self.start, 1e-9)  # shown: the run's, evaluations and all
        spent, count = self.evaluated  # the ETA: the steps at their own pace, and the evaluations to come
        step_seconds = max(now - self.start - spent, 0.0) / max(done - self.first, 1)
        eta = (self.total - done) * step_seconds + self.evaluations(done) * (spent / count if count else
                                                                              self.evaluation_seconds)
        line = f"step {done:>{len(str(self.total))}}/{self.total}  loss {self.loss_sum / self.loss_n:.4f}"
        if dev is not None:
            line += f"  dev {dev:.4f} (perplexity {perplexity_text(dev)})"  # 8.20; 1.2e+143 for a run blowing up
        line += f"  {steps_per_second(rate)} steps/s  ETA {eta:.0f}s"
        if self.tty:  # redraw in place; keep the line when it has a dev loss or is the last
            end = "\n" if dev is not None or last else ""
            self.stream.write("\r\033[K" + line + end)
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)
        self.last_draw = now


def steps_per_second(rate):
    """A rate of steps as the lines show it: 10,322, or 0.074 for a run slower than ten a second (not 0)."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"
