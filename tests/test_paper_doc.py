"""docs/paper.md quotes docs/results.md; every number it quotes must be the generated one."""
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def rows(text, first_cells):
    """{first cell: [cells]} for the Markdown table rows of text."""
    out = {}
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] in first_cells:
                out.setdefault(cells[0], cells)
    return out


def results():
    text = (DOCS / "results.md").read_text()
    first = text.split("## Counting")[0]  # the MLP table; the mixture table repeats run names
    mlp = {c[0]: c for c in (l.strip().strip("|").split("|") for l in first.splitlines() if l.startswith("| "))}
    mlp = {k.strip(): [x.strip() for x in v] for k, v in mlp.items()}
    ngram = {}
    for line in text.split("## Counting")[1].split("##")[0].splitlines():
        if line.startswith("| add-k") or line.startswith("| kn"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            ngram[(cells[0], int(cells[1]))] = cells
    mixes = {}
    for line in text.split("## Mixtures")[1].splitlines():
        if line.startswith("| ") and not line.startswith("| run") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            mixes[cells[0]] = cells
    return mlp, ngram, mixes


def paper():
    return (DOCS / "paper.md").read_text()


def test_no_placeholder_is_left():
    assert not re.search(r"\b[A-Z]+[0-9]*_[A-Z]+\b", paper())


def test_the_comparison_table_quotes_results():
    mlp, ngram, _ = results()
    best_addk = min((c for (s, n), c in ngram.items() if s == "add-k"), key=lambda c: float(c[4]))
    want = {
        "bigram (Kneser-Ney, n = 2)": ngram[("kn", 2)][4:6] + ngram[("kn", 2)][6:7],
        f"best add-k n-gram (n = {best_addk[1]})": best_addk[4:6] + best_addk[6:7],
        "Kneser-Ney 6-gram": ngram[("kn", 6)][4:6] + ngram[("kn", 6)][6:7],
        "the lecture's MLP (`scaled`)": mlp["scaled"][8:10] + mlp["scaled"][10:11],
        "the paper's additions (`paper`)": mlp["paper"][8:10] + mlp["paper"][10:11],
        "the best recipe (`best`)": mlp["best"][8:10] + mlp["best"][10:11],
    }
    got = rows(paper(), set(want))
    assert set(got) == set(want)
    for name, cells in want.items():
        assert got[name][1:4] == cells, name


def test_the_mixture_table_quotes_results():
    _, _, mixes = results()
    got = rows(paper(), {"lecture (`scaled`)", "best"})
    for label, run in (("lecture (`scaled`)", "scaled"), ("best", "best")):
        m = mixes[run]  # run, mlp dev, mlp test, ng dev, ng test, lam, lin dev, lin test, ll lam, ll dev, ll test
        assert got[label][1:] == [m[1], m[3], f"{m[6]} ({m[5]})", f"{m[9]} ({m[8]})", m[7], m[10]], label


def test_the_prose_numbers_follow_the_tables():
    mlp, ngram, _ = results()
    text = " ".join(paper().split())
    best_addk_n = min((n for (s, n) in ngram if s == "add-k"), key=lambda n: float(ngram[("add-k", n)][4]))
    assert f"Add-k is best at n = {best_addk_n} and gets worse" in text
    gap = float(mlp["scaled"][8]) - float(ngram[("kn", 6)][4])
    assert f"loses to counting by {gap:.2f} nats" in text
    assert f"({mlp['scaled'][8]} against {ngram[('kn', 6)][4]})" in text
    assert f"Kneser-Ney 4-gram ({ngram[('kn', 4)][4]})" in text
    # the claims that paragraph makes: the 4-gram (same context) beats the MLP, the 3-gram does not
    assert float(ngram[("kn", 3)][4]) > float(mlp["scaled"][8]) > float(ngram[("kn", 4)][4])
    assert "dev 2.1038 against 2.1040" in text and mlp["direct"][8] == "2.1038" and mlp["scaled"][8] == "2.1040"
    assert f"(the `decay` row, {mlp['decay'][8]})" in text and mlp["decay"][8] == mlp["scaled"][8]
    assert float(mlp["paper"][8]) > float(mlp["scaled"][8])  # "end a little worse"
    assert f"together give {mlp['paper'][8]}" in text
    assert f"reaches {mlp['best'][8]}, below Kneser-Ney's {ngram[('kn', 6)][4]}" in text
    assert float(mlp["best"][8]) < float(ngram[("kn", 6)][4])


def test_the_schedules_compared_are_as_said():
    # "the smooth decay is down to half the first rate by step 22,223 and stays below that for 89% of
    # the run ... its mean rate is 0.026 against 0.055": from optim.learning_rate itself, at the r the
    # page chooses and the lecture's 200,000 steps
    import numpy as np
    from mlp_lm import optim
    mantissa, exponent = re.search(r"gives \$r = ([\d.]+) \\times 10\^\{(-\d+)\}\$", paper()).groups()
    r = float(mantissa) * 10.0 ** int(exponent)
    steps = 200_000
    inverse = np.array([optim.learning_rate("inverse", 0.1, t, steps, decay_rate=r) for t in range(steps)])
    lecture = np.array([optim.learning_rate("step", 0.1, t, steps) for t in range(steps)])
    assert round(inverse[-1], 6) == lecture[-1] == 0.01  # the same first and last rate
    half = int(np.argmax(inverse <= 0.05))
    said = f"is down to half the first rate by step {half:,} and stays below that for {np.mean(inverse < 0.05):.0%} of the run"
    assert said in " ".join(paper().split())
    assert np.mean(lecture == 0.1) == 0.5
    assert f"its mean rate is {inverse.mean():.3f} against {lecture.mean():.3f}" in " ".join(paper().split())
