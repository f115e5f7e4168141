"""Line splitting and the log tail (pure)."""

from trioproxy._applog import LineSplitter, LogTail


def test_lines_split_across_chunks():
    s = LineSplitter(100)
    assert s.feed(b"ab") == []
    assert s.feed(b"c\r\nde\nf") == ["abc", "de"]
    assert s.flush() == ["f"]


def test_long_line_cut_with_mark_and_bounded_memory():
    s = LineSplitter(10)
    out = []
    for _ in range(1000):
        out += s.feed(b"x" * 1000)
        assert len(s._buf) <= 1000
    out += s.feed(b"tail\nnext\n")
    assert out[0].startswith("x" * 10) and "bytes cut]" in out[0] and out[1] == "next"


def test_invalid_utf8_replaced():
    assert LineSplitter(100).feed(b"caf\xc3\xa9 \xff\n") == ["café \ufffd"]


def test_tail_keeps_last_lines():
    t = LogTail(3)
    for i in range(10):
        t.add(str(i))
    assert t.lines() == ["7", "8", "9"] and t.lines(2) == ["8", "9"]
