"""Manifests: canonical bytes and ids, parsing, diff and apply_diff, validation (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_sdk.errors import IntegrityError, InvalidName, InvalidValue
from mlops_sdk.manifest import FileEntry, Manifest, ManifestDiff, apply_diff, diff
from mlops_sdk.testing.dataset_store_conformance import no_clash

# -- strategies ----------------------------------------------------------------------------
_segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=6,
).filter(lambda s: s not in (".", ".."))
_paths = st.lists(_segments, min_size=1, max_size=3).map("/".join)
_sha256 = st.binary(min_size=0, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
_md5 = st.binary(min_size=0, max_size=8).map(lambda b: hashlib.md5(b).hexdigest())
_sizes = st.integers(0, 2**53)


@st.composite
def manifests(draw: st.DrawFn, algorithm: str = "sha256", paths: st.SearchStrategy[str] = _paths) -> Manifest:
    digests = _sha256 if algorithm == "sha256" else _md5
    chosen = no_clash(draw(st.lists(paths, max_size=12, unique=True)))
    return Manifest([FileEntry(p, draw(_sizes), draw(digests)) for p in chosen], algorithm)


@st.composite
def manifest_pairs(draw: st.DrawFn) -> tuple[Manifest, Manifest]:
    """Two manifests over a small shared pool of paths, so that they overlap, differ and match."""
    algorithm = draw(st.sampled_from(("sha256", "md5")))
    pool = draw(st.lists(_paths, min_size=1, max_size=8, unique=True))
    small = st.sampled_from(pool)
    return draw(manifests(algorithm, small)), draw(manifests(algorithm, small))


# -- canonical bytes and ids -------------------------------------------------------------------
@given(m=manifests(), order=st.randoms(use_true_random=False))
def test_bytes_and_id_do_not_depend_on_entry_order(m: Manifest, order: object) -> None:
    shuffled = list(m.entries)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    again = Manifest(shuffled, m.algorithm)
    assert again == m
    assert again.to_bytes() == m.to_bytes()
    assert again.id == m.id == hashlib.sha256(m.to_bytes()).hexdigest()
    assert [e.path for e in m] == sorted(e.path for e in m)


@given(m=st.one_of(manifests("sha256"), manifests("md5")))
def test_from_bytes_round_trips(m: Manifest) -> None:
    data = m.to_bytes()
    assert Manifest.from_bytes(data) == m
    assert Manifest.from_bytes(data, expected_id=m.id) == m
    assert Manifest.from_bytes(data).to_bytes() == data  # canonical: parsing and writing again changes nothing


@given(a=manifests(), b=manifests())
def test_different_content_different_id(a: Manifest, b: Manifest) -> None:
    assert (a.id == b.id) == (a == b)


def test_canonical_bytes_are_compact_sorted_utf8() -> None:
    m = Manifest([FileEntry("b/é.csv", 3, "b" * 64), FileEntry("a", 0, "a" * 64)])
    doc = json.loads(m.to_bytes())
    assert doc == {"algorithm": "sha256", "files": [["a", 0, "a" * 64], ["b/é.csv", 3, "b" * 64]], "format": 1}
    assert b" " not in m.to_bytes() and "é".encode() in m.to_bytes()
    assert m.total_size == 3 and len(m) == 2 and m.get("a") == FileEntry("a", 0, "a" * 64) and m.get("x") is None


def test_empty_manifest_is_valid() -> None:
    m = Manifest([])
    assert Manifest.from_bytes(m.to_bytes()) == m and m.total_size == 0 and not m.digests()


# -- diff and apply_diff -----------------------------------------------------------------------
@settings(max_examples=200)
@given(pair=manifest_pairs())
def test_apply_diff_turns_old_into_new(pair: tuple[Manifest, Manifest]) -> None:
    a, b = pair
    d = diff(a, b)
    assert apply_diff(a, d) == b
    assert d.unchanged + len(d.modified) + len(d.removed) == len(a)
    assert d.unchanged + len(d.modified) + len(d.added) == len(b)
    assert d.is_empty == (a == b)


@given(m=st.one_of(manifests("sha256"), manifests("md5")))
def test_diff_with_itself_is_empty(m: Manifest) -> None:
    d = diff(m, m)
    assert d.is_empty and d.unchanged == len(m)
    assert apply_diff(m, d) == m
    assert d.summary() == f"0 added, 0 removed, 0 modified, {len(m)} unchanged"


@given(pair=manifest_pairs())
def test_diff_reversed_swaps_added_and_removed(pair: tuple[Manifest, Manifest]) -> None:
    a, b = pair
    forward, backward = diff(a, b), diff(b, a)
    assert forward.added == backward.removed and forward.removed == backward.added
    assert [(o, n) for o, n in forward.modified] == [(n, o) for o, n in backward.modified]


def test_diff_names_each_change() -> None:
    old = Manifest([FileEntry("keep", 1, "a" * 64), FileEntry("gone", 2, "b" * 64), FileEntry("edit", 3, "c" * 64)])
    new = Manifest([FileEntry("keep", 1, "a" * 64), FileEntry("edit", 4, "d" * 64), FileEntry("new", 5, "e" * 64)])
    d = diff(old, new)
    assert [e.path for e in d.added] == ["new"]
    assert [e.path for e in d.removed] == ["gone"]
    assert d.modified == ((FileEntry("edit", 3, "c" * 64), FileEntry("edit", 4, "d" * 64)),)
    assert d.unchanged == 1
    assert d.to_dict()["modified"][0]["path"] == "edit"
    assert isinstance(d, ManifestDiff)


# -- validation ----------------------------------------------------------------------------------
GOOD = "0" * 64


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([FileEntry("a", 1, GOOD), FileEntry("a", 2, GOOD)], InvalidValue),  # the same path twice
        ([FileEntry("a", 1, GOOD), FileEntry("a/b", 2, GOOD)], InvalidValue),  # a file and a folder
        ([FileEntry("x/a", 1, GOOD), FileEntry("x/a/b/c", 2, GOOD)], InvalidValue),
        ([FileEntry("a", 1, "0" * 63)], InvalidValue),  # too short
        ([FileEntry("a", 1, "A" * 64)], InvalidValue),  # upper case
        ([FileEntry("a", 1, "g" * 64)], InvalidValue),  # not hex
        ([FileEntry("a", 1, "0" * 32)], InvalidValue),  # an md5 in a sha256 manifest
        ([FileEntry("a", -1, GOOD)], InvalidValue),
        ([FileEntry("a", True, GOOD)], InvalidValue),  # type: ignore[arg-type]
        ([FileEntry("a", 1.0, GOOD)], InvalidValue),  # type: ignore[arg-type]
        ([FileEntry("a", 1, None)], InvalidValue),  # type: ignore[arg-type]
        (["a"], InvalidValue),  # type: ignore[list-item]
        ([FileEntry("../a", 1, GOOD)], InvalidName),
        ([FileEntry("a/../../b", 1, GOOD)], InvalidName),
        ([FileEntry("..", 1, GOOD)], InvalidName),
        ([FileEntry("/etc/passwd", 1, GOOD)], InvalidName),
        ([FileEntry("a//b", 1, GOOD)], InvalidName),
        ([FileEntry("a/./b", 1, GOOD)], InvalidName),
        ([FileEntry("a\\b", 1, GOOD)], InvalidName),
        ([FileEntry("", 1, GOOD)], InvalidName),
        ([FileEntry("line\nbreak", 1, GOOD)], InvalidName),
        ([FileEntry("\ud800", 1, GOOD)], InvalidName),
        ([FileEntry(7, 1, GOOD)], InvalidName),  # type: ignore[arg-type]
    ],
)
def test_invalid_entries_are_refused(entries: list[FileEntry], error: type[Exception]) -> None:
    with pytest.raises(error):
        Manifest(entries)


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(InvalidValue, match="algorithm"):
        Manifest([], "sha1")
    assert Manifest([FileEntry("a", 1, "0" * 32)], "md5").algorithm == "md5"
    with pytest.raises(InvalidValue):
        Manifest([FileEntry("a", 1, GOOD)], "md5")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"not json",
        b"[]",
        b"null",
        b'"text"',
        b'{"format": 1}',
        b'{"format": 1, "algorithm": "sha256"}',
        b'{"format": 1, "algorithm": "sha256", "files": {}}',
        b'{"format": 1, "algorithm": "sha256", "files": [["a", 1]]}',
        b'{"format": 1, "algorithm": "sha256", "files": [["a", "1", "' + GOOD.encode() + b'"]]}',
        b'{"format": 1, "algorithm": "sha256", "files": [["a", true, "' + GOOD.encode() + b'"]]}',
        b'{"format": 1, "algorithm": "sha256", "files": [["a", 1.5, "' + GOOD.encode() + b'"]]}',
        b'{"format": 1, "algorithm": "sha256", "files": [[null, 1, "' + GOOD.encode() + b'"]]}',
        b'{"format": 1, "algorithm": 5, "files": []}',
    ],
)
def test_malformed_bytes_are_an_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        Manifest.from_bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"format": 2, "algorithm": "sha256", "files": []}',
        b'{"format": 1, "algorithm": "sha1", "files": []}',
        b'{"format": 1, "algorithm": "sha256", "files": [["../x", 1, "' + GOOD.encode() + b'"]]}',
    ],
)
def test_well_formed_but_unacceptable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises((InvalidValue, InvalidName)):
        Manifest.from_bytes(data)


def test_expected_id_refuses_other_bytes() -> None:
    m = Manifest([FileEntry("a", 1, GOOD)])
    other = Manifest([FileEntry("a", 2, GOOD)])
    with pytest.raises(IntegrityError, match="corrupted"):
        Manifest.from_bytes(other.to_bytes(), expected_id=m.id)
