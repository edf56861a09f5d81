"""class LinkedList with head = None: values added with the first adding method it has
are found by walking head -> next (the node's data, value, val, item or key): append,
insert_at_end and add_last keep their order; push, prepend, insert_at_beginning,
insert_at_head and add_first reverse it; add and insert may do either."""

IN_ORDER, REVERSED = [1, 2, 3], [3, 2, 1]
ADDERS = (
    ("append", (IN_ORDER,)), ("insert_at_end", (IN_ORDER,)), ("add_last", (IN_ORDER,)),
    ("push", (REVERSED,)), ("prepend", (REVERSED,)), ("insert_at_beginning", (REVERSED,)),
    ("insert_at_head", (REVERSED,)), ("add_first", (REVERSED,)),
    ("add", (IN_ORDER, REVERSED)), ("insert", (IN_ORDER, REVERSED)),
)


def node_values(linked):
    values, node = [], linked.head
    while node is not None and len(values) < 100:
        for field in ("data", "value", "val", "item", "key"):
            if hasattr(node, field):
                values.append(getattr(node, field))
                break
        else:
            raise AssertionError("a node without data/value/val")
        node = node.next
    return values


def check(candidate):
    linked = candidate()
    assert linked.head is None
    for name, orders in ADDERS:
        if callable(getattr(linked, name, None)):
            for value in (1, 2, 3):
                getattr(linked, name)(value)
            assert node_values(linked) in orders, "%s gave %r" % (name, node_values(linked))
            return
    raise AssertionError("no method that adds a value")
