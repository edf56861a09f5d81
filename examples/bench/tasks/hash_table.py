"""class HashTable: set (or put, insert, add, __setitem__) and get (or search, lookup,
find, __getitem__) with string keys: more keys than a small table has buckets, anagrams
(which collide under the usual sum-of-characters hash too), an update of a key, and a
missing key (None or KeyError)."""


def check(candidate):
    try:
        table = candidate()
    except TypeError:
        table = candidate(8)
    put = first_method(table, ("set", "put", "insert", "add", "__setitem__"))
    get = first_method(table, ("get", "search", "lookup", "find", "__getitem__"))
    assert put is not None and get is not None, "no set/get"
    keys = ["key%d" % i for i in range(40)] + ["listen", "silent", "enlist", "tinsel", "stone", "notes", "onset"]
    for i, key in enumerate(keys):
        put(key, i)
    for i, key in enumerate(keys):
        assert get(key) == i, "get(%r)" % (key,)
    put("key3", "updated")
    assert get("key3") == "updated"
    assert get("silent") == 41 and get("enlist") == 42
    try:
        assert get("missing") is None
    except KeyError:
        pass
