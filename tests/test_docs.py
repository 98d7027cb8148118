"""The docs cannot drift from the code.

The doctests in docs/*.md recompute what they print; these tests cover what doctests
cannot: numbers written in the prose, the links between docs and code, and the pasted
output of `python -m mlp_lm.gradcheck`.
"""
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from mlp_lm import data, gradcheck, layers, model

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NAMES = ROOT / "data" / "names.txt"
DOC_FILES = sorted(DOCS.glob("*.md"))
# Pages this test file vouches for number by number; other pages (training.md, results.md)
# have their own tests. Links are checked on every page.
OWN_DOCS = [DOCS / name for name in ("README.md", "model.md", "derivations.md", "gradcheck.md")]
# Link targets that other people are still writing: a missing one is skipped, not failed.
PENDING = {DOCS / "training.md": "docs/training.md is not written yet",
           ROOT / "README.md": "the repository README is not written yet"}

LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
NUMBER_WITH_COMMAS = re.compile(r"\d{1,3}(?:(?:,|\{,\})\d{3})+")


def read(name):
    return (DOCS / name).read_text(encoding="utf-8")


def prose_and_code(text):
    """Split a Markdown file into (prose lines, code lines): fenced blocks are code."""
    prose, code, in_code = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        (code if in_code else prose).append(line)
    return prose, code


def github_anchors(text):
    """The anchors GitHub gives a file's headings: lowercase, punctuation dropped, spaces -> hyphens."""
    anchors, seen = set(), {}
    for line in prose_and_code(text)[0]:
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def links(text):
    """(text, target) of every Markdown link outside code blocks."""
    return [m.groups() for line in prose_and_code(text)[0] for m in LINK.finditer(line)]


# --- numbers in the prose ----------------------------------------------------

def test_parameter_count_line_matches_the_model():
    params = model.init_params(27, 3, 10, 200)
    (line,) = [ln for ln in read("model.md").splitlines() if ln.startswith("$$") and "11{,}897" in ln]
    expr, terms, total = (part.strip() for part in line.strip("$").split("="))
    expr = expr.replace(r"\cdot", "*")
    assert re.fullmatch(r"[\d\s()*+]+", expr), expr
    terms = [int(t) for t in terms.split("+")]
    total = int(total.replace("{,}", ""))
    assert terms == [p.size for p in params.values()] == [270, 6000, 200, 5400, 27]
    assert total == model.num_params(params) == sum(terms) == eval(expr)  # expr is digits and operators only


def test_general_parameter_formula_in_the_docs_holds():
    text = read("model.md")
    assert r"\underbrace{V E}_{C} + \underbrace{T E \cdot H}_{W_1} + \underbrace{H}_{b_1}" in text
    for V, T, E, H in [(27, 3, 10, 200), (11, 4, 5, 17), (3, 1, 1, 1)]:
        assert model.num_params(model.init_params(V, T, E, H)) == V * E + T * E * H + H + H * V + V


@pytest.fixture(scope="module")
def splits():
    return data.load_splits(NAMES, 3)


def test_split_sizes_in_the_prose_match_load_splits(splits):
    text = read("model.md")
    m = re.search(r"([\d,]+) / ([\d,]+) / ([\d,]+) examples", text)
    assert m, "model.md should state the split sizes as 'a / b / c examples'"
    written = [int(g.replace(",", "")) for g in m.groups()]
    assert written == [len(splits.train[1]), len(splits.dev[1]), len(splits.test[1])] == [182625, 22655, 22866]
    m = re.search(r"([\d,]+) / ([\d,]+) / ([\d,]+) names", text)
    assert [int(g.replace(",", "")) for g in m.groups()] == [len(part) for part in splits.items]
    m = re.search(r"holds ([\d,]+) names", text)
    assert int(m.group(1).replace(",", "")) == sum(len(part) for part in splits.items)


@pytest.mark.parametrize("doc", OWN_DOCS, ids=lambda p: p.name)
def test_every_large_number_in_the_prose_is_printed_by_a_doctest(doc):
    # A number like 182,625 in the prose must also be an output of a doctest on the same page,
    # where the doctest run recomputes it.
    prose, code = prose_and_code(doc.read_text(encoding="utf-8"))
    code_text = "\n".join(code)
    for number in NUMBER_WITH_COMMAS.findall("\n".join(prose)):
        digits = re.sub(r"\D", "", number)
        assert re.search(rf"(?<![\d.]){digits}(?![\d.])", code_text), f"{doc.name}: {number} is in no doctest"


def test_the_checks_above_find_numbers():
    prose, _ = prose_and_code(read("model.md"))
    assert len(NUMBER_WITH_COMMAS.findall("\n".join(prose))) >= 10


# --- links between docs and code ---------------------------------------------

REQUIRED_HEADINGS = ["Linear", "Tanh", "Softmax cross-entropy", "Concatenation: a reshape",
                     "Embedding lookup: a scatter-add"]


def test_derivations_has_the_sections_the_code_links_to():
    headings = re.findall(r"^## (.+)$", read("derivations.md"), flags=re.M)
    for h in REQUIRED_HEADINGS:
        assert h in headings, f"derivations.md lacks the heading '## {h}'"


def test_every_anchor_in_layers_docstrings_exists():
    source = Path(layers.__file__).read_text(encoding="utf-8")
    anchors = re.findall(r"docs/derivations\.md#([\w-]+)", source)
    assert len(anchors) >= 5
    missing = set(anchors) - github_anchors(read("derivations.md"))
    assert not missing, f"layers.py links to derivations.md#{sorted(missing)}, which has no such heading"


def test_every_backward_names_its_derivation():
    for name in dir(layers):
        if name.endswith("_backward"):
            assert "docs/derivations.md#" in (getattr(layers, name).__doc__ or ""), name


def test_each_derivation_section_names_its_backward_function():
    sections = re.split(r"^## ", read("derivations.md"), flags=re.M)[1:]
    by_heading = {s.splitlines()[0]: s for s in sections}
    for h in REQUIRED_HEADINGS:
        names = [text.strip("`") for text, target in links(by_heading[h]) if target == "../mlp_lm/layers.py"]
        assert any(n.endswith("_backward") for n in names), f"section '{h}' names no backward function"


def code_links():
    """(doc, name, target) for every link like [`name`](../mlp_lm/module.py) in the docs."""
    out = []
    for doc in DOC_FILES:
        for text, target in links(doc.read_text(encoding="utf-8")):
            if re.fullmatch(r"`[\w.]+`", text) and re.fullmatch(r"\.\./mlp_lm/\w+\.py", target):
                out.append((doc.name, text.strip("`"), target))
    return out


def test_linked_functions_exist():
    found = code_links()
    assert len(found) >= 15
    for doc, name, target in found:
        module = importlib.import_module("mlp_lm." + Path(target).stem)
        assert hasattr(module, name.split(".")[-1]), f"{doc} links `{name}` to {target}, which has no such name"


def relative_links():
    out = []
    for doc in DOC_FILES:
        for _, target in links(doc.read_text(encoding="utf-8")):
            if not re.match(r"[a-z]+:", target):
                out.append((doc.name, target))
    return out


def test_relative_links_are_found():
    assert len(relative_links()) >= 20


@pytest.mark.parametrize("doc,target", relative_links())
def test_relative_link_resolves(doc, target):
    path, _, fragment = target.partition("#")
    file = (DOCS / path).resolve() if path else DOCS / doc
    if file in PENDING and not file.exists():
        pytest.skip(PENDING[file])
    assert file.exists(), f"{doc} links to {target}, which does not exist"
    if fragment:
        assert file.suffix == ".md", f"{doc}: anchor on a non-Markdown target {target}"
        assert fragment in github_anchors(file.read_text(encoding="utf-8")), f"{doc}: no heading for {target}"


def test_commands_in_the_docs_exist():
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in DOC_FILES)
    modules = set(re.findall(r"python -m (mlp_lm\.\w+)", text))
    tests = set(re.findall(r"tests/test_\w+\.py", text))
    assert "mlp_lm.gradcheck" in modules and "tests/test_gradcheck.py" in tests
    for m in modules:
        assert importlib.util.find_spec(m) is not None, f"the docs run `python -m {m}`, which does not exist"
    for t in tests:
        assert (ROOT / t).is_file(), f"the docs mention {t}, which does not exist"


# --- the pasted output of the gradient checker -------------------------------

def test_pasted_gradcheck_output_matches_a_real_run(capsys):
    text = read("gradcheck.md")
    block = text.split("$ python -m mlp_lm.gradcheck\n", 1)[1].split("```", 1)[0]
    pasted = block.strip().splitlines()
    assert gradcheck.main([]) == 0
    live = capsys.readouterr().out.strip().splitlines()
    assert len(pasted) == len(live) == 13
    assert pasted[-3:] == live[-3:] == ["10 of 10 gradients within 1e-09 of their scale",
                                        "the branch for a vocabulary past 64 symbols: 10 of 10 gradients the same, "
                                        "within 1e-09",
                                        "the branch for dC past 2**20 one-hot entries (np.add.at): 10 of 10 gradients "
                                        "the same, within 1e-09"]
    for p, r in zip(pasted[:-3], live[:-3]):
        # name and shape must match exactly; the tiny differences may vary across machines
        assert p.split("exact:")[0].split() == r.split("exact:")[0].split()
        assert p.endswith(" ok") and float(re.search(r"ratio: (\S+)", p).group(1)) <= gradcheck.COMMAND_TOLERANCE
        # the analytic gradients' scale is the same to the digits shown; the finite differences' errors
        # move with the BLAS and the order of additions, but not by a factor of 10 (which is a change of method)
        value = lambda line, key: float(re.search(key + r": (\S+)", line).group(1))
        assert value(p, "scale") == value(r, "scale"), (p, r)
        assert 0.1 < value(p, "maxdiff") / value(r, "maxdiff") < 10, (p, r)


def test_the_readmes_memory_refusal_needs_what_train_computes():
    # A pasted figure went stale once the kept best state was counted (1,460.6 GiB, then 1,676.6).
    from mlp_lm.config import Config
    from mlp_lm.runtime import gib
    from mlp_lm.trainer import memory_needed
    line = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if "needs about" in line)
    assert "H=1000000000, batch 32, 200,000 steps" in line
    assert f"needs about {gib(memory_needed(Config(n_hidden=10**9), 27))} of memory" in line


def test_each_example_on_the_checking_page_runs_on_its_own():
    # gradcheck.md is read by section, by someone holding their own code against ours, who pastes the
    # example of the section they need: the tanh example used the names the page's first one imported.
    import doctest
    blocks = re.findall(r"```python\n(.*?)```", read("gradcheck.md"), re.S)
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        test = doctest.DocTestParser().get_doctest(block, {}, f"gradcheck.md block {i}", "gradcheck.md", 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        failures = []
        runner.run(test, out=failures.append)
        assert runner.failures == 0, f"block {i} does not run on its own:\n{''.join(failures)[:2000]}"


def test_what_the_files_hold_names_the_keys_a_run_writes(tiny_run, tmp_path):
    # training.md's "What the files hold" lists metrics.json's keys and evaluate --json's: they must be
    # the ones the commands write, so a script written from the page reads what is there.
    import json
    from .conftest import run_cli
    text = (DOCS / "training.md").read_text().split("## What the files hold")[1].split("\n## ")[0]
    bullets = {b.split("**")[1].strip("`"): b for b in text.split("\n- ")[1:]}
    named = set(re.findall(r"`([a-z_0-9]+)`", bullets["metrics.json"]))
    metrics = json.loads((tiny_run[0] / "metrics.json").read_text())
    losses = {f"{s}_{m}" for s in ("train", "dev", "test") for m in ("loss", "perplexity", "bpc")}
    optional = {"best_step", "train_seconds_from_step"}  # only with what they describe
    config_keys = {"preset", "vocab_size", "data", "data_sha256", "split_seed", "longest_item"}
    said = (named | losses) - {"_perplexity", "_bpc", "null"} - config_keys
    assert said - optional == set(metrics), said ^ set(metrics)
    assert config_keys <= set(metrics["config"])
    assert (tiny_run[0] / "loss.csv").read_text().splitlines()[0] == "step,train_loss,dev_loss" in bullets["loss.csv"]
    out = tmp_path / "e.json"
    assert run_cli("mlp_lm.evaluate", "--checkpoint", tiny_run[0] / "model.npz", "--mix-ngram", 2,
                   "--json", out).returncode == 0
    doc = json.loads(out.read_text())
    evaluate_said = set(re.findall(r"`([a-z_]+)`", bullets["--json FILE"].split("`ngram`'s is flat")[0]))
    top = set(doc) - {"written_by", "checkpoint", "data"}
    assert top <= evaluate_said and doc["mix_ngram"] == 2, top - evaluate_said
    assert set(doc["mlp"]) <= losses and {"train_loss", "dev_loss", "test_loss"} <= evaluate_said
