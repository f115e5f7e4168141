"""Line splitting and the log tail (pure)."""

from trioproxy.child.output import LogTail
from trioproxy.rules.lines import LineSplitter


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


async def test_tail_followers_get_what_came_after():
    import trio

    from trioproxy.child.output import LogTail

    tail = LogTail(3)
    for i in range(5):
        tail.add(f"l{i}")
    assert tail.count == 5 and tail.lines() == ["l2", "l3", "l4"]
    assert tail.since(4) == ["l4"] and tail.since(0) == ["l2", "l3", "l4"] and tail.since(5) == []
    with trio.fail_after(2):
        async with trio.open_nursery() as n:
            n.start_soon(tail.wait_past, 5)
            await trio.sleep(0.01)
            tail.add("l5")
    assert tail.since(5) == ["l5"]
