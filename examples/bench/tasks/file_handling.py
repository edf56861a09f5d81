"""read_json_file(filename): the parsed content of a JSON file (written here, in the
sandbox's folder)."""
import json


def check(candidate):
    data = {"name": "SmallCoder", "sizes": [1, 2, 3], "nested": {"ok": True, "none": None}}
    with open("data.json", "w", encoding="utf-8") as f:
        json.dump(data, f)
    assert candidate("data.json") == data
    with open("list.json", "w", encoding="utf-8") as f:
        f.write("[1, 2.5, \"three\"]")
    assert candidate("list.json") == [1, 2.5, "three"]
