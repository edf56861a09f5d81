"""class BinaryTree with root = None: insert (or add) builds a binary search tree; search
(or find, contains) is truthy for every inserted key and falsy for others; an in-order
traversal, when the class has one, lists the keys sorted; walking root -> left/right
finds them in search-tree order."""


def walk_in_order(node, out):
    if node is None or len(out) > 100:
        return out
    walk_in_order(getattr(node, "left", None), out)
    for field in ("key", "value", "data", "val"):
        if hasattr(node, field):
            out.append(getattr(node, field))
            break
    else:
        raise AssertionError("a node without key/value/data/val")
    walk_in_order(getattr(node, "right", None), out)
    return out


def check(candidate):
    keys = [50, 30, 70, 20, 40, 60, 80, 35, 65]
    tree = candidate()
    assert tree.root is None
    insert = first_method(tree, ("insert", "add"))
    assert insert is not None, "no insert"
    for key in keys:
        insert(key)
    assert walk_in_order(tree.root, []) == sorted(keys)
    search = first_method(tree, ("search", "find", "contains", "__contains__"))
    assert search is not None, "no search"
    for key in keys:
        assert search(key), "search(%d)" % key
    for key in (10, 45, 75, 100):
        assert not search(key), "search(%d) for a missing key" % key
    traversal = first_method(tree, ("inorder", "in_order", "inorder_traversal", "in_order_traversal"))
    if traversal is not None:
        listed = traversal()
        if listed is not None:
            assert list(listed) == sorted(keys)
