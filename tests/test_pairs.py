"""LFW `pairs.txt`: reading, writing, and LFW View 2-style folds with disjoint identities."""

import warnings
from collections import Counter

import pytest

from explainface.readers.lfw_pairs import LfwPair, make_pairs, read_lfw_pairs, write_lfw_pairs


def _identities(n: int = 40, images: int = 6) -> dict[str, int]:
    return {f"person_{i:03d}": images for i in range(n)}


@pytest.fixture(scope="module")
def pairs() -> list[LfwPair]:
    return make_pairs(_identities(), folds=10, per_fold=20, seed=3)


def test_write_then_read_round_trips(tmp_path, pairs):
    assert read_lfw_pairs(write_lfw_pairs(tmp_path / "pairs.txt", pairs, folds=10, per_fold=20)) == pairs


def test_written_file_has_lfw_header_and_line_forms(tmp_path, pairs):
    lines = write_lfw_pairs(tmp_path / "pairs.txt", pairs, 10, 20).read_text().splitlines()
    assert lines[0] == "10\t20" and len(lines) == 1 + 10 * 40
    assert all(len(line.split("\t")) == 3 for line in lines[1:21])  # fold 0: same pairs first
    assert all(len(line.split("\t")) == 4 for line in lines[21:41])  # then different pairs


def test_reader_accepts_hand_written_lfw_file(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("2\t1\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t1\tJong_Thae_Hwa\t2\nA_B\t2\t3\nC_D\t1\tE_F\t1\n")
    assert read_lfw_pairs(f) == [
        LfwPair("Abel_Pacheco", 1, "Abel_Pacheco", 4, True, 0),
        LfwPair("Abel_Pacheco", 1, "Jong_Thae_Hwa", 2, False, 0),
        LfwPair("A_B", 2, "A_B", 3, True, 1),
        LfwPair("C_D", 1, "E_F", 1, False, 1),
    ]


@pytest.mark.parametrize(
    "text, where",
    [
        ("1\t1\nA\t1\t2\nA\t1\n", ":3:"),
        ("1\t1\nA\tone\t2\nA\t1\tB\t1\n", ":2:"),
        ("1\t1\nA\t0\t2\nA\t1\tB\t1\n", ":2:"),
        ("1\t2\nA\t1\t2\nA\t1\tB\t1\n", "header says 1 folds x 2"),
        ("folds\tper_fold\nA\t1\t2\n", ":1:"),
    ],
    ids=["two_fields", "non_numeric_index", "zero_index", "count_mismatch", "bad_header"],
)
def test_bad_pairs_file_raises_naming_file_and_line(tmp_path, text, where):
    f = tmp_path / "broken_pairs.txt"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        read_lfw_pairs(f)
    assert "broken_pairs.txt" in str(e.value) and where in str(e.value)


def test_every_fold_has_per_fold_same_and_different_pairs(pairs):
    counts = Counter((p.fold, p.same) for p in pairs)
    assert counts == {(f, s): 20 for f in range(10) for s in (True, False)}


def test_same_pairs_share_an_identity_and_different_pairs_do_not(pairs):
    sizes = _identities()
    for p in pairs:
        assert (p.name_a == p.name_b) == p.same
        assert 1 <= p.index_a <= sizes[p.name_a] and 1 <= p.index_b <= sizes[p.name_b]
        assert (p.name_a, p.index_a) != (p.name_b, p.index_b)


def test_each_identity_appears_in_one_fold_only(pairs):
    folds_of = {}
    for p in pairs:
        for name in (p.name_a, p.name_b):
            folds_of.setdefault(name, set()).add(p.fold)
    assert all(len(f) == 1 for f in folds_of.values())


def test_no_pair_appears_twice_in_either_order(pairs):
    keys = [frozenset({(p.name_a, p.index_a), (p.name_b, p.index_b)}) for p in pairs]
    assert len(set(keys)) == len(keys)


def test_pairs_are_deterministic_per_seed_and_vary_with_it():
    ids = _identities()
    assert make_pairs(ids, 10, 20, seed=5) == make_pairs(dict(reversed(ids.items())), 10, 20, seed=5)
    assert make_pairs(ids, 10, 20, seed=5) != make_pairs(ids, 10, 20, seed=6)


def test_too_few_images_reduce_per_fold_with_a_warning():
    # 2 identities x 3 images per fold: 2 * C(3, 2) = 6 same pairs, 3 * 3 = 9 different pairs possible
    with pytest.warns(UserWarning, match="using 6 per fold"):
        pairs = make_pairs(_identities(10, 3), folds=5, per_fold=300)
    assert Counter((p.fold, p.same) for p in pairs) == {(f, s): 6 for f in range(5) for s in (True, False)}


def test_enough_images_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_pairs(_identities(10, 3), folds=5, per_fold=6)


def test_identities_with_one_image_join_different_pairs_only():
    ids = {**_identities(4, 4), **{f"single_{i}": 1 for i in range(4)}}
    pairs = make_pairs(ids, folds=2, per_fold=5)
    assert not any(p.same and p.name_a.startswith("single") for p in pairs)
    assert len({p.fold for p in pairs}) == 2


def test_impossible_folds_raise_value_error():
    with pytest.raises(ValueError, match="even one"):
        make_pairs(_identities(10, 1), folds=5)  # no identity has two images
    with pytest.raises(ValueError, match="disjoint folds"):
        make_pairs(_identities(5, 5), folds=10)


def test_large_folds_draw_distinct_pairs_without_enumerating():
    ids = _identities(1000, 20)  # 100 identities per fold: ~2e6 different candidates per fold
    pairs = make_pairs(ids, folds=10, per_fold=300, seed=1)
    keys = {(p.name_a, p.index_a, p.name_b, p.index_b) for p in pairs}
    assert len(pairs) == len(keys) == 6000


def test_read_lfw_pairs_reads_a_byte_order_mark_and_names_the_file_for_other_bytes(tmp_path):
    from explainface.errors import InputError

    text = "1\t1\nA\t1\t2\nA\t1\tB\t1\n"
    plain, bom, latin = tmp_path / "plain.txt", tmp_path / "bom.txt", tmp_path / "latin.txt"
    plain.write_text(text)
    bom.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    latin.write_bytes(text.replace("B", "\xe9").encode("latin-1"))
    assert read_lfw_pairs(bom) == read_lfw_pairs(plain) and len(read_lfw_pairs(plain)) == 2
    with pytest.raises(InputError, match="latin.txt: pairs file is not UTF-8 text"):
        read_lfw_pairs(latin)
