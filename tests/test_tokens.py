import trio

from trioproxy.hub.tokens import TokenCache


class Hub:
    def __init__(self):
        self.calls = 0
        self.models = {"good": {"name": "dan", "kind": "user", "scopes": [], "token": "never kept"}}
        self.fail: Exception | None = None
        self.gate: trio.Event | None = None

    async def lookup(self, token):
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.models.get(token)


async def test_answers_are_cached_for_ttl_then_asked_again():
    hub, now = Hub(), [0.0]
    cache = TokenCache(hub.lookup, ttl_s=30, max_entries=10, clock=lambda: now[0])
    with trio.fail_after(5):
        assert (await cache.user("good"))["name"] == "dan"
        assert await cache.user("bad") is None
        assert (await cache.user("good"))["name"] == "dan" and await cache.user("bad") is None
        assert hub.calls == 2
        hub.models.pop("good")  # revoked
        now[0] = 31
        assert await cache.user("good") is None and hub.calls == 3


async def test_only_kept_fields_and_no_token_in_table():
    hub = Hub()
    cache = TokenCache(hub.lookup, ttl_s=30, max_entries=10)
    with trio.fail_after(5):
        model = await cache.user("good")
    assert "token" not in model and set(model) == {"kind", "name", "admin", "groups", "scopes"}
    assert all(b"good" not in k for k in cache._entries)


async def test_bounded_size():
    hub = Hub()
    cache = TokenCache(hub.lookup, ttl_s=30, max_entries=3)
    with trio.fail_after(5):
        for i in range(10):
            await cache.user(f"t{i}")
    assert len(cache) == 3


async def test_concurrent_lookups_share_one_call_and_its_failure():
    hub = Hub()
    hub.gate = trio.Event()
    cache = TokenCache(hub.lookup, ttl_s=30, max_entries=10)
    results = []

    async def ask():
        results.append(await cache.user("good"))

    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            for _ in range(20):
                n.start_soon(ask)
            await trio.sleep(0.05)
            hub.gate.set()
    assert hub.calls == 1 and len(results) == 20

    hub2 = Hub()
    hub2.gate, hub2.fail = trio.Event(), RuntimeError("hub down")
    cache2 = TokenCache(hub2.lookup, ttl_s=30, max_entries=10)
    errors = []

    async def ask2():
        try:
            await cache2.user("good")
        except RuntimeError as exc:
            errors.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(ask2)
            await trio.sleep(0.05)
            hub2.gate.set()
    assert hub2.calls == 1 and len(errors) == 5
    hub2.fail, hub2.gate = None, None
    with trio.fail_after(5):
        assert (await cache2.user("good"))["name"] == "dan"  # failures are not cached


async def test_a_cancelled_asker_does_not_strand_the_others():
    hub = Hub()
    hub.gate = trio.Event()
    cache = TokenCache(hub.lookup, ttl_s=30, max_entries=10)
    got = []
    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            first = trio.CancelScope()
            n.start_soon(_scoped, first, cache)
            await trio.sleep(0.02)

            async def second():
                got.append(await cache.user("good"))

            n.start_soon(second)
            await trio.sleep(0.02)
            first.cancel()
            await trio.sleep(0.02)
            hub.gate.set()
    assert got and got[0]["name"] == "dan"


async def _scoped(scope, cache):
    with scope:
        await cache.user("good")


def test_well_formed_tokens_only():
    from trioproxy.hub.tokens import digest, well_formed
    from trioproxy.settings import MAX_TOKEN_BYTES

    assert well_formed("0123abcdef" * 4) and well_formed("a" * MAX_TOKEN_BYTES) and well_formed("a-b_c.d~e/f+=")
    for bad in ("", "a" * (MAX_TOKEN_BYTES + 1), "ab cd", "ab\tcd", "ab\x00", "ab\r\nX-Evil: 1", "tökén",
                "ab\x7f", "\u2028", "ab\udcff"):
        assert not well_formed(bad), repr(bad)
    assert digest("t") == digest("t") != digest("u") and len(digest("t")) == 32 and digest("t") != b"t"
