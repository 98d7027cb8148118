"""A run that its folder cannot take after all (the disk filled while it trained, the folder went away,
memory ran out while writing, its data was moved in under a run file's name): saved in the temporary
directory instead, or at least its model, and the message says where. The run folders are runs.py's."""
import shutil
import tempfile
from pathlib import Path

from . import atomic, checkpoint, runs, shell
from .cli import UsageError
from .runs import resume_command
from .space import file_size_limit


def save_run_or_rescue(out, *run, unusable=None, unfinished=False):
    """save_run(out, *run); if `out` cannot take it after all (the disk filled during training, the
    folder went away), save it in a new folder under the system's temporary directory instead and
    say where, so the training is not lost. If that fails too, say the run is lost.
    unusable: why `out` could not even be made; the temporary directory is then the only place tried.
    unfinished: a stopped run, so the message says how to continue it where it was saved."""
    short_of_memory = False  # (then the advice is for memory, not for disk space)
    try:
        if unusable:
            raise checkpoint.CheckpointError(unusable)
        try:
            runs.save_run(out, *run)  # (by the module: tests stand in for it there)
        except MemoryError:  # writing takes memory too (numpy copies each array in pieces), which a limit may not
            # leave after a training stopped for want of it (a hostile tester's ulimit -v): the places below may
            short_of_memory = True
            raise checkpoint.CheckpointError(f"there was not enough memory to write the run in {out}") from None
    except checkpoint.CheckpointError as e:
        rescue = None
        try:
            rescue = Path(tempfile.mkdtemp(prefix="mlp_lm-rescued-"))
            runs.save_run(rescue, *run)
        except (OSError, checkpoint.CheckpointError, MemoryError) as again:
            if rescue is not None:
                shutil.rmtree(rescue, ignore_errors=True)
            memory = "give this process more memory (free some, or raise ulimit -v)"
            disk = ("raise this process's file size limit (ulimit -f)" if file_size_limit() is not None
                    else "free some space")
            # what failed where: `out` for want of memory, or of room and then memory elsewhere, or room throughout
            fix = memory if short_of_memory else f"{disk}, and {memory}" if isinstance(again, MemoryError) else disk
            alone = save_model_alone(run)  # the loss history and the training state are most of the bytes
            if alone is not None:
                error = checkpoint.CheckpointError(
                    f"{e}; nor could the whole run be saved under {tempfile.gettempdir()}, but its model is, alone "
                    f"(without the training state or the loss history, so it cannot be resumed): python -m "
                    f"mlp_lm.sample --checkpoint {shell.path(alone)} samples from it; {fix} before training "
                    f"again")
                error.model_alone = alone  # (the report says what the model learned)
                raise error from None
            raise checkpoint.CheckpointError(f"{e}; nor could it be saved under {tempfile.gettempdir()}, so this "
                                             f"run is lost: {fix} before training again") from None
        then = f"; to continue it: {resume_command(rescue)}" if unfinished else ""
        raise UsageError(f"{e}; the run is saved in {rescue} instead: move that folder where you want it"
                         f"{then}") from None


def save_model_alone(run):
    """Where a run (save_run's arguments after `out`) that fits nowhere whole has its model.npz saved alone, in a
    new folder under the temporary directory: the parameters, vocabulary and config, a few percent of the run's
    bytes. None if even that fails."""
    params, vocab, config = run[:3]
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="mlp_lm-model-"))
        atomic.write_atomic([(folder / "model.npz", checkpoint.writer(params, vocab, config, check=False))])
        return folder / "model.npz"
    except (OSError, checkpoint.CheckpointError, MemoryError):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return None
