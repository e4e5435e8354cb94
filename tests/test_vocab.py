"""The vocabulary forms users have, normalised to rows and words (embstore.vocab)."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest

from embstore import VocabularyError
from embstore.vocab import Vocabulary, normalize


def rows_of(v: Vocabulary) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for w, p in zip(v.words, v.positions.tolist(), strict=True):
        out.setdefault(w, []).append(p)
    return out


# -- word_index dicts ----------------------------------------------------------------------------


def test_word_index_rows_and_positions():
    v = normalize({"the": 1, "cat": 2, "sat": 5}, None)
    assert v.kind == "word_index"
    assert v.rows == 6  # max index + 1: row 0 and the unused rows 3, 4 stay empty
    assert v.words == ["the", "cat", "sat"]
    assert v.positions.dtype == np.int64
    assert v.positions.tolist() == [1, 2, 5]
    assert v.oov_rows.size == 0


@pytest.mark.parametrize(("num_words", "rows", "kept"), [
    (1, 1, []), (2, 2, ["the"]), (3, 3, ["the", "cat"]), (6, 6, ["the", "cat", "sat"]),
    (100, 6, ["the", "cat", "sat"]),
])
def test_word_index_num_words(num_words, rows, kept):
    v = normalize({"the": 1, "cat": 2, "sat": 5}, num_words)
    assert v.rows == rows
    assert v.words == kept


def test_word_index_accepts_numpy_ints_and_any_mapping():
    v = normalize(OrderedDict([("a", np.int64(3)), ("b", np.int32(1))]), None)
    assert v.rows == 4
    assert rows_of(v) == {"a": [3], "b": [1]}


def test_word_index_may_use_row_zero_and_share_rows():
    v = normalize({"a": 0, "b": 0, "c": 2}, None)
    assert v.rows == 3
    assert rows_of(v) == {"a": [0], "b": [0], "c": [2]}


def test_empty_word_index_is_just_padding():
    v = normalize({}, None)
    assert v.rows == 1 and v.words == []


@pytest.mark.parametrize("bad", [
    {"a": 1.0}, {"a": "1"}, {"a": True}, {"a": None}, {"a": -1}, {1: 1}, {b"a": 1},
])
def test_word_index_errors(bad):
    with pytest.raises(VocabularyError) as info:
        normalize(bad, None)
    assert isinstance(info.value, ValueError)  # VocabularyError is also a ValueError


@pytest.mark.parametrize("num_words", [0, -1, 1.5, "10", True])
def test_num_words_must_be_a_positive_int(num_words):
    with pytest.raises(VocabularyError, match="num_words"):
        normalize({"a": 1}, num_words)
    with pytest.raises(VocabularyError, match="num_words"):
        normalize(["", "a"], num_words)


# -- token lists ---------------------------------------------------------------------------------


def test_token_list_special_tokens():
    v = normalize(["", "[UNK]", "the", "cat"], None)
    assert v.kind == "tokens"
    assert v.rows == 4
    assert v.words == ["the", "cat"]
    assert v.positions.tolist() == [2, 3]
    assert v.oov_rows.tolist() == [1]


def test_token_list_without_special_tokens():
    v = normalize(["[UNK]", "the"], None)  # StringLookup without a mask token
    assert v.words == ["the"] and v.positions.tolist() == [1] and v.oov_rows.tolist() == [0]
    v = normalize(["the", "cat"], None)
    assert v.words == ["the", "cat"] and v.positions.tolist() == [0, 1]


def test_token_list_num_words_truncates():
    v = normalize(["", "[UNK]", "a", "b", "c"], 3)
    assert v.rows == 3 and v.words == ["a"]


@pytest.mark.parametrize("form", [
    lambda t: t, tuple, np.array, lambda t: np.array(t, dtype=object), iter,
    lambda t: (x for x in t), lambda t: [x.encode() for x in t],
])
def test_token_forms(form):
    tokens = ["", "[UNK]", "the", "naïve", "日本"]
    v = normalize(form(tokens), None)
    assert (v.rows, v.words, v.positions.tolist(), v.oov_rows.tolist()) == (
        5, ["the", "naïve", "日本"], [2, 3, 4], [1])


def test_object_with_get_vocabulary():
    class Lookup:
        def get_vocabulary(self):
            return ["", "[UNK]", "x"]

    v = normalize(Lookup(), None)
    assert v.words == ["x"] and v.oov_rows.tolist() == [1]


def test_token_list_errors():
    with pytest.raises(VocabularyError, match="empty"):
        normalize([], None)
    with pytest.raises(VocabularyError, match="str"):
        normalize(["a", 3], None)
    with pytest.raises(VocabularyError, match="cannot use int"):
        normalize(42, None)


# -- files ---------------------------------------------------------------------------------------


def test_text_file_line_is_row(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n[UNK]\nthe\n\ncat\n", encoding="utf-8")
    v = normalize(path, None)
    assert v.rows == 5
    assert rows_of(v) == {"the": [2], "cat": [4]}
    assert v.oov_rows.tolist() == [1]


def test_keras_vocabulary_file_is_not_mistaken_for_json(tmp_path):
    """TextVectorization/StringLookup vocabulary files start with '' and '[UNK]' or with
    '[UNK]'; the leading '[' must not make them JSON."""
    for content, rows in (("\n[UNK]\nthe\ncat\n", 4), ("[UNK]\nthe\ncat\n", 3),
                          ("{\n}\nthe\n", 3)):
        path = tmp_path / "vocab"
        path.write_text(content, encoding="utf-8")
        v = normalize(path, None)
        assert v.rows == rows
        assert v.words[-2:] in (["the", "cat"], ["}", "the"])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("final", [True, False])
def test_text_file_variants(tmp_path, newline, bom, final):
    tokens = ["", "[UNK]", "the", "straße", "日本"]
    text = newline.join(tokens) + (newline if final else "")
    path = tmp_path / "vocab.txt"
    path.write_bytes(bom + text.encode("utf-8"))
    v = normalize(str(path), None)
    assert v.rows == 5
    assert v.words == ["the", "straße", "日本"]


def test_text_file_keeps_spaces_and_tabs(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text(" lead\ttab\ntrail \n", encoding="utf-8")
    assert normalize(path, None).words == [" lead\ttab", "trail "]


def test_json_word_index_and_token_list(tmp_path):
    wi = tmp_path / "word_index.json"
    wi.write_text(json.dumps({"the": 1, "日本": 2}, ensure_ascii=False), encoding="utf-8")
    v = normalize(wi, None)
    assert v.kind == "word_index" and v.rows == 3 and rows_of(v) == {"the": [1], "日本": [2]}
    assert normalize(wi, 2).words == ["the"]
    tl = tmp_path / "tokens.json"
    tl.write_text(json.dumps(["", "[UNK]", "the"]), encoding="utf-8")
    v = normalize(tl, None)
    assert v.kind == "tokens" and v.words == ["the"] and v.oov_rows.tolist() == [1]


def test_json_sniffed_without_extension_and_with_bom(tmp_path):
    path = tmp_path / "word_index"
    path.write_bytes(b"\xef\xbb\xbf  " + json.dumps({"a": 1}).encode())
    v = normalize(path, None)
    assert v.kind == "word_index" and v.words == ["a"]


@pytest.mark.parametrize(("content", "match"), [
    (b"{not json", "not valid JSON"), (b"[1, 2", "not valid JSON"), (b'"text"', "expected"),
    (b"3", "expected"), (b'{"a": "1"}', "ints"), (b"\xff\xfe", "not valid JSON"),
])
def test_bad_json_files(tmp_path, content, match):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(VocabularyError, match=match):
        normalize(path, None)


def test_bad_text_files(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"the\n\xff\xfecat\n")
    with pytest.raises(VocabularyError, match="not UTF-8"):
        normalize(path, None)
    path.write_bytes(b"")
    with pytest.raises(VocabularyError, match="empty"):
        normalize(path, None)
    with pytest.raises(FileNotFoundError):
        normalize(tmp_path / "absent.txt", None)
    with pytest.raises(IsADirectoryError):
        normalize(tmp_path, None)


def test_word_index_with_str_subclass_keys():
    class Token(str):
        pass

    v = normalize({Token("the"): 1, "cat": 2, Token("sat"): 3}, None)
    assert v.words == ["the", "cat", "sat"] and v.rows == 4


@pytest.mark.parametrize("bad", [b"bytes", 7, None])
def test_word_index_with_a_non_str_key(bad):
    with pytest.raises(VocabularyError, match="keys must be str"):
        normalize({"the": 1, bad: 2}, None)
