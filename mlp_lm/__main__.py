"""`python -m mlp_lm`: not a command itself; it lists the commands (each is `python -m mlp_lm.NAME`)."""
import sys

COMMANDS = {
    "train": "train a model on a word list (data/names.txt by default), report its losses, show samples",
    "sample": "more samples from a trained model",
    "draw": "a saved run's pictures, drawn again (loss curve, embedding, learning-rate sweep; needs matplotlib)",
    "evaluate": "a trained model's losses, alone or mixed with a Kneser-Ney n-gram",
    "ngram": "the counting models the paper compares with: add-k and Kneser-Ney n-grams",
    "gradcheck": "every hand-derived gradient against scipy's finite differences",
    "results": "train the documented runs and rebuild docs/results.md",
    "bench": "the speed of a training step, beside PyTorch's when it is installed",
}


def main(argv):
    if argv[:1] in ([], ["-h"], ["--help"]):
        print("mlp_lm's commands (--help on any of them lists its flags):")
        for name, what in COMMANDS.items():
            print(f"  python -m mlp_lm.{name:10s} {what}")
        return 0
    if argv[0] in COMMANDS:  # `python -m mlp_lm train`: say how it is spelled rather than guess the rest
        from .shell import join  # here: run as a folder, this module says so before any relative import
        print(f"python -m mlp_lm: error: the command is spelled {join(['python', '-m', 'mlp_lm.' + argv[0], *argv[1:]])}",
              file=sys.stderr)
    else:
        print(f"python -m mlp_lm: error: {argv[0]!r} is not a command; the commands are python -m mlp_lm.NAME with NAME "
              f"one of {', '.join(COMMANDS)} (python -m mlp_lm lists them)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    if not __package__:  # run as a folder (python mlp_lm): the import below needs the package
        print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
              "python -m mlp_lm", file=sys.stderr)
        sys.exit(2)
    from .cli import run  # its handling of output that cannot be written (> /dev/full), as every command has
    run(lambda: main(sys.argv[1:]), "python -m mlp_lm")
