import hashlib
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from mlp_lm import data, wordfile
from mlp_lm.wordfile import DataError

ROOT = Path(__file__).resolve().parent.parent
NAMES = ROOT / "data" / "names.txt"


def test_bundled_names_file_is_the_lectures():
    assert hashlib.sha256(NAMES.read_bytes()).hexdigest() == \
        "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
    items = wordfile.read_items(NAMES)
    assert len(items) == 32033 and items[:3] == ["emma", "olivia", "ava"]


def test_lecture_split_sizes():
    s = data.load_splits(NAMES, block_size=3)
    assert len(s.vocab) == 27 and s.vocab.itos == ".abcdefghijklmnopqrstuvwxyz"
    assert [len(part[1]) for part in (s.train, s.dev, s.test)] == [182625, 22655, 22866]
    assert [len(p) for p in s.items] == [25626, 3203, 3204]
    assert s.sha256 == hashlib.sha256(NAMES.read_bytes()).hexdigest()  # of the bytes the splits came from
    for X, Y in (s.train, s.dev, s.test):
        assert X.shape == (len(Y), 3) and X.dtype == Y.dtype == np.int64


def test_split_is_the_lectures_shuffle():
    import random
    items = wordfile.read_items(NAMES)
    expected = list(items)
    random.seed(42)
    random.shuffle(expected)
    train, dev, test = data.split_items(items)
    assert train + dev + test == expected
    assert items[:3] == ["emma", "olivia", "ava"]  # the caller's list is not shuffled in place


def test_contexts_of_emma():
    vocab = data.build_vocab(["emma"])
    assert vocab.itos == ".aem"
    X, Y = data.build_dataset(["emma"], vocab, block_size=3)
    show = [(vocab.decode(x), vocab.itos[y]) for x, y in zip(X, Y)]
    assert show == [("...", "e"), ("..e", "m"), (".em", "m"), ("emm", "a"), ("mma", ".")]


def test_contexts_block_size_one_and_long():
    vocab = data.build_vocab(["ab", "c"])
    X, Y = data.build_dataset(["ab", "c"], vocab, block_size=1)
    assert X[:, 0].tolist() == [0, 1, 2, 0, 3] and Y.tolist() == [1, 2, 0, 3, 0]
    X, Y = data.build_dataset(["ab"], vocab, block_size=5)
    assert X.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 2]]


def test_read_items_strips_and_skips_blank_lines(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("  anna \n\n\tbo\r\n   \nzoë\n", encoding="utf-8")
    items = wordfile.read_items(f)
    assert items == ["anna", "bo", "zoë"]
    assert data.build_vocab(items).itos == ".abnoz" + "ë"


def write(tmp_path, content):
    f = tmp_path / "d.txt"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content, encoding="utf-8")
    return f


@pytest.mark.parametrize("content,match", [
    ("", "no items"),
    ("\n  \n\t\n", "no items"),
    (b"anna\nbj\xf6rn\n", "not UTF-8.*line 2"),
    (b"anna\rbo\r\ncy\rbj\xf6rn\r", r"not UTF-8.*line 4\)"),  # from a user's review: lines ending at \r said line 1
    ("anna\nbo\n".encode("utf-16"), "is UTF-16 or UTF-32 text .*byte-order mark.*save it as UTF-8"),
    ("\ufeffanna\nbo\n".encode("utf-16-be"), "is UTF-16 or UTF-32 text .*byte-order mark.*save it as UTF-8"),
    # From a user's review: UTF-16 of Latin letters without a byte-order mark is valid UTF-8 (a NUL after each
    # letter), and it trained on items like 'a\x00n\x00n\x00a\x00' with a dev loss that looked far too good.
    ("\n".join(["anna", "bo", "cy", "dee", "eve", "fay", "gus"]).encode("utf-16-le"), "holds 26 NUL bytes, as UTF-16 or UTF-32"),
    ("\r\n".join(["anna", "bo", "cy", "dee", "eve", "fay", "gus"]).encode("utf-16-be"), "UTF-16 or UTF-32 text without"),
    # From hostile reviews: UTF-16 of Cyrillic, Thai, Devanagari or Gurmukhi is ASCII bytes but for a NUL in each line
    # end (and U+040A, U+090A hold a \n byte of their own), with \n, \r\n or \r
    *[(sep.join(["иван", "Његош", "ऊषा", "ชาย", "ਪੰਜਾਬ", "юрий", "яна"] * 5).encode(enc),
       r"NUL byte.*UTF-16 .*save it as UTF-8 \(taking the NULs out would leave junk\)")
      for enc in ("utf-16-le", "utf-16-be") for sep in ("\r", "\n", "\r\n")],
    (b"ab\x00cd", r"holds NUL bytes \(the first at line 1\), which no word list does: if it is UTF-16 .*; if it is a word "
                 r"list with stray NULs, remove them"),
    # From a user's trial: a picture that happened to have more line-end bytes than NULs was told to have its NULs
    # removed; files of other kinds are named by their first bytes, as archives are
    (b"\x89PNG\r\n\x1a\n\n\n\n\n\x00\x00\x00\rIHDR\n\n\n", r"^data file .*d.txt is a PNG image, not text; --data "
                                                                  r"takes a word list, one item per line$"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "is a JPEG image, not text"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "is a PDF document, not text"),
    (b"\x7fELF\x02\x01\x01\x00", r"is a program \(ELF\), not text"),
    # From a fifth hostile review: one ASCII letter in UTF-16-LE Cyrillic (a hyphen) got "remove them", which left junk;
    # and NUL-terminated UTF-8 lines were called UTF-16
    ("Анна\nИван\nАнна-Мария\nОльга\nПётр\nМихаил\n".encode("utf-16-le"), "holds 7 NUL bytes, as UTF-16"),
    ("Москва\nСанкт-Петербург".encode("utf-16-le"), r"line 2\), .*if it is UTF-16 .*save it as UTF-8 \(taking the NULs"),
    ("𠨊𠨊𠨊\n".encode("utf-32-le"), "holds 6 NUL bytes, as UTF-16 or UTF-32"),  # two \n bytes a character: lines > NULs
    (b"anna\nbob\n\x00carla\n", r"line 3\), which no word list does: if it is UTF-16 .*stray NULs, remove them; otherwise it is not text"),
    (b"emma\x00\nolivia\x00\nava\x00\nbo\x00\n", r"NUL bytes \(the first at line 1\), .*stray NULs, remove them; otherwise it is not text"),
    ("anna\nbo\n".encode("utf-32"), "UTF-16 or UTF-32 text"),
    ("\ufeffanna\nbo\n".encode("utf-32-be"), "UTF-16 or UTF-32 text .it starts with their byte-order mark"),
    (b"anna\nbob\x00\ncy\n", r"NUL bytes \(the first at line 2\), which no word list does"),
    (b"\xef\xbb\xbfa\nb\nc\n\xff\n", r"not UTF-8.*line 4\)"),  # counted from after the byte-order mark: line 2
    ("anna\nst.john\nbo\n", "boundary symbol '.'.*item 2"),
    ("anna\nbo\n", "2 item.*at least 6"),
    ("a\nb\nc\nd\ne\n", "5 item.*at least 6"),
])
def test_bad_data_raises_data_error(tmp_path, content, match):
    f = write(tmp_path, content)
    with pytest.raises(DataError, match=match):
        data.load_splits(f, block_size=3)


def packed(kind, text):
    """text packed as `kind`, as a user might pass it in place of the list itself."""
    import bz2
    import gzip
    import io
    import lzma
    import zipfile
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("names.txt", text)
        return buffer.getvalue()
    if kind in ("zst", "7z"):  # no packer in the standard library: the magic, then bytes as packed data has them
        return {"zst": b"\x28\xb5\x2f\xfd", "7z": b"7z\xbc\xaf\x27\x1c"}[kind] + bytes(range(256)) * 4
    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text.encode())


@pytest.mark.parametrize("kind,called", [("gz", "a gzip file"), ("zip", "a zip archive"), ("bz2", "a bzip2 file"),
                                         ("xz", "an xz file"), ("zst", "a zstd file"), ("7z", "a 7-Zip archive")])
def test_a_packed_word_list_is_told_to_be_unpacked(tmp_path, kind, called):
    # From a new user's review: names.txt.gz was told it held NUL bytes, and to remove them if it was not UTF-16
    names = (Path(__file__).parent / "data" / "names-small.txt").read_text()
    f = write(tmp_path, packed(kind, names))
    with pytest.raises(wordfile.NotAWordList, match=f"^data file {f} is {called}.*, not text; unpack it and pass the "
                                                    f"text file of words inside$"):
        data.load_splits(f, block_size=3)
    f.write_text("BZh91AY&SY\nPK\nanna\nbo\ncy\ndee\neve\n")  # text that starts as bzip2 does: a word list
    assert wordfile.read_items(f)[:2] == ["BZh91AY&SY", "PK"]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="not found"):
        wordfile.read_items(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="directory"):
        wordfile.read_items(tmp_path)


def test_six_items_are_enough(tmp_path):
    f = write(tmp_path, "\n".join("abcdef"))
    s = data.load_splits(f, block_size=2)
    assert [len(p) for p in s.items] == [4, 1, 1]


def test_vocab_encode_takes_one_text():
    # A list of words was read as symbols named after them: "unknown symbol(s) 'ab'; the vocabulary is 'ab'"
    vocab = data.build_vocab(["ab"])
    assert vocab.encode(("a", "b")) == vocab.encode(["a", "b"]) == vocab.encode("ab") == [1, 2]
    assert vocab.encode(np.array(["a", "b"])) == vocab.encode(np.str_("ab")) == [1, 2]  # as before
    assert vocab.encode([]) == vocab.encode("") == []
    with pytest.raises(TypeError, match=r"not a list holding 'ab' \(2 symbols\); one word at a time: encode\(word\)"):
        vocab.encode(["ab"])
    with pytest.raises(TypeError, match=r"holding 'a\\u0301' \(2 symbols\)"):  # one letter on screen, two symbols
        vocab.encode(["a\u0301"])
    with pytest.raises(TypeError) as e:  # a long item is cut short, as in every message about symbols
        vocab.encode(["a" * 100_000])
    assert len(str(e.value)) < 200 and "(100,000 in all)" in str(e.value)
    with pytest.raises(TypeError, match="not a list holding a value of type int$"):
        vocab.encode(["a", 1])
    with pytest.raises(TypeError, match="not a list holding a value of type NoneType$"):
        vocab.encode(["a", None])
    with pytest.raises(TypeError, match=r"not bytes: decode it first, text.decode\('utf-8'\)"):
        vocab.encode(b"ab")
    for text, name in ((None, "None"), (iter("ab"), "str_ascii_iterator"), ({"a": 1}, "dict"),
                       (np.array([["a"]]), "ndarray")):
        with pytest.raises(TypeError, match=f"a list of one-symbol strs, not {name}$"):
            vocab.encode(text)


def test_vocab_encode_rejects_unknown_symbols():
    vocab = data.build_vocab(["abc"])
    assert vocab.encode("cab") == [3, 1, 2]
    with pytest.raises(DataError, match="unknown symbol.*'z'") as e:
        vocab.encode("az")
    assert "accents" not in str(e.value)
    with pytest.raises(DataError, match="unknown symbol.*'z'"):  # a list of symbols too (it was a TypeError)
        vocab.encode(["a", "z"])
    # From a user's review: a list saved with accents as combining marks (as macOS can write it) refused the
    # 'é' a keyboard types, saying only that it was unknown; the same text written the data's way is offered.
    nfd = data.build_vocab([unicodedata.normalize("NFD", w) for w in ("josé", "zoë")])
    with pytest.raises(DataError, match=r"accents the other way; the same text as 'jose\\u0301'.*'NFD'"):
        nfd.encode("josé")
    assert nfd.decode(nfd.encode(unicodedata.normalize("NFD", "josé"))) == "jose\u0301"
    with pytest.raises(DataError, match=r"the same text as 'josé'.*'NFC'"):
        data.build_vocab(["josé"]).encode(unicodedata.normalize("NFD", "josé"))


def test_byte_order_mark_is_not_a_symbol(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes("\ufeffanna\nbo\n".encode("utf-8"))
    assert wordfile.read_items(f) == ["anna", "bo"]
    # From a user's review: `cat bom.txt bom.txt` leaves a mark at the start of a line inside the file, which was a
    # symbol of its own ('\ufeffanna' another item than 'anna'); a mark alone on a line made an item of one.
    f.write_bytes("\ufeffanna\nbo\n".encode("utf-8") * 2 + "\ufeff \n \ufeff cy \nd\ufeffe\n".encode("utf-8"))
    assert wordfile.read_items(f) == ["anna", "bo", "anna", "bo", "cy", "d\ufeffe"]  # inside an item it stays a symbol
    f.write_bytes("\ufeffanna\n\ufeff\ufeffbo\n".encode("utf-8"))
    assert wordfile.read_items(f) == ["anna", "bo"]
    assert data.read_items is wordfile.read_items and data.DataError is wordfile.DataError  # still found in data


def reference_dataset(items, vocab, T):
    """The lecture's loop, example by example: the meaning build_dataset must keep."""
    X, Y = [], []
    for item in items:
        context = [0] * T
        for ch in item + data.BOUNDARY:
            X.append(context)
            Y.append(vocab.stoi[ch])
            context = context[1:] + [vocab.stoi[ch]]
    return np.array(X, dtype=np.int64).reshape(-1, T), np.array(Y, dtype=np.int64)


def test_build_dataset_matches_the_lectures_loop_on_random_items():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.text(st.characters(blacklist_characters=".\n\r", blacklist_categories=("Cs",)), min_size=1,
                            max_size=12), min_size=1, max_size=20),
           st.integers(1, 9))
    def check(items, T):
        vocab = data.build_vocab(items)
        X, Y = data.build_dataset(items, vocab, T)
        Xr, Yr = reference_dataset(items, vocab, T)
        assert X.dtype == Y.dtype == np.int64 and X.flags.c_contiguous
        np.testing.assert_array_equal(X, Xr)
        np.testing.assert_array_equal(Y, Yr)

    check()


def test_many_items_load_with_memory_a_small_multiple_of_the_examples(tmp_path):
    """The 1,000,000-item case of python -m mlp_lm.bench, at a tenth of the size."""
    import tracemalloc
    from mlp_lm.scale import write_items
    write_items(tmp_path / "items.txt", 100_000)
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        s = data.load_splits(tmp_path / "items.txt", 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    example_bytes = sum(a.nbytes for part in (s.train, s.dev, s.test) for a in part)
    assert sum(len(p) for p in s.items) == 100_000 and len(s.vocab) == 27
    assert len(s.train[1]) + len(s.dev[1]) + len(s.test[1]) == sum(len(i) + 1 for p in s.items for i in p)
    assert peak < 1.8 * example_bytes, (peak, example_bytes)


def test_the_memory_estimate_of_building_examples_bounds_what_it_takes():
    """check_fits is asked for data.dataset_bytes before any array is made: it must not be less than
    the peak, at a context of one (where the symbols' stage is the larger) or of many."""
    import tracemalloc
    rng = np.random.default_rng(0)
    items = ["".join(rng.choice(list("abcdefghij"), rng.integers(1, 40))) for _ in range(20_000)]
    vocab = data.build_vocab(items)
    for T in (1, 3, 8):
        tracemalloc.start()
        try:
            X, Y = data.build_dataset(items, vocab, T)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        bound = data.dataset_bytes(len(Y), len(items), T)
        assert peak <= bound < 1.5 * peak, (T, peak, bound)


def test_the_small_word_list_of_the_tests_is_every_tenth_name():
    names = NAMES.read_text().splitlines()
    small = (NAMES.parent.parent / "tests" / "data" / "names-small.txt").read_text().splitlines()
    assert small == names[::10] and len(small) == 3204


def test_messages_show_combining_marks_and_keep_to_one_line():
    # A decomposed accent (e + U+0308) is two symbols; printed as is, the mark would join the
    # symbol before it and vanish from the list. A huge vocabulary is cut short.
    vocab = data.Vocab(".aez\u0308")
    with pytest.raises(DataError) as e:
        vocab.encode("zoe\u0308")
    message = str(e.value)
    assert "\u0308" not in message and "'aez\\u0308'" in message and "'o'" in message
    big = data.Vocab("." + "".join(chr(0x4E00 + i) for i in range(5000)))
    with pytest.raises(DataError) as e:
        big.encode("x")
    assert "(5,000 in all)" in str(e.value) and len(str(e.value)) < 200
    # sorted, a vocabulary's accented symbols come last: a new user never saw them in a message cut at 40
    french = data.build_vocab(["".join(chr(c) for c in range(65, 91)), "abcdefghijklmnopqrstuvwxyz", "éèêàç"])
    with pytest.raises(DataError) as e:
        french.encode("ñ")
    assert "the vocabulary is 'ABCDEFGHIJKLMNOPQRST'...'lmnopqrstuvwxyzàçèéê' (57 in all)" in str(e.value)


def test_combining_marks_past_the_basic_plane_are_escaped_whole():
    # U+1D167 (a musical combining mark) needs \\U and eight digits; \\u1d167 would read as \\u1d16 then 7
    assert data.show_symbols("a\U0001d167") == "'a\\U0001d167'"


def test_a_file_that_repeats_its_items_is_warned_of_where_dev_and_test_are_mostly_train(tmp_path):
    # From a new user's review: a list of 400 names written out five times was split by line, and
    # 196 of 200 dev items were in train too: dev and test losses far too good, and nothing said.
    from mlp_lm import data
    names = wordfile.read_items(NAMES)
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("\n".join(names[:400] * 5) + "\n")
    warning = data.repeats_warning(data.load_splits(repeated, 3))
    assert warning.startswith("warning: 196 of 200 dev items and 199 of 200 test items are also in train")
    # names.txt repeats some names too (as the lecture's split has them), below the line: no warning
    splits = data.load_splits(NAMES, 3)
    train = set(splits.items[0])
    shares = [sum(i in train for i in part) / len(part) for part in splits.items[1:]]
    assert len(names) - len(set(names)) == 2539 and [round(100 * s) for s in shares] == [13, 12]
    assert data.repeats_warning(splits) is None
    from .conftest import run_cli
    proc = run_cli("mlp_lm.ngram", "--n", 2, "--smoothing", "kn", "--data", repeated)
    assert proc.returncode == 0 and proc.stderr.splitlines()[0] == warning  # on stderr, as every warning


def test_a_list_that_writes_accents_two_ways_is_warned_of(tmp_path):
    # From a new user's review: French words, some with é as one character and some as e + U+0301,
    # grew the vocabulary from 56 to 60 symbols, and only evaluate's refusal of a file mentioned forms.
    # A hostile pass then found lists already in NFC warned (Yoruba's ọ̀ has no one-character form), and
    # Korean written both as syllables and as jamo (macOS's file names) silent.
    import unicodedata

    from mlp_lm import data, data_advice

    def both(words):
        return [unicodedata.normalize("NFD" if i % 2 else "NFC", w) for i, w in enumerate(words)]
    french = ["élodie", "hélène", "andré", "noël", "chloé", "zoé", "gaël", "josé", "renée", "inès", "loïc", "maëlle"] * 3
    yoruba = ["Adébáyọ̀", "Olúwaṣẹ́un", "Bọ́lá", "Fúnmiláyọ̀", "Ìbùkún", "Kẹ́hìndé", "Ọlá", "Tèmítọ́pẹ́"] * 3
    korean = ["김민준", "이서연", "박지호", "최수아", "정우진", "강하은", "조예준", "윤지우"] * 3
    vietnamese = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]  # once each
    cases = [("nfc", french, None), ("nfd", [unicodedata.normalize("NFD", w) for w in french], None),
             ("mixed", both(french), "é"), ("yoruba", [unicodedata.normalize("NFC", w) for w in yoruba], None),
             ("korean", both(korean), "우"), ("vietnamese", both(vietnamese), "à")]
    for name, words, letter in cases:
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(words) + "\n", encoding="utf-8")
        warning = data_advice.accents_warning(data.load_splits(path, 3))
        if letter is None:
            assert warning is None, name
        else:  # one it writes both ways where there is one (French, Korean), else one it writes as one character
            assert warning.startswith(f"warning: the list writes accents two ways, as one character ({letter}) in some "
                                      f"items and as a letter and a combining mark in "), (name, warning)
    path = tmp_path / "mixed.txt"
    assert 'in 18 others, so one letter on screen can be two symbols; normalise it first (unicodedata.normalize("NFC", ' \
        'line)) if they should be one' in data_advice.accents_warning(data.load_splits(path, 3))
    from .conftest import run_cli
    for command in (("mlp_lm.ngram", "--n", 2, "--smoothing", "kn"), ("mlp_lm.train", "--steps", 1, "--eval-every", 0)):
        proc = run_cli(*command, "--data", path, "--out", tmp_path / "run") if command[0] == "mlp_lm.train" else \
            run_cli(*command, "--data", path)
        assert proc.returncode == 0 and "writes accents two ways" in proc.stderr, command
        assert "warning" not in proc.stdout, command  # stdout is the results a script reads
    assert data_advice.accents_warning(data.load_splits(NAMES, 3)) is None


def test_a_run_of_a_file_the_reader_now_reads_otherwise_is_told_so_not_called_damaged(tmp_path):
    # From a hostile review: a run trained before a byte-order mark starting a line was dropped has U+FEFF among
    # its symbols; evaluate called its checkpoint damaged, and --resume its training state.
    from types import SimpleNamespace

    from mlp_lm import evaluate, resume
    from mlp_lm.cli import UsageError
    f = tmp_path / "both.txt"
    f.write_bytes("anna\nbo\ncy\n".encode("utf-8") + "\ufeffdee\neve\nfay\ngus\n".encode("utf-8"))
    then = data.build_vocab(["anna", "bo", "cy", "\ufeffdee", "eve", "fay", "gus"])  # what the reader read before
    config = {"data": str(f), "data_sha256": wordfile.digest(f)}
    with pytest.raises(UsageError, match="very file the run was trained on, but this version reads it without the "
                                         "symbol U\\+FEFF") as e:
        evaluate.training_splits(config, then, 3)
    assert "damaged" not in str(e.value)
    splits = data.load_splits(f, 3)
    resumed = (None, [], [], splits.sha256, then.itos)
    assert "without the symbol U+FEFF" in resume.data_problem(resumed, splits, f, tmp_path, False)
    assert resume.data_problem(resumed[:4] + (splits.vocab.itos,), splits, f, tmp_path, False) is None
    other = SimpleNamespace(sha256="0" * 64, vocab=splits.vocab)
    assert "has changed since the run" in resume.data_problem(resumed, other, f, tmp_path, False)
    assert "is not the file the run" in resume.data_problem(resumed, other, f, tmp_path, True)
    assert wordfile.read_otherwise(".ab", ".ab") is None


def test_a_run_of_a_file_this_version_refuses_is_told_to_start_again(tmp_path):
    # From a second hostile review: a run trained by an earlier version on UTF-16 without its mark (read as letters and
    # NULs) was told to save the file as UTF-8, after which --resume said the data had changed: a dead end.
    from mlp_lm import evaluate, resume
    from mlp_lm.cli import UsageError
    f = tmp_path / "u16.txt"
    f.write_bytes("\n".join(["anna", "bo", "cy", "dee", "eve", "fay", "gus"]).encode("utf-16-le"))
    then = data.build_vocab(f.read_bytes().decode("utf-8").split("\n"))  # how the earlier reader read it
    sha = wordfile.digest(f)
    with pytest.raises(UsageError, match=r"NUL bytes.*; it is the very file the model was trained on, which this "
                                         r"version refuses: retrain on it saved as UTF-8 \(or, if it is UTF-8 with a few "
                                         r"NUL bytes, without them\); or pass --data with another file"):
        evaluate.training_splits({"data": str(f), "data_sha256": sha}, then, 3)
    with pytest.raises(UsageError, match="very file .* refuses: retrain on it .*; or leave out --mix-ngram$"):
        evaluate.training_splits({"data": str(f), "data_sha256": sha}, then, 3, instead="the --mix-ngram hint")
    with pytest.raises(UsageError, match=f"NUL bytes.*; it is the very file the run in {tmp_path} was trained on, "
                                         f"which this version refuses: retrain on it saved as UTF-8"):
        resume.run_splits(f, 3, (None, [], [], sha, then.itos), tmp_path)
    with pytest.raises(DataError, match="NUL bytes") as e:  # not the run's bytes: the reader's message alone
        resume.run_splits(f, 3, (None, [], [], "0" * 64, then.itos), tmp_path)
    assert "very file" not in str(e.value)
    with pytest.raises(UsageError) as e:
        evaluate.training_splits({"data": str(f), "data_sha256": "0" * 64}, then, 3)
    assert "changed since training" in str(e.value) and "which this version refuses" not in str(e.value)
    # The very file refused for another reason (a memory cap, say) is not blamed on this version: from a third review
    f.write_bytes(b"\n".join([b"anna", b"bo", b"cy"]))
    with pytest.raises(UsageError) as e:
        evaluate.training_splits({"data": str(f), "data_sha256": wordfile.digest(f)}, then, 3)
    assert "which this version refuses" not in str(e.value) and "at least 6" in str(e.value)
    # A stray NUL in UTF-8 is placed by its line, and the advice is to remove it
    f.write_bytes(b"anna\nbo\nc\x00y\ndee\neve\nfay\n")
    with pytest.raises(DataError, match=r"holds NUL bytes \(the first at line 3\), .*; if it is a word list with stray NULs, remove them; otherwise it is not text"):
        wordfile.read_items(f)


def test_reading_a_large_file_is_announced_before_its_silence(tmp_path, monkeypatch, capsys):
    # From a new user's review: 200 MB of names gave 78 s of silence before the data line
    from mlp_lm import evaluate, ngram, train
    small = Path(__file__).parent / "data" / "names-small.txt"
    assert wordfile.slow_reading(small) is None  # below the size: nothing to say
    assert wordfile.slow_reading(tmp_path / "missing.txt") is None  # the read says what is wrong
    monkeypatch.setattr(wordfile, "SLOW_READ_BYTES", small.stat().st_size)
    said = f"reading {small} ({small.stat().st_size / 1024:.0f} KiB) into examples: a file this large takes a while"
    assert wordfile.slow_reading(small) == said
    assert ngram.main(["--data", str(small), "--n", "2", "--smoothing", "kn"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == said
    assert train.main(["--data", str(small), "--steps", "5", "--eval-every", "0", "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == said
    assert evaluate.main(["--checkpoint", str(tmp_path / "r" / "model.npz")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == said.replace(str(small), str(small.resolve()))


def test_symbols_only_dev_or_test_holds_are_warned_of_and_named_in_the_by_heart_advice(tmp_path, capsys):
    # From a hostile review: 30 dev items ending in a symbol no training item held gave dev 3.28 against train
    # 1.28, and the only word was "the model learned its training items by heart; try a weight decay"
    import random

    from mlp_lm import ngram, train
    items = wordfile.read_items(ROOT / "tests" / "data" / "names-small.txt")[:300]
    order = list(range(len(items)))
    random.Random(data.SPLIT_SEED).shuffle(order)  # split_items' shuffle, of the positions: dev is 240..269
    for i in order[240:270]:
        items[i] += "ø"
    for i in order[295:297]:
        items[i] += "þ"
    path = tmp_path / "devonly.txt"
    path.write_text("\n".join(items) + "\n")
    splits = data.load_splits(path, 3)
    assert data.unseen_symbols(splits) == ["ø", "þ"]
    warning = ("warning: the symbols 'ø', 'þ' are in 30 dev items and 2 test items but in no training item, so the model "
               "never learns to predict them, and dev's and test's losses count them at what an unseen symbol costs; give "
               "the list more items that hold them, or take those out")
    assert data.unseen_symbols_warning(splits) == warning
    assert data.unseen_symbols_warning(data.load_splits(ROOT / "tests" / "data" / "names-small.txt", 3)) is None
    assert ngram.main(["--data", str(path), "--n", "2", "--smoothing", "kn"]) == 0
    assert warning in capsys.readouterr().err.splitlines()
    assert train.main(["--data", str(path), "--steps", "2000", "--eval-every", "0", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert warning in err.splitlines()
    assert re.search(r"learned its training items by heart.*; part of the gap may be the symbols dev holds and training "
                     r"does not, warned of above$", err, re.M), err
    path.write_text("\n".join(i.replace("þ", "") for i in items) + "\n")  # dev's only: one symbol, no test items
    assert data.unseen_symbols_warning(data.load_splits(path, 3)).startswith(
        "warning: the symbol 'ø' is in 30 dev items but in no training item, so the model never learns to predict it, "
        "and dev's loss counts it at")  # (a second hostile review: "in 30 dev and 0 test items", "dev's and test's")


def test_a_model_passed_as_data_is_named_as_one(tmp_path):
    # From a hostile review: --data runs/x/model.npz was told to unzip it and pass the text file inside
    from mlp_lm import checkpoint, model
    path = tmp_path / "model.npz"
    checkpoint.save(path, model.init_params(3, 2, 2, 2), data.Vocab(".ab"), {"block_size": 2})
    with pytest.raises(DataError, match=r"is a numpy \.npz archive \(a saved model\?\), not text; --data takes a word list"):
        data.load_splits(path, 3)
    import zipfile
    with zipfile.ZipFile(tmp_path / "words.zip", "w") as z:  # a word list zipped is still told to unpack it
        z.writestr("names.txt", "emma\nava\n")
    with pytest.raises(DataError, match="is a zip archive, not text; unpack it and pass the text file of words inside"):
        data.load_splits(tmp_path / "words.zip", 3)
    # a second hostile review: a model cut short, an .npy, an empty zip were told to unpack them or of UTF-16
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:300])
    np.save(tmp_path / "a.npy", np.arange(3))
    np.savez(tmp_path / "nothing.npz")
    for name, kind in (("cut.npz", r"a numpy \.npz archive \(a saved model\?\)"), ("a.npy", r"a numpy \.npy array"),
                       ("nothing.npz", "an empty zip archive")):
        with pytest.raises(DataError, match=f"is {kind}, not text; --data takes a word list, one item per line"):
            data.load_splits(tmp_path / name, 3)


def test_a_list_that_writes_letters_in_both_cases_is_noted(tmp_path):
    # From a hostile pass: names written Emma, Olivia trained a vocabulary of capitals and small letters without a
    # word, where evaluate's refusal of another file told the user to lower-case it
    from mlp_lm import data, data_advice
    capitalised = ["Emma", "Olivia", "Ava", "Isabella", "Sophia", "Mia", "Charlotte", "Amelia", "Harper", "Evelyn"]
    cases = [(capitalised, "note: the list writes 7 letters in both cases (A and a, ...), which the model learns as "
                           "different symbols; if case does not matter, lower-case the list first (Python's "
                           "str.lower(); tr changes only ASCII letters)"),
             # (a second hostile pass: ª and ɾ, their own lower case, were noted as written in both cases; σ and ς
             # counted twice beside Σ)
             (["aª", "ªb", "ɾa", "bɾ", "ab", "ba"], None), (["Σα", "σα", "ας", "ασ", "αα", "σσ"], "note: the list writes 1 "
                                                                                          "letter in both cases (Σ and σ)"),
             (["ẞa", "ßa", "aß", "aa", "ab", "ba"], "note: the list writes 1 letter in both cases (ẞ and ß)"),
             (["Жa", "жa", "Ǆa", "ǅa", "ǆa", "aa"], "note: the list writes 2 letters in both cases (Ǆ and ǆ, ...)"),
             (["Bob", "bob", "BOB", "xy", "yx", "xx"], "note: the list writes 2 letters in both cases (B and b, ...)"),
             (["Éa", "éa", "ab", "ba", "aa", "bb"], "note: the list writes 1 letter in both cases (É and é), which"),
             (["emma", "olivia", "ava", "mia", "zoe", "liam"], None), (["ABC", "CAB", "BCA", "Q", "XZ", "ZX"], None),
             (["ß", "SS", "ab", "ba", "aa", "bb"], None)]  # ß upper-cases to two letters: no one symbol
    for i, (words, said) in enumerate(cases):
        path = tmp_path / f"{i}.txt"
        path.write_text("\n".join(words) + "\n", encoding="utf-8")
        note = data_advice.case_note(data.load_splits(path, 3))
        assert (note is None) if said is None else note.startswith(said), (words, note)
    assert data_advice.case_note(data.load_splits(NAMES, 3)) is None
    assert data_advice.data_warnings(data.load_splits(tmp_path / "0.txt", 3))[-1].startswith("note: the list writes 7")
