"""rnnumba.formats: each reader against hand-computed arrays, and its one-line errors."""

import os

import numpy as np
import pytest

from rnnumba.formats import DataFile, from_long, read_csv, read_data, read_npz, read_ts

TINY_TS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny.ts")


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def equal_lists(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


# -- .npz --------------------------------------------------------------------------


def test_read_npz(tmp_path):
    X = np.arange(12.0).reshape(3, 2, 2)
    np.savez(tmp_path / "a.npz", X=X, y=np.array([1.0, 2.0, 3.0]), lengths=np.array([2, 1, 2]))
    np.savez(tmp_path / "b.npz", X=X[:, :, 0])
    X1, y1, l1 = read_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(X1, X)
    assert y1.tolist() == [1.0, 2.0, 3.0] and l1.tolist() == [2, 1, 2]
    X2, y2, l2 = read_npz(tmp_path / "b.npz")
    assert X2.shape == (3, 2) and y2 is None and l2 is None


def test_read_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        read_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npz: not a readable .npz"):
        read_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    with pytest.raises(ValueError, match=r"nox.npz: no array 'X' \(found \['y'\]"):
        read_npz(tmp_path / "nox.npz")


# -- the headerless CSV ------------------------------------------------------------


def test_read_csv_headerless(tmp_path):
    path = write(tmp_path, "a.csv", "# z, then f(z), ...\n4.5,3.0,2.0,1.0\n\n-1, 0.5 ,0.25\n2,7,,\n")
    X, y, ids = read_csv(path)
    equal_lists(X, [[3.0, 2.0, 1.0], [0.5, 0.25], [7.0]])
    assert y.dtype == np.float64 and y.tolist() == [4.5, -1.0, 2.0] and ids is None
    X, y, _ = read_csv(path, target_column=False)
    equal_lists(X, [[4.5, 3.0, 2.0, 1.0], [-1.0, 0.5, 0.25], [2.0, 7.0]])
    assert y is None
    labels = write(tmp_path, "b.csv", "target,v1,v2\nup,1,2\ndown,3\n")
    X, y, _ = read_csv(labels, header=True)
    equal_lists(X, [[1.0, 2.0], [3.0]])
    assert y.tolist() == ["up", "down"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2,3\n1,2,x\n", r"line 2, column 3: a step must be a number, got 'x' \(one sequence per row"),
        ("1,2,3\n1,,3\n", r"line 2, column 2: missing value in a step"),
        ("1,2\n\n5\n", r"line 3: expected a target and at least one value"),
        ("# nothing\n", r"no sequences"),
        (",1,2\n", r"line 1: missing target"),
        ("z,a,b\n1,2,3\n", r"line 1, column 2: a step must be a number, got 'a'"),
    ],
)
def test_read_csv_headerless_errors(tmp_path, text, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(ValueError, match=message) as info:
        read_csv(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


# -- the long-format CSV -----------------------------------------------------------

# two sequences, "s1" of 3 steps and "s2" of 2, rows shuffled: the time column orders them
LONG = """# a comment before the header
seq,t,a,b,y,label
s2,1,10.0,-1.0,0.5,up
s1,3,3.0,30.0,7.0,down
s1,1,1.0,10.0,7.0,down
s2,0,9.0,-2.0,0.5,up
s1,2,2.0,20.0,7.0,down
"""


def test_read_csv_long(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    X, y, ids = read_csv(path, id="seq", time="t", features=["a", "b"], target="y", target_per="sequence")
    assert ids.tolist() == ["s2", "s1"]  # order of first appearance
    equal_lists(X, [[[9.0, -2.0], [10.0, -1.0]], [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])
    assert y.dtype == np.float64 and y.tolist() == [0.5, 7.0]
    # per step, several target columns; without time, the order of the file
    X, y, _ = read_csv(path, id="seq", target=["y", "a"], features="b")
    equal_lists(y, [[[0.5, 10.0], [0.5, 9.0]], [[7.0, 3.0], [7.0, 1.0], [7.0, 2.0]]])
    X, y, _ = read_csv(path, id="seq", time="t", target="label", features="b")
    equal_lists(X, [[[-2.0], [-1.0]], [[10.0], [20.0], [30.0]]])
    equal_lists(y, [["up", "up"], ["down", "down", "down"]])
    unlabelled = "\n".join(line.rsplit(",", 1)[0] for line in LONG.splitlines()[1:])
    X, y, ids = read_csv(write(tmp_path, "n.csv", unlabelled), id="seq")
    assert y is None and ids.tolist() == ["s2", "s1"]  # default features: all but id, time, targets
    assert [x.shape for x in X] == [(2, 4), (3, 4)] and X[0][0].tolist() == [1.0, 10.0, -1.0, 0.5]


def test_read_csv_long_per_sequence_target_must_be_constant(tmp_path):
    path = write(tmp_path, "long.csv", LONG.replace("s1,2,2.0,20.0,7.0", "s1,2,2.0,20.0,7.5"))
    with pytest.raises(ValueError, match=r"long.csv, line 7: the target of sequence 's1' changes"):
        read_csv(path, id="seq", time="t", features=["a", "b"], target="y", target_per="sequence")
    X, y, _ = read_csv(path, id="seq", time="t", features=["a", "b"], target="y")  # per step: fine
    assert y[1].tolist() == [7.0, 7.5, 7.0]


@pytest.mark.parametrize(
    "edit, options, message",
    [
        (("s1,3,3.0,", "s1,3,,"), {}, r"line 4: missing value in column 'a'"),
        (("s1,3,3.0,", "s1,3,NA,"), {}, r"line 4: missing value in column 'a'"),
        (("s1,3,3.0,", "s1,3,three,"), {}, r"line 4: column 'a' must be a number, got 'three'"),
        (("s1,1,1.0", "s1,3,1.0"), {}, r"line 5: sequence 's1' has two rows at t 3.0"),
        (("s2,0,", ",0,"), {}, r"line 6: missing id in column 'seq'"),
        (("s2,1,", "s2,,"), {}, r"line 3: missing time in column 't'"),
        (("up\n", "up,9\n"), {}, r"line 3: 7 values under a header of 6 columns"),
        (("", ""), {"features": ["a", "c"]}, r"line 2: no column 'c' \(columns: seq, t, a, b, y, label\)"),
        (("", ""), {"features": ["a", "y"]}, r"a column is used twice"),
        (("", ""), {"target": ["y", "label"]}, r"several target columns \(y, label\) must all hold numbers"),
        (("", ""), {"target_per": "row"}, r"target_per must be 'step' or 'sequence'"),
        (("seq,t,a,b,y,label", "seq,t,a,a,y,label"), {}, r"line 2: column names must be distinct"),
    ],
)
def test_read_csv_long_errors(tmp_path, edit, options, message):
    path = write(tmp_path, "long.csv", LONG.replace(*edit, 1) if edit[0] else LONG)
    options = dict(dict(id="seq", time="t", features=["a", "b"], target="y"), **options)
    with pytest.raises(ValueError, match=message) as info:
        read_csv(path, **options)
    assert "\n" not in str(info.value)


def test_read_csv_argument_errors(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    with pytest.raises(ValueError, match="pass id="):
        read_csv(path, target="y")
    with pytest.raises(ValueError, match="needs a header row"):
        read_csv(path, id="seq", header=False)
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "missing.csv", id="seq")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00a,b\n")
    with pytest.raises(ValueError, match="bin.csv: not a UTF-8 text file"):
        read_csv(tmp_path / "bin.csv")
    with pytest.raises(ValueError, match="a header row but no data rows"):
        read_csv(write(tmp_path, "head.csv", "seq,a\n"), id="seq")


# -- from_long ---------------------------------------------------------------------


class FakeFrame:
    """What from_long reads of a pandas DataFrame: ``columns`` and ``frame[name]``."""

    def __init__(self, columns):
        self._columns = columns
        self.columns = list(columns)

    def __getitem__(self, name):
        return self._columns[name]


def long_columns():
    return {
        "seq": np.array([7, 3, 7, 3, 7]),
        "t": np.array([2.0, 1.0, 1.0, 0.0, 3.0]),
        "x1": np.array([0.2, 1.1, 0.1, 1.0, 0.3]),
        "x2": np.array([-2.0, -11.0, -1.0, -10.0, -3.0]),
        "y": np.array([1, 0, 1, 0, 1]),
    }


@pytest.mark.parametrize("form", ["dict", "frame", "structured"])
def test_from_long(form):
    cols = long_columns()
    if form == "frame":
        data = FakeFrame(cols)
    elif form == "structured":
        data = np.empty(5, dtype=[(k, v.dtype) for k, v in cols.items()])
        for k, v in cols.items():
            data[k] = v
    else:
        data = cols
    X, y, ids = from_long(data, id="seq", time="t", target="y", target_per="sequence")
    assert ids.tolist() == [7, 3]
    equal_lists(X, [[[0.1, -1.0], [0.2, -2.0], [0.3, -3.0]], [[1.0, -10.0], [1.1, -11.0]]])
    assert y.dtype.kind == "i" and y.tolist() == [1, 0]  # integers stay class labels
    X, y, ids = from_long(data, id="seq", features="x2", target="y")
    equal_lists(X, [[[-2.0], [-1.0], [-3.0]], [[-11.0], [-10.0]]])
    equal_lists(y, [[1, 1, 1], [0, 0]])


def test_from_long_reads_a_pandas_dataframe():
    pd = pytest.importorskip("pandas")
    cols = long_columns()
    frame = pd.DataFrame(cols).sample(frac=1.0, random_state=0)  # rows shuffled: the time column orders them
    X, y, ids = from_long(frame, id="seq", time="t", target="y", target_per="sequence")
    ref = from_long(cols, id="seq", time="t", target="y", target_per="sequence")
    assert sorted(ids.tolist()) == [3, 7]
    by_id = dict(zip(ids.tolist(), X, strict=True))
    for k, x in zip(ref[2].tolist(), ref[0], strict=True):
        np.testing.assert_array_equal(by_id[k], x)


def test_from_long_errors():
    cols = long_columns()
    with pytest.raises(ValueError, match=r"from_long: no column 'z'"):
        from_long(cols, id="seq", target="z")
    with pytest.raises(ValueError, match=r"row 2: missing value in column 'x1'"):
        from_long(dict(cols, x1=np.array([0.2, 1.1, np.nan, 1.0, 0.3])), id="seq")
    with pytest.raises(ValueError, match=r"row 1: missing value in column 'x1'"):
        from_long(dict(cols, x1=np.array([0.2, None, 0.1, 1.0, 0.3], dtype=object)), id="seq")
    with pytest.raises(ValueError, match=r"row 4: the target of sequence 7 changes"):
        from_long(
            dict(cols, y=np.array([1, 0, 1, 0, 2])), id="seq", time="t", target="y", target_per="sequence"
        )
    with pytest.raises(ValueError, match="1-D and of one length"):
        from_long(dict(cols, y=np.zeros(4)), id="seq")
    with pytest.raises(TypeError, match="from_long takes"):
        from_long([[1, 2]], id="seq")


def test_from_long_matches_read_csv(tmp_path):
    path = write(tmp_path, "long.csv", LONG)
    ref = read_csv(path, id="seq", time="t", features=["a", "b"], target="label", target_per="sequence")
    rows = [line.split(",") for line in LONG.splitlines()[2:]]
    data = {name: [r[k] for r in rows] for k, name in enumerate(LONG.splitlines()[1].split(","))}
    got = from_long(data, id="seq", time="t", features=["a", "b"], target="label", target_per="sequence")
    equal_lists(got[0], ref[0])
    assert got[1].tolist() == ref[1].tolist() == ["up", "down"] and got[2].tolist() == ["s2", "s1"]


# -- .ts ---------------------------------------------------------------------------


def test_read_ts_fixture():
    X, y, meta = read_ts(TINY_TS)
    expected = [
        [[1.0, 0.5], [2.0, 0.25], [3.0, 0.125]],
        [[4.0, -1.0], [5.0, -2.0]],
        [[0.0, 2.0], [1.5, 2.0], [3.0, 2.0], [4.5, 2.0]],
        [[-3.0, 0.1], [-2.5, 0.2]],  # '?' padding trimmed
        [[6.0, 1.0], [7.0, 0.0], [8.0, 1.0]],
        [[-1.0, 0.75], [-1.0, -0.75]],
    ]
    equal_lists(X, expected)
    assert all(x.dtype == np.float64 for x in X)
    assert y.dtype.kind == "U" and y.tolist() == ["up", "down", "up", "down", "up", "down"]
    assert meta == dict(
        problem_name="TinyUpDown",
        timestamps=False,
        missing=True,
        univariate=False,
        equal_length=False,
        series_length=None,
        dimensions=2,
        class_labels=["up", "down"],
        target_label=False,
    )


def test_read_ts_regression_and_unlabelled(tmp_path):
    head = "@problemName R\n@univariate true\n@equalLength true\n@seriesLength 3\n"
    path = write(tmp_path, "r.ts", head + "@targetLabel true\n@data\n1,2,3:0.5\n4,5,6:-2\n")
    X, y, meta = read_ts(path)
    equal_lists(X, [[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    assert y.dtype == np.float64 and y.tolist() == [0.5, -2.0] and meta["dimensions"] == 1
    path = write(tmp_path, "u.ts", "@classLabel false\n@data\n1,2\n3,4,5\n")
    X, y, meta = read_ts(path)
    assert y is None and [len(x) for x in X] == [2, 3]


@pytest.mark.parametrize(
    "text, message",
    [
        ("@timeStamps true\n@data\n(0,1)\n", r"line 1: @timeStamps true is not supported"),
        ("@classLabel true a b\n@data\n1,2:3:a\n", r"line 3: the dimensions of one case differ in length"),
        ("@classLabel true a b\n@data\n1,2:3,4:c\n", r"line 3: label 'c' is not one of"),
        ("@classLabel true a b\n@data\n1,?,2:3,4,5:a\n", r"line 3, dimension 1: a missing value inside"),
        ("@classLabel true a b\n@data\n1,x:3,4:a\n", r"line 3, dimension 1: 'x' is not a number"),
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", r"line 4: 1 dimension\(s\), expected 2"),
        ("@classLabel true\n@data\n", r"line 1: @classLabel true must list the class labels"),
        ("@targetLabel true\n@data\n1,2:up\n", r"line 3: target 'up' is not a number"),
        ("@missing maybe\n@data\n", r"line 1: expected true or false, got 'maybe'"),
        ("1,2,3\n", r"line 1: data before the @data line"),
        ("@data\n1,2\n@univariate true\n", r"line 3: a header line after @data"),
        ("@problemName X\n", r"no cases \(no @data line\)"),
        ("@univariate true\n@data\n1:2\n", r"@univariate true, but the cases have 2 dimensions"),
        ("@equalLength true\n@data\n1,2\n1\n", r"@equalLength true, but the cases differ in length"),
    ],
)
def test_read_ts_errors(tmp_path, text, message):
    path = write(tmp_path, "bad.ts", text)
    with pytest.raises(ValueError, match=message) as info:
        read_ts(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


# -- read_data ---------------------------------------------------------------------


def test_read_data_dispatch(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.ones((2, 3)), y=np.zeros(2))
    d = read_data(tmp_path / "a.npz")
    assert isinstance(d, DataFile) and d.X.shape == (2, 3) and d.lengths is None and d.ids is None
    d = read_data(TINY_TS, need_y=False)
    assert len(d.X) == 6 and d.y is None
    path = write(tmp_path, "long.csv", LONG)
    d = read_data(path, id="seq", time="t", features=["a", "b"], target="y", target_per="sequence")
    assert d.ids.tolist() == ["s2", "s1"] and d.y.tolist() == [0.5, 7.0]
    legacy = write(tmp_path, "p.csv", ",1,2\n,3\n")  # predict ignores the (empty) target column
    d = read_data(legacy, need_y=False)
    equal_lists(d.X, [[1.0, 2.0], [3.0]])


def test_read_data_errors(tmp_path):
    write(tmp_path, "a.txt", "1,2\n")
    with pytest.raises(ValueError, match=r"unknown data format '.txt'; use .npz, .csv, .ts"):
        read_data(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError):
        read_data(tmp_path / "none.csv")
    np.savez(tmp_path / "noy.npz", X=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"noy.npz: no targets \(expected an array 'y'\)"):
        read_data(tmp_path / "noy.npz")
    with pytest.raises(ValueError, match="id apply to .csv files"):
        read_data(tmp_path / "noy.npz", id="seq")
    path = write(tmp_path, "long.csv", LONG)
    with pytest.raises(ValueError, match="no targets"):
        read_data(path, id="seq", features=["a", "b"])
    with pytest.raises(ValueError, match="pass id="):
        read_data(path, target_per="sequence")
